package report

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/barrage-load/barrage/proto"
)

// interval is a plain interval: sent requests of which resp answered 200
// at 100µs (90µs service), every send late by late µs, the rest in flight.
func interval(open bool, seq, step int, sent, resp uint64, late int64, conns, want int) *proto.Stats {
	s := proto.NewStats(open)
	s.Seq, s.Step = seq, step
	s.Start, s.End = time.Duration(seq)*time.Second, time.Duration(seq+1)*time.Second
	s.Sent, s.Responses, s.Scheduled = sent, resp, sent
	s.Unfinished = sent - resp
	s.Status[200] = resp
	s.ConnsOpen, s.ConnsWanted = conns, want
	rec(s.Latency, 100, int64(resp))
	if open {
		rec(s.Service, 90, int64(resp))
		rec(s.Lateness, late, int64(resp))
	}
	return s
}

// rec records n values of us into h.
func rec(h *hdrhistogram.Histogram, us, n int64) {
	if n > 0 {
		if err := h.RecordValues(us, n); err != nil {
			panic(err)
		}
	}
}

// busy sets how busy s's loops were over its interval.
func busy(s *proto.Stats, f float64) *proto.Stats {
	s.LoopCapacity = s.End - s.Start
	s.LoopCPU = time.Duration(f * float64(s.LoopCapacity))
	return s
}

