package report

import "github.com/barrage-load/barrage/proto"

// AddLate folds an interval's statistics that arrived after its timeline
// point was made (an agent's late snapshot): its counts and histograms
// join the totals and its step, not the timeline. It does not keep s.
func (a *Aggregator) AddLate(s *proto.Stats) {
	a.dropped += a.total.Merge(s)
	acc := a.steps[s.Step]
	if acc == nil {
		acc = &stepAcc{st: proto.NewStats(a.open), first: s.Start}
		a.steps[s.Step] = acc
	}
	acc.first = min(acc.first, s.Start)
	a.dropped += acc.st.Merge(s)
}
