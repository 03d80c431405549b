package schedule

import (
	"time"

	"github.com/barrage-load/barrage/proto"
)

// Edit returns segs with, from at on, the constant rate r (when setRate)
// and c connections (when c > 0). What was due before at is unchanged
// (Splice), and the segments from at on get new step numbers, so a live
// change is its own step row in the report: the next numbers after the
// highest step before at, one per step of the old schedule.
func Edit(segs []proto.Segment, at time.Duration, setRate bool, r float64, c int) []proto.Segment {
	next := make([]proto.Segment, len(segs))
	copy(next, segs)
	for i := range next {
		if setRate {
			next[i].From, next[i].To = r, r
		}
		if c > 0 {
			next[i].Connections = c
		}
	}
	s := New(segs)
	sp := s.Splice(at, next)
	out := sp.Segments()
	top := -1
	for _, g := range out {
		if g.Start < at {
			top = max(top, g.Step)
		}
	}
	renum := map[int]int{}
	for i := range out {
		if out[i].Start < at {
			continue
		}
		n, ok := renum[out[i].Step]
		if !ok {
			top++
			n = top
			renum[out[i].Step] = n
		}
		out[i].Step = n
	}
	return out
}

// NextBoundary is the first of ends at or after t, or the last.
func NextBoundary(ends []time.Duration, t time.Duration) time.Duration {
	for _, e := range ends {
		if e >= t {
			return e
		}
	}
	if len(ends) == 0 {
		return 0
	}
	return ends[len(ends)-1]
}
