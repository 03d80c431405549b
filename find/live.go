package find

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/barrage-load/barrage/live"
	"github.com/barrage-load/barrage/pipeline"
	"github.com/barrage-load/barrage/proto"
	"github.com/barrage-load/barrage/report"
)

// ErrEnded occurs when the test a search drives ended before a step
// could be measured.
var ErrEnded = errors.New("find: the test ended before the search did")

// Live measures steps of a running open-model test: each step is a live
// change of its rate, judged on the merged intervals the test's pipeline
// closes after the change's settling time.
type Live struct {
	ctl    live.Controller
	ts     []*report.Threshold
	expect report.Expect
	o      Options

	mu     sync.Mutex
	ivs    []*proto.Stats    // merged intervals from keep on, copied
	agents map[int]*agentSeq // by interval
	keep   time.Duration     // intervals ending before are dropped
	last   time.Duration     // the end of the last interval seen
	notify chan struct{}
	done   chan struct{}
	ended  sync.Once
	rate   float64
	begun  bool
	// backlog is set when the last step may have left requests due and
	// waiting for a connection (its SLO broke, or its last interval had
	// some waiting).
	backlog bool
}

// agentSeq holds the agents' parts of one interval.
type agentSeq struct {
	end   time.Duration
	parts map[string]agentPart
}

// agentPart is what the fleet rule needs of one agent's interval.
type agentPart struct {
	sent, scheduled, backlogged uint64
	loopCPU, loopCap            time.Duration
}

// NewLive prepares a measurer: ctl changes the test's rate; ts is the
// SLO; expect the plan's success set; o the search's options (Settle,
// Step, Warmup are read).
func NewLive(ctl live.Controller, ts []*report.Threshold, expect report.Expect, o Options) *Live {
	return &Live{ctl: ctl, ts: ts, expect: expect, o: o, agents: map[int]*agentSeq{},
		notify: make(chan struct{}, 1), done: make(chan struct{}), rate: o.Min}
}

// Attach hangs the measurer on the test's pipeline (on its goroutine:
// inside local.Runner.With, or coord.Options.OnPipeline).
func (l *Live) Attach(p *pipeline.Pipeline) {
	p.OnAgentInterval(func(iv *proto.Stats, agent string, c *pipeline.Counters) {
		l.mu.Lock()
		defer l.mu.Unlock()
		if iv.End <= l.keep {
			return
		}
		m := l.agents[iv.Seq]
		if m == nil {
			m = &agentSeq{end: iv.End, parts: map[string]agentPart{}}
			l.agents[iv.Seq] = m
		}
		m.parts[agent] = agentPart{sent: c.Sent, scheduled: c.Scheduled, backlogged: c.Backlogged, loopCPU: c.LoopCPU, loopCap: c.LoopCap}
	})
	p.OnInterval(func(iv *proto.Stats, _, _ int) {
		l.mu.Lock()
		l.last = max(l.last, iv.End)
		if iv.End > l.keep {
			c := iv.Clone()
			c.Seq, c.Step, c.Start, c.End = iv.Seq, iv.Step, iv.Start, iv.End
			l.ivs = append(l.ivs, c)
		}
		l.mu.Unlock()
		select {
		case l.notify <- struct{}{}:
		default:
		}
	})
}

// End tells the measurer that the test is over (its Run returned): a
// step waiting for intervals gives up with ErrEnded.
func (l *Live) End() { l.ended.Do(func() { close(l.done) }) }

// waitFor waits until an interval ending at or after t has been seen.
func (l *Live) waitFor(ctx context.Context, t time.Duration) error {
	for {
		l.mu.Lock()
		last := l.last
		l.mu.Unlock()
		if last >= t {
			return nil
		}
		select {
		case <-l.notify:
		case <-ctx.Done():
			return ctx.Err()
		case <-l.done:
			// The last intervals may have closed as the test ended.
			l.mu.Lock()
			last := l.last
			l.mu.Unlock()
			if last >= t {
				return nil
			}
			return ErrEnded
		}
	}
}

