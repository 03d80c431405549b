package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/barrage-load/barrage/engine"
	"github.com/barrage-load/barrage/live"
	"github.com/barrage-load/barrage/local"
	"github.com/barrage-load/barrage/pipeline"
	"github.com/barrage-load/barrage/proto"
	"github.com/barrage-load/barrage/report"
	"github.com/barrage-load/barrage/request"
)

const runAbout = `Loads one HTTP/1.1 target from this machine: one event loop per allowed CPU
(taskset is respected), keep-alive connections, optional pipelining.

Closed model (default, -r 0): every connection keeps --pipeline requests in
flight, as fast as the target answers; latency is service time, and a
coordinated-omission-corrected view is shown beside it.
Open model (-r N): N requests per second on schedule whatever the target
does; latency is measured from each request's intended send time, so a
stalled target shows up as latency.

A plan file (-f) adds patterns: ramp, steps, spike. Example:
  target_url: http://127.0.0.1:8080/
  connections: 64
  pattern: {type: steps, steps: [{duration: 5s, rate: 1000}, {duration: 5s, rate: 5000}]}

Progress goes to stderr once a second, the report to stdout. Responses with a
status outside --expect-status (default: every code below 400) are errors
(http_4xx, http_5xx). Requests never answered (in flight at the end, on a
connection that died, or due and never sent) are measured: their wait is in
the percentiles as a lower bound. The report ends with a verdict: NOT VALID
when the target answered nothing, when the generator was saturated (its
loops 95% busy or more while that cost the measurement), or when its own
send lateness distorted the latencies; a slow target or a server closing
connections is never blamed on the generator (see README, "The verdict").

Numbers are checked as plan files are: finite, within bounds, and zero where
zero makes no sense is an error (-c 0, -d 0), not a default. The soft open-
file limit is raised to the hard one; a connection count that cannot fit is
refused, naming the limit.

Thresholds (--threshold, or thresholds: in a plan) are judged at the end on
the whole run and per step; with --abort-on-fail GRACE also live, and the
test stops when one fails over the last GRACE. --degrade (or degrade: in a
plan) lowers the rate, or the connections, when errors stay high, and stops
the test when they stay higher. Threshold syntax:
  MEASURE[{step=N,kind=K}] OP LIMIT   with OP one of < <= > >=
  p99 < 250ms  p99.9 < 1s  service.p99 < 20ms  mean, min, max
  errors < 1%  errors{kind=timeout} < 0.1%  errors < 10   (kinds: connect,
    tls, timeout, reset, protocol, http_4xx, http_5xx, http_other)
  status_429 > 10%  status_5xx < 5   rps >= 99% target  rps >= 5000
Latencies are from the intended send (open model) or corrected for
coordinated omission (closed model); service. reads the service time.

Exit status: 0 completed (read "valid" in the JSON: a NOT VALID measurement
still exits 0; thresholds, if any, passed), 1 could not run or finish (bad or
unresolvable URL, target unreachable, the target answered nothing, or the test
was stopped early by degradation's stop_above), 2 bad flags, plan or
threshold, 3 a threshold failed (or stopped the test), 130 interrupted by
SIGINT/SIGTERM (a partial report is printed within 2 s).`

