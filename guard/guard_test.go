package guard

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/barrage-load/barrage/live"
	"github.com/barrage-load/barrage/pipeline"
	"github.com/barrage-load/barrage/proto"
	"github.com/barrage-load/barrage/report"
	"github.com/barrage-load/barrage/schedule"
)

// fakeCtl is a live.Controller that records what it is asked; a change
// takes effect at the next whole second after now.
type fakeCtl struct {
	mu      sync.Mutex
	now     time.Duration
	changes []live.Change
	ats     []time.Duration
	stops   []string
	refuse  error
}

func (f *fakeCtl) Change(_ context.Context, c live.Change) (time.Duration, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.refuse != nil {
		return 0, f.refuse
	}
	at := f.now.Truncate(time.Second) + time.Second
	f.changes = append(f.changes, c)
	f.ats = append(f.ats, at)
	return at, nil
}

func (f *fakeCtl) Stop(reason string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stops = append(f.stops, reason)
}

// harness feeds intervals to a real pipeline as one agent would, and
// applies the changes the guard asked to the pipeline's schedule between
// intervals, as run's runner and the coordinator do.
type harness struct {
	t       *testing.T
	plan    *proto.Plan
	p       *pipeline.Pipeline
	g       *Guard
	ctl     *fakeCtl
	sched   []proto.Segment
	applied int
	seq     int
}

func newHarness(t *testing.T, plan string) *harness {
	t.Helper()
	p, err := proto.ParsePlan([]byte(plan))
	if err != nil {
		t.Fatal(err)
	}
	ts, err := report.ParseThresholds(p.Thresholds, p)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, plan: p, ctl: &fakeCtl{}, sched: p.Schedule()}
	sch := schedule.New(h.sched)
	h.p = pipeline.New(pipeline.Options{Plan: p, Schedule: h.sched, Ends: schedule.IntervalEnds(&sch, time.Second), Window: 1})
	h.p.AddAgent("a", "a", "")
	h.g = New(Options{Plan: p, Thresholds: ts, Controller: h.ctl})
	h.g.Attach(h.p)
	return h
}

// feed adds one second of traffic: n responses, of which bad get 503,
// each with latency lat.
func (h *harness) feed(n, bad uint64, lat time.Duration) {
	h.t.Helper()
	s := proto.NewStats(h.plan.Open())
	s.Seq = h.seq
	s.Start, s.End = time.Duration(h.seq)*time.Second, time.Duration(h.seq+1)*time.Second
	_, s.Step = stepAt(h.sched, s.Start)
	s.Responses, s.Sent, s.Scheduled = n, n, n
	s.Status[200], s.Status[503] = n-bad, bad
	if n > 0 {
		_ = s.Latency.RecordValues(lat.Microseconds(), int64(n))
		if s.Open() {
			_ = s.Service.RecordValues(lat.Microseconds(), int64(n))
		} else {
			_ = s.Corrected.RecordValues(lat.Microseconds(), int64(n))
		}
	}
	h.ctl.mu.Lock()
	h.ctl.now = s.End
	h.ctl.mu.Unlock()
	h.seq++
	if h.p.Add("a", s) != pipeline.Folded {
		h.t.Fatalf("interval %d not folded", s.Seq)
	}
	h.p.Close([]string{"a"}, false)
	h.settle()
}

func stepAt(segs []proto.Segment, t time.Duration) (int, int) {
	for _, g := range segs {
		if t >= g.Start && t < g.End() {
			return g.Connections, g.Step
		}
	}
	return 0, segs[len(segs)-1].Step
}

// settle waits for the guard's change in flight, then applies every
// change made to the schedule.
func (h *harness) settle() {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		h.g.mu.Lock()
		pending := h.g.pending
		h.g.mu.Unlock()
		if !pending {
			break
		}
		if time.Now().After(deadline) {
			h.t.Fatal("the guard's change never returned")
		}
		time.Sleep(time.Millisecond)
	}
	h.ctl.mu.Lock()
	defer h.ctl.mu.Unlock()
	for ; h.applied < len(h.ctl.changes); h.applied++ {
		c := h.ctl.changes[h.applied]
		h.sched = schedule.Edit(h.sched, h.ctl.ats[h.applied], c.SetsRate(), c.Rate, c.Connections)
		h.p.SetSchedule(h.sched)
	}
}

// stops waits for the guard's stop (it goes out on a goroutine).
func (h *harness) stops(want int) []string {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		h.ctl.mu.Lock()
		s := append([]string(nil), h.ctl.stops...)
		h.ctl.mu.Unlock()
		if len(s) >= want || time.Now().After(deadline) {
			return s
		}
		time.Sleep(time.Millisecond)
	}
}

func (h *harness) events(kind string) []string {
	var out []string
	for _, e := range h.p.Events() {
		if e.Kind == kind {
			out = append(out, e.Text)
		}
	}
	return out
}

