// Package dashboard is barrage's live view of a running test: a Recorder
// that keeps what the page charts, fed ONLY from the merged stream (the
// pipeline's interval and event consumers, never anything per request),
// and an HTTP server (Server) with the page, Server-Sent Events pushed at
// least once a second, a REST API, controls behind a token, and the
// Prometheus endpoint.
//
// Threading: the Recorder's feeding methods (Interval, Event, Agents,
// Finish) run on the pipeline's goroutine (run's engine collector, or the
// coordinator's poll loop); they copy what they need under the
// Recorder's own lock, since the pipeline's intervals are reused once the
// callback returns. HTTP handlers read under that lock and encode outside
// it where they can.
package dashboard

import (
	"sync"
	"time"

	"github.com/barrage-load/barrage/pipeline"
	"github.com/barrage-load/barrage/proto"
	"github.com/barrage-load/barrage/report"
)

// States of a test as the page shows them.
const (
	StateWaiting  = "waiting"  // no interval yet
	StateRunning  = "running"  // intervals arrive
	StateFinished = "finished" // the final report is in
)

// Meta describes the test for the page.
type Meta struct {
	Target         string                       `json:"target"`
	Model          string                       `json:"model"`
	Fleet          bool                         `json:"fleet"`
	PlannedSeconds float64                      `json:"planned_seconds"`
	Connections    int                          `json:"connections"`
	Pipeline       int                          `json:"pipeline"`
	Control        bool                         `json:"control"`
	ErrorKinds     [report.NumErrorKinds]string `json:"error_kinds"`
	StatusClasses  [6]string                    `json:"status_classes"`
	// Keep is how many samples the page keeps in its charts (the REST
	// timeline has them all).
	Keep int `json:"keep"`
}

// DefaultKeep is how many samples the page charts (an hour of 1 s
// intervals); /api/timeline serves every one.
const DefaultKeep = 3600

// Totals are the run's totals so far (closed intervals; the final report
// replaces them at the end).
type Totals struct {
	Elapsed    float64                      `json:"elapsed"`
	Sent       uint64                       `json:"sent"`
	Responses  uint64                       `json:"responses"`
	Errors     uint64                       `json:"errors"`
	ErrorKinds [report.NumErrorKinds]uint64 `json:"error_kinds"`
	Classes    [6]uint64                    `json:"status_classes"`
	RPS        float64                      `json:"rps"`
	Latency    *report.Quantiles            `json:"latency_us"`
	Service    *report.Quantiles            `json:"service_us,omitempty"`
	Corrected  *report.Quantiles            `json:"corrected_us,omitempty"`
	Shed       uint64                       `json:"shed"`
	Censored   uint64                       `json:"censored"`
	LoopBusy   float64                      `json:"loop_busy"`
	BytesIn    uint64                       `json:"bytes_in"`
	BytesOut   uint64                       `json:"bytes_out"`
}

// TotalsOf sums s (cumulative statistics) as the page shows them.
func TotalsOf(s *proto.Stats, e report.Expect) Totals {
	errs := report.CountErrors(s, e)
	t := Totals{Elapsed: s.End.Seconds(), Sent: s.Sent, Responses: s.Responses, Errors: errs.Total(),
		Latency: report.QuantilesOf(s.Latency), Service: report.QuantilesOf(s.Service), Corrected: report.QuantilesOf(s.Corrected),
		Shed: s.TotalShed(), Censored: s.Censored, LoopBusy: s.LoopBusy(), BytesIn: s.BytesIn, BytesOut: s.BytesOut}
	i := 0
	errs.Each(func(_ string, n uint64) { t.ErrorKinds[i] = n; i++ })
	for code, n := range s.Status {
		if n > 0 {
			t.Classes[report.StatusClass(code)] += n
		}
	}
	if t.Elapsed > 0 {
		t.RPS = float64(s.Responses) / t.Elapsed
	}
	return t
}

// Recorder keeps what the dashboard, the HTML report and the metrics show
// of one test. It is safe for concurrent use.
type Recorder struct {
	mu       sync.Mutex
	meta     Meta
	expect   report.Expect
	agg      *report.Aggregator
	samples  []report.Sample
	events   []report.Event
	agents   []report.Agent
	spectrum *report.Spectrum
	totals   Totals
	final    *report.Report
	state    string
	// changed is closed (and replaced) at every change: streams wait on
	// it.
	changed chan struct{}
	// sched reads the schedule in force from the pipeline (run), so that
	// the live report's steps follow live changes.
	sched func() []proto.Segment
}

