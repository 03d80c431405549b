package coord

import (
	"math"
	"sort"

	"github.com/barrage-load/barrage/proto"
)

// Split divides n into parts proportional to weights, by largest
// remainders, so the parts add up to n exactly; with atLeastOne, every part
// gets at least 1 when n allows. O(n log n) in the number of weights.
func Split(n int, weights []float64, atLeastOne bool) []int {
	out := make([]int, len(weights))
	if len(weights) == 0 {
		return out
	}
	var sum float64
	for _, w := range weights {
		sum += w
	}
	if sum <= 0 {
		return out
	}
	base := 0
	if atLeastOne && n >= len(weights) {
		base = 1
	}
	rest := n - base*len(weights)
	given := 0
	rem := make([]float64, len(weights))
	for i, w := range weights {
		x := float64(rest) * w / sum
		out[i] = base + int(math.Floor(x))
		rem[i] = x - math.Floor(x)
		given += out[i]
	}
	// Hand the leftover units (fewer than len(weights)) to the largest
	// remainders, ties to the lowest index.
	if given < n {
		idx := make([]int, len(rem))
		for i := range idx {
			idx[i] = i
		}
		sort.SliceStable(idx, func(a, b int) bool { return rem[idx[a]] > rem[idx[b]] })
		for _, i := range idx {
			if given == n {
				break
			}
			out[i]++
			given++
		}
	}
	return out
}

// Budgets splits a schedule over agents weighted by their cores: each
// agent's schedule has the same shape with rates scaled by its weight, and
// connections split so that they add up to the schedule's in every step.
// rate and conns are the test's current ones, for the budgets' summaries.
func Budgets(segs []proto.Segment, rate float64, conns int, cores []int) []Budget {
	weights := make([]float64, len(cores))
	var sum float64
	for i, c := range cores {
		weights[i] = float64(max(c, 1))
		sum += weights[i]
	}
	out := make([]Budget, len(cores))
	for i := range out {
		out[i].Weight = weights[i] / sum
		out[i].Schedule = make([]proto.Segment, len(segs))
	}
	for j, g := range segs {
		split := Split(g.Connections, weights, true)
		for i := range out {
			s := g
			s.From *= out[i].Weight
			s.To *= out[i].Weight
			s.Connections = max(split[i], 1)
			out[i].Schedule[j] = s
		}
	}
	split := Split(conns, weights, true)
	for i := range out {
		out[i].Rate = rate * out[i].Weight
		out[i].Connections = max(split[i], 1)
	}
	return out
}
