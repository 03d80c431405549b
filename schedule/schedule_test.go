package schedule

import (
	"math"
	"testing"
	"time"

	"github.com/barrage-load/barrage/proto"
)

func constant(rate float64, d time.Duration) []proto.Segment {
	return []proto.Segment{{Duration: d, From: rate, To: rate, Connections: 1}}
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

func TestScheduleHitsMatchesAt(t *testing.T) {
	segs := []proto.Segment{
		{Duration: 2 * time.Second, From: 100, To: 1000, Connections: 1},
		{Start: 2 * time.Second, Duration: 3 * time.Second, From: 1000, To: 1000, Connections: 1, Step: 1},
		{Start: 5 * time.Second, Duration: time.Second, From: 1000, To: 0, Connections: 1, Step: 2},
	}
	s := New(segs)
	want := 1100.0 + 3000 + 500
	if got := s.Total(); math.Abs(got-want) > 1e-6 {
		t.Fatalf("Total = %f, want %f", got, want)
	}
	// Every hit k must be due when Hits first reaches k.
	prev := int64(-1)
	seg := 0
	n := 0
	for k := uint64(0); ; k++ {
		at, sg, ok := s.At(float64(k), seg)
		if !ok {
			break
		}
		seg = sg
		n++
		if at < prev {
			t.Fatalf("hit %d at %d goes before hit %d at %d", k, at, k-1, prev)
		}
		prev = at
		if h := s.Hits(time.Duration(at)); h < float64(k)-1e-6 {
			t.Fatalf("hit %d at %s but only %f hits due then", k, time.Duration(at), h)
		}
		if at > 0 {
			if h := s.Hits(time.Duration(at - 1)); h > float64(k)+1e-6 {
				t.Fatalf("hit %d is late: %f hits due 1ns before %s", k, h, time.Duration(at))
			}
		}
	}
	if n != int(want) {
		t.Fatalf("schedule yields %d hits, want %d", n, int(want))
	}
}

func TestWithRateKeepsThePast(t *testing.T) {
	s := New(constant(1000, 10*time.Second))
	c := s.WithRate(4*time.Second, 2000)
	if got, want := c.Hits(4*time.Second), 4000.0; math.Abs(got-want) > 1e-6 {
		t.Fatalf("hits at the change = %f, want %f", got, want)
	}
	if got, want := c.Total(), 4000.0+12000; math.Abs(got-want) > 1e-6 {
		t.Fatalf("total after change = %f, want %f", got, want)
	}
	// Hits before the change keep their times.
	for _, k := range []uint64{0, 1, 1999, 3999} {
		a, _, _ := s.At(float64(k), 0)
		b, _, _ := c.At(float64(k), 0)
		if a != b {
			t.Fatalf("hit %d moved from %d to %d", k, a, b)
		}
	}
	// A change inside a ramp splits it without a jump.
	r := New([]proto.Segment{{Duration: 10 * time.Second, From: 0, To: 1000, Connections: 1}})
	rc := r.WithRate(5*time.Second, 0)
	if got, want := rc.Hits(5*time.Second), r.Hits(5*time.Second); math.Abs(got-want) > 1e-6 {
		t.Fatalf("ramp split: %f hits at the change, want %f", got, want)
	}
	if got, want := rc.Total(), r.Hits(5*time.Second); math.Abs(got-want) > 1e-6 {
		t.Fatalf("after a change to 0, total %f, want %f", got, want)
	}
}

// TestAtAnyHint checks that the hint is only a shortcut: a wrong one (too
// far, too early, out of range) gives the same answer as a search.
func TestAtAnyHint(t *testing.T) {
	s := New([]proto.Segment{
		{Duration: time.Second, From: 100, To: 100, Connections: 1},
		{Start: time.Second, Duration: time.Second, Connections: 1, Step: 1}, // a pause
		{Start: 2 * time.Second, Duration: time.Second, From: 0, To: 1000, Connections: 1, Step: 2},
		{Start: 3 * time.Second, Duration: time.Second, From: 50, To: 50, Connections: 1, Step: 3},
	})
	for _, h := range []float64{0, 0.5, 99, 99.9, 100, 100.5, 599, 600, 649.9, 650, -1} {
		want, wseg, wok := s.At(h, 0)
		for _, hint := range []int{-3, 0, 1, 2, 3, 4, 99} {
			at, seg, ok := s.At(h, hint)
			if at != want || ok != wok || (ok && seg != wseg) {
				t.Errorf("At(%v, hint %d) = %d, %d, %v; with hint 0: %d, %d, %v", h, hint, at, seg, ok, want, wseg, wok)
			}
		}
	}
	// Hit 100 is the first of the ramp after the pause: its integral
	// reaches 100 at 2s exactly.
	if at, _, ok := s.At(100, 0); !ok || at != int64(2*time.Second) {
		t.Errorf("first hit after the pause at %v, %v; want 2s", time.Duration(at), ok)
	}
	// 100 + 500 + 50 hits in all: 650 is past the end.
	if _, _, ok := s.At(650, 0); ok {
		t.Errorf("hit 650 of a 650-hit schedule is due")
	}
}

// TestWithConnectionsKeepsThePast checks that a connection change cuts the
// segment it falls in: before it, the count stays as it was.
func TestWithConnectionsKeepsThePast(t *testing.T) {
	s := New([]proto.Segment{{Duration: 10 * time.Second, From: 1000, To: 1000, Connections: 4}})
	c := s.WithConnections(4*time.Second, 9)
	if n, _ := c.Segment(3 * time.Second); n != 4 {
		t.Fatalf("connections before the change: %d, want 4", n)
	}
	if n, _ := c.Segment(4 * time.Second); n != 9 {
		t.Fatalf("connections from the change: %d, want 9", n)
	}
	if got, want := c.Total(), s.Total(); math.Abs(got-want) > 1e-6 {
		t.Fatalf("a connection change moved the hits: %f, want %f", got, want)
	}
	if at, ok := c.NextConnChange(0); !ok || at != 4*time.Second {
		t.Fatalf("NextConnChange(0) = %v, %v; want 4s", at, ok)
	}
	if _, ok := c.NextConnChange(4 * time.Second); ok {
		t.Fatalf("a change after the last one")
	}
	// Steps with equal connections are no change.
	st := New([]proto.Segment{
		{Duration: time.Second, From: 1, To: 1, Connections: 2},
		{Start: time.Second, Duration: time.Second, From: 5, To: 5, Connections: 2, Step: 1},
		{Start: 2 * time.Second, Duration: time.Second, From: 5, To: 5, Connections: 3, Step: 2},
	})
	if at, ok := st.NextConnChange(0); !ok || at != 2*time.Second {
		t.Fatalf("NextConnChange over steps = %v, %v; want 2s", at, ok)
	}
}
