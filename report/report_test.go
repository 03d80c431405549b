package report

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/barrage-load/barrage/proto"
)

func interval(open bool, seq, step int, sent, resp uint64, late int64, conns, want int) *proto.Stats {
	s := proto.NewStats(open)
	s.Seq, s.Step = seq, step
	s.Start, s.End = time.Duration(seq)*time.Second, time.Duration(seq+1)*time.Second
	s.Sent, s.Responses, s.Scheduled = sent, resp, sent
	s.Unfinished = sent - resp
	s.Status[200] = resp
	s.ConnsOpen, s.ConnsWanted = conns, want
	for i := uint64(0); i < resp; i++ {
		_ = s.Latency.RecordValue(100)
		if open {
			_ = s.Service.RecordValue(90)
			_ = s.Lateness.RecordValue(late)
		}
	}
	return s
}

func TestVerdict(t *testing.T) {
	sched := []proto.Segment{{Duration: 3 * time.Second, From: 1000, To: 1000, Connections: 10}}
	for _, tc := range []struct {
		name    string
		ivs     []*proto.Stats
		valid   bool
		reason  string
		elapsed time.Duration
	}{
		{"kept up", []*proto.Stats{interval(true, 0, 0, 1000, 1000, 50, 10, 10), interval(true, 1, 0, 1000, 1000, 50, 10, 10), interval(true, 2, 0, 1000, 1000, 50, 10, 10)}, true, "", 3 * time.Second},
		{"late sends", []*proto.Stats{interval(true, 0, 0, 1000, 1000, 5000, 10, 10), interval(true, 1, 0, 1000, 1000, 5000, 10, 10), interval(true, 2, 0, 1000, 1000, 5000, 10, 10)}, false, "fell behind its schedule", 3 * time.Second},
		{"sent too little", []*proto.Stats{interval(true, 0, 0, 900, 900, 50, 10, 10), interval(true, 1, 0, 900, 900, 50, 10, 10), interval(true, 2, 0, 900, 900, 50, 10, 10)}, false, "while the target kept up", 3 * time.Second},
		{"too few connections", []*proto.Stats{interval(true, 0, 0, 1000, 1000, 50, 10, 10), interval(true, 1, 0, 1000, 1000, 50, 5, 10), interval(true, 2, 0, 1000, 1000, 50, 5, 10)}, false, "held 50.0% of the connections", 3 * time.Second},
	} {
		a := NewAggregator("http://x/", sched, 1, true)
		for _, s := range tc.ivs {
			a.Add(s)
		}
		r := a.Report(tc.elapsed)
		if r.Valid != tc.valid || (tc.reason != "" && !strings.Contains(strings.Join(r.InvalidReasons, ";"), tc.reason)) {
			t.Errorf("%s: valid=%v reasons=%v", tc.name, r.Valid, r.InvalidReasons)
		}
		if r.TargetRate != 1000 || r.Requests != tc.ivs[0].Responses*3 {
			t.Errorf("%s: target %v requests %d", tc.name, r.TargetRate, r.Requests)
		}
	}
}

// backlogged is an open-model interval where a fifth of the requests due
// waited for a free connection, with the loops busy for busy of their core.
func backlogged(seq int, busy float64) *proto.Stats {
	s := interval(true, seq, 0, 1000, 1000, 50, 10, 10)
	s.Backlogged = 200
	s.LoopCapacity = time.Second
	s.LoopCPU = time.Duration(busy * float64(time.Second))
	return s
}

// TestSaturatedGenerator: requests that wait for a free connection are the
// target's doing when the loops had time to spare, and the generator's
// when they did not.
func TestSaturatedGenerator(t *testing.T) {
	sched := []proto.Segment{{Duration: 3 * time.Second, From: 1000, To: 1000, Connections: 10}}
	for _, tc := range []struct {
		busy  float64
		valid bool
	}{{0.60, true}, {0.99, false}} {
		a := NewAggregator("http://x/", sched, 1, true)
		for i := 0; i < 3; i++ {
			a.Add(backlogged(i, tc.busy))
		}
		r := a.Report(3 * time.Second)
		if r.LoopBusy < tc.busy-0.001 || r.LoopBusy > tc.busy+0.001 {
			t.Fatalf("busy %.2f: report says %.3f", tc.busy, r.LoopBusy)
		}
		reasons := strings.Join(r.InvalidReasons, ";")
		if r.Valid != tc.valid || (!tc.valid && !strings.Contains(reasons, "generator saturated: its event loops were 99% busy")) {
			t.Errorf("busy %.2f: valid=%v reasons=%q notes=%q", tc.busy, r.Valid, reasons, r.Notes)
		}
		if tc.valid && !strings.Contains(strings.Join(r.Notes, ";"), "600 requests waited for a free connection") {
			t.Errorf("busy %.2f: notes %q", tc.busy, r.Notes)
		}
		var b strings.Builder
		if err := r.WriteText(&b); err != nil || !strings.Contains(b.String(), fmt.Sprintf("event loops %.0f%% busy", 100*tc.busy)) {
			t.Errorf("busy %.2f: text: %v\n%s", tc.busy, err, b.String())
		}
	}
}

// TestSaturatedAgent: one agent saturated among idle ones makes the
// test's verdict invalid even though the merged figure is under the limit.
func TestSaturatedAgent(t *testing.T) {
	sched := []proto.Segment{{Duration: 3 * time.Second, From: 1000, To: 1000, Connections: 10}}
	a := NewAggregator("http://x/", sched, 1, true)
	busy, idle := proto.NewStats(true), proto.NewStats(true)
	for i := 0; i < 3; i++ {
		b, l := backlogged(i, 0.99), interval(true, i, 0, 1000, 1000, 50, 10, 10)
		l.LoopCapacity, l.LoopCPU = time.Second, 100*time.Millisecond
		a.Add(b)
		a.Add(l)
		busy.Merge(b)
		idle.Merge(l)
	}
	r := a.Report(3 * time.Second)
	if r.LoopBusy >= MaxLoopBusy {
		t.Fatalf("merged busy %.2f: the test needs it under the limit", r.LoopBusy)
	}
	r.JudgeAgent("a1", idle)
	if !r.Valid {
		t.Fatalf("idle agent judged saturated: %v", r.InvalidReasons)
	}
	r.JudgeAgent("a2", busy)
	r.JudgeAgent("a2", busy)
	if r.Valid || len(r.InvalidReasons) != 1 || !strings.Contains(r.InvalidReasons[0], "agent a2 saturated: its event loops were 99% busy while 600 of its 3000") {
		t.Fatalf("valid=%v reasons=%q", r.Valid, r.InvalidReasons)
	}
}

func TestDroppedAndLostAreShown(t *testing.T) {
	sched := []proto.Segment{{Duration: time.Second, From: 100, To: 100, Connections: 1}}
	a := NewAggregator("http://x/", sched, 1, true)
	a.Add(interval(true, 0, 0, 100, 100, 10, 1, 1))
	a.AddDropped(7)
	a.AddLostInFlight(3)
	r := a.Report(time.Second)
	notes := strings.Join(r.Notes, ";")
	if r.HistogramDropped != 7 || !strings.Contains(notes, "7 latency values were dropped") || !strings.Contains(notes, "3 requests were in flight") {
		t.Fatalf("dropped %d, notes %q", r.HistogramDropped, notes)
	}
	var b strings.Builder
	if err := r.WriteText(&b); err != nil || !strings.Contains(b.String(), "p99.99") {
		t.Fatalf("text: %v\n%s", err, b.String())
	}
}
