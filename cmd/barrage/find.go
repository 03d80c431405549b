package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/barrage-load/barrage/coord"
	"github.com/barrage-load/barrage/engine"
	"github.com/barrage-load/barrage/find"
	"github.com/barrage-load/barrage/fleet"
	"github.com/barrage-load/barrage/local"
	"github.com/barrage-load/barrage/pipeline"
	"github.com/barrage-load/barrage/proto"
	"github.com/barrage-load/barrage/report"
)

const findAbout = `Finds the highest rate the target sustains within an SLO. It runs one
open-model test: a warm-up at --min-rate, then steps of --step (after --settle,
not judged), each a live change of the rate on warm connections. The rate
doubles (--growth) until the SLO breaks, then the last bracket is bisected to
--resolution. The SLO is the thresholds (--threshold, repeatable, or
thresholds: in a plan; see barrage run --help for the syntax), judged on each
step's merged intervals.

A step in which the generator fell behind or was saturated (the report's
verdict rules on the step; through the coordinator, any agent) is not held
against the target: the search stops and says the generator (the fleet) is
the limit instead of giving a number. So is a step whose SLO broke while the
sends went out late for reasons outside the generator's loops.

It prints a table (rate asked → achieved, p50/p99/p99.9, errors, valid, SLO)
and the answer:
  sustainable: 19 800 req/s at p99 < 50ms (it broke at 20 200 req/s)

With --zk it runs through the coordinator across the fleet (agents started
with barrage agent), with --agents, --min-agents, --wait as in barrage coord.
abort_on_fail and degrade do not apply to a search.

Exit status: 0 a sustainable rate was found (or the SLO held at --max-rate);
1 no answer: the generator or fleet is the limit, or the test could not run;
2 bad flags, plan or threshold; 3 the SLO broke at --min-rate; 130
interrupted (SIGINT/SIGTERM).`

