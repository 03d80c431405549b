// Package local runs a test on this machine: the engine as one in-process
// agent feeding the same pipeline as the coordinator (the same progress
// lines, merge, verdict, events and report), with live changes and stops
// through the same interface (live.Controller). It is what `barrage run`,
// `barrage find` and the dashboard's controls drive without ZooKeeper.
package local

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/barrage-load/barrage/engine"
	"github.com/barrage-load/barrage/live"
	"github.com/barrage-load/barrage/pipeline"
	"github.com/barrage-load/barrage/proto"
	"github.com/barrage-load/barrage/report"
	"github.com/barrage-load/barrage/request"
	"github.com/barrage-load/barrage/schedule"
)

// ChangeLead is the least time between a live change and the interval
// boundary it takes effect at.
const ChangeLead = 50 * time.Millisecond

// Agent is run's in-process agent's name in the pipeline.
const Agent = "local"

// Options configure a run.
type Options struct {
	Plan *proto.Plan
	// Engine are the engine's options (FromPlan's, with CPUs set);
	// OnInterval is the runner's own.
	Engine engine.Options
	// Progress, if set, gets one line per interval.
	Progress io.Writer
	// Caps bound live changes (zero fields: the absolute bounds).
	Caps proto.Caps
}

// Runner is one local test.
type Runner struct {
	o    Options
	eng  *engine.Engine
	ends []time.Duration
	// mu guards the pipeline and the schedule: the engine's collector
	// feeds the pipeline while changes edit the schedule.
	mu    sync.Mutex
	pipe  *pipeline.Pipeline
	sched []proto.Segment
	rate  float64
	conns int
	// mix is the requests in force (a header change rebuilds it).
	mix   *request.Mix
	start time.Time // zero until the schedule starts
	// stop says why the run was stopped early ("" if it was not).
	stop   string
	cancel context.CancelFunc
	hooks  []func(func())
}

// New prepares a run.
func New(o Options) (*Runner, error) {
	if o.Engine.Interval == 0 {
		o.Engine.Interval = engine.DefaultInterval
	}
	r := &Runner{o: o, sched: o.Engine.Schedule, rate: o.Plan.Rate, conns: o.Plan.Connections, mix: o.Engine.Mix}
	sch := schedule.New(r.sched)
	r.ends = schedule.IntervalEnds(&sch, o.Engine.Interval)
	r.pipe = pipeline.New(pipeline.Options{Plan: o.Plan, Schedule: r.sched, Ends: r.ends, Window: 1})
	r.pipe.AddAgent(Agent, Agent, "")
	if o.Progress != nil {
		r.pipe.PrintProgress(o.Progress, false)
	}
	eo := o.Engine
	eo.OnInterval = func(s *proto.Stats) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.pipe.Add(Agent, s)
		r.pipe.Close([]string{Agent}, false)
	}
	eng, err := engine.New(eo)
	if err != nil {
		return nil, err
	}
	r.eng = eng
	return r, nil
}

// With runs fn with the pipeline, holding the lock the engine's collector
// takes: consumers hang on the pipeline (OnInterval, OnEvent) this way,
// and their callbacks then run under that lock.
func (r *Runner) With(fn func(p *pipeline.Pipeline)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fn(r.pipe)
}

// Engine is the run's engine.
func (r *Runner) Engine() *engine.Engine { return r.eng }

// Ends lists the run's interval ends.
func (r *Runner) Ends() []time.Duration { return r.ends }

// Run runs the test to its end, or until ctx is done or Stop is called,
// and returns its report (outcome set). An error means it could not run.
func (r *Runner) Run(ctx context.Context) (*report.Report, *engine.Result, error) {
	ctx, cancel := context.WithCancel(ctx)
	r.mu.Lock()
	r.cancel = cancel
	r.mu.Unlock()
	defer cancel()
	res, err := r.eng.Run(ctx)
	if err != nil {
		return nil, res, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pipe.Close([]string{Agent}, true)
	elapsed := r.pipe.Total().End
	rep := r.pipe.Report(elapsed)
	rep.Outcome = report.OutcomeCompleted
	switch {
	case r.stop != "":
		// OutcomeText adds how much of the plan ran.
		rep.Outcome = "stopped: " + r.stop
	case ctx.Err() != nil:
		rep.Outcome = fmt.Sprintf("stopped early by a signal after %.1fs of %s: partial report", elapsed.Seconds(), r.o.Plan.Duration)
	}
	return rep, res, nil
}

// Interrupted tells whether the run ended before its schedule for a
// reason other than Stop (a signal).
func (r *Runner) Stopped() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stop
}

