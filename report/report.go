// Package report turns the statistics of a run (intervals from one engine,
// or from many agents merged) into the report users read: totals, latency
// percentiles, status codes, errors, steps, a timeline, and a verdict on
// whether the generator itself kept up. Histograms are merged, never
// percentiles averaged.
package report

import (
	"fmt"
	"sort"
	"strconv"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/barrage-load/barrage/proto"
)

// Limits behind the validity verdict.
const (
	// MaxLatenessP99 is the send lateness (actual minus intended send time
	// of requests that had a free connection) above which the generator is
	// said to have fallen behind its schedule.
	MaxLatenessP99 = time.Millisecond
	// MaxRateShortfall is the fraction of the asked rate the generator may
	// miss while the target kept up.
	MaxRateShortfall = 0.01
	// MinConnsHeld is the fraction of the asked connections that must be
	// open on average once a step is under way.
	MinConnsHeld = 0.99
	// MaxLoopBusy is how busy the generator's event loops may be while
	// requests wait for a free connection before the wait is laid at the
	// generator's door rather than the target's: a loop that is never idle
	// reads responses late, so its connections look busy for longer.
	MaxLoopBusy = 0.95
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

// Step is one step's row.
type Step struct {
	Step            int               `json:"step"`
	Label           string            `json:"label"`
	DurationSeconds float64           `json:"duration_seconds"`
	Requests        uint64            `json:"requests"`
	RPS             float64           `json:"rps"`
	TargetRate      float64           `json:"target_rate"`
	Errors          uint64            `json:"errors"`
	Latency         *Latency          `json:"latency_us"`
	Status          map[string]uint64 `json:"status,omitempty"`
}

// Point is one interval of the timeline.
type Point struct {
	Seq       int     `json:"seq"`
	Start     float64 `json:"start_seconds"`
	End       float64 `json:"end_seconds"`
	Requests  uint64  `json:"requests"`
	RPS       float64 `json:"rps"`
	P50       int64   `json:"p50_us"`
	P99       int64   `json:"p99_us"`
	Errors    uint64  `json:"errors"`
	ConnsOpen int     `json:"conns_open"`
	ConnsWant int     `json:"conns_wanted"`
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
	Lost     bool     `json:"lost"`
	LostAt   float64  `json:"lost_at_seconds,omitempty"`
	Status   string   `json:"status"`
	Expected int      `json:"intervals_expected"`
	Received int      `json:"intervals_received"`
	LoopBusy float64  `json:"loop_busy,omitempty"`
	Missing  []int    `json:"intervals_missing,omitempty"`
	Notes    []string `json:"notes,omitempty"`
}

// Report is the whole result of a run, as printed and as written to JSON.
type Report struct {
	Target          string  `json:"target"`
	Model           string  `json:"model"` // "open" or "closed"
	Requests        uint64  `json:"requests"`
	Sent            uint64  `json:"sent"`
	Errors          uint64  `json:"errors"`
	Unfinished      uint64  `json:"unfinished"`
	DurationSeconds float64 `json:"duration_seconds"`
	RPS             float64 `json:"rps"`
	TargetRate      float64 `json:"target_rate"`
	Connections     int     `json:"connections"`
	Pipeline        int     `json:"pipeline"`

	Latency   *Latency `json:"latency_us"`
	Service   *Latency `json:"service_time_us,omitempty"`
	Corrected *Latency `json:"corrected_latency_us,omitempty"`
	Lateness  *Latency `json:"send_lateness_us,omitempty"`

	Status     map[string]uint64 `json:"status"`
	ErrorKinds map[string]uint64 `json:"error_kinds"`
	BytesIn    uint64            `json:"bytes_in"`
	BytesOut   uint64            `json:"bytes_out"`
	Scheduled  uint64            `json:"scheduled,omitempty"`
	Backlogged uint64            `json:"backlogged,omitempty"`
	// LoopBusy is the fraction of their cores the generator's event loops
	// used (CPU time from the OS over one core per loop; absent when the
	// OS does not say).
	LoopBusy float64 `json:"generator_loop_busy,omitempty"`

	Steps    []Step  `json:"steps"`
	Timeline []Point `json:"timeline"`
	Agents   []Agent `json:"agents,omitempty"`

	// Outcome says how the test ended: "completed", or why not (stopped
	// by a signal or the stop node, superseded by another coordinator,
	// ZooKeeper lost, ...). Only a completed test exits 0.
	Outcome string `json:"outcome"`
	// TakenOverFrom names the coordinator this report's coordinator took
	// the test over from (empty when it ran the test from its start).
	TakenOverFrom string `json:"taken_over_from,omitempty"`

	Valid          bool     `json:"valid"`
	InvalidReasons []string `json:"invalid_reasons,omitempty"`
	Notes          []string `json:"notes,omitempty"`
	// HistogramDropped counts values lost while merging histograms; it is
	// shown, never hidden.
	HistogramDropped int64 `json:"histogram_dropped"`
	// StartSkewMS is the spread of the agents' first send times.
	StartSkewMS float64 `json:"start_skew_ms,omitempty"`
}

// Aggregator accumulates intervals into totals, steps and a timeline. It
// keeps the merged histograms of the whole run and of each step, and only a
// summary of each interval, so its memory does not grow with the histograms
// of a long run.
type Aggregator struct {
	Target       string
	Schedule     []proto.Segment
	Pipeline     int
	open         bool
	total        *proto.Stats
	lostInFlight uint64
	steps        map[int]*proto.Stats
	timeline     []Point
	dropped      int64
	// connsSamples judge whether the connections asked for were held: the
	// held/wanted sums over intervals that are not a step's first.
	connsHeld, connsWanted int64
	seenStep               map[int]bool
	// degraded says why the load could fall short of the plan through no
	// fault of the generator's (an agent was lost).
	degraded string
}

// Degraded records that part of the load was lost with an agent: a rate
// shortfall is then reported as a note, not as the generator's failure.
func (a *Aggregator) Degraded(why string) { a.degraded = why }

// AddLostInFlight counts requests an agent sent but never accounted for
// because it was lost: they join the unfinished ones, so sent = responses
// + failed + unfinished still holds.
func (a *Aggregator) AddLostInFlight(n uint64) { a.total.Unfinished += n; a.lostInFlight += n }

// NewAggregator prepares an aggregator for a plan's schedule.
func NewAggregator(target string, schedule []proto.Segment, pipeline int, open bool) *Aggregator {
	return &Aggregator{
		Target: target, Schedule: schedule, Pipeline: pipeline, open: open,
		total: proto.NewStats(open), steps: map[int]*proto.Stats{}, seenStep: map[int]bool{},
	}
}

// Total is the merged statistics so far (owned by the aggregator).
func (a *Aggregator) Total() *proto.Stats { return a.total }

// Add merges one interval (already merged over loops or agents). It does
// not keep s.
func (a *Aggregator) Add(s *proto.Stats) {
	a.dropped += a.total.Merge(s)
	st := a.steps[s.Step]
	if st == nil {
		st = proto.NewStats(a.open)
		a.steps[s.Step] = st
	}
	a.dropped += st.Merge(s)
	p := Point{
		Seq: s.Seq, Start: s.Start.Seconds(), End: s.End.Seconds(),
		Requests: s.Responses, Errors: s.TotalErrors(),
		ConnsOpen: s.ConnsOpen, ConnsWant: s.ConnsWanted,
	}
	if d := (s.End - s.Start).Seconds(); d > 0 {
		p.RPS = float64(s.Responses) / d
	}
	if s.Latency != nil && s.Latency.TotalCount() > 0 {
		p.P50 = s.Latency.ValueAtQuantile(50)
		p.P99 = s.Latency.ValueAtQuantile(99)
	}
	a.timeline = append(a.timeline, p)
	if a.seenStep[s.Step] {
		a.connsHeld += int64(s.ConnsOpen)
		a.connsWanted += int64(s.ConnsWanted)
	}
	a.seenStep[s.Step] = true
}

// AddDropped counts histogram values lost in a merge done elsewhere.
func (a *Aggregator) AddDropped(n int64) { a.dropped += n }

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

func segHits(g proto.Segment) float64 {
	return (g.From + g.To) / 2 * g.Duration.Seconds()
}

// Report builds the report; elapsed is the run's actual length (shorter
// than planned when it was interrupted).
func (a *Aggregator) Report(elapsed time.Duration) *Report {
	t := a.total
	r := &Report{
		Target: a.Target, Model: "closed", Pipeline: a.Pipeline,
		Requests: t.Responses, Sent: t.Sent, Errors: t.TotalErrors(), Unfinished: t.Unfinished,
		DurationSeconds: elapsed.Seconds(),
		Latency:         Summarize(t.Latency), Service: Summarize(t.Service),
		Corrected: Summarize(t.Corrected), Lateness: Summarize(t.Lateness),
		Status: statusMap(t), ErrorKinds: map[string]uint64{},
		BytesIn: t.BytesIn, BytesOut: t.BytesOut,
		Scheduled: t.Scheduled, Backlogged: t.Backlogged, LoopBusy: t.LoopBusy(),
		Timeline: a.timeline, HistogramDropped: a.dropped, Valid: true,
	}
	if a.open {
		r.Model = "open"
	}
	for k := proto.ErrKind(0); k < proto.NumErrKinds; k++ {
		r.ErrorKinds[k.String()] = t.Errors[k]
	}
	if elapsed > 0 {
		r.RPS = float64(t.Responses) / elapsed.Seconds()
	}
	var planned time.Duration
	var hits float64
	for _, g := range a.Schedule {
		if g.Start >= elapsed {
			continue
		}
		cut := g
		if g.End() > elapsed {
			cut.Duration = elapsed - g.Start
			cut.To = g.From + (g.To-g.From)*cut.Duration.Seconds()/g.Duration.Seconds()
		}
		hits += segHits(cut)
		planned += cut.Duration
		r.Connections = max(r.Connections, g.Connections)
	}
	if a.open && planned > 0 {
		r.TargetRate = hits / planned.Seconds()
	}
	// Steps, in schedule order.
	for _, g := range a.Schedule {
		st := a.steps[g.Step]
		if st == nil {
			continue
		}
		row := Step{
			Step: g.Step + 1, Label: proto.StepLabel(g), DurationSeconds: g.Duration.Seconds(),
			Requests: st.Responses, Errors: st.TotalErrors(), Latency: Summarize(st.Latency), Status: statusMap(st),
		}
		if d := (st.End - st.Start).Seconds(); d > 0 {
			row.DurationSeconds = d
			row.RPS = float64(st.Responses) / d
		}
		if a.open {
			row.TargetRate = (g.From + g.To) / 2
		}
		r.Steps = append(r.Steps, row)
	}
	a.judge(r, hits)
	return r
}

// judge decides whether the generator kept its own promises.
func (a *Aggregator) judge(r *Report, hits float64) {
	t := a.total
	invalid := func(format string, args ...any) {
		r.Valid = false
		r.InvalidReasons = append(r.InvalidReasons, fmt.Sprintf(format, args...))
	}
	if a.open {
		if l := r.Lateness; l != nil && l.Count > 0 && time.Duration(l.P99)*time.Microsecond > MaxLatenessP99 {
			invalid("generator fell behind its schedule: send lateness p99 %s (limit %s)",
				fmtUS(l.P99), MaxLatenessP99)
		}
		short := hits - float64(t.Sent)
		waited := float64(t.Scheduled) - float64(t.Sent) // due but never sent: no free connection
		if busyWhileBacklogged(t) || (t.LoopBusy() >= MaxLoopBusy && hits > 0 && short > MaxRateShortfall*hits) {
			invalid("generator saturated: its event loops were %.0f%% busy while %d requests waited for a free connection and %.0f of %.0f asked were not sent; the wait may be the generator's own (add cores or agents, or lower the rate)",
				100*r.LoopBusy, t.Backlogged, max(short, 0), hits)
		} else if hits > 0 && short > MaxRateShortfall*hits {
			if a.degraded != "" {
				r.Notes = append(r.Notes, fmt.Sprintf("%.1f%% of the requests asked were not sent: %s", 100*short/hits, a.degraded))
			} else if waited > short/2 {
				r.Notes = append(r.Notes, fmt.Sprintf(
					"target did not keep up: %d of %.0f requests due were never sent for want of a free connection; %d waited for one (their latency includes the wait)",
					uint64(max(waited, 0)), hits, t.Backlogged))
			} else {
				invalid("generator sent %.0f of %.0f requests asked (%.1f%% short) while the target kept up",
					float64(t.Sent), hits, 100*short/hits)
			}
		} else if t.Backlogged > 0 {
			r.Notes = append(r.Notes, fmt.Sprintf(
				"%d requests waited for a free connection (the target was slower than the rate at times); their latency includes the wait", t.Backlogged))
		}
	}
	if a.connsWanted > 0 && float64(a.connsHeld) < MinConnsHeld*float64(a.connsWanted) {
		invalid("held %.1f%% of the connections asked for (%d connection-intervals of %d)",
			100*float64(a.connsHeld)/float64(a.connsWanted), a.connsHeld, a.connsWanted)
	}
	if a.lostInFlight > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d requests were in flight on lost agents and are counted as unfinished", a.lostInFlight))
	}
	if a.dropped > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d latency values were dropped while merging histograms", a.dropped))
	}
	if t.Clamped > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d latencies above %s were recorded as %s", t.Clamped,
			time.Duration(proto.HistMax)*time.Microsecond, time.Duration(proto.HistMax)*time.Microsecond))
	}
	if r.Corrected != nil && r.Latency != nil && r.Latency.Count > 0 && r.Corrected.P999 > 2*r.Latency.P999 {
		r.Notes = append(r.Notes, fmt.Sprintf(
			"closed model: requests waited behind stalled ones; corrected for coordinated omission p99.9 is %s, not %s (use --rate for the open model)",
			fmtUS(r.Corrected.P999), fmtUS(r.Latency.P999)))
	}
	if t.Sent != t.Responses+t.Failed()+t.Unfinished {
		invalid("BUG: accounting does not add up: sent %d != responses %d + failed %d + unfinished %d",
			t.Sent, t.Responses, t.Failed(), t.Unfinished)
	}
}

// busyWhileBacklogged is the saturation rule both verdicts share: the
// loops were MaxLoopBusy busy or more while over MaxRateShortfall of the
// requests due waited for a free connection.
func busyWhileBacklogged(s *proto.Stats) bool {
	return s.LoopBusy() >= MaxLoopBusy && float64(s.Backlogged) > MaxRateShortfall*float64(s.Scheduled)
}

// JudgeAgent applies the generator-saturation rule to one agent's merged
// statistics: the coordinator's verdict on the whole test works on the
// merged figures, where one saturated agent among idle ones would be
// averaged away.
func (r *Report) JudgeAgent(name string, s *proto.Stats) {
	if !s.Open() || s.Scheduled == 0 {
		return
	}
	if busyWhileBacklogged(s) {
		reason := fmt.Sprintf("agent %s saturated: its event loops were %.0f%% busy while %d of its %d requests due waited for a free connection; the wait may be the agent's own",
			name, 100*s.LoopBusy(), s.Backlogged, s.Scheduled)
		for _, have := range r.InvalidReasons {
			if have == reason {
				return
			}
		}
		r.Valid = false
		r.InvalidReasons = append(r.InvalidReasons, reason)
	}
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
