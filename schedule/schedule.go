// Package schedule maps time since a test's start to the requests due in
// the open model, and back; it also lists the interval boundaries at which
// statistics are handed over. Its values are pure: every event loop holds
// its own copy, and the coordinator computes the same boundaries as the
// agents from the same segments.
package schedule

import (
	"math"
	"sort"
	"time"

	"github.com/barrage-load/barrage/proto"
)

// seg is one segment of a schedule in the units the hot path wants:
// nanoseconds and hits per nanosecond.
type seg struct {
	start, end int64   // ns from the test's start
	from, to   float64 // rate in hits per ns at start and end
	cum        float64 // hits due before start
	tot        float64 // hits due within the segment
	a          float64 // hits(t) = a t² + from t within the segment
	ramp       bool    // a is not 0
	conns      int
	step       int
}

// prep computes what the segment's bounds leave to compute: its hits and
// its curve's coefficient, once rather than per hit.
func (x *seg) prep() {
	x.tot = x.hitsWithin(x.end - x.start)
	if d := float64(x.end - x.start); d > 0 {
		x.a = (x.to - x.from) / (2 * d)
	}
	x.ramp = math.Abs(x.a) >= 1e-30
}

// Schedule maps time since the test's start to the number of requests due
// (open model) and back. Hit k (from 0) is due at the instant the
// cumulative rate integral reaches k, so the first hit goes at once.
// It is a pure value: loops each hold their own copy.
type Schedule struct {
	segs []seg
}

// New builds a schedule from a plan's segments (rates in requests per
// second over the whole test).
func New(segments []proto.Segment) Schedule {
	var s Schedule
	var cum float64
	for _, g := range segments {
		x := seg{
			start: int64(g.Start), end: int64(g.End()),
			from: g.From / 1e9, to: g.To / 1e9,
			cum: cum, conns: g.Connections, step: g.Step,
		}
		x.prep()
		cum += x.tot
		s.segs = append(s.segs, x)
	}
	return s
}

// hitsWithin is the rate integral over the first dt ns of the segment.
func (x *seg) hitsWithin(dt int64) float64 {
	d := float64(x.end - x.start)
	t := float64(dt)
	if d <= 0 {
		return 0
	}
	return x.from*t + (x.to-x.from)*t*t/(2*d)
}

// timeFor is the inverse of hitsWithin: the offset into the segment at which
// h hits have come due. h must not exceed the segment's total.
func (x *seg) timeFor(h float64) int64 {
	if !x.ramp {
		if x.from <= 0 {
			return x.end - x.start
		}
		return int64(math.Ceil(h / x.from))
	}
	if h <= 0 {
		// Hazard: a ramp from 0 would divide 0 by 0 below.
		return 0
	}
	// h = a t² + from t, so t = (-from + sqrt(from² + 4ah)) / 2a; the
	// numerically stable form.
	disc := x.from*x.from + 4*x.a*h
	if disc < 0 {
		disc = 0
	}
	t := 2 * h / (x.from + math.Sqrt(disc))
	return int64(math.Ceil(t))
}

// Duration is the schedule's total length.
func (s *Schedule) Duration() time.Duration {
	if len(s.segs) == 0 {
		return 0
	}
	return time.Duration(s.segs[len(s.segs)-1].end)
}

// Total is the number of hits the whole schedule asks for.
func (s *Schedule) Total() float64 {
	if len(s.segs) == 0 {
		return 0
	}
	l := &s.segs[len(s.segs)-1]
	return l.cum + l.tot
}

// find returns the index of the segment holding t (the last one past the
// end), by binary search: a plan of many steps costs a few comparisons.
func (s *Schedule) find(t int64) int {
	i := sort.Search(len(s.segs), func(i int) bool { return t < s.segs[i].end })
	if i == len(s.segs) {
		i--
	}
	return i
}

// Hits is the number of hits due by elapsed (the rate's integral).
func (s *Schedule) Hits(elapsed time.Duration) float64 {
	if len(s.segs) == 0 || elapsed <= 0 {
		return 0
	}
	t := int64(elapsed)
	x := &s.segs[s.find(t)]
	if t > x.end {
		t = x.end
	}
	if t < x.start {
		return x.cum
	}
	return x.cum + x.hitsWithin(t-x.start)
}

// holds reports whether segment i times hit position h.
func (s *Schedule) holds(i int, h float64) bool {
	x := &s.segs[i]
	// The tolerance matches the upper bound's, so rounding in cum never
	// leaves a gap between two segments.
	return x.tot > 0 && h >= x.cum-1e-6 && h < x.cum+x.tot-1e-6
}

// At returns when the rate integral reaches h (hit k of a schedule is due
// at At(k); a phase p shifts it to At(k+p)), and false when the schedule
// ends first. hint is a segment to try first (the caller's cursor): a
// caller walking h upward finds its segment at once; any other hint costs
// a binary search, never a wrong answer.
func (s *Schedule) At(h float64, hint int) (at int64, seg int, ok bool) {
	// Fast path, the per-request one: the hint holds h.
	if uint(hint) < uint(len(s.segs)) {
		x := &s.segs[hint]
		if x.tot > 0 && h >= x.cum-1e-6 && h < x.cum+x.tot-1e-6 {
			return x.start + x.timeFor(max(h-x.cum, 0)), hint, true
		}
	}
	return s.atSlow(h, hint)
}

