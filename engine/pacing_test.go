package engine

import (
	"math/rand"
	"sort"
	"testing"
	"time"

	"github.com/barrage-load/barrage/proto"
	"github.com/barrage-load/barrage/schedule"
)

func newPacing(segs []proto.Segment, stride, idx int, phases ...phaseChange) *pacing {
	p := &pacing{stride: uint64(stride), idx: uint64(idx)}
	if len(phases) == 0 {
		phases = []phaseChange{{}}
	}
	p.setSchedule(schedule.New(segs), phases)
	return p
}

// times lists the intended times of p's tokens up to end.
func (p *pacing) times(end int64) []int64 {
	var out []int64
	for j := uint64(0); ; j++ {
		at, _, ok := p.at(j, 0)
		if !ok || at > end {
			return out
		}
		out = append(out, at)
	}
}

// TestPhasesMergeEvenly: N engines each given 1/N of a rate and phases
// i/N send evenly spaced, loops interleaved inside each; with one phase
// for all they would send in bursts of N.
func TestPhasesMergeEvenly(t *testing.T) {
	const total = 1000.0 // per second, over all engines
	for _, tc := range []struct{ engines, loops int }{{4, 1}, {4, 2}, {3, 2}, {1, 4}} {
		var merged []int64
		for i := 0; i < tc.engines; i++ {
			segs := constantRate(total/float64(tc.engines), time.Second)
			for l := 0; l < tc.loops; l++ {
				p := newPacing(segs, tc.loops, l, phaseChange{phase: float64(i) / float64(tc.engines)})
				merged = append(merged, p.times(int64(time.Second))...)
			}
		}
		sort.Slice(merged, func(a, b int) bool { return merged[a] < merged[b] })
		if len(merged) != int(total) {
			t.Fatalf("%d engines x %d loops: %d hits in 1s, want %d", tc.engines, tc.loops, len(merged), int(total))
		}
		for k, at := range merged {
			// Hit k of the whole is due at k ms: one rounding either way.
			if want := int64(k) * int64(time.Millisecond); at < want-1 || at > want+1 {
				t.Fatalf("%d engines x %d loops: hit %d at %v, want %v (evenly spaced)", tc.engines, tc.loops, k, time.Duration(at), time.Duration(want))
			}
		}
	}
	// Without phases, four engines send in bursts of four.
	var bursty []int64
	for i := 0; i < 4; i++ {
		bursty = append(bursty, newPacing(constantRate(250, time.Second), 1, 0).times(int64(time.Second))...)
	}
	sort.Slice(bursty, func(a, b int) bool { return bursty[a] < bursty[b] })
	if bursty[0] != bursty[3] {
		t.Fatalf("the same phase everywhere should give bursts: %v", bursty[:4])
	}
}

// TestCountMatchesAt: the O(1) count of tokens due by t agrees exactly
// with the token times the send loop walks, on constant rates, ramps,
// pauses, phases and interleaved loops.
func TestCountMatchesAt(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	schedules := [][]proto.Segment{
		constantRate(1000, time.Second),
		constantRate(3, time.Second),
		{{Duration: time.Second, From: 0, To: 2000, Connections: 1}},
		{
			{Duration: 300 * time.Millisecond, From: 500, To: 500, Connections: 1},
			{Start: 300 * time.Millisecond, Duration: 200 * time.Millisecond, Connections: 1, Step: 1},
			{Start: 500 * time.Millisecond, Duration: 500 * time.Millisecond, From: 3000, To: 10, Connections: 1, Step: 2},
		},
	}
	for si, segs := range schedules {
		for _, stride := range []int{1, 3} {
			for _, phase := range []float64{0, 0.25, 0.999} {
				for idx := 0; idx < stride; idx++ {
					p := newPacing(segs, stride, idx, phaseChange{phase: phase})
					times := p.times(int64(2 * time.Second))
					probe := []int64{-1, 0, 1, int64(time.Second), int64(2 * time.Second)}
					for _, at := range times {
						probe = append(probe, at-1, at, at+1)
					}
					for i := 0; i < 200; i++ {
						probe = append(probe, rng.Int63n(int64(time.Second)))
					}
					for _, tt := range probe {
						want := uint64(sort.Search(len(times), func(k int) bool { return times[k] > tt }))
						if got := p.count(tt); got != want {
							t.Fatalf("schedule %d stride %d idx %d phase %v: count(%d) = %d, %d tokens are due then", si, stride, idx, phase, tt, got, want)
						}
					}
				}
			}
		}
	}
}

