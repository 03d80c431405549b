// Package guard watches a running test on its merged timeline and acts
// through live.Controller: it judges the plan's thresholds live and stops
// the test when one fails (abort_on_fail), and it lowers the load when
// errors stay high, or stops the test when they stay higher (graceful
// degradation, the plan's degrade section). At the end it judges the
// thresholds on the whole run and each step and puts them, with what
// degradation did, into the report.
//
// It reads merged intervals only (a pipeline consumer: nothing per
// request), in run through local.Runner.With and in the coordinator
// through coord.Options.OnPipeline. Its callbacks run on the pipeline's
// goroutine, where a controller must not be called (run's collector holds
// the runner's lock; the coordinator answers changes on that very
// goroutine), so every change and stop goes out on a goroutine of its own.
package guard

import (
	"context"
	"fmt"
	"io"
	"math"
	"sync"
	"time"

	"github.com/barrage-load/barrage/live"
	"github.com/barrage-load/barrage/pipeline"
	"github.com/barrage-load/barrage/proto"
	"github.com/barrage-load/barrage/report"
)

// ChangeTimeout bounds how long a degradation's live change may take.
const ChangeTimeout = 10 * time.Second

// Options configure a guard.
type Options struct {
	// Plan is the test's plan (thresholds, abort_on_fail, degrade).
	Plan *proto.Plan
	// Thresholds are the plan's thresholds, parsed (report.ParseThresholds).
	Thresholds []*report.Threshold
	// Controller changes and stops the test.
	Controller live.Controller
	// Log, if set, gets one line per decision.
	Log io.Writer
}

// Guard is one test's watcher. Attach it to the test's pipeline.
type Guard struct {
	o      Options
	expect report.Expect
	// Owned by the pipeline's goroutine.
	pipe      *pipeline.Pipeline
	abortWin  *window
	degWin    *window
	errShare  *report.Threshold
	stopAsked bool

	mu sync.Mutex
	// aborted maps a threshold to why it stopped the test.
	aborted map[string]string
	// Degradation state: a change in flight, reductions asked, the
	// instant from which intervals count (the last change's), what was
	// done, and events waiting for the pipeline's goroutine.
	pending    bool
	reductions int
	since      time.Duration
	deg        *report.Degradation
	notes      []report.Event
}

// New prepares a guard for a plan; it does nothing on a plan without
// abort_on_fail and degrade but judge the thresholds at the end.
func New(o Options) *Guard {
	g := &Guard{o: o, expect: report.NewExpect(o.Plan.ExpectStatus), aborted: map[string]string{}}
	if a := o.Plan.AbortOnFail; a != nil && len(o.Thresholds) > 0 {
		g.abortWin = &window{span: a.Grace.D()}
	}
	if d := o.Plan.Degrade; d != nil {
		g.degWin = &window{span: d.For.D()}
		g.errShare = &report.Threshold{Expr: "errors", Metric: report.MetricErrors, Share: true}
		g.deg = &report.Degradation{Rule: degradeRule(d, o.Plan.Open()), Asked: asked(o.Plan), Actions: []report.DegradeAction{}}
	}
	return g
}

// degradeRule says what a degrade section asks.
func degradeRule(d *proto.Degrade, open bool) string {
	what := "connections"
	if open {
		what = "rate"
	}
	var s string
	if d.ErrorRate > 0 {
		s = fmt.Sprintf("when errors stay above %s for %s the %s is multiplied by %g", d.ErrorRate, d.For, what, d.Factor)
		if d.MaxReductions > 0 {
			s += fmt.Sprintf(" (at most %d times)", d.MaxReductions)
		}
	}
	if d.StopAbove > 0 {
		if s != "" {
			s += "; "
		}
		s += fmt.Sprintf("when they stay above %s for %s the test stops", d.StopAbove, d.For)
	}
	return s
}

