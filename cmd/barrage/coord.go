package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/barrage-load/barrage/coord"
	"github.com/barrage-load/barrage/fleet"
	"github.com/barrage-load/barrage/proto"
	"github.com/barrage-load/barrage/report"
	"github.com/barrage-load/barrage/request"
)

const coordAbout = `Coordinates a distributed test through ZooKeeper: waits for --agents agents,
splits the plan into per-agent budgets weighted by their cores (within each
agent's own caps, with interleaved arrivals), starts them all at one instant,
prints merged progress once a second, moves a lost agent's budget to the
survivors, and prints the merged report (histograms merged exactly) with one
row per agent. Live changes (barrage set) and rebalances take effect at an
interval boundary, the same instant on every agent; each live change is its
own step row.

Fencing: every write is conditional on still leading. A coordinator whose
ZooKeeper session expired (frozen, cut off) was superseded: it writes nothing
more and exits 1. If ZooKeeper is lost mid-test, the coordinator says so and
exits 1; the agents stop sending a session timeout later and keep their
results (barrage report --state-dir rebuilds the test).

With --standby it waits for a test to run, stands behind its coordinator, and
takes the test over if that one dies; it exits after it has taken over and
finished a test. A test whose coordinator died is abandoned once its planned
end plus 30 s has passed; the next coordinator marks it so and runs its plan.

Thresholds, --abort-on-fail and --degrade work as in barrage run (see barrage
run --help), on the merged intervals of the whole fleet.

Exit status: 0 test completed; 1 could not run or finish (ZooKeeper
unreachable or lost, too few agents, an agent refused or could not connect,
superseded, stopped by the stop node or by degradation's stop_above); 2 bad
flags, plan or threshold; 3 a threshold failed (or stopped the test); 130
interrupted (SIGINT/SIGTERM: the agents are stopped and a partial report is
printed within 2 s).`

func cmdCoord(args []string) int {
	fs := newFlagSet("coord", "--zk HOSTS --agents N [load flags] URL | -f plan.yaml", coordAbout)
	var lf loadFlags
	lf.register(fs)
	zkHosts := fs.String("zk", "", "ZooKeeper servers, host:port[,host:port...] (required)")
	root := fs.String("zk-root", fleet.DefaultRoot, "znode under which barrage keeps its state")
	zkAuth := fs.String("zk-auth", "", "file holding \"user:password\" for ZooKeeper digest auth (give the same to every agent)")
	agents := fs.Int("agents", 1, "agents to wait for")
	minAgents := fs.Int("min-agents", 1, "fewest agents the test may go on with after losses; fewer stops it (exit 1)")
	wait := fs.Duration("wait", coord.DefaultWait, "how long to wait for the agents")
	standby := fs.Bool("standby", false, "wait as a standby coordinator and take over the running test when the active one dies")
	name := fs.String("name", "", "this coordinator's name in reports and logs (default coord-PID)")
	jsonOut := fs.String("json", "", "also write the report as JSON to this file (- = stdout)")
	quiet := fs.BoolP("quiet", "q", false, "no progress lines")
	var vf viewFlags
	vf.register(fs)
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if *zkHosts == "" {
		fmt.Fprintln(os.Stderr, "barrage coord: --zk is required (e.g. --zk 127.0.0.1:2181)")
		return exitBadInput
	}
	var plan *proto.Plan
	if fs.NArg() > 0 || lf.plan != "" || !*standby {
		p, err := lf.build(fs, fs.Args())
		if err != nil {
			return planError("coord", err)
		}
		plan = p
		secretOnCommandLine("coord", plan, lf.literal)
	}
	if *agents < 1 || *minAgents < 1 || *minAgents > *agents {
		fmt.Fprintf(os.Stderr, "barrage coord: want --agents >= 1 and 1 <= --min-agents <= --agents, got %d and %d\n", *agents, *minAgents)
		return exitBadInput
	}
	if code := vf.check("coord"); code >= 0 {
		return code
	}
	if plan == nil && (vf.http != "" || vf.html != "") {
		fmt.Fprintln(os.Stderr, "barrage coord: --http and --html need the plan (a standby without one learns it only when it takes over)")
		return exitBadInput
	}
	auth, code := readZKAuth("coord", *zkAuth)
	if code >= 0 {
		return code
	}
	if plan != nil && auth == nil {
		if secret := plan.SecretHeaders(); len(secret) > 0 {
			fmt.Fprintf(os.Stderr, "barrage coord: the plan's %s header would travel through ZooKeeper readable by anyone who can reach it: give --zk-auth FILE (to every agent too)\n", strings.Join(secret, ", "))
			return exitBadInput
		}
	}
	o := coord.Options{
		ZK: *zkHosts, Root: *root, Auth: auth, Agents: *agents, MinAgents: *minAgents, Wait: *wait,
		Plan: plan, Standby: *standby, Name: *name, Log: os.Stderr,
	}
	if !*quiet {
		o.Progress = os.Stderr
	}
	if *quiet {
		o.Log = io.Discard
	}
	// The dashboard's recorder hangs on the merged stream: its callbacks
	// run on the coordinator's poll goroutine and copy what they keep.
	var ctl coordControl
	vw, vcode := vf.start("coord", plan, true, &ctl)
	if vcode >= 0 {
		return vcode
	}
	defer vw.close()
	if vw.rec != nil {
		o.OnInterval, o.OnEvent, o.OnAgents = vw.rec.Interval, vw.rec.Event, vw.rec.Agents
	}
	cg := &coordGuard{ts: lf.parsed, log: o.Log}
	var c *coord.Coordinator
	cg.hook(&o, func() *coord.Coordinator { return c })
	c, err := coord.New(o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "barrage coord: %v\n", err)
		if errors.Is(err, fleet.ErrBadRoot) || errors.Is(err, fleet.ErrBadName) {
			return exitBadInput
		}
		return exitNoStart
	}
	ctl.set(c)
	defer c.Close()
	if auth == nil {
		warnOpen("coord")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := c.Run(ctx)
	cg.report(rep)
	htmlFailed := false
	if rep != nil {
		if werr := vw.finish(rep); werr != nil {
			fmt.Fprintf(os.Stderr, "barrage coord: %v\n", werr)
			htmlFailed = true
		}
		if werr := writeReport(rep, *jsonOut); werr != nil {
			fmt.Fprintf(os.Stderr, "barrage coord: %v\n", werr)
			return exitNoStart
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "barrage coord: %v\n", err)
	}
	if rep != nil && rep.ExitCode() == report.ExitThresholds && !errors.Is(err, coord.ErrInterrupted) {
		// A threshold failed, or stopped the test (ErrStopped).
		return report.ExitThresholds
	}
	if err == nil && rep != nil {
		if htmlFailed && rep.ExitCode() == exitOK {
			return exitNoStart
		}
		return rep.ExitCode()
	}
	return coordExit(err)
}