// NewRecorder prepares a recorder for plan; fleet says the test runs on
// agents (the page shows their table).
func NewRecorder(plan *proto.Plan, fleet bool) *Recorder {
	segs := plan.Schedule()
	open := plan.Open()
	m := Meta{Target: plan.TargetURL, Model: "closed", Fleet: fleet, Connections: plan.Connections, Pipeline: plan.Pipeline,
		ErrorKinds: report.ErrorKindNames, StatusClasses: report.StatusClassNames, Keep: DefaultKeep}
	if open {
		m.Model = "open"
	}
	for _, g := range segs {
		m.PlannedSeconds = max(m.PlannedSeconds, g.End().Seconds())
	}
	return &Recorder{
		meta: m, expect: report.NewExpect(plan.ExpectStatus),
		agg: report.New(report.Options{Target: plan.TargetURL, Schedule: segs, Pipeline: plan.Pipeline,
			Open: open, ExpectStatus: plan.ExpectStatus}),
		state: StateWaiting, changed: make(chan struct{}),
	}
}

// SetControl says whether the page offers controls.
func (r *Recorder) SetControl(on bool) {
	r.mu.Lock()
	r.meta.Control = on
	r.mu.Unlock()
}

// Attach hangs the recorder on a pipeline (call it where the pipeline may
// be touched: under local.Runner.With, or on the coordinator's poll
// goroutine).
func (r *Recorder) Attach(p *pipeline.Pipeline) {
	agg := p.Aggregator()
	r.mu.Lock()
	// Called from the interval callback, on the pipeline's goroutine.
	r.sched = func() []proto.Segment { return agg.Schedule }
	r.mu.Unlock()
	p.OnInterval(r.Interval)
	p.OnEvent(r.Event)
}

func (r *Recorder) broadcast() {
	close(r.changed)
	r.changed = make(chan struct{})
}

// Interval records one merged interval (a pipeline OnInterval consumer):
// it copies a summary and merges the histograms into its own totals; it
// keeps nothing of iv.
func (r *Recorder) Interval(iv *proto.Stats, agents, of int) {
	// The summary is read outside the lock: iv is ours until we return.
	s := report.NewSample(iv, r.expect, agents, of)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sched != nil {
		if segs := r.sched(); len(segs) > 0 {
			r.agg.Schedule = append(r.agg.Schedule[:0:0], segs...)
		}
	}
	r.agg.Add(iv)
	total := r.agg.Total()
	r.samples = append(r.samples, s)
	r.totals = TotalsOf(total, r.expect)
	r.spectrum = report.NewSpectrum(total)
	if r.state == StateWaiting {
		r.state = StateRunning
	}
	r.broadcast()
}

// Event records an event (a pipeline OnEvent consumer).
func (r *Recorder) Event(e report.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
	r.broadcast()
}

// Agents records the agents' rows (the coordinator's OnAgents).
func (r *Recorder) Agents(rows []report.Agent) {
	cp := append([]report.Agent(nil), rows...)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.agents = cp
	r.broadcast()
}

// Finish records the final report: the page shows it, /api/report serves
// it, and the metrics' counters take its totals.
func (r *Recorder) Finish(rep *report.Report) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.final = rep
	r.state = StateFinished
	if len(rep.Agents) > 0 {
		r.agents = append([]report.Agent(nil), rep.Agents...)
	}
	r.broadcast()
}

// Charts returns what the HTML report draws for rep (the final report).
func (r *Recorder) Charts(rep *report.Report) *report.Charts {
	r.mu.Lock()
	defer r.mu.Unlock()
	return report.NewCharts(rep, append([]report.Sample(nil), r.samples...), r.spectrum)
}

// Report returns the final report once the test ended, else a report of
// the intervals so far (no agent rows; outcome "running").
func (r *Recorder) Report() *report.Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.final != nil {
		return r.final
	}
	rep := r.agg.Report(time.Duration(r.totals.Elapsed * float64(time.Second)))
	rep.Events = append([]report.Event{}, r.events...)
	rep.Agents = append([]report.Agent(nil), r.agents...)
	rep.Outcome = "running"
	if r.state == StateWaiting {
		rep.Outcome = "waiting"
	}
	return rep
}