// asked says what a plan asks at its start.
func asked(p *proto.Plan) string {
	segs := p.Schedule()
	if !p.Open() {
		lo, hi := segs[0].Connections, segs[0].Connections
		for _, g := range segs {
			lo, hi = min(lo, g.Connections), max(hi, g.Connections)
		}
		if lo == hi {
			return fmt.Sprintf("%d connections", lo)
		}
		return fmt.Sprintf("%d to %d connections", lo, hi)
	}
	lo, hi := math.Inf(1), 0.0
	for _, g := range segs {
		lo, hi = min(lo, g.From, g.To), max(hi, g.From, g.To)
	}
	if lo == hi {
		return fmt.Sprintf("%g req/s", lo)
	}
	return fmt.Sprintf("%g to %g req/s", lo, hi)
}

// Attach hangs the guard on p. Call it on the pipeline's goroutine
// (inside local.Runner.With, or from coord.Options.OnPipeline); a guard
// attached again (a restored pipeline) follows the new one.
func (g *Guard) Attach(p *pipeline.Pipeline) {
	g.pipe = p
	if g.abortWin == nil && g.degWin == nil {
		return
	}
	p.OnInterval(func(iv *proto.Stats, _, _ int) { g.interval(iv) })
}

func (g *Guard) logf(format string, args ...any) {
	if g.o.Log != nil {
		fmt.Fprintf(g.o.Log, format+"\n", args...)
	}
}

// emit records an event on the pipeline (its goroutine only).
func (g *Guard) emit(e report.Event) {
	g.pipe.Emit(e)
	g.logf("%s", e.Text)
}

// interval judges one merged interval (the pipeline's goroutine).
func (g *Guard) interval(iv *proto.Stats) {
	g.mu.Lock()
	notes := g.notes
	g.notes = nil
	g.mu.Unlock()
	for _, e := range notes {
		g.emit(e)
	}
	if g.stopAsked {
		return
	}
	if g.abortWin != nil {
		g.judgeLive(iv)
	}
	if g.degWin != nil && !g.stopAsked {
		g.degrade(iv)
	}
}

// judgeLive judges the thresholds on the last grace of merged intervals
// and stops the test on the first that fails.
func (g *Guard) judgeLive(iv *proto.Stats) {
	w := g.abortWin
	w.add(iv)
	for _, t := range g.o.Thresholds {
		var keep func(*proto.Stats) bool
		if t.Step > 0 {
			step := t.Step - 1
			keep = func(s *proto.Stats) bool { return s.Step == step }
		}
		smp, covered := w.sample(keep, g.expect)
		if covered < w.span {
			continue
		}
		v, pass, ok := t.Judge(smp)
		if !ok || pass {
			continue
		}
		why := fmt.Sprintf("threshold %s failed: %s over the last %s (%.1fs–%.1fs)", t.Expr, t.Format(v), w.span, (iv.End - covered).Seconds(), iv.End.Seconds())
		g.mu.Lock()
		g.aborted[t.Expr] = why
		g.mu.Unlock()
		g.stopAsked = true
		g.emit(report.Event{At: iv.End.Seconds(), Kind: report.EventThreshold, Text: why})
		go g.o.Controller.Stop(why)
		return
	}
}