const degradePlan = "target_url: http://h/\nrate: 1000\nduration: 20s\n"

// TestDegradeHalves: errors at 60% over 3 s halve the rate; the next
// decision waits for 3 s of the lowered load; max_reductions bounds them.
func TestDegradeHalves(t *testing.T) {
	h := newHarness(t, degradePlan+"degrade: {error_rate: 50%, for: 3s, factor: 0.5, stop_above: 80%}\n")
	for i := 0; i < 3; i++ {
		h.feed(1000, 600, time.Millisecond)
	}
	if len(h.ctl.changes) != 1 || h.ctl.changes[0].Rate != 500 || h.ctl.changes[0].Reason != "degrade" || h.ctl.ats[0] != 4*time.Second {
		t.Fatalf("after 3 s at 60%% errors: changes %+v at %v", h.ctl.changes, h.ctl.ats)
	}
	ev := h.events(report.EventDegrade)
	if len(ev) != 1 || !strings.Contains(ev[0], "errors 60.00% over the last 3s (0.0s–3.0s) are above 50%: rate 1000 → 500") {
		t.Fatalf("events %q", ev)
	}
	// The interval before the change still ran at 1000/s: not counted.
	// From 4 s the lowered load needs 3 s of its own.
	h.feed(1000, 600, time.Millisecond)
	for i := 0; i < 2; i++ {
		h.feed(500, 300, time.Millisecond)
	}
	if len(h.ctl.changes) != 1 {
		t.Fatalf("decided again before 3 s of the lowered load: %+v", h.ctl.changes)
	}
	h.feed(500, 300, time.Millisecond)
	if len(h.ctl.changes) != 2 || h.ctl.changes[1].Rate != 250 || h.ctl.ats[1] != 8*time.Second {
		t.Fatalf("second reduction: %+v at %v", h.ctl.changes, h.ctl.ats)
	}
	d := h.g.Degradation()
	if len(d.Actions) != 2 || d.Actions[0].From != 1000 || d.Actions[0].To != 500 || d.Actions[0].At != 4 || d.Actions[0].DecidedAt != 3 ||
		d.Actions[1].WindowFrom != 4 || d.Actions[0].ErrorRate != 60 || d.Stopped != "" || d.Asked != "1000 req/s" {
		t.Fatalf("degradation %+v", d)
	}
	if len(h.stops(0)) != 0 {
		t.Fatal("stopped")
	}

	// At most one reduction.
	h = newHarness(t, degradePlan+"degrade: {error_rate: 50%, for: 2s, max_reductions: 1}\n")
	for i := 0; i < 10; i++ {
		h.feed(1000, 700, time.Millisecond)
	}
	if len(h.ctl.changes) != 1 || h.ctl.changes[0].Rate != 500 {
		t.Fatalf("max_reductions 1: %+v", h.ctl.changes)
	}
	// Errors at the limit, not above it: nothing.
	h = newHarness(t, degradePlan+"degrade: {error_rate: 50%, for: 2s}\n")
	for i := 0; i < 6; i++ {
		h.feed(1000, 500, time.Millisecond)
	}
	if len(h.ctl.changes) != 0 || len(h.g.Degradation().Actions) != 0 {
		t.Fatalf("at the limit: %+v", h.ctl.changes)
	}
}

// TestDegradeStops: errors above stop_above for the window stop the test
// with the reason, before any reduction.
func TestDegradeStops(t *testing.T) {
	h := newHarness(t, degradePlan+"degrade: {error_rate: 50%, for: 3s, stop_above: 80%}\n")
	h.feed(1000, 900, time.Millisecond)
	h.feed(1000, 900, time.Millisecond)
	if s := h.stops(0); len(s) != 0 {
		t.Fatalf("stopped before the window was full: %q", s)
	}
	h.feed(1000, 900, time.Millisecond)
	s := h.stops(1)
	if len(s) != 1 || !strings.Contains(s[0], "degrade: errors 90.00% over the last 3s (0.0s–3.0s) are above stop_above 80%") {
		t.Fatalf("stops %q", s)
	}
	if len(h.ctl.changes) != 0 {
		t.Fatalf("changed: %+v", h.ctl.changes)
	}
	if d := h.g.Degradation(); d.Stopped != s[0] {
		t.Fatalf("degradation %+v", d)
	}
	if ev := h.events(report.EventDegrade); len(ev) != 1 || ev[0] != s[0] {
		t.Fatalf("events %q", ev)
	}
	// Nothing more once stopped.
	h.feed(1000, 900, time.Millisecond)
	if s := h.stops(1); len(s) != 1 {
		t.Fatalf("stopped twice: %q", s)
	}
}