// Tick is what the page receives: the hello (everything so far) and each
// update (what changed since the client's cursor).
type Tick struct {
	Meta     *Meta            `json:"meta,omitempty"`
	State    string           `json:"state"`
	Samples  []report.Sample  `json:"samples"`
	Events   []report.Event   `json:"events"`
	Totals   *Totals          `json:"totals,omitempty"`
	Spectrum *report.Spectrum `json:"spectrum,omitempty"`
	Agents   []report.Agent   `json:"agents,omitempty"`
	Final    *report.Report   `json:"final,omitempty"`
}

// Cursor is how far a client has seen the recorder.
type Cursor struct {
	Samples, Events int
	// final is set once the final report was sent.
	final bool
}

// Since returns what changed after c (everything for a zero cursor,
// with the meta), the cursor after it, and the channel closed at the
// next change. ok is false when nothing changed.
func (r *Recorder) Since(c Cursor, hello bool) (t Tick, next Cursor, changed <-chan struct{}, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	changed = r.changed
	next = Cursor{Samples: len(r.samples), Events: len(r.events), final: r.final != nil}
	ok = hello || next.Samples > c.Samples || next.Events > c.Events || (next.final && !c.final)
	if !ok {
		return t, c, changed, false
	}
	from := c.Samples
	if hello {
		m := r.meta
		t.Meta = &m
		from = max(0, len(r.samples)-r.meta.Keep)
		c.Events = 0
	}
	t.State = r.state
	t.Samples = append([]report.Sample{}, r.samples[min(from, len(r.samples)):]...)
	t.Events = append([]report.Event{}, r.events[min(c.Events, len(r.events)):]...)
	tot := r.totals
	t.Totals = &tot
	t.Spectrum = r.spectrum // never changed once made: replaced
	if r.meta.Fleet {
		t.Agents = append([]report.Agent{}, r.agents...)
	}
	t.Final = r.final
	return t, next, changed, true
}

// Status is the heartbeat: the state and how far the test got.
type Status struct {
	State   string  `json:"state"`
	Elapsed float64 `json:"elapsed"`
	Seq     int     `json:"seq"`
}

// Status returns the heartbeat.
func (r *Recorder) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	return Status{State: r.state, Elapsed: r.totals.Elapsed, Seq: len(r.samples) - 1}
}

// Current is /api/metrics: the last interval, the totals, the agents.
type Current struct {
	State  string         `json:"state"`
	Seq    int            `json:"seq"`
	Last   *report.Sample `json:"last"`
	Totals Totals         `json:"totals"`
	Agents []report.Agent `json:"agents,omitempty"`
	Events int            `json:"events"`
	Final  bool           `json:"final"`
}

// Current returns the current metrics.
func (r *Recorder) Current() Current {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := Current{State: r.state, Seq: len(r.samples) - 1, Totals: r.totals, Events: len(r.events), Final: r.final != nil,
		Agents: append([]report.Agent(nil), r.agents...)}
	if n := len(r.samples); n > 0 {
		s := r.samples[n-1]
		c.Last = &s
	}
	return c
}

// Timeline returns the samples of the last seconds (all for seconds <=
// 0) and the events in that span.
func (r *Recorder) Timeline(seconds float64) ([]report.Sample, []report.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	from := 0
	cut := -1.0
	if n := len(r.samples); seconds > 0 && n > 0 {
		cut = r.samples[n-1].End - seconds
		for from < n && r.samples[from].End <= cut {
			from++
		}
	}
	evs := []report.Event{}
	for _, e := range r.events {
		if e.At >= cut {
			evs = append(evs, e)
		}
	}
	return append([]report.Sample{}, r.samples[from:]...), evs
}

// MetricsView is what the Prometheus exporter reads (see metrics.View):
// fn runs under the recorder's lock and must not keep what it is given.
func (r *Recorder) MetricsView(fn func(total *proto.Stats, last *report.Sample, e report.Expect, final *report.Report, running bool)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var last *report.Sample
	if n := len(r.samples); n > 0 && r.final == nil {
		last = &r.samples[n-1]
	}
	var total *proto.Stats
	if len(r.samples) > 0 {
		total = r.agg.Total()
	}
	fn(total, last, r.expect, r.final, r.state == StateRunning)
}