func cmdRun(args []string) int {
	fs := newFlagSet("run", "[flags] URL", runAbout)
	var lf loadFlags
	lf.register(fs)
	cores := fs.Int("cores", 0, "event loops, one per CPU, taken from the allowed CPU set (0 = all allowed)")
	jsonOut := fs.String("json", "", "also write the report as JSON to this file (- = stdout, and the text report goes to stderr)")
	quiet := fs.BoolP("quiet", "q", false, "no progress lines")
	var vf viewFlags
	vf.register(fs)
	debugStats := fs.Bool("debug-stats", false, "print the Go heap allocations per response and the GC cycles of the steady state (after the first interval) on stderr")
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	plan, err := lf.build(fs, fs.Args())
	if err != nil {
		return planError("run", err)
	}
	if code := vf.check("run"); code >= 0 {
		return code
	}
	secretOnCommandLine("run", plan, lf.literal)
	opts, err := engine.FromPlan(plan)
	if err != nil {
		return planError("run", err)
	}
	cpus, err := engine.AllowedCPUs()
	if err != nil {
		fmt.Fprintf(os.Stderr, "barrage run: %v\n", err)
		return exitNoStart
	}
	if *cores < 0 || *cores > len(cpus) {
		fmt.Fprintf(os.Stderr, "barrage run: --cores %d: this process may use %d CPUs %v\n", *cores, len(cpus), cpus)
		return exitBadInput
	}
	if *cores > 0 {
		cpus = cpus[:*cores]
	}
	opts.CPUs = cpus
	quotaNotice("run", len(cpus))
	// Descriptors: raise the soft limit toward the hard one, and refuse a
	// connection count that cannot fit rather than fail connects for the
	// whole run.
	_, _, _ = engine.RaiseFileLimit()
	most := 0
	for _, g := range opts.Schedule {
		most = max(most, g.Connections)
	}
	if err := engine.CheckFileLimit(most); err != nil {
		fmt.Fprintf(os.Stderr, "barrage run: %v\n", err)
		return exitBadInput
	}
	lo := local.Options{Plan: plan, Engine: opts, Caps: proto.DefaultCaps()}
	if !*quiet {
		lo.Progress = os.Stderr
	}
	r, err := local.New(lo)
	if err != nil {
		return planError("run", err)
	}
	vw, vcode := vf.start("run", plan, false, r)
	if vcode >= 0 {
		return vcode
	}
	defer vw.close()
	if vw.rec != nil {
		r.With(vw.rec.Attach)
	}
	g := runGuard(r, plan, lf.parsed, os.Stderr)
	var steady *runtimeStats
	if *debugStats {
		r.With(func(p *pipeline.Pipeline) {
			p.OnInterval(func(*proto.Stats, int, int) {
				if steady == nil {
					steady = readRuntimeStats(p.Total().Responses)
				}
			})
		})
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(lf.watch) > 0 {
		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go watchHeaders(wctx, r, plan, lf.watch, *quiet)
	}
	rep, _, err := r.Run(ctx)
	if err != nil {
		if errors.Is(err, engine.ErrNoConnection) {
			hint := "is the target up?"
			var te *engine.TLSError
			if errors.As(err, &te) {
				hint = tlsHint(te)
			}
			fmt.Fprintf(os.Stderr, "barrage run: %v (%s)\n", err, hint)
			return exitNoStart
		}
		if ctx.Err() != nil {
			fmt.Fprintln(os.Stderr, "barrage run: interrupted before the start")
			return exitInterrupted
		}
		fmt.Fprintf(os.Stderr, "barrage run: %v\n", err)
		return exitNoStart
	}
	if *debugStats && steady != nil {
		r.With(func(p *pipeline.Pipeline) {
			end := readRuntimeStats(p.Total().Responses)
			n := end.responses - steady.responses
			fmt.Fprintf(os.Stderr, "debug-stats: steady state: %d heap allocations (%d bytes) for %d responses = %.5f allocations per response; %d GC cycles; heap %.1f MB\n",
				end.allocs-steady.allocs, end.bytes-steady.bytes, n, float64(end.allocs-steady.allocs)/float64(max(n, 1)),
				end.gcs-steady.gcs, float64(end.heap)/(1<<20))
		})
	}
	runGuardReport(r, g, rep)
	code := rep.ExitCode()
	if ctx.Err() != nil && r.Stopped() == "" {
		code = exitInterrupted
	}
	if err := vw.finish(rep); err != nil {
		fmt.Fprintf(os.Stderr, "barrage run: %v\n", err)
		code = exitNoStart
	}
	if err := writeReport(rep, *jsonOut); err != nil {
		fmt.Fprintf(os.Stderr, "barrage run: %v\n", err)
		return exitNoStart
	}
	return code
}

// planError prints err for the user and picks the exit code.
func planError(cmd string, err error) int {
	fmt.Fprintf(os.Stderr, "barrage %s: %v\n", cmd, err)
	if errors.Is(err, errBadURL) {
		return exitNoStart
	}
	if errors.Is(err, proto.ErrBadPlan) || errors.Is(err, engine.ErrBadOptions) {
		return exitBadInput
	}
	return exitNoStart
}

// writeReport prints the text report and writes the JSON one if asked.
func writeReport(rep *report.Report, jsonOut string) error {
	text := io.Writer(os.Stdout)
	if jsonOut == "-" {
		text = os.Stderr
	}
	if err := rep.WriteText(text); err != nil {
		return err
	}
	if jsonOut == "" {
		return nil
	}
	return writeJSON(jsonOut, rep, "the JSON report")
}

// writeJSON writes v, indented, to the file jsonOut, or to stdout for "-";
// what names it in an error.
func writeJSON(jsonOut string, v any, what string) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if jsonOut == "-" {
		_, err = os.Stdout.Write(b)
		return err
	}
	if err := os.WriteFile(jsonOut, b, 0o644); err != nil {
		return fmt.Errorf("cannot write %s: %w", what, err)
	}
	return nil
}

// runtimeStats is what --debug-stats compares between two instants.
type runtimeStats struct {
	allocs, bytes, gcs, heap uint64
	responses                uint64
}

// readRuntimeStats uses ReadMemStats, which stops the world for a moment
// (twice per run): unlike runtime/metrics it first flushes every P's
// cache, whose allocations are otherwise counted only when a span is
// refilled, so a few hundred could go unseen.
func readRuntimeStats(responses uint64) *runtimeStats {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return &runtimeStats{allocs: m.Mallocs, bytes: m.TotalAlloc, gcs: uint64(m.NumGC), heap: m.HeapAlloc, responses: responses}
}

// watchHeaders re-reads the --header-file files and puts a changed value
// in force at the next interval boundary (an event in the report; the
// value itself is never printed).
func watchHeaders(ctx context.Context, r *local.Runner, plan *proto.Plan, files []request.HeaderFile, quiet bool) {
	current := map[string]string{}
	for _, h := range files {
		current[h.Name] = plan.Headers[h.Name]
	}
	say := func(format string, a ...any) {
		if !quiet {
			fmt.Fprintf(os.Stderr, "barrage run: "+format+"\n", a...)
		}
	}
	request.Watch(ctx, files, current, request.DefaultWatchEvery, func(name, value string) {
		at, err := r.Change(ctx, live.Change{Rate: math.NaN(), Headers: map[string]string{name: value}, Reason: "header-file"})
		if err != nil {
			say("header %s from its file: not changed: %v", name, err)
			return
		}
		say("header %s changed in its file: in force from %.1fs", name, at.Seconds())
	}, func(err error) { say("%v (the value in force stays)", err) })
}