// coordExit maps a coordinator's error to the exit status.
func coordExit(err error) int {
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, coord.ErrInterrupted), errors.Is(err, context.Canceled):
		return exitInterrupted
	case errors.Is(err, coord.ErrBadValue), errors.Is(err, fleet.ErrBadName):
		return exitBadInput
	}
	return exitNoStart
}

const setAbout = `Changes a running distributed test: writes the new rate and/or connection
count, or header values, with a compare-and-swap on the test's config; the
coordinator pushes new budgets (and the plan with the new headers) to every
agent, which switch at the same interval boundary (a rate or connection
change is its own step row in the report). Waits until every agent has
applied it and prints when it took effect.

Headers: -H 'Name: value' sets a header on every request of the test, e.g. a
rotated credential. A secret's value (Authorization, Proxy-Authorization,
Cookie, X-API-Key, X-Auth-Token, or a header the plan marks secret) is never
taken from the command line, where ps shows it: give -H 'Authorization: @-'
and the value on stdin, -H 'Authorization: @FILE', or --header-file
Authorization=FILE; it travels through ZooKeeper only under --zk-auth.

Values are checked as plan values are (finite, within bounds, within what the
agents' caps allow together); a rate cannot be set on a closed-model test.
Exit status: 0 written (and applied, when waited for), 1 no such test or
ZooKeeper unreachable, 2 a bad value.`

