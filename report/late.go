package report

import "github.com/barrage-load/barrage/proto"

// AddLate folds an interval's statistics that arrived after its timeline
// point was made (an agent's late snapshot): its counts and histograms
// join the totals and its step, not the timeline. It does not keep s.
func (a *Aggregator) AddLate(s *proto.Stats) {
	a.dropped += a.total.Merge(s)
	st := a.steps[s.Step]
	if st == nil {
		st = proto.NewStats(a.open)
		a.steps[s.Step] = st
	}
	a.dropped += st.Merge(s)
}
