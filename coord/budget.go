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

// Budgets splits the test's schedule over agents weighted by their cores
// and capped by each agent's own --max-rate and --max-connections: each
// agent's schedule has the same shape with rates scaled by its share, and
// connections split so that they add up to the schedule's in every step.
// Agent i of N gets phase i/N, so the fleet's arrivals interleave. short
// is the largest rate (req/s) the agents' caps could not take in any
// segment (0 when they took it all).
func Budgets(segs []proto.Segment, cores []int, caps []proto.Caps) (out []proto.Budget, short float64) {
	n := len(cores)
	weights := make([]float64, n)
	var sum float64
	for i, c := range cores {
		weights[i] = float64(max(c, 1))
		sum += weights[i]
	}
	out = make([]proto.Budget, n)
	var acc float64
	for i := range out {
		out[i].Weight = weights[i] / sum
		out[i].Phase = float64(i) / float64(n)
		out[i].Schedule = make([]proto.Segment, len(segs))
		// Agent i of n: its own random stream and {{seq}} class, and its
		// slice of the data files in proportion to its weight. Each slice
		// starts where the previous one ends (the same float), the last
		// at 1: disjoint, and every row someone's.
		out[i].Part, out[i].Parts = i, n
		from := acc
		acc += weights[i]
		to := acc / sum
		if i == n-1 {
			to = 1
		}
		if i > 0 {
			from = out[i-1].Data.To
		} else {
			from = 0
		}
		out[i].Data = &proto.Slice{From: from, To: to}
	}
	for j, g := range segs {
		split := Split(g.Connections, weights, true)
		from := capSplit(g.From, weights, caps)
		to := capSplit(g.To, weights, caps)
		var gave float64
		for i := range out {
			s := g
			s.From, s.To = from[i], to[i]
			s.Connections = max(split[i], 1)
			if c := caps[i].MaxConnections; c > 0 && s.Connections > c {
				s.Connections = c
			}
			out[i].Schedule[j] = s
			gave += max(from[i], to[i])
		}
		short = max(short, max(g.From, g.To)-gave)
	}
	if short < 1e-6 {
		short = 0
	}
	return out, short
}

// capSplit splits rate r by weights, then moves what exceeds an agent's
// cap to the agents with room, in proportion to their weights.
func capSplit(r float64, weights []float64, caps []proto.Caps) []float64 {
	out := make([]float64, len(weights))
	free := make([]bool, len(weights))
	for i := range free {
		free[i] = true
	}
	left := r
	for round := 0; round < len(weights) && left > 1e-9; round++ {
		var w float64
		for i, f := range free {
			if f {
				w += weights[i]
			}
		}
		if w == 0 {
			break
		}
		give := left
		left = 0
		for i, f := range free {
			if !f {
				continue
			}
			out[i] += give * weights[i] / w
			if c := caps[i].MaxRate; c > 0 && out[i] > c {
				left += out[i] - c
				out[i] = c
				free[i] = false
			}
		}
	}
	return out
}