func cmdSet(args []string) int {
	fs := newFlagSet("set", "--zk HOSTS [--test ID] [--rate R] [--connections C] [-H 'Name: @-']", setAbout)
	zkHosts := fs.String("zk", "", "ZooKeeper servers (required)")
	root := fs.String("zk-root", fleet.DefaultRoot, "znode under which barrage keeps its state")
	zkAuth := fs.String("zk-auth", "", "file holding \"user:password\" for ZooKeeper digest auth")
	test := fs.String("test", "", "test ID (default: the running test)")
	rate := fs.Float64("rate", math.NaN(), "new total rate in requests per second (open-model tests)")
	conns := fs.Int("connections", 0, "new total connection count")
	hflags := fs.StringArrayP("header", "H", nil, `"Name: value" set on every request; "Name: @-" reads the value from stdin, "Name: @FILE" from a file (repeatable)`)
	hfiles := fs.StringArray("header-file", nil, "NAME=FILE: the header's value is FILE's first line (repeatable)")
	wait := fs.Duration("wait", 10*time.Second, "how long to wait for the agents to apply it (0 = don't wait)")
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if *zkHosts == "" || (!fs.Changed("rate") && !fs.Changed("connections") && len(*hflags) == 0 && len(*hfiles) == 0) {
		fmt.Fprintln(os.Stderr, "barrage set: give --zk and at least one of --rate R (>= 0), --connections C (> 0), -H 'Name: value' or --header-file NAME=FILE")
		return exitBadInput
	}
	headers, literal, err := headerValues(*hflags, os.Stdin)
	if err == nil {
		for _, hf := range *hfiles {
			h, e := request.ParseHeaderFile(hf)
			if e == nil {
				headers[h.Name], e = h.Read()
			}
			if e != nil {
				err = e
				break
			}
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "barrage set: %v\n", err)
		return exitBadInput
	}
	for _, n := range literal {
		if proto.IsSecretHeader(n) {
			fmt.Fprintf(os.Stderr, "barrage set: the value of %s must not be on the command line, where ps shows it: give -H '%s: @-' (stdin), -H '%s: @FILE' or --header-file %s=FILE\n", n, n, n, n)
			return exitBadInput
		}
	}
	// The same bounds as a plan's, checked before ZooKeeper is touched.
	if fs.Changed("rate") {
		if err := proto.CheckRate(*rate); err != nil {
			fmt.Fprintf(os.Stderr, "barrage set: %v\n", err)
			return exitBadInput
		}
	}
	if fs.Changed("connections") {
		if err := proto.CheckConnections(*conns); err != nil {
			fmt.Fprintf(os.Stderr, "barrage set: %v\n", err)
			return exitBadInput
		}
	}
	var auth *fleet.Auth
	if *zkAuth != "" {
		a, err := fleet.ReadAuthFile(*zkAuth)
		if err != nil {
			fmt.Fprintf(os.Stderr, "barrage set: %v\n", err)
			return exitBadInput
		}
		auth = a
	}
	if len(headers) == 0 {
		headers = nil
	}
	res, err := coord.Set(context.Background(), coord.SetOptions{
		ZK: *zkHosts, Root: *root, Auth: auth, Test: *test, Rate: *rate, Connections: *conns, Headers: headers, Wait: *wait,
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "barrage set: %v\n", err)
		if errors.Is(err, coord.ErrBadValue) || errors.Is(err, fleet.ErrBadName) {
			return exitBadInput
		}
		return exitNoStart
	}
	switch {
	case res.Applied > 0:
		fmt.Printf("test %s: change %d took effect at %.1fs on %d agents; all had applied it %.1f ms after the write\n",
			res.Test, res.Change, res.At.Seconds(), res.Agents, float64(res.Applied)/1e6)
	case *wait > 0:
		fmt.Printf("test %s: config version %d written; not confirmed by every agent within %s (see the coordinator's log)\n", res.Test, res.Version, *wait)
		return exitNoStart
	default:
		fmt.Printf("test %s: config version %d written\n", res.Test, res.Version)
	}
	return exitOK
}

const reportAbout = `Rebuilds the merged report of a distributed test from what its agents kept
on disk (--state-dir, one per agent: copy or mount them on one machine), or
from what ZooKeeper holds (--zk, once it is back). Useful when ZooKeeper was
lost mid-test, or a coordinator died and its test was abandoned.

  barrage report --state-dir /var/lib/barrage-a --state-dir /mnt/b [--test ID]
  barrage report --zk 10.0.0.5:2181 --test t1764185223000

Exit status: 0 printed, 1 nothing to rebuild from, 2 bad flags.`

func cmdReport(args []string) int {
	fs := newFlagSet("report", "--state-dir DIR... | --zk HOSTS [--test ID]", reportAbout)
	dirs := fs.StringArray("state-dir", nil, "an agent's state dir (repeatable)")
	zkHosts := fs.String("zk", "", "ZooKeeper servers, to rebuild from what ZooKeeper holds")
	root := fs.String("zk-root", fleet.DefaultRoot, "znode under which barrage keeps its state")
	zkAuth := fs.String("zk-auth", "", "file holding \"user:password\" for ZooKeeper digest auth")
	test := fs.String("test", "", "test ID (default: the newest in the state dirs, or ZooKeeper's current test)")
	jsonOut := fs.String("json", "", "also write the report as JSON to this file (- = stdout)")
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if (len(*dirs) == 0) == (*zkHosts == "") || fs.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "barrage report: give --state-dir DIR (repeatable) or --zk HOSTS (see barrage report --help)")
		return exitBadInput
	}
	if *test != "" {
		if err := fleet.CheckTestID(*test); err != nil {
			fmt.Fprintf(os.Stderr, "barrage report: %v\n", err)
			return exitBadInput
		}
	}
	var auth *fleet.Auth
	if *zkAuth != "" {
		a, err := fleet.ReadAuthFile(*zkAuth)
		if err != nil {
			fmt.Fprintf(os.Stderr, "barrage report: %v\n", err)
			return exitBadInput
		}
		auth = a
	}
	var rep interface{ WriteText(io.Writer) error }
	var err error
	if len(*dirs) > 0 {
		r, e := coord.FromStateDirs(*dirs, *test)
		rep, err = r, e
		if e == nil {
			err = writeReport(r, *jsonOut)
		}
	} else {
		r, e := coord.FromZooKeeper(coord.RebuildOptions{ZK: *zkHosts, Root: *root, Auth: auth, Test: *test})
		rep, err = r, e
		if e == nil {
			err = writeReport(r, *jsonOut)
		}
	}
	_ = rep
	if err != nil {
		fmt.Fprintf(os.Stderr, "barrage report: %v\n", err)
		return exitNoStart
	}
	return exitOK
}
