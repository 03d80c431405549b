package schedule

import (
	"testing"
	"time"

	"github.com/barrage-load/barrage/proto"
)

// TestEdit: a change mid-step splits it; the part from the change on and
// every later step get new numbers; the past is untouched.
func TestEdit(t *testing.T) {
	segs := []proto.Segment{
		{Duration: 4 * time.Second, From: 100, To: 100, Connections: 2, Step: 0},
		{Start: 4 * time.Second, Duration: 4 * time.Second, From: 200, To: 200, Connections: 4, Step: 1},
	}
	out := Edit(segs, 2*time.Second, true, 500, 0)
	want := []struct {
		start time.Duration
		rate  float64
		conns int
		step  int
	}{{0, 100, 2, 0}, {2 * time.Second, 500, 2, 1}, {4 * time.Second, 500, 4, 2}}
	if len(out) != len(want) {
		t.Fatalf("%d segments: %+v", len(out), out)
	}
	for i, w := range want {
		g := out[i]
		if g.Start != w.start || g.From != w.rate || g.To != w.rate || g.Connections != w.conns || g.Step != w.step {
			t.Fatalf("segment %d: %+v, want %+v", i, g, w)
		}
	}
	// Connections only: rates kept.
	out = Edit(segs, 6*time.Second, false, 0, 9)
	if g := out[len(out)-1]; g.From != 200 || g.Connections != 9 || g.Step != 2 || g.Start != 6*time.Second {
		t.Fatalf("connections change: %+v", out)
	}
	if NextBoundary([]time.Duration{time.Second, 2 * time.Second}, 1500*time.Millisecond) != 2*time.Second {
		t.Fatal("NextBoundary")
	}
}
