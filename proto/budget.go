package proto

import (
	"fmt"
	"math"
	"time"
)

// Budget is one agent's share of a test: its own schedule (rates and
// connections are the agent's, not the test's), its weight in the split,
// and the phase that interleaves its arrivals with the other agents'.
type Budget struct {
	Schedule []Segment `json:"schedule"`
	// Weight is the agent's share of the test's load (0..1].
	Weight float64 `json:"weight"`
	// Phase offsets the agent's arrivals by this fraction of its own
	// inter-arrival gap, in [0, 1): agent i of N gets i/N, so the fleet's
	// arrivals are evenly spaced rather than N at once.
	Phase float64 `json:"phase"`
	// Data is the agent's slice of every data file not marked shared;
	// nil: every row (an agent alone, or `barrage run`).
	Data *Slice `json:"data,omitempty"`
	// Part and Parts number the agent among the test's agents (0 of 1
	// when alone): each draws its own random stream from the plan's seed,
	// and {{seq}} counts in its own residue class, so no two agents
	// render the same values.
	Part  int `json:"part,omitempty"`
	Parts int `json:"parts,omitempty"`
}

// Validate checks a budget as an agent receives it: the segments must be
// finite, ordered, within the plan's bounds and within caps (zero caps
// fields are not checked); the whole budget must fit the plan's duration.
// An agent never trusts ZooKeeper data: this is the bound check a plan
// file gets, applied to what the coordinator wrote.
func (b *Budget) Validate(p *Plan, caps Caps) error {
	if len(b.Schedule) == 0 {
		return bad("budget has no schedule")
	}
	if len(b.Schedule) > MaxSegments {
		return bad("budget has %d segments, at most %d", len(b.Schedule), MaxSegments)
	}
	if !(b.Weight > 0 && b.Weight <= 1) {
		return bad("budget weight %g is not in (0, 1]", b.Weight)
	}
	if !(b.Phase >= 0 && b.Phase < 1) {
		return bad("budget phase %g is not in [0, 1)", b.Phase)
	}
	if d := b.Data; d != nil && !(d.From >= 0 && d.From <= d.To && d.To <= 1) {
		return bad("budget data slice %g to %g is not within [0, 1]", d.From, d.To)
	}
	if b.Parts < 0 || b.Parts > 1<<20 || b.Part < 0 || (b.Parts > 0 && b.Part >= b.Parts) || (b.Parts == 0 && b.Part != 0) {
		return bad("budget part %d of %d", b.Part, b.Parts)
	}
	var at time.Duration
	for i, s := range b.Schedule {
		if s.Start != at {
			return bad("budget segment %d starts at %s, want %s (segments must follow each other)", i+1, s.Start, at)
		}
		if s.Duration <= 0 {
			return bad("budget segment %d lasts %s", i+1, s.Duration)
		}
		for _, r := range []float64{s.From, s.To} {
			if math.IsNaN(r) || math.IsInf(r, 0) || r < 0 || r > MaxRate {
				return bad("budget segment %d: rate %g is not in [0, %g]", i+1, r, MaxRate)
			}
			if caps.MaxRate > 0 && r > caps.MaxRate {
				return bad("budget segment %d: rate %g is over this agent's --max-rate %g", i+1, r, caps.MaxRate)
			}
		}
		if s.Connections < 1 || s.Connections > MaxConnections {
			return bad("budget segment %d: %d connections is not in [1, %d]", i+1, s.Connections, MaxConnections)
		}
		if caps.MaxConnections > 0 && s.Connections > caps.MaxConnections {
			return bad("budget segment %d: %d connections is over this agent's --max-connections %d", i+1, s.Connections, caps.MaxConnections)
		}
		if s.Step < 0 || s.Step > MaxSegments {
			return bad("budget segment %d: step %d", i+1, s.Step)
		}
		at += s.Duration
	}
	if p != nil && at != p.Duration.D() {
		return bad("budget lasts %s but the plan %s", at, p.Duration)
	}
	return nil
}

// Describe says what the budget asks for, for logs and reports.
func (b *Budget) Describe(open bool) string {
	lo, hi, cmin, cmax := math.Inf(1), 0.0, MaxConnections, 0
	for _, s := range b.Schedule {
		lo, hi = min(lo, s.From, s.To), max(hi, s.From, s.To)
		cmin, cmax = min(cmin, s.Connections), max(cmax, s.Connections)
	}
	conns := fmt.Sprintf("%d connections", cmax)
	if cmin != cmax {
		conns = fmt.Sprintf("%d-%d connections", cmin, cmax)
	}
	if !open || len(b.Schedule) == 0 {
		return fmt.Sprintf("closed model, %s (weight %.3f)", conns, b.Weight)
	}
	if lo == hi {
		return fmt.Sprintf("%.1f req/s, %s (weight %.3f)", hi, conns, b.Weight)
	}
	return fmt.Sprintf("%.1f-%.1f req/s, %s (weight %.3f)", lo, hi, conns, b.Weight)
}