// atSlow is At when the hint's segment does not hold h.
func (s *Schedule) atSlow(h float64, hint int) (at int64, seg int, ok bool) {
	n := len(s.segs)
	if h < 0 || n == 0 {
		return 0, n, false
	}
	i := -1
	switch {
	case hint >= 0 && hint+1 < n && s.holds(hint+1, h):
		i = hint + 1
	default:
		// The first segment whose hits end after h; segments without a
		// rate end where they start and are never it.
		j := sort.Search(n, func(j int) bool { return h < s.segs[j].cum+s.segs[j].tot-1e-6 })
		if j < n && s.holds(j, h) {
			i = j
		}
	}
	if i < 0 {
		return 0, n, false
	}
	x := &s.segs[i]
	return x.start + x.timeFor(max(h-x.cum, 0)), i, true
}

// Segment returns the connections and step in force at elapsed.
func (s *Schedule) Segment(elapsed time.Duration) (conns, step int) {
	if len(s.segs) == 0 {
		return 0, 0
	}
	x := &s.segs[s.find(int64(elapsed))]
	return x.conns, x.step
}

// Open reports whether any segment has a rate (the open model).
func (s *Schedule) Open() bool {
	for _, x := range s.segs {
		if x.from > 0 || x.to > 0 {
			return true
		}
	}
	return false
}

// WithRate returns a copy of s in which, from `at` on, the rate is the
// constant r requests per second (the step boundaries and connection counts
// are kept). Hits due before `at` are unchanged, so a live change never
// re-sends or skips a request.
func (s *Schedule) WithRate(at time.Duration, r float64) Schedule {
	segs := s.Segments()
	for i := range segs {
		segs[i].From, segs[i].To = r, r
	}
	return s.Splice(at, segs)
}

// Segments returns the schedule as plan segments (rates per second).
func (s *Schedule) Segments() []proto.Segment {
	out := make([]proto.Segment, len(s.segs))
	for i, x := range s.segs {
		out[i] = proto.Segment{
			Start: time.Duration(x.start), Duration: time.Duration(x.end - x.start),
			From: x.from * 1e9, To: x.to * 1e9, Connections: x.conns, Step: x.step,
		}
	}
	return out
}

// Splice returns a schedule that is s before `at` and next from `at` on.
// The hits due by `at` are s's, so nothing already sent is sent again; after
// it, next's rate curve applies (a segment of next that straddles `at` is
// cut there, keeping its slope).
func (s *Schedule) Splice(at time.Duration, next []proto.Segment) Schedule {
	t := int64(at)
	var out Schedule
	for _, x := range s.segs {
		if x.start >= t {
			break
		}
		if x.end > t {
			x.to = x.from + (x.to-x.from)*float64(t-x.start)/float64(x.end-x.start)
			x.end = t
		}
		out.segs = append(out.segs, x)
	}
	cum := 0.0
	for i := range out.segs {
		x := &out.segs[i]
		x.prep()
		cum = x.cum + x.tot
	}
	for _, g := range next {
		x := seg{
			start: int64(g.Start), end: int64(g.End()),
			from: g.From / 1e9, to: g.To / 1e9, conns: g.Connections, step: g.Step,
		}
		if x.end <= t {
			continue
		}
		if x.start < t {
			x.from = x.from + (x.to-x.from)*float64(t-x.start)/float64(x.end-x.start)
			x.start = t
		}
		x.cum = cum
		x.prep()
		cum += x.tot
		out.segs = append(out.segs, x)
	}
	return out
}

// WithConnections returns a copy of s in which, from `at` on, c
// connections are used; a segment that straddles `at` is cut there, so
// the connections before `at` stay as they were.
func (s *Schedule) WithConnections(at time.Duration, c int) Schedule {
	segs := s.Segments()
	for i := range segs {
		segs[i].Connections = c
	}
	return s.Splice(at, segs)
}

// NextConnChange returns the first instant after `after` at which the
// connections asked for change (a segment starts with another count than
// the one before it), and false if none does.
func (s *Schedule) NextConnChange(after time.Duration) (time.Duration, bool) {
	for i := 1; i < len(s.segs); i++ {
		if x := &s.segs[i]; x.start > int64(after) && x.conns != s.segs[i-1].conns {
			return time.Duration(x.start), true
		}
	}
	return 0, false
}

// Boundaries lists the instants at which a step begins, after 0.
func (s *Schedule) Boundaries() []time.Duration {
	var out []time.Duration
	for i := 1; i < len(s.segs); i++ {
		if s.segs[i].step != s.segs[i-1].step {
			out = append(out, time.Duration(s.segs[i].start))
		}
	}
	return out
}

// Boundary is one instant at which the engine's loops hand their
// statistics over.
type Boundary struct {
	At        time.Duration
	StepStart bool // a new step begins here
}

// Bounds lists the hand-off instants of schedule s: every interval and
// every step start, up to the schedule's end (which is the last).
func Bounds(s *Schedule, interval time.Duration) []Boundary {
	d := s.Duration()
	set := map[time.Duration]bool{}
	for t := interval; t < d; t += interval {
		set[t] = false
	}
	for _, b := range s.Boundaries() {
		set[b] = true
	}
	set[d] = false
	out := make([]Boundary, 0, len(set))
	for t, st := range set {
		out = append(out, Boundary{t, st})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].At < out[j].At })
	return out
}

// IntervalEnds lists the instants, from the start, at which an engine
// hands an interval over for schedule s: every interval and every step
// start, up to the schedule's end. Snapshot i covers up to element i.
func IntervalEnds(s *Schedule, interval time.Duration) []time.Duration {
	bs := Bounds(s, interval)
	out := make([]time.Duration, len(bs))
	for i, b := range bs {
		out[i] = b.At
	}
	return out
}