// TestPhaseChangeKeepsThePast: a phase change at an instant keeps the
// times of the tokens due before it, skips none and repeats none, and
// spaces the rest by the new phase.
func TestPhaseChangeKeepsThePast(t *testing.T) {
	segs := constantRate(100, 2*time.Second) // a hit every 10ms
	before := newPacing(segs, 1, 0)
	at := int64(time.Second + 3*time.Millisecond)
	for _, phase := range []float64{0.5, 0.1, 0.9} {
		p := newPacing(segs, 1, 0, phaseChange{phase: 0}, phaseChange{at: at, phase: phase})
		old := before.times(at)
		got := p.times(int64(2 * time.Second))
		for k := range old {
			if got[k] != old[k] {
				t.Fatalf("phase %v: token %d moved from %v to %v", phase, k, time.Duration(old[k]), time.Duration(got[k]))
			}
		}
		// After the change, hit k is due at (k+phase)*10ms, never before
		// the change itself.
		for k := len(old); k < len(got); k++ {
			want := max(int64((float64(k)+phase)*float64(10*time.Millisecond)), at)
			if got[k] < want-1 || got[k] > want+1 {
				t.Fatalf("phase %v: token %d at %v, want %v", phase, k, time.Duration(got[k]), time.Duration(want))
			}
			if got[k] < got[k-1] {
				t.Fatalf("phase %v: token %d goes before token %d", phase, k, k-1)
			}
		}
		if n := len(got); n < 199 || n > 200 {
			t.Fatalf("phase %v: %d tokens in 2s at 100/s", phase, n)
		}
	}
}

// TestApplyBeforeStart: a change applied before the run starts (between
// New and the barrier) takes effect at its instant, with its phase.
func TestApplyBeforeStart(t *testing.T) {
	l := fakeLoop(t, Options{Schedule: constantRate(1000, 2*time.Second)}, 1, 0, 1)
	e := l.e
	e.started = false
	next := []proto.Segment{{Duration: 2 * time.Second, From: 3000, To: 3000, Connections: 5, Step: 7}}
	if err := e.Apply(time.Second, next, 0.5); err != nil {
		t.Fatal(err)
	}
	l.syncSchedule()
	p := &l.pc
	// 1000 hits in the first second (0..999ms), then every 333µs from
	// 1s + half a gap.
	if n := p.count(int64(time.Second) - 1); n != 1000 {
		t.Fatalf("%d hits due before the change, want 1000", n)
	}
	at, _, _ := p.at(1000, 0)
	if want := int64(time.Second) + int64(time.Second)/6000; at < want-1 || at > want+1 {
		t.Fatalf("first hit after the change at %v, want %v", time.Duration(at), time.Duration(want))
	}
	if n := p.count(int64(2 * time.Second)); n != 4000 {
		t.Fatalf("%d hits in all, want 4000", n)
	}
	if c, s := e.sched.Segment(time.Second - 1); c != 1 || s != 0 {
		t.Fatalf("before the change: %d connections, step %d", c, s)
	}
	if c, s := e.sched.Segment(time.Second); c != 5 || s != 7 {
		t.Fatalf("from the change: %d connections, step %d; want 5, 7", c, s)
	}
	// The change adds a step boundary at its instant.
	found := false
	for _, b := range e.loadBounds() {
		found = found || b.At == time.Second && b.StepStart
	}
	if !found {
		t.Fatalf("no step boundary at the change: %v", e.loadBounds())
	}
	for _, bad := range []float64{-0.1, 1, 2} {
		if err := e.Apply(time.Second, next, bad); err == nil {
			t.Errorf("phase %v accepted", bad)
		}
	}
	if err := e.Apply(time.Second, nil, 0); err == nil {
		t.Errorf("an empty schedule accepted")
	}
}

// drain reads every part handed off so far.
func drain(e *Engine) *proto.Stats {
	total := proto.NewStats(e.open)
	for {
		select {
		case p := <-e.collect:
			total.Merge(p.st)
		default:
			return total
		}
	}
}

// TestHandoffBeforeStart reproduces what gnet's two task queues can do:
// run the clock's first hand-off before the loop's start. The cut the
// loop then makes belongs to an interval already handed off; it used to
// be kept for ever, losing the requests sent at start (seen as "sent <
// responses + unfinished" under fd exhaustion, when many enrolments
// crowd the queues). Now nothing is lost.
func TestHandoffBeforeStart(t *testing.T) {
	l := fakeLoop(t, Options{Schedule: closedPlan(2, 10*time.Second), Interval: time.Second}, 1, 0, 2)
	e := l.e
	l.started = false
	e.startNS = l.now() - int64(2500*time.Millisecond) // two boundaries passed
	l.handoff(0, 0, 0, time.Second, false)
	l.start() // fills both connections
	if l.st.Sent != 2 && (l.cut == nil || l.cut.Sent != 2) {
		t.Fatalf("start sent %d", l.st.Sent)
	}
	l.maybeCut(l.now())
	l.answer(1, l.now())
	l.handoff(1, 0, time.Second, 2*time.Second, false)
	l.maybeCut(l.now() + int64(time.Second))
	l.handoff(2, 0, 2*time.Second, 3*time.Second, true)
	total := drain(e)
	if total.Sent != 2 || total.Sent != total.Responses+total.Failed()+total.Unfinished {
		t.Fatalf("sent %d, responses %d, failed %d, unfinished %d", total.Sent, total.Responses, total.Failed(), total.Unfinished)
	}
}