func cmdFind(args []string) int {
	fs := newFlagSet("find", "--threshold SLO [flags] URL", findAbout)
	var lf loadFlags
	lf.register(fs)
	var o find.Options
	fs.Float64Var(&o.Min, "min-rate", find.DefaultMin, "lowest rate tried, and the warm-up's (req/s)")
	fs.Float64Var(&o.Max, "max-rate", find.DefaultMax, "highest rate tried (req/s)")
	fs.DurationVar(&o.Step, "step", find.DefaultStep, "how long each step is judged")
	fs.DurationVar(&o.Settle, "settle", find.DefaultSettle, "how long each step runs before it is judged")
	fs.DurationVar(&o.Warmup, "warmup", find.DefaultWarmup, "how long the test runs at --min-rate before the first step")
	resolution := fs.String("resolution", "2%", "stop bisecting when the bracket is this narrow, relative to the rate")
	fs.Float64Var(&o.Growth, "growth", find.DefaultGrowth, "factor the rate grows by from step to step until the SLO breaks")
	fs.IntVar(&o.Confirm, "confirm", 0, "measure a step whose SLO broke this many times more; a break that does not repeat (a stall of a shared machine) is taken back")
	cores := fs.Int("cores", 0, "event loops of this machine's generator (0 = all allowed CPUs; not with --zk)")
	jsonOut := fs.String("json", "", "also write the search as JSON to this file (- = stdout, and the table goes to stderr)")
	quiet := fs.BoolP("quiet", "q", false, "no progress lines")
	zkHosts := fs.String("zk", "", "run through the coordinator: ZooKeeper servers, host:port[,host:port...]")
	root := fs.String("zk-root", fleet.DefaultRoot, "znode under which barrage keeps its state")
	zkAuth := fs.String("zk-auth", "", "file holding \"user:password\" for ZooKeeper digest auth")
	agents := fs.Int("agents", 1, "agents to wait for (with --zk)")
	minAgents := fs.Int("min-agents", 1, "fewest agents the search may go on with (with --zk)")
	wait := fs.Duration("wait", coord.DefaultWait, "how long to wait for the agents (with --zk)")
	// The search sets these itself, or does not apply them: out of the
	// help, and refused when given.
	for _, name := range []string{"rate", "duration", "abort-on-fail", "degrade"} {
		_ = fs.MarkHidden(name)
	}
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	bad := func(format string, a ...any) int {
		fmt.Fprintf(os.Stderr, "barrage find: "+format+"\n", a...)
		return exitBadInput
	}
	if fs.Changed("rate") || fs.Changed("duration") {
		return bad("the search sets the rate and the duration itself (give --min-rate, --max-rate, --step)")
	}
	if fs.Changed("abort-on-fail") || fs.Changed("degrade") {
		return bad("--abort-on-fail and --degrade do not apply to a search (a broken step ends the climb)")
	}
	share, err := proto.ParseShare(*resolution)
	if err != nil {
		return bad("--resolution: %v", err)
	}
	o.Resolution = float64(share)
	// The flags carry the defaults: an explicit 0 is refused by Check,
	// not replaced (no Normalize).
	o.Generator = "generator"
	if *zkHosts != "" {
		o.Generator = "fleet"
	}
	if err := o.Check(engine.DefaultInterval); err != nil {
		return bad("%s", strings.TrimPrefix(err.Error(), find.ErrBadOptions.Error()+": "))
	}
	// The plan: one open-model test at the lowest rate, long enough for
	// every step the search can take (each change lands at an interval
	// boundary a little ahead: up to one interval and the lead more).
	_ = fs.Set("rate", strconv.FormatFloat(o.Min, 'g', -1, 64))
	_ = fs.Set("duration", time.Hour.String())
	plan, err := lf.build(fs, fs.Args())
	if err != nil {
		return planError("find", err)
	}
	if plan.Pattern.Type != proto.PatternConstant {
		return bad("the search makes its own steps: leave the plan's pattern out")
	}
	// After a broken step the load pauses until the requests left
	// waiting are sent; the engine sheds them after the request timeout.
	o.Drain = plan.Timeout.D()
	plan.Duration = proto.Duration(o.Duration(engine.DefaultInterval + coord.ChangeLead))
	if err := plan.Validate(); err != nil {
		return planError("find", err)
	}
	plan.AbortOnFail, plan.Degrade = nil, nil
	if len(lf.parsed) == 0 {
		return bad(`give the SLO: --threshold "p99 < 250ms" (repeatable), or thresholds: in the plan`)
	}
	var slo []string
	for _, t := range lf.parsed {
		if t.Step > 0 {
			return bad("threshold %q names a step: the search judges each of its own steps (drop step=)", t.Expr)
		}
		slo = append(slo, t.Expr)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	progress := io.Writer(os.Stderr)
	if *quiet {
		progress = nil
	}
	o.OnStep = func(m find.Measurement) {
		if progress != nil {
			fmt.Fprintln(progress, find.StepLine(m))
		}
	}
	var (
		res  *find.Result
		rep  *report.Report
		code int
	)
	if *zkHosts == "" {
		res, rep, code = findLocal(ctx, plan, lf.parsed, o, *cores, progress)
	} else {
		if *agents < 1 || *minAgents < 1 || *minAgents > *agents {
			return bad("want --agents >= 1 and 1 <= --min-agents <= --agents, got %d and %d", *agents, *minAgents)
		}
		auth, c := readZKAuth("find", *zkAuth)
		if c >= 0 {
			return c
		}
		co := coord.Options{ZK: *zkHosts, Root: *root, Auth: auth, Agents: *agents, MinAgents: *minAgents, Wait: *wait,
			Plan: plan, Log: io.Discard}
		if progress != nil {
			co.Progress, co.Log = progress, progress
		}
		res, rep, code = findFleet(ctx, co, lf.parsed, o)
	}
	if code >= 0 {
		return code
	}
	if err := writeFind(res, rep, slo, o, *jsonOut); err != nil {
		fmt.Fprintf(os.Stderr, "barrage find: %v\n", err)
		return exitNoStart
	}
	switch {
	case ctx.Err() != nil:
		return exitInterrupted
	case res.Found():
		return exitOK
	case res.Limit == find.LimitMin:
		return report.ExitThresholds
	}
	return exitNoStart
}

// findLocal runs the search on this machine. code >= 0 ends the command
// with it (nothing to print).
func findLocal(ctx context.Context, plan *proto.Plan, ts []*report.Threshold, o find.Options, cores int, progress io.Writer) (*find.Result, *report.Report, int) {
	if c := proto.DefaultCaps().MaxRate; o.Max > c {
		fmt.Fprintf(os.Stderr, "barrage find: --max-rate %g is above this machine's cap of %g req/s (use agents: --zk)\n", o.Max, c)
		return nil, nil, exitBadInput
	}
	opts, err := engine.FromPlan(plan)
	if err != nil {
		return nil, nil, planError("find", err)
	}
	cpus, err := engine.AllowedCPUs()
	if err != nil {
		fmt.Fprintf(os.Stderr, "barrage find: %v\n", err)
		return nil, nil, exitNoStart
	}
	if cores < 0 || cores > len(cpus) {
		fmt.Fprintf(os.Stderr, "barrage find: --cores %d: this process may use %d CPUs %v\n", cores, len(cpus), cpus)
		return nil, nil, exitBadInput
	}
	if cores > 0 {
		cpus = cpus[:cores]
	}
	opts.CPUs = cpus
	quotaNotice("find", len(cpus))
	_, _, _ = engine.RaiseFileLimit()
	if err := engine.CheckFileLimit(plan.Connections); err != nil {
		fmt.Fprintf(os.Stderr, "barrage find: %v\n", err)
		return nil, nil, exitBadInput
	}
	lo := local.Options{Plan: plan, Engine: opts, Caps: proto.DefaultCaps(), Progress: progress}
	r, err := local.New(lo)
	if err != nil {
		return nil, nil, planError("find", err)
	}
	l := find.NewLive(r, ts, report.NewExpect(plan.ExpectStatus), o)
	r.With(func(p *pipeline.Pipeline) { l.Attach(p) })
	type ran struct {
		rep *report.Report
		err error
	}
	done := make(chan ran, 1)
	go func() {
		rep, _, err := r.Run(ctx)
		l.End()
		done <- ran{rep, err}
	}()
	res, serr := find.Search(ctx, l, o)
	r.Stop("find: the search is over")
	out := <-done
	if out.err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(os.Stderr, "barrage find: interrupted before the start")
			return nil, nil, exitInterrupted
		}
		fmt.Fprintf(os.Stderr, "barrage find: %v\n", out.err)
		return nil, nil, exitNoStart
	}
	return findEnded(ctx, res, serr, out.rep)
}