// degrade judges the errors over the last For of the load in force and
// lowers it, or stops the test.
func (g *Guard) degrade(iv *proto.Stats) {
	d := g.o.Plan.Degrade
	w := g.degWin
	g.mu.Lock()
	pending, since, reductions := g.pending, g.since, g.reductions
	g.mu.Unlock()
	if iv.Start < since {
		return
	}
	w.add(iv)
	w.dropBefore(since)
	smp, covered := w.sample(nil, g.expect)
	if pending || covered < w.span {
		return
	}
	share, ok := g.errShare.Value(smp)
	if !ok {
		return
	}
	from := w.from()
	over := fmt.Sprintf("errors %s over the last %s (%.1fs–%.1fs)", report.FormatShare(share), d.For, from.Seconds(), iv.End.Seconds())
	if d.StopAbove > 0 && share > float64(d.StopAbove) {
		why := fmt.Sprintf("degrade: %s are above stop_above %s", over, d.StopAbove)
		g.mu.Lock()
		g.deg.Stopped = why
		g.mu.Unlock()
		g.stopAsked = true
		g.emit(report.Event{At: iv.End.Seconds(), Kind: report.EventDegrade, Text: why})
		go g.o.Controller.Stop(why)
		return
	}
	if d.ErrorRate <= 0 || share <= float64(d.ErrorRate) || (d.MaxReductions > 0 && reductions >= d.MaxReductions) {
		return
	}
	act := report.DegradeAction{DecidedAt: iv.End.Seconds(), ErrorRate: 100 * share, WindowFrom: from.Seconds()}
	ch := live.Keep("degrade")
	if g.o.Plan.Open() {
		act.What = "rate"
		act.From = report.PlannedRate(g.pipe.Aggregator().Schedule, iv.Start, iv.End)
		act.To = act.From * d.Factor
		ch.Rate = act.To
	} else {
		act.What = "connections"
		c := connectionsAt(g.pipe.Aggregator().Schedule, iv.End-1)
		act.From, act.To = float64(c), float64(max(1, int(float64(c)*d.Factor)))
		ch.Connections = int(act.To)
		if act.To == act.From {
			// One connection cannot be halved: nothing left to lower.
			return
		}
	}
	g.emit(report.Event{At: iv.End.Seconds(), Kind: report.EventDegrade,
		Text: fmt.Sprintf("degrade: %s are above %s: %s %s → %s", over, d.ErrorRate, act.What, fmtNum(act.From), fmtNum(act.To))})
	g.mu.Lock()
	g.pending = true
	g.reductions++
	g.mu.Unlock()
	// The window starts again with the lowered load (from the change's
	// instant, once known).
	w.dropBefore(iv.End + 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), ChangeTimeout)
		defer cancel()
		at, err := g.o.Controller.Change(ctx, ch)
		g.mu.Lock()
		defer g.mu.Unlock()
		g.pending = false
		if err != nil {
			act.Error = err.Error()
			g.notes = append(g.notes, report.Event{At: act.DecidedAt, Kind: report.EventDegrade,
				Text: fmt.Sprintf("degrade: the change to %s %s was refused: %v", act.What, fmtNum(act.To), err)})
		} else {
			act.At = at.Seconds()
			g.since = at
		}
		g.deg.Actions = append(g.deg.Actions, act)
	}()
}

// connectionsAt is the connections the schedule asks at t.
func connectionsAt(segs []proto.Segment, t time.Duration) int {
	c := 0
	for _, g := range segs {
		if g.Start <= t {
			c = g.Connections
		}
	}
	return c
}

func fmtNum(v float64) string { return fmt.Sprintf("%g", math.Round(v*100)/100) }

// Aborted maps each threshold that stopped the test live to why.
func (g *Guard) Aborted() map[string]string {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make(map[string]string, len(g.aborted))
	for k, v := range g.aborted {
		out[k] = v
	}
	return out
}

// Degradation is what degradation did (nil without a degrade section).
func (g *Guard) Degradation() *report.Degradation {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.deg == nil {
		return nil
	}
	d := *g.deg
	d.Actions = append([]report.DegradeAction{}, g.deg.Actions...)
	return &d
}

// Report judges the thresholds on the whole test (p's aggregator, every
// interval folded: call it once the test is over, on the goroutine that
// may read p) and puts them, with what degradation did, into rep.
func (g *Guard) Report(p *pipeline.Pipeline, rep *report.Report) {
	if len(g.o.Thresholds) > 0 {
		elapsed := time.Duration(rep.DurationSeconds * float64(time.Second))
		rep.SetThresholds(p.Aggregator().JudgeThresholds(g.o.Thresholds, elapsed), g.Aborted())
	}
	rep.Degradation = g.Degradation()
}