// Measure runs one step at rate: a live change (none for the first step
// when it is at the warm-up's rate), then Settle, then Step judged.
func (l *Live) Measure(ctx context.Context, rate float64) (Measurement, error) {
	l.mu.Lock()
	start := l.last
	l.mu.Unlock()
	if !l.begun {
		// The warm-up: the test started at Min. A first step at Min
		// starts at the end of the warm-up's last interval (not at the
		// last interval seen: the search may start late).
		if err := l.waitFor(ctx, l.o.Warmup); err != nil {
			return Measurement{}, err
		}
		l.begun = true
		l.mu.Lock()
		start = l.last
		for _, s := range l.ivs {
			if s.End >= l.o.Warmup {
				start = min(start, s.End)
			}
		}
		l.mu.Unlock()
	}
	if l.backlog && l.o.Drain > 0 {
		if err := l.drain(ctx); err != nil {
			return Measurement{}, err
		}
	}
	if rate != l.rate {
		ch := live.Keep("find")
		ch.Rate = rate
		at, err := l.ctl.Change(ctx, ch)
		if err != nil {
			return Measurement{}, fmt.Errorf("find: cannot change the rate to %g req/s: %w", rate, err)
		}
		l.rate = rate
		start = at
	}
	from, to := start+l.o.Settle, start+l.o.Settle+l.o.Step
	l.mu.Lock()
	l.keep = from
	l.drop(from)
	l.mu.Unlock()
	if err := l.waitFor(ctx, to); err != nil {
		return Measurement{}, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	ms := l.judge(rate, from, to)
	l.drop(to)
	return ms, nil
}

// drain pauses the load after a step that left a backlog: requests due
// that waited for a connection are still sent, in order, when the rate
// drops (the engine sheds them only after the request timeout), so every
// later step would carry the overloaded step's wait in its latencies.
// The rate goes to 0 until an interval in which nothing was sent (the
// backlog is gone), or for at most Drain.
func (l *Live) drain(ctx context.Context) error {
	ch := live.Keep("find: drain")
	ch.Rate = 0
	at, err := l.ctl.Change(ctx, ch)
	if err != nil {
		return fmt.Errorf("find: cannot pause to drain the backlog: %w", err)
	}
	l.rate = 0
	l.mu.Lock()
	l.keep = at
	l.drop(at)
	l.mu.Unlock()
	for {
		l.mu.Lock()
		drained := false
		for _, s := range l.ivs {
			drained = drained || (s.Start >= at && s.Sent == 0)
		}
		last := l.last
		l.mu.Unlock()
		if drained || last >= at+l.o.Drain {
			l.backlog = false
			return nil
		}
		if err := l.waitFor(ctx, last+1); err != nil {
			return err
		}
	}
}

// drop forgets the intervals that end by t (l.mu held).
func (l *Live) drop(t time.Duration) {
	keep := l.ivs[:0]
	for _, s := range l.ivs {
		if s.End > t {
			keep = append(keep, s)
		}
	}
	clear(l.ivs[len(keep):])
	l.ivs = keep
	for seq, m := range l.agents {
		if m.end <= t {
			delete(l.agents, seq)
		}
	}
}

// judge merges the intervals within [from, to] and judges them (l.mu
// held).
func (l *Live) judge(rate float64, from, to time.Duration) Measurement {
	var sum *proto.Stats
	agents := map[string]*proto.Stats{}
	var covered time.Duration
	for _, s := range l.ivs {
		if s.Start < from || s.End > to {
			continue
		}
		if sum == nil {
			sum = proto.NewStats(s.Open())
		}
		sum.Merge(s)
		covered += s.End - s.Start
		var parts map[string]agentPart
		if m := l.agents[s.Seq]; m != nil {
			parts = m.parts
		}
		for name, a := range parts {
			st := agents[name]
			if st == nil {
				st = &proto.Stats{}
				agents[name] = st
			}
			st.Sent += a.sent
			st.Scheduled += a.scheduled
			st.Backlogged += a.backlogged
			st.LoopCPU += a.loopCPU
			st.LoopCapacity += a.loopCap
		}
	}
	ms := Measurement{Rate: rate, From: from.Seconds(), To: to.Seconds()}
	// Requests may be left waiting at the step's end: over 1% of its
	// last interval's waited for a connection (or its SLO broke, below).
	l.backlog = false
	for _, s := range l.ivs {
		if s.End == to && float64(s.Backlogged) > report.MaxRateShortfall*float64(s.Scheduled) {
			l.backlog = true
		}
	}
	if sum == nil || covered <= 0 {
		ms.Invalid = []string{fmt.Sprintf("no interval of %.1fs–%.1fs was merged", from.Seconds(), to.Seconds())}
		return ms
	}
	secs := covered.Seconds()
	asked := rate * secs
	ms.Achieved, ms.Sent, ms.LoopBusy = float64(sum.Responses)/secs, float64(sum.Sent)/secs, sum.LoopBusy()
	if h := sum.Latency; h != nil && h.TotalCount() > 0 {
		ms.P50, ms.P99, ms.P999 = h.ValueAtQuantile(50), h.ValueAtQuantile(99), h.ValueAtQuantile(99.9)
	}
	ms.Errors = report.CountErrors(sum, l.expect).Total()
	if done := sum.Responses + sum.Failed(); done > 0 {
		ms.ErrorShare = min(float64(ms.Errors)/float64(done), 1)
	}
	v := report.JudgeStep(sum, asked, agents)
	ms.Valid, ms.Invalid = v.Valid, v.Reasons
	smp := report.Span{Stats: sum, Seconds: secs, Asked: asked, Expect: l.expect}
	var maxLate float64
	if sum.Lateness != nil {
		maxLate = float64(sum.Lateness.Max())
	}
	ms.SLO = true
	var unexplained []string
	for _, t := range l.ts {
		val, pass, ok := t.Judge(smp)
		if pass {
			continue
		}
		ms.SLO = false
		text := "no data"
		if ok {
			text = t.Format(val)
		}
		ms.Failed = append(ms.Failed, fmt.Sprintf("%s (%s)", t.Expr, text))
		if ok && v.Lateness != "" && lateBound(t) && t.Op.Holds(val-maxLate, t.Limit) {
			// Every latency from the intended send is its send's
			// lateness plus the rest, so the rest's percentile is at
			// least the latency's minus the greatest lateness: when that
			// bound passes, the sends' lateness may have broken it.
			unexplained = append(unexplained, fmt.Sprintf("%s could be as low as %s without it", t.Expr, t.Format(max(val-maxLate, 0))))
		}
	}
	if len(unexplained) > 0 {
		ms.Lateness = v.Lateness + "; " + strings.Join(unexplained, ", ")
	}
	l.backlog = l.backlog || !ms.SLO
	return ms
}

// lateBound reports whether t is a ceiling on the latency from the
// intended send, which the sends' lateness can only raise.
func lateBound(t *report.Threshold) bool {
	return t.Metric == report.MetricLatency && !t.Service && (t.Op == report.OpLess || t.Op == report.OpLessEq)
}
