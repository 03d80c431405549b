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

func TestPace(t *testing.T) {
	ramp := []proto.Segment{{Duration: 10 * time.Second, From: 0, To: 100, Connections: 1}}
	steps := []proto.Segment{
		{Duration: time.Second, From: 10, To: 10, Connections: 1},
		{Start: time.Second, Duration: time.Second, From: 0, To: 0, Connections: 1, Step: 1},
		{Start: 2 * time.Second, Duration: time.Second, From: 100, To: 100, Connections: 1, Step: 2},
	}
	for _, tc := range []struct {
		name    string
		segs    []proto.Segment
		elapsed time.Duration
		sent    uint64
		wait    time.Duration
		stop    bool
	}{
		// The first hit of a constant rate goes at once.
		{"first hit at 0", constant(10, time.Second), 0, 0, 0, false},
		// 10/s: hit 1 is due at 100ms; at 40ms wait 60ms.
		{"second hit waits", constant(10, time.Second), 40 * time.Millisecond, 1, 60 * time.Millisecond, false},
		// Behind schedule: an overdue hit is due now, never a negative wait.
		{"overdue", constant(10, time.Second), 500 * time.Millisecond, 2, 0, false},
		// 10/s for 1s asks for 10 hits (0..9): the 11th never comes.
		{"schedule exhausted", constant(10, time.Second), 900 * time.Millisecond, 10, 0, true},
		// Ramp 0→100/s over 10s: hits(t) = 5t², so hit 5 is due at t=1s.
		{"ramp quadratic", ramp, 0, 5, time.Second, false},
		// Ramp: hit 125 is due at sqrt(125/5)=5s.
		{"ramp middle", ramp, 4 * time.Second, 125, time.Second, false},
		// Steps: 10 hits in step 1, none in the pause, then hit 10 at 2s.
		{"pause skipped", steps, time.Second, 10, time.Second, false},
		// Steps: hit 11 is 10ms into the 100/s step.
		{"after pause", steps, 2 * time.Second, 11, 10 * time.Millisecond, false},
		// A zero rate schedule asks for nothing.
		{"zero rate", constant(0, time.Second), 0, 0, 0, true},
	} {
		s := New(tc.segs)
		wait, stop := s.Pace(tc.elapsed, tc.sent)
		if stop != tc.stop || (!stop && absDur(wait-tc.wait) > time.Microsecond) {
			t.Errorf("%s: Pace(%s, %d) = %s, %v; want %s, %v", tc.name, tc.elapsed, tc.sent, wait, stop, tc.wait, tc.stop)
		}
	}
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
		at, sg, ok := s.At(k, seg)
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
		a, _, _ := s.At(k, 0)
		b, _, _ := c.At(k, 0)
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
