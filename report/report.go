// Package report turns the statistics of a run (intervals from one engine,
// or from many agents merged) into the report users read: totals, latency
// percentiles, status codes, errors as users count them, steps, a
// timeline, how the test ended, and a verdict on whether the generator
// kept its promises (see verdict.go for the rule). Histograms are merged,
// never percentiles averaged. It also prints the one progress line that
// `run` and `coord` share (ProgressLine).
package report

import (
	"sort"
	"strconv"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/barrage-load/barrage/proto"
)

// Latency holds a histogram's summary in microseconds.
type Latency struct {
	Count int64   `json:"count"`
	Min   int64   `json:"min"`
	Mean  float64 `json:"mean"`
	Stdev float64 `json:"stdev"`
	P50   int64   `json:"p50"`
	P75   int64   `json:"p75"`
	P90   int64   `json:"p90"`
	P99   int64   `json:"p99"`
	P999  int64   `json:"p999"`
	P9999 int64   `json:"p9999"`
	Max   int64   `json:"max"`
}

// Summarize reads a histogram's percentiles (nil gives nil).
func Summarize(h *hdrhistogram.Histogram) *Latency {
	if h == nil {
		return nil
	}
	l := &Latency{Count: h.TotalCount()}
	if l.Count == 0 {
		return l
	}
	l.Min, l.Max, l.Mean, l.Stdev = h.Min(), h.Max(), h.Mean(), h.StdDev()
	l.P50 = h.ValueAtQuantile(50)
	l.P75 = h.ValueAtQuantile(75)
	l.P90 = h.ValueAtQuantile(90)
	l.P99 = h.ValueAtQuantile(99)
	l.P999 = h.ValueAtQuantile(99.9)
	l.P9999 = h.ValueAtQuantile(99.99)
	return l
}

// Step is one step's row. Every interval belongs to exactly one step (by
// proto.Stats.Step), so the rows' counts add up to the report's totals.
type Step struct {
	// Step numbers the row from 1 (the schedule's step id + 1).
	Step  int    `json:"step"`
	Label string `json:"label"`
	// Note says where the step came from when it was not in the plan
	// (e.g. "set at 4.0s"); see Aggregator.StepNote.
	Note            string  `json:"note,omitempty"`
	StartSeconds    float64 `json:"start_seconds"`
	DurationSeconds float64 `json:"duration_seconds"`
	Sent            uint64  `json:"sent"`
	Requests        uint64  `json:"requests"`
	Failed          uint64  `json:"failed"`
	RPS             float64 `json:"rps"`
	// TargetRate is the rate asked on average over the part of the step
	// that ran; TargetRateMin and TargetRateMax bound the step's planned
	// rate (they differ for a ramp, or for a step made of several
	// segments).
	TargetRate    float64           `json:"target_rate"`
	TargetRateMin float64           `json:"target_rate_min"`
	TargetRateMax float64           `json:"target_rate_max"`
	Errors        uint64            `json:"errors"`
	ErrorKinds    map[string]uint64 `json:"error_kinds"`
	Shed          uint64            `json:"shed"`
	Censored      uint64            `json:"censored"`
	Latency       *Latency          `json:"latency_us"`
	Status        map[string]uint64 `json:"status,omitempty"`
}

// Point is one interval of the timeline.
type Point struct {
	Seq       int     `json:"seq"`
	Step      int     `json:"step"`
	Start     float64 `json:"start_seconds"`
	End       float64 `json:"end_seconds"`
	Requests  uint64  `json:"requests"`
	RPS       float64 `json:"rps"`
	P50       int64   `json:"p50_us"`
	P99       int64   `json:"p99_us"`
	Errors    uint64  `json:"errors"`
	ConnsOpen int     `json:"conns_open"`
	ConnsWant int     `json:"conns_wanted"`
	// Breaker lists the circuit breakers' transitions in the interval
	// (also in the report's Events).
	Breaker []Event `json:"breaker,omitempty"`
}

// Agent is one agent's row in a distributed run.
type Agent struct {
	Name     string   `json:"name"`
	Host     string   `json:"host,omitempty"`
	Budget   string   `json:"budget,omitempty"`
	Requests uint64   `json:"requests"`
	RPS      float64  `json:"rps"`
	P99      int64    `json:"p99_us"`
	Errors   uint64   `json:"errors"`
	Censored uint64   `json:"censored,omitempty"`
	Lost     bool     `json:"lost"`
	LostAt   float64  `json:"lost_at_seconds,omitempty"`
	Status   string   `json:"status"`
	Expected int      `json:"intervals_expected"`
	Received int      `json:"intervals_received"`
	LoopBusy float64  `json:"loop_busy,omitempty"`
	Missing  []int    `json:"intervals_missing,omitempty"`
	Notes    []string `json:"notes,omitempty"`
}