// TestDegradeClosedModel: the closed model lowers its connections.
func TestDegradeClosedModel(t *testing.T) {
	h := newHarness(t, "target_url: http://h/\nconnections: 64\nduration: 20s\ndegrade: {error_rate: 10%, for: 2s, factor: 0.25}\n")
	h.feed(1000, 200, time.Millisecond)
	h.feed(1000, 200, time.Millisecond)
	if len(h.ctl.changes) != 1 || h.ctl.changes[0].Connections != 16 || h.ctl.changes[0].SetsRate() {
		t.Fatalf("changes %+v", h.ctl.changes)
	}
	if d := h.g.Degradation(); d.Actions[0].What != "connections" || d.Asked != "64 connections" {
		t.Fatalf("%+v", d)
	}
}

// TestDegradeRefused: a change the controller refuses is recorded and
// becomes an event at the next interval.
func TestDegradeRefused(t *testing.T) {
	h := newHarness(t, degradePlan+"degrade: {error_rate: 10%, for: 1s, max_reductions: 1}\n")
	h.ctl.refuse = live.ErrClosedModel
	h.feed(1000, 500, time.Millisecond)
	h.feed(1000, 500, time.Millisecond)
	d := h.g.Degradation()
	if len(d.Actions) != 1 || d.Actions[0].Error == "" || d.Actions[0].At != 0 {
		t.Fatalf("%+v", d)
	}
	ev := h.events(report.EventDegrade)
	if len(ev) != 2 || !strings.Contains(ev[1], "was refused") {
		t.Fatalf("events %q", ev)
	}
}

// TestAbortOnFail: a threshold judged live over the last grace stops the
// test once the test has run that long; the final judgement marks it.
func TestAbortOnFail(t *testing.T) {
	h := newHarness(t, degradePlan+"thresholds: [\"p99 < 100ms\", \"errors < 50%\"]\nabort_on_fail: {grace: 3s}\n")
	h.feed(1000, 0, 300*time.Millisecond)
	h.feed(1000, 0, 300*time.Millisecond)
	if s := h.stops(0); len(s) != 0 {
		t.Fatalf("stopped within the grace: %q", s)
	}
	h.feed(1000, 0, 300*time.Millisecond)
	s := h.stops(1)
	if len(s) != 1 || !strings.Contains(s[0], "threshold p99 < 100ms failed: 300.03ms over the last 3s (0.0s–3.0s)") {
		t.Fatalf("stops %q", s)
	}
	if ev := h.events(report.EventThreshold); len(ev) != 1 || ev[0] != s[0] {
		t.Fatalf("events %q", ev)
	}
	h.p.Close([]string{"a"}, true)
	rep := h.p.Report(3 * time.Second)
	rep.Outcome = "stopped: " + s[0]
	h.g.Report(h.p, rep)
	if len(rep.Thresholds) != 2 || rep.Thresholds[0].OK || rep.Thresholds[0].Aborted != s[0] || !rep.Thresholds[1].OK {
		t.Fatalf("thresholds %+v", rep.Thresholds)
	}
	if rep.ExitCode() != report.ExitThresholds {
		t.Fatalf("exit %d", rep.ExitCode())
	}

	// A fast start and a slow end: stopped once the slow part fails the
	// window (one slow second of three is over the p99).
	h = newHarness(t, degradePlan+"thresholds: [\"p99 < 100ms\"]\nabort_on_fail: {grace: 3s}\n")
	for i := 0; i < 5; i++ {
		h.feed(1000, 0, time.Millisecond)
	}
	if s := h.stops(0); len(s) != 0 {
		t.Fatalf("stopped while fast: %q", s)
	}
	h.feed(1000, 0, 200*time.Millisecond)
	if s := h.stops(1); len(s) != 1 || !strings.Contains(s[0], "(3.0s–6.0s)") {
		t.Fatalf("stops %q", s)
	}
}

// TestAbortOnFailStep: a step threshold is judged live on its step's
// intervals only.
func TestAbortOnFailStep(t *testing.T) {
	h := newHarness(t, "target_url: http://h/\npattern: {type: steps, steps: [{duration: 3s, rate: 100}, {duration: 3s, rate: 200}]}\n"+
		"thresholds: [\"p99{step=2} < 100ms\"]\nabort_on_fail: {grace: 2s}\n")
	// Step 1 is slow: not judged.
	for i := 0; i < 3; i++ {
		h.feed(100, 0, time.Second)
	}
	h.feed(200, 0, time.Millisecond)
	if s := h.stops(0); len(s) != 0 {
		t.Fatalf("stopped on step 1: %q", s)
	}
	h.feed(200, 0, time.Second)
	if s := h.stops(1); len(s) != 1 || !strings.Contains(s[0], "p99{step=2} < 100ms") {
		t.Fatalf("stops %q", s)
	}
}
