package report

import (
	"slices"
	"testing"
	"time"
)

func TestIntervalCoverage(t *testing.T) {
	s := time.Second
	ends := []time.Duration{1 * s, 2 * s, 3 * s, 4 * s, 5 * s}
	for _, tc := range []struct {
		name     string
		until    time.Duration
		partial  bool
		got      []int
		expected int
		received int
		missing  []int
	}{
		{"complete", 5 * s, true, []int{0, 1, 2, 3, 4}, 5, 5, nil},
		// Stopped at 3.2 s: the partial fourth interval is owed and came.
		{"stopped early", 3200 * time.Millisecond, true, []int{3, 0, 1, 2}, 4, 4, nil},
		{"gap and duplicates", 3200 * time.Millisecond, true, []int{0, 2, 3, 3, 3}, 4, 3, []int{1}},
		// The "6/5" row: a snapshot beyond what was owed (a final interval
		// past the boundaries, or after the owed window) was received,
		// hence expected: never more received than expected.
		{"extra seq", 5 * s, true, []int{0, 1, 2, 3, 4, 5}, 6, 6, nil},
		{"stopped at a boundary", 3 * s, true, []int{0, 1, 2}, 3, 3, nil},
		// A lost agent owes the intervals that ended by its owed instant;
		// one it published past that counts too.
		{"lost", 2 * s, false, []int{0, 1, 2}, 3, 3, nil},
		{"lost, gap", 3 * s, false, []int{0}, 3, 1, []int{1, 2}},
		{"lost at once", 0, false, nil, 0, 0, nil},
	} {
		c := IntervalCoverage(ends, tc.until, tc.partial, tc.got)
		if c.Expected != tc.expected || c.Received != tc.received || !slices.Equal(c.Missing, tc.missing) || c.Received > c.Expected {
			t.Errorf("%s: %+v, want %d/%d missing %v", tc.name, c, tc.received, tc.expected, tc.missing)
		}
		var row Agent
		c.Apply(&row)
		if row.Expected != c.Expected || row.Received != c.Received || !slices.Equal(row.Missing, c.Missing) {
			t.Errorf("%s: Apply gave %+v", tc.name, row)
		}
	}
}