// Outcomes the report knows by name. Any other non-empty Outcome is a
// test that did not complete.
const (
	OutcomeCompleted = "completed"
)

// Report is the whole result of a run, as printed and as written to JSON.
type Report struct {
	Target string `json:"target"`
	Model  string `json:"model"` // "open" or "closed"
	// Requests counts responses: every request answered, whatever its
	// status (an error status is answered, and counted in Errors too).
	Requests uint64 `json:"requests"`
	Sent     uint64 `json:"sent"`
	// Failed counts requests that got no answer because of a transport
	// error (timeout, reset, protocol, ...); Unfinished, those still in
	// flight at the end. Sent = Requests + Failed + Unfinished.
	Failed     uint64 `json:"failed"`
	Unfinished uint64 `json:"unfinished"`
	// Errors counts every error users count: transport errors (connect
	// attempts included) and responses outside the success set
	// (HTTPErrors of them). ErrorKinds splits it by kind.
	Errors          uint64  `json:"errors"`
	HTTPErrors      uint64  `json:"http_errors"`
	DurationSeconds float64 `json:"duration_seconds"`
	// PlannedSeconds is how long the schedule asked the test to last.
	PlannedSeconds float64 `json:"planned_seconds"`
	RPS            float64 `json:"rps"`
	// TargetRate is the open model's rate asked on average over the run;
	// TargetRateMin and TargetRateMax bound the schedule's rates, and
	// Schedule describes it step by step.
	TargetRate    float64 `json:"target_rate"`
	TargetRateMin float64 `json:"target_rate_min"`
	TargetRateMax float64 `json:"target_rate_max"`
	Schedule      string  `json:"schedule"`
	// Connections is the most connections any step asks for;
	// ConnectionsMin the fewest.
	Connections    int `json:"connections"`
	ConnectionsMin int `json:"connections_min"`
	Pipeline       int `json:"pipeline"`

	Latency   *Latency `json:"latency_us"`
	Service   *Latency `json:"service_time_us,omitempty"`
	Corrected *Latency `json:"corrected_latency_us,omitempty"`
	Lateness  *Latency `json:"send_lateness_us,omitempty"`
	// Connect is the time connections took to open (TCP connect), and
	// Handshake their TLS handshakes (https only): with --no-keepalive,
	// one per request. Absent when no connection opened.
	Connect   *Latency `json:"connect_us,omitempty"`
	Handshake *Latency `json:"tls_handshake_us,omitempty"`
	// TLSErrors splits error_kinds' tls by reason (absent when none).
	TLSErrors map[string]uint64 `json:"tls_errors,omitempty"`
	// ClientCloses counts connections the generator closed after their
	// one request (--no-keepalive; reopened at once).
	ClientCloses uint64 `json:"client_closes,omitempty"`

	Status     map[string]uint64 `json:"status"`
	ErrorKinds map[string]uint64 `json:"error_kinds"`
	BytesIn    uint64            `json:"bytes_in"`
	BytesOut   uint64            `json:"bytes_out"`
	// Scheduled counts the open model's requests that came due; of them,
	// Sent were sent, Shed (by kind) were dropped unsent, and NeverSent
	// were still waiting for a connection when the test ended.
	// Backlogged counts those that waited for a free connection.
	Scheduled  uint64            `json:"scheduled,omitempty"`
	Backlogged uint64            `json:"backlogged,omitempty"`
	Shed       map[string]uint64 `json:"shed"`
	NeverSent  uint64            `json:"never_sent"`
	// Censored counts requests never answered whose latency is in the
	// percentiles as a lower bound (the wait they had when the test ended
	// or their connection died).
	Censored uint64 `json:"censored"`
	// ServerCloses counts connections the server closed after a complete
	// response (reopened at once).
	ServerCloses uint64 `json:"server_closes"`
	// LoopBusy is the fraction of their cores the generator's event loops
	// used (CPU time from the OS over one core per loop; absent when the
	// OS does not say).
	LoopBusy float64 `json:"generator_loop_busy,omitempty"`

	Steps    []Step  `json:"steps"`
	Timeline []Point `json:"timeline"`
	Agents   []Agent `json:"agents,omitempty"`

	// Outcome says how the test ended: "completed", or why not (stopped
	// by a signal or the stop node, superseded by another coordinator,
	// ZooKeeper lost, ...). Only a completed test exits 0. The caller
	// sets it (and TakenOverFrom) after Aggregator.Report; WriteText and
	// ExitCode read it.
	Outcome string `json:"outcome"`
	// TakenOverFrom names the coordinator this report's coordinator took
	// the test over from (empty when it ran the test from its start).
	TakenOverFrom string `json:"taken_over_from,omitempty"`

	Valid bool `json:"valid"`
	// NoAnswers is true when the target answered nothing although
	// requests were sent or due (or connections attempted): the run is
	// not valid and the command must exit non-zero (see ExitCode).
	NoAnswers      bool     `json:"no_answers"`
	InvalidReasons []string `json:"invalid_reasons"`
	Notes          []string `json:"notes"`
	// HistogramDropped counts values lost while merging histograms; it is
	// shown, never hidden.
	HistogramDropped int64 `json:"histogram_dropped"`
	// Events are what happened to the test beside its timeline: steps,
	// live changes, agents lost, stops, thresholds, the circuit breaker.
	Events []Event `json:"events"`
	// Thresholds are the plan's thresholds judged at the end, and
	// Degradation what graceful degradation did (threshold*.go); set by
	// the caller after Report.
	Thresholds  []ThresholdResult `json:"thresholds,omitempty"`
	Degradation *Degradation      `json:"degradation,omitempty"`
	// StartSkewMS is the spread of the agents' first send times.
	StartSkewMS float64 `json:"start_skew_ms,omitempty"`
	// Seed is the plan's seed: the same seed gives each generator the same
	// picks and random values again.
	Seed uint64 `json:"seed,omitempty"`
	// ByRequest breaks a named mix down by request (see RequestRow).
	ByRequest []RequestRow `json:"by_request,omitempty"`
	// Retries says what the plan's retries did (absent without them):
	// Sent counts every attempt, retries included.
	Retries *Retries `json:"retries,omitempty"`

	// delayedSends is set when the sends went out late from outside the
	// generator's loops (verdict rule 4): valid, but the verdict line
	// must not say the schedule was kept.
	delayedSends bool
}