func text(t *testing.T, r *Report) string {
	t.Helper()
	var b strings.Builder
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func jsonOf(t *testing.T, r *Report) map[string]any {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func constant(rate float64, d time.Duration, conns int) []proto.Segment {
	return []proto.Segment{{Duration: d, From: rate, To: rate, Connections: conns}}
}

func TestVerdict(t *testing.T) {
	sched := constant(1000, 3*time.Second, 10)
	for _, tc := range []struct {
		name   string
		ivs    []*proto.Stats
		valid  bool
		reason string
	}{
		{"kept up", []*proto.Stats{interval(true, 0, 0, 1000, 1000, 50, 10, 10), interval(true, 1, 0, 1000, 1000, 50, 10, 10), interval(true, 2, 0, 1000, 1000, 50, 10, 10)}, true, ""},
		// Lateness that is most of the latency, and nothing says how busy
		// the loops were: nothing clears the generator.
		{"late sends, busy unknown", []*proto.Stats{interval(true, 0, 0, 1000, 1000, 5000, 10, 10), interval(true, 1, 0, 1000, 1000, 5000, 10, 10), interval(true, 2, 0, 1000, 1000, 5000, 10, 10)}, false, "fell behind its schedule"},
		{"sent too little", []*proto.Stats{interval(true, 0, 0, 900, 900, 50, 10, 10), interval(true, 1, 0, 900, 900, 50, 10, 10), interval(true, 2, 0, 900, 900, 50, 10, 10)}, false, "while the target kept up"},
		{"too few connections", []*proto.Stats{interval(true, 0, 0, 1000, 1000, 50, 10, 10), interval(true, 1, 0, 1000, 1000, 50, 5, 10), interval(true, 2, 0, 1000, 1000, 50, 5, 10)}, false, "held 50.0% of the connections"},
	} {
		a := NewAggregator("http://x/", sched, 1, true)
		for _, s := range tc.ivs {
			a.Add(s)
		}
		r := a.Report(3 * time.Second)
		if r.Valid != tc.valid || (tc.reason != "" && !strings.Contains(strings.Join(r.InvalidReasons, ";"), tc.reason)) {
			t.Errorf("%s: valid=%v reasons=%v", tc.name, r.Valid, r.InvalidReasons)
		}
		if r.TargetRate != 1000 || r.Requests != tc.ivs[0].Responses*3 {
			t.Errorf("%s: target %v requests %d", tc.name, r.TargetRate, r.Requests)
		}
	}
}

// backlogged is an open-model interval where a fifth of the requests due
// waited for a free connection, with the loops busy for b of their core.
func backlogged(seq int, b float64) *proto.Stats {
	s := interval(true, seq, 0, 1000, 1000, 50, 10, 10)
	s.Backlogged = 200
	return busy(s, b)
}

// TestSaturatedGenerator: requests that wait for a free connection are the
// target's doing when the loops had time to spare, and the generator's
// when they did not.
func TestSaturatedGenerator(t *testing.T) {
	sched := constant(1000, 3*time.Second, 10)
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
		if r.Valid != tc.valid || (!tc.valid && !strings.Contains(reasons, "generator saturated: its event loops were 99% busy while 600 of its 3000 requests due waited")) {
			t.Errorf("busy %.2f: valid=%v reasons=%q notes=%q", tc.busy, r.Valid, reasons, r.Notes)
		}
		if tc.valid && !strings.Contains(strings.Join(r.Notes, ";"), "600 requests waited for a free connection") {
			t.Errorf("busy %.2f: notes %q", tc.busy, r.Notes)
		}
		if out := text(t, r); !strings.Contains(out, fmt.Sprintf("event loops %.0f%% busy", 100*tc.busy)) {
			t.Errorf("busy %.2f: text:\n%s", tc.busy, out)
		}
	}
}

// TestSaturatedAgent: one agent saturated among idle ones makes the
// test's verdict invalid even though the merged figure is under the limit.
func TestSaturatedAgent(t *testing.T) {
	sched := constant(1000, 3*time.Second, 10)
	a := NewAggregator("http://x/", sched, 1, true)
	hot, idle := proto.NewStats(true), proto.NewStats(true)
	for i := 0; i < 3; i++ {
		b, l := backlogged(i, 0.99), busy(interval(true, i, 0, 1000, 1000, 50, 10, 10), 0.1)
		a.Add(b)
		a.Add(l)
		hot.Merge(b)
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
	r.JudgeAgent("a2", hot)
	r.JudgeAgent("a2", hot)
	if r.Valid || len(r.InvalidReasons) != 1 || !strings.Contains(r.InvalidReasons[0], "agent a2 saturated: its event loops were 99% busy while 600 of its 3000") {
		t.Fatalf("valid=%v reasons=%q", r.Valid, r.InvalidReasons)
	}
}

// TestSaturatedAgentByLateness: an agent whose loops were busy and whose
// sends went out late by most of the latency is saturated, with no
// backlog at all.
func TestSaturatedAgentByLateness(t *testing.T) {
	s := busy(interval(true, 0, 0, 1000, 1000, 900, 10, 10), 0.98)
	s.Latency.Reset()
	rec(s.Latency, 1000, 1000)
	r := &Report{Valid: true}
	r.JudgeAgent("a3", s)
	if r.Valid || !strings.Contains(strings.Join(r.InvalidReasons, ";"), "agent a3 saturated: its event loops were 98% busy while its sends went out late (send lateness p99 900µs, 90% of the latency p99 1.00ms)") {
		t.Fatalf("valid=%v reasons=%q", r.Valid, r.InvalidReasons)
	}
	// Closed-model stats and stats with nothing due are not judged.
	r = &Report{Valid: true}
	r.JudgeAgent("c", busy(interval(false, 0, 0, 10, 10, 0, 1, 1), 1))
	r.JudgeAgent("e", busy(proto.NewStats(true), 1))
	if !r.Valid {
		t.Fatalf("judged: %q", r.InvalidReasons)
	}
}

func TestDroppedAndLostAreShown(t *testing.T) {
	a := NewAggregator("http://x/", constant(100, time.Second, 1), 1, true)
	a.Add(interval(true, 0, 0, 100, 100, 10, 1, 1))
	a.AddDropped(7)
	a.AddLostInFlight(3)
	r := a.Report(time.Second)
	notes := strings.Join(r.Notes, ";")
	if r.HistogramDropped != 7 || !strings.Contains(notes, "7 latency values were dropped") || !strings.Contains(notes, "3 requests were in flight") {
		t.Fatalf("dropped %d, notes %q", r.HistogramDropped, notes)
	}
	if out := text(t, r); !strings.Contains(out, "p99.99") {
		t.Fatalf("text:\n%s", out)
	}
}

// TestFillAgent: an agent's row counts error statuses as errors.
func TestFillAgent(t *testing.T) {
	a := New(Options{Target: "http://x/", Schedule: constant(100, 2*time.Second, 2), Open: true})
	s := interval(true, 1, 0, 100, 100, 10, 2, 2)
	s.Status[200], s.Status[503] = 90, 10
	s.Errors[proto.ErrConnect] = 2
	s.Censored = 4
	busy(s, 0.25)
	var row Agent
	a.FillAgent(&row, s)
	if row.Requests != 100 || row.Errors != 12 || row.RPS != 50 || row.P99 != 100 || row.Censored != 4 || row.LoopBusy != 0.25 {
		t.Fatalf("row %+v", row)
	}
}