// Stop ends the run now (live.Controller).
func (r *Runner) Stop(reason string) {
	r.mu.Lock()
	if r.stop == "" {
		r.stop = reason
		r.pipe.Emit(report.Event{At: r.sinceLocked().Seconds(), Kind: report.EventStop, Text: reason})
	}
	cancel := r.cancel
	r.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

func (r *Runner) sinceLocked() time.Duration {
	if st := r.eng.Started(); !st.IsZero() {
		return time.Since(st)
	}
	return 0
}

// Change applies a live change at the next interval boundary at least
// ChangeLead ahead and returns that instant (live.Controller).
func (r *Runner) Change(ctx context.Context, ch live.Change) (time.Duration, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	setRate := ch.SetsRate() && ch.Rate != r.rate
	if setRate && !r.o.Plan.Open() {
		return 0, live.ErrClosedModel
	}
	if setRate {
		if err := proto.CheckRate(ch.Rate); err != nil {
			return 0, err
		}
		if c := r.o.Caps.MaxRate; c > 0 && ch.Rate > c {
			return 0, proto.BadPlanf("rate %g is over this generator's cap %g", ch.Rate, c)
		}
	}
	setConns := ch.Connections > 0 && ch.Connections != r.conns
	if setConns {
		if err := proto.CheckConnections(ch.Connections); err != nil {
			return 0, err
		}
		if c := r.o.Caps.MaxConnections; c > 0 && ch.Connections > c {
			return 0, proto.BadPlanf("%d connections is over this generator's cap %d", ch.Connections, c)
		}
		if err := engine.CheckFileLimit(ch.Connections); err != nil {
			return 0, err
		}
	}
	if len(ch.Headers) > 0 {
		if !setRate && !setConns {
			return r.changeHeaders(ch)
		}
		return 0, proto.BadPlanf("change headers apart from the rate and connections")
	}
	if !setRate && !setConns {
		return 0, nil
	}
	at := schedule.NextBoundary(r.ends, r.sinceLocked()+ChangeLead)
	next := schedule.Edit(r.sched, at, setRate, ch.Rate, ch.Connections)
	if err := r.eng.Apply(at, next, r.o.Engine.Phase); err != nil {
		return 0, err
	}
	r.sched = next
	r.pipe.SetSchedule(next)
	var what []string
	if setRate {
		r.rate = ch.Rate
		what = append(what, fmt.Sprintf("rate %g req/s", ch.Rate))
	}
	if setConns {
		r.conns = ch.Connections
		what = append(what, fmt.Sprintf("%d connections", ch.Connections))
	}
	text := fmt.Sprintf("%s at %.1fs: %s", ch.Reason, at.Seconds(), strings.Join(what, ", "))
	for _, g := range next {
		if g.Start == at {
			r.pipe.Aggregator().StepNote(g.Step, text)
		}
	}
	r.pipe.Emit(report.Event{At: at.Seconds(), Kind: report.EventChange, Text: text})
	return at, nil
}

// changeHeaders sets headers on every request from the next interval
// boundary on: the mix is rebuilt (its data and cursors kept) and handed
// to the engine for that instant. r.mu is held. The event names the
// headers and shows no secret value.
func (r *Runner) changeHeaders(ch live.Change) (time.Duration, error) {
	if r.mix == nil {
		return 0, proto.BadPlanf("this run has no request mix to change")
	}
	p := r.mix.Plan().Clone()
	names := make([]string, 0, len(ch.Headers))
	for k, v := range ch.Headers {
		p.SetHeader(k, v)
		names = append(names, k)
	}
	sort.Strings(names)
	p.Normalize()
	if err := p.Validate(); err != nil {
		return 0, err
	}
	m, err := r.mix.Rebuild(p)
	if err != nil {
		return 0, err
	}
	at := schedule.NextBoundary(r.ends, r.sinceLocked()+ChangeLead)
	if err := r.eng.SetMix(at, m); err != nil {
		return 0, err
	}
	r.mix = m
	var what []string
	for _, k := range names {
		what = append(what, "header "+k+": "+p.Redacted(k, ch.Headers[k]))
	}
	r.pipe.Emit(report.Event{At: at.Seconds(), Kind: report.EventChange,
		Text: fmt.Sprintf("%s at %.1fs: %s", ch.Reason, at.Seconds(), strings.Join(what, ", "))})
	return at, nil
}