// Event is something that happened to a test, shown beside its timeline
// (as a marker on the dashboard's charts).
type Event struct {
	// At is when, in seconds from the test's start.
	At float64 `json:"at_seconds"`
	// Kind is one of the Event* constants.
	Kind string `json:"kind"`
	Text string `json:"text"`
}

// Event kinds.
const (
	EventStep      = "step"       // a planned step began
	EventChange    = "change"     // a live change took effect
	EventAgentLost = "agent-lost" // an agent was declared lost
	EventRebalance = "rebalance"  // a lost agent's budget moved
	EventStop      = "stop"       // the test was stopped early
	EventThreshold = "threshold"  // a threshold failed (live)
	EventBreaker   = "breaker"    // a circuit breaker changed state
	EventDegrade   = "degrade"    // graceful degradation lowered the load
)

// Exit statuses a report calls for (see Report.ExitCode), as the command
// line documents them: 0 completed, 1 could not run or finish, 2 bad
// input, 3 thresholds failed, 130 interrupted (the command decides 2 and
// 130 itself).
const (
	// ExitOK: the test completed and the target answered. The verdict
	// may still be NOT VALID: read `valid` in the JSON.
	ExitOK = 0
	// ExitNoAnswers: the target answered nothing although requests were
	// sent or due: there is no measurement.
	ExitNoAnswers = 1
	// ExitIncomplete: the test did not complete (Outcome is neither empty
	// nor "completed": stopped, superseded, ZooKeeper lost, ...); the
	// report covers only the part that ran.
	ExitIncomplete = 1
)

// ExitCode is the exit status the command should end with: ExitNoAnswers
// when the target answered nothing (it wins: it says the most), else
// ExitThresholds when a threshold failed in a test that completed or that
// a threshold stopped, else ExitIncomplete when the test did not
// complete, else ExitOK.
func (r *Report) ExitCode() int {
	if code, ok := r.thresholdExit(); ok && !r.NoAnswers {
		return code
	}
	switch {
	case r.NoAnswers:
		return ExitNoAnswers
	case !r.Completed():
		return ExitIncomplete
	}
	return ExitOK
}

