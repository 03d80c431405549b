package report

import (
	"sort"
	"time"
)

// Coverage tells which of an agent's snapshot intervals arrived.
type Coverage struct {
	// Expected counts the intervals owed plus any other that arrived (an
	// interval received was owed by definition), so Received never
	// exceeds it.
	Expected int
	// Received counts the distinct intervals received.
	Received int
	// Missing lists the owed intervals that did not arrive, in order.
	Missing []int
}

// IntervalCoverage computes an agent's row figures from the interval
// boundaries and the sequence numbers received. ends[i] is the end of
// interval i from the test's start (the coordinator's boundaries, the
// same as the agents'); the intervals owed are those that ended by
// owedUntil, and, when partial is true, the one in progress at owedUntil
// (a live agent that finished publishes its last, partial interval; a
// lost agent owes only the intervals that ended). got lists the seqs
// received, in any order, duplicates allowed.
//
// For a live agent pass the run's elapsed time and partial true; for a
// lost agent, the end of what it owed (e.g. max(its last snapshot's end,
// when it was seen lost minus the session timeout and one interval)) and
// partial false.
func IntervalCoverage(ends []time.Duration, owedUntil time.Duration, partial bool, got []int) Coverage {
	owed := map[int]bool{}
	for i, e := range ends {
		start := time.Duration(0)
		if i > 0 {
			start = ends[i-1]
		}
		if e <= owedUntil || (partial && start < owedUntil) {
			owed[i] = true
		}
	}
	have := map[int]bool{}
	for _, s := range got {
		have[s] = true
	}
	c := Coverage{Received: len(have)}
	expected := len(owed)
	for s := range have {
		if !owed[s] {
			expected++
		}
	}
	c.Expected = expected
	for s := range owed {
		if !have[s] {
			c.Missing = append(c.Missing, s)
		}
	}
	sort.Ints(c.Missing)
	return c
}

// Apply sets an agent row's interval figures.
func (c Coverage) Apply(row *Agent) {
	row.Expected, row.Received, row.Missing = c.Expected, c.Received, c.Missing
}