// findEnded decides what a finished search prints.
func findEnded(ctx context.Context, res *find.Result, serr error, rep *report.Report) (*find.Result, *report.Report, int) {
	if serr != nil && ctx.Err() != nil {
		res.Reason = "interrupted after " + strconv.Itoa(len(res.Steps)) + " steps"
	}
	if serr != nil && ctx.Err() == nil {
		fmt.Fprintf(os.Stderr, "barrage find: the search could not finish: %v\n", serr)
		if rep != nil && rep.Outcome != "" && !rep.Completed() {
			fmt.Fprintf(os.Stderr, "barrage find: the test: %s\n", rep.Outcome)
		}
		if rep != nil && rep.NoAnswers {
			fmt.Fprintln(os.Stderr, "barrage find: the target answered nothing")
		}
		if len(res.Steps) == 0 {
			return nil, nil, exitNoStart
		}
		res.Reason = "the search could not finish: " + serr.Error()
	}
	return res, rep, -1
}

// findFleet runs the search through the coordinator.
func findFleet(ctx context.Context, co coord.Options, ts []*report.Threshold, o find.Options) (*find.Result, *report.Report, int) {
	var c *coord.Coordinator
	var l *find.Live
	co.OnPipeline = func(p *pipeline.Pipeline, plan *proto.Plan) { l.Attach(p) }
	c, err := coord.New(co)
	if err != nil {
		fmt.Fprintf(os.Stderr, "barrage find: %v\n", err)
		if errors.Is(err, fleet.ErrBadRoot) || errors.Is(err, fleet.ErrBadName) {
			return nil, nil, exitBadInput
		}
		return nil, nil, exitNoStart
	}
	defer c.Close()
	if co.Auth == nil {
		warnOpen("find")
	}
	l = find.NewLive(c, ts, report.NewExpect(co.Plan.ExpectStatus), o)
	type ran struct {
		rep *report.Report
		err error
	}
	done := make(chan ran, 1)
	go func() {
		rep, err := c.Run(ctx)
		l.End()
		done <- ran{rep, err}
	}()
	res, serr := find.Search(ctx, l, o)
	const over = "find: the search is over"
	c.Stop(over)
	out := <-done
	if out.err != nil && !errors.Is(out.err, coord.ErrStopped) && out.rep == nil {
		fmt.Fprintf(os.Stderr, "barrage find: %v\n", out.err)
		if ctx.Err() != nil {
			return nil, nil, exitInterrupted
		}
		return nil, nil, exitNoStart
	}
	return findEnded(ctx, res, serr, out.rep)
}

// findJSON is what --json writes.
type findJSON struct {
	SLO        []string `json:"slo"`
	MinRate    float64  `json:"min_rate"`
	MaxRate    float64  `json:"max_rate"`
	Step       float64  `json:"step_seconds"`
	Settle     float64  `json:"settle_seconds"`
	Warmup     float64  `json:"warmup_seconds"`
	Resolution float64  `json:"resolution"`
	Growth     float64  `json:"growth"`
	*find.Result
	Found  bool           `json:"found"`
	Answer string         `json:"answer"`
	Report *report.Report `json:"report,omitempty"`
}

// writeFind prints the table and writes the JSON if asked.
func writeFind(res *find.Result, rep *report.Report, slo []string, o find.Options, jsonOut string) error {
	text := io.Writer(os.Stdout)
	if jsonOut == "-" {
		text = os.Stderr
	}
	if err := res.WriteTable(text, slo); err != nil {
		return err
	}
	if jsonOut == "" {
		return nil
	}
	return writeJSON(jsonOut, findJSON{SLO: slo, MinRate: o.Min, MaxRate: o.Max, Step: o.Step.Seconds(), Settle: o.Settle.Seconds(),
		Warmup: o.Warmup.Seconds(), Resolution: o.Resolution, Growth: o.Growth, Result: res, Found: res.Found(),
		Answer: res.Answer(slo), Report: rep}, "the JSON")
}