// Completed reports whether the test ran to its end (an empty Outcome is
// taken as completed: the caller did not say otherwise).
func (r *Report) Completed() bool { return r.Outcome == "" || r.Outcome == OutcomeCompleted }

// Options configure an Aggregator.
type Options struct {
	// Target is the URL tested, as the report shows it.
	Target string
	// Schedule is the schedule in force: the plan's segments, edited by
	// live changes, each numbered by the step (report row) it belongs to.
	Schedule []proto.Segment
	// Pipeline is the requests in flight per connection.
	Pipeline int
	// Open selects the open model (a paced rate).
	Open bool
	// ExpectStatus is the plan's success set (proto.Plan.ExpectStatus);
	// empty means every code below 400.
	ExpectStatus []int
	// Requests describes a named mix's requests (RequestInfos), in the
	// plan's order: the report gets a row per request.
	Requests []RequestInfo
	// Seed is the plan's seed, shown in the report.
	Seed uint64
}

// Aggregator accumulates intervals into totals, steps and a timeline. It
// keeps the merged histograms of the whole run and of each step, and only a
// summary of each interval, so its memory does not grow with the histograms
// of a long run. It is not safe for concurrent use.
type Aggregator struct {
	Target       string
	Schedule     []proto.Segment
	Pipeline     int
	open         bool
	expect       Expect
	total        *proto.Stats
	lostInFlight uint64
	steps        map[int]*stepAcc
	notes        map[int]string
	timeline     []Point
	dropped      int64
	// The connections-held check: held/wanted sums over the intervals
	// that are not a step's first, and the part of the shortfall that
	// connections the server closed (and barrage was reopening) explain.
	connsHeld, connsWanted, connsExcused int64
	// degraded says why the load could fall short of the plan through no
	// fault of the generator's (an agent was lost).
	degraded string
	requests []RequestInfo
	seed     uint64
}

// stepAcc is one step's merged statistics.
type stepAcc struct {
	st    *proto.Stats
	first time.Duration // start of its first interval
}

// New prepares an aggregator.
func New(o Options) *Aggregator {
	return &Aggregator{
		Target: o.Target, Schedule: o.Schedule, Pipeline: o.Pipeline, open: o.Open,
		expect: NewExpect(o.ExpectStatus),
		total:  proto.NewStats(o.Open), steps: map[int]*stepAcc{}, notes: map[int]string{},
		requests: o.Requests, seed: o.Seed,
	}
}

// NewAggregator is New with the default success set (every code below
// 400); SetExpectStatus changes it.
func NewAggregator(target string, schedule []proto.Segment, pipeline int, open bool) *Aggregator {
	return New(Options{Target: target, Schedule: schedule, Pipeline: pipeline, Open: open})
}

// SetExpectStatus sets the success set from a plan's ExpectStatus (empty:
// every code below 400). Call it before the first Add: the timeline's
// error counts are taken as intervals arrive.
func (a *Aggregator) SetExpectStatus(codes []int) { a.expect = NewExpect(codes) }

// Expect is the success set in use.
func (a *Aggregator) Expect() Expect { return a.expect }

// StepNote attaches a note to a step's row, e.g. "set at 4.0s" for a
// step a live change started (step is the segments' Step, from 0).
func (a *Aggregator) StepNote(step int, note string) { a.notes[step] = note }

// Degraded records that part of the load was lost with an agent: a rate
// shortfall is then reported as a note, not as the generator's failure.
func (a *Aggregator) Degraded(why string) { a.degraded = why }

// AddLostInFlight counts requests an agent sent but never accounted for
// because it was lost: they join the unfinished ones, so sent = responses
// + failed + unfinished still holds.
func (a *Aggregator) AddLostInFlight(n uint64) { a.total.Unfinished += n; a.lostInFlight += n }

// Total is the merged statistics so far (owned by the aggregator).
func (a *Aggregator) Total() *proto.Stats { return a.total }

// Add merges one interval (already merged over loops or agents). It does
// not keep s.
func (a *Aggregator) Add(s *proto.Stats) {
	a.dropped += a.total.Merge(s)
	acc := a.steps[s.Step]
	first := acc == nil
	if first {
		acc = &stepAcc{st: proto.NewStats(a.open), first: s.Start}
		a.steps[s.Step] = acc
	}
	acc.first = min(acc.first, s.Start)
	a.dropped += acc.st.Merge(s)
	p := Point{
		Seq: s.Seq, Step: s.Step, Start: s.Start.Seconds(), End: s.End.Seconds(),
		Requests: s.Responses, Errors: CountErrors(s, a.expect).Total(),
		ConnsOpen: s.ConnsOpen, ConnsWant: s.ConnsWanted, Breaker: BreakerEvents(s),
	}
	if d := (s.End - s.Start).Seconds(); d > 0 {
		p.RPS = float64(s.Responses) / d
	}
	if s.Latency != nil && s.Latency.TotalCount() > 0 {
		p.P50 = s.Latency.ValueAtQuantile(50)
		p.P99 = s.Latency.ValueAtQuantile(99)
	}
	a.timeline = append(a.timeline, p)
	// A step's first interval opens its connections: not judged.
	if !first {
		a.connsHeld += int64(s.ConnsOpen)
		a.connsWanted += int64(s.ConnsWanted)
		// A connection the server closed after a complete response is
		// reopened at once; one sampled while it reconnects is missing by
		// the server's policy. At most one per close is excused.
		// So is one the generator closed after its one request
		// (--no-keepalive).
		if short := int64(s.ConnsWanted) - int64(s.ConnsOpen); short > 0 {
			a.connsExcused += min(short, int64(min(s.ServerCloses, 1<<61)+min(s.ClientCloses, 1<<61)))
		}
	}
}

// AddDropped counts histogram values lost in a merge done elsewhere.
func (a *Aggregator) AddDropped(n int64) { a.dropped += n }

// FillAgent fills an agent row's figures from the agent's merged
// statistics: responses, req/s over its last interval's end, p99, errors
// as users count them (error statuses included), censored latencies and
// how busy its loops were. Coverage and status are the caller's.
func (a *Aggregator) FillAgent(row *Agent, s *proto.Stats) {
	row.Requests, row.LoopBusy, row.Censored = s.Responses, s.LoopBusy(), s.Censored
	row.Errors = CountErrors(s, a.expect).Total()
	if s.End > 0 {
		row.RPS = float64(s.Responses) / s.End.Seconds()
	}
	if s.Latency != nil && s.Latency.TotalCount() > 0 {
		row.P99 = s.Latency.ValueAtQuantile(99)
	}
}

func statusMap(s *proto.Stats) map[string]uint64 {
	m := map[string]uint64{}
	for code, n := range s.Status {
		if n == 0 {
			continue
		}
		k := strconv.Itoa(code)
		if code == 0 {
			k = "other"
		}
		m[k] = n
	}
	return m
}

// tlsMap is the TLS failures by reason, nil when there are none.
func tlsMap(s *proto.Stats) map[string]uint64 {
	var m map[string]uint64
	for r := proto.TLSReason(0); r < proto.NumTLSReasons; r++ {
		if s.TLS[r] > 0 {
			if m == nil {
				m = map[string]uint64{}
			}
			m[r.String()] = s.TLS[r]
		}
	}
	return m
}

func shedMap(s *proto.Stats) map[string]uint64 {
	m := make(map[string]uint64, proto.NumShedKinds)
	for k := proto.ShedKind(0); k < proto.NumShedKinds; k++ {
		m[k.String()] = s.Shed[k]
	}
	return m
}

// rateAt is segment g's rate at t (within it).
func rateAt(g proto.Segment, t time.Duration) float64 {
	if g.Duration <= 0 {
		return g.From
	}
	return g.From + (g.To-g.From)*float64(t-g.Start)/float64(g.Duration)
}

// asked is what segs plan between from and to: the requests due and the
// time covered.
func asked(segs []proto.Segment, from, to time.Duration) (hits float64, covered time.Duration) {
	for _, g := range segs {
		lo, hi := max(g.Start, from), min(g.End(), to)
		if hi <= lo {
			continue
		}
		hits += (rateAt(g, lo) + rateAt(g, hi)) / 2 * (hi - lo).Seconds()
		covered += hi - lo
	}
	return hits, covered
}

// PlannedRate is the rate a schedule asks for on average between from and
// to (0 where it asks for nothing): the target rate a progress line shows
// for an interval.
func PlannedRate(schedule []proto.Segment, from, to time.Duration) float64 {
	hits, covered := asked(schedule, from, to)
	if covered <= 0 {
		return 0
	}
	return hits / covered.Seconds()
}

// Report builds the report; elapsed is the run's actual length (shorter
// than planned when it was interrupted).
func (a *Aggregator) Report(elapsed time.Duration) *Report {
	t := a.total
	errs := CountErrors(t, a.expect)
	r := &Report{
		Target: a.Target, Model: "closed", Pipeline: a.Pipeline,
		Requests: t.Responses, Sent: t.Sent, Failed: t.Failed(), Unfinished: t.Unfinished,
		Errors: errs.Total(), HTTPErrors: errs.HTTP(),
		DurationSeconds: elapsed.Seconds(),
		Latency:         Summarize(t.Latency), Service: Summarize(t.Service),
		Corrected: Summarize(t.Corrected), Lateness: Summarize(t.Lateness),
		Connect: Summarize(t.Connect), Handshake: Summarize(t.Handshake),
		TLSErrors: tlsMap(t), ClientCloses: t.ClientCloses,
		Status: statusMap(t), ErrorKinds: errs.Kinds(),
		BytesIn: t.BytesIn, BytesOut: t.BytesOut,
		Scheduled: t.Scheduled, Backlogged: t.Backlogged, Shed: shedMap(t),
		NeverSent: subSat(t.Scheduled, t.Logical()+t.TotalShed()),
		Retries:   retriesOf(t),
		Censored:  t.Censored, ServerCloses: t.ServerCloses, LoopBusy: t.LoopBusy(),
		Timeline: a.timeline, HistogramDropped: a.dropped, Valid: true,
		InvalidReasons: []string{}, Notes: []string{}, Steps: []Step{},
	}
	if r.Timeline == nil {
		r.Timeline = []Point{}
	}
	if a.open {
		r.Model = "open"
	}
	if elapsed > 0 {
		r.RPS = float64(t.Responses) / elapsed.Seconds()
	}
	hits, covered := asked(a.Schedule, 0, elapsed)
	if a.open && covered > 0 {
		r.TargetRate = hits / covered.Seconds()
	}
	a.describeSchedule(r)
	r.Steps = a.stepRows(elapsed)
	r.Seed = a.seed
	r.ByRequest = a.requestRows(t, elapsed.Seconds())
	a.judge(r, hits)
	return r
}

// stepOrder lists the step ids in the order their rows appear: the
// schedule's order (a step's first segment), then steps seen only in
// intervals, by their first interval's start.
func (a *Aggregator) stepOrder() []int {
	var order []int
	listed := map[int]bool{}
	for _, g := range a.Schedule {
		if !listed[g.Step] {
			listed[g.Step] = true
			order = append(order, g.Step)
		}
	}
	var extra []int
	for id := range a.steps {
		if !listed[id] {
			extra = append(extra, id)
		}
	}
	sort.Slice(extra, func(i, j int) bool {
		x, y := a.steps[extra[i]], a.steps[extra[j]]
		if x.first != y.first {
			return x.first < y.first
		}
		return extra[i] < extra[j]
	})
	return append(order, extra...)
}

// segmentsOf returns the segments of step id, in schedule order.
func (a *Aggregator) segmentsOf(id int) []proto.Segment {
	var out []proto.Segment
	for _, g := range a.Schedule {
		if g.Step == id {
			out = append(out, g)
		}
	}
	return out
}

// stepRows builds one row per step that has intervals, keyed by step id:
// each row carries only its own intervals' counts.
func (a *Aggregator) stepRows(elapsed time.Duration) []Step {
	rows := []Step{}
	for _, id := range a.stepOrder() {
		acc := a.steps[id]
		if acc == nil {
			continue
		}
		st, segs := acc.st, a.segmentsOf(id)
		errs := CountErrors(st, a.expect)
		row := Step{
			Step: id + 1, Label: stepLabel(segs, id), Note: a.notes[id],
			StartSeconds: st.Start.Seconds(),
			Sent:         st.Sent, Requests: st.Responses, Failed: st.Failed(),
			Errors: errs.Total(), ErrorKinds: errs.Kinds(), Shed: st.TotalShed(), Censored: st.Censored,
			Latency: Summarize(st.Latency), Status: statusMap(st),
		}
		if len(segs) > 0 {
			row.StartSeconds = segs[0].Start.Seconds()
			for _, g := range segs {
				row.DurationSeconds += g.Duration.Seconds()
			}
		}
		if d := (st.End - st.Start).Seconds(); d > 0 {
			row.DurationSeconds = d
			row.RPS = float64(st.Responses) / d
		}
		if a.open {
			row.TargetRateMin, row.TargetRateMax = rateRange(segs)
			if hits, covered := asked(segs, 0, elapsed); covered > 0 {
				row.TargetRate = hits / covered.Seconds()
			}
		}
		rows = append(rows, row)
	}
	return rows
}

// rateRange bounds the rates of segs.
func rateRange(segs []proto.Segment) (lo, hi float64) {
	for i, g := range segs {
		a, b := min(g.From, g.To), max(g.From, g.To)
		if i == 0 || a < lo {
			lo = a
		}
		if i == 0 || b > hi {
			hi = b
		}
	}
	return lo, hi
}

// connRange bounds the connection counts of segs.
func connRange(segs []proto.Segment) (lo, hi int) {
	for i, g := range segs {
		if i == 0 || g.Connections < lo {
			lo = g.Connections
		}
		if i == 0 || g.Connections > hi {
			hi = g.Connections
		}
	}
	return lo, hi
}

// stepLabel names a step from its own segments: its planned length, its
// rate (one, a ramp's ends, or the range over several segments) and its
// connections.
func stepLabel(segs []proto.Segment, id int) string {
	if len(segs) == 0 {
		return "step " + strconv.Itoa(id+1) + " (not in the schedule)"
	}
	var d time.Duration
	for _, g := range segs {
		d += g.Duration
	}
	lo, hi := rateRange(segs)
	clo, chi := connRange(segs)
	conns := "c=" + span(float64(clo), float64(chi), fmtInt)
	switch {
	case hi == 0:
		return d.String() + " closed " + conns
	case len(segs) == 1 && segs[0].From != segs[0].To:
		return d.String() + " " + fmtRate(segs[0].From) + "→" + fmtRate(segs[0].To) + "/s " + conns
	}
	return d.String() + " @" + span(lo, hi, fmtRate) + "/s " + conns
}

// describeSchedule fills the report's header figures from the schedule:
// the rate range, the connections range and, step by step, what was
// asked (an average alone hides a stepped plan).
func (a *Aggregator) describeSchedule(r *Report) {
	if len(a.Schedule) == 0 {
		return
	}
	for _, g := range a.Schedule {
		r.PlannedSeconds = max(r.PlannedSeconds, g.End().Seconds())
	}
	r.TargetRateMin, r.TargetRateMax = rateRange(a.Schedule)
	r.ConnectionsMin, r.Connections = connRange(a.Schedule)
	if !a.open {
		r.TargetRateMin, r.TargetRateMax = 0, 0
	}
	var rates, conns []string
	ids := a.stepOrder()
	for _, id := range ids {
		segs := a.segmentsOf(id)
		if len(segs) == 0 {
			continue
		}
		lo, hi := rateRange(segs)
		if len(segs) == 1 && segs[0].From != segs[0].To {
			rates = append(rates, fmtRate(segs[0].From)+"→"+fmtRate(segs[0].To))
		} else {
			rates = append(rates, span(lo, hi, fmtRate))
		}
		clo, chi := connRange(segs)
		conns = append(conns, span(float64(clo), float64(chi), fmtInt))
	}
	const maxListed = 8
	n := len(rates)
	list := func(xs []string, lo, hi float64, f func(float64) string) string {
		if n > maxListed {
			return span(lo, hi, f)
		}
		return joinList(xs)
	}
	connText := list(conns, float64(r.ConnectionsMin), float64(r.Connections), fmtInt)
	connWord := " connections"
	if r.Connections == 1 {
		connWord = " connection"
	}
	if !a.open {
		if n <= 1 {
			r.Schedule = connText + connWord
			return
		}
		r.Schedule = strconv.Itoa(n) + " steps of " + connText + connWord
		return
	}
	rateText := list(rates, r.TargetRateMin, r.TargetRateMax, fmtRate)
	if n <= 1 {
		r.Schedule = rateText + " req/s, " + connText + connWord
		return
	}
	r.Schedule = strconv.Itoa(n) + " steps of " + rateText + " req/s, " + connText + connWord
}

// joinList joins "a / b / c".
func joinList(xs []string) string {
	out := ""
	for i, x := range xs {
		if i > 0 {
			out += " / "
		}
		out += x
	}
	return out
}

// SortedStatus lists status codes in order.
func SortedStatus(m map[string]uint64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
