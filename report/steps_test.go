package report

import (
	"strings"
	"testing"
	"time"

	"github.com/barrage-load/barrage/proto"
)

// stepIV is interval seq of step, with n requests sent and answered, some
// of them 500s, one failed and one shed.
func stepIV(seq, step int, n uint64) *proto.Stats {
	s := openIV(seq, step, n, 10, 0.2)
	s.Status[200], s.Status[500] = n-3, 2
	s.Responses = n - 1
	s.Errors[proto.ErrReset] = 1
	s.Scheduled = n + 1
	s.Shed[proto.ShedBacklog] = 1
	s.Censored = 1
	rec(s.Latency, 100, int64(n))
	rec(s.Lateness, 10, int64(n))
	return s
}

// sumSteps checks that the rows add up to the totals.
func sumSteps(t *testing.T, r *Report) {
	t.Helper()
	var sent, req, failed, errs, shed, cens uint64
	var lat int64
	for _, s := range r.Steps {
		sent += s.Sent
		req += s.Requests
		failed += s.Failed
		errs += s.Errors
		shed += s.Shed
		cens += s.Censored
		lat += s.Latency.Count
	}
	var totalShed uint64
	for _, n := range r.Shed {
		totalShed += n
	}
	if sent != r.Sent || req != r.Requests || failed != r.Failed || errs != r.Errors || shed != totalShed || cens != r.Censored || lat != r.Latency.Count {
		t.Fatalf("steps sum to sent %d requests %d failed %d errors %d shed %d censored %d latencies %d; totals %d %d %d %d %d %d %d",
			sent, req, failed, errs, shed, cens, lat, r.Sent, r.Requests, r.Failed, r.Errors, totalShed, r.Censored, r.Latency.Count)
	}
}

// TestStepsNotContiguous: three steps whose ids are not in time order
// (5, 0, 3: a live change numbers its step after the plan's) give three
// numbered rows in time order, each with its own counts, that add up to
// the totals.
func TestStepsNotContiguous(t *testing.T) {
	sched := []proto.Segment{
		{Start: 0, Duration: 2 * time.Second, From: 1000, To: 1000, Connections: 10, Step: 5},
		{Start: 2 * time.Second, Duration: 2 * time.Second, From: 2000, To: 2000, Connections: 10, Step: 0},
		{Start: 4 * time.Second, Duration: 2 * time.Second, From: 3000, To: 3000, Connections: 20, Step: 3},
	}
	a := New(Options{Target: "http://x/", Schedule: sched, Open: true, Pipeline: 1})
	// Intervals arrive out of order too (a coordinator merges by seq).
	for _, seq := range []int{0, 2, 1, 3, 5, 4} {
		g := sched[seq/2]
		a.Add(stepIV(seq, g.Step, uint64(g.From)))
	}
	a.StepNote(0, "set at 2.0s")
	r := a.Report(6 * time.Second)
	if len(r.Steps) != 3 {
		t.Fatalf("%d rows: %+v", len(r.Steps), r.Steps)
	}
	for i, want := range []struct {
		step  int
		label string
		sent  uint64
		rate  float64
		note  string
		start float64
	}{
		{6, "2s @1000/s c=10", 2000, 1000, "", 0},
		{1, "2s @2000/s c=10", 4000, 2000, "set at 2.0s", 2},
		{4, "2s @3000/s c=20", 6000, 3000, "", 4},
	} {
		s := r.Steps[i]
		if s.Step != want.step || s.Label != want.label || s.Sent != want.sent || s.Requests != want.sent-2 || s.TargetRate != want.rate ||
			s.Note != want.note || s.StartSeconds != want.start || s.DurationSeconds != 2 || s.RPS != float64(want.sent-2)/2 {
			t.Errorf("row %d: %+v", i, s)
		}
	}
	sumSteps(t, r)
	out := text(t, r)
	for _, want := range []string{"#  plan", "note", "set at 2.0s", "  6  2s @1000/s c=10  2000"} {
		if !strings.Contains(out, want) {
			t.Errorf("text lacks %q:\n%s", want, out)
		}
	}
}

// TestStepSeveralSegments: a constant plan edited by two live rate
// changes that kept its step id is one row (not three rows each carrying
// the whole test) whose label shows its rate range; steps seen in
// intervals but not in the schedule still get a row, so the sums hold.
func TestStepSeveralSegments(t *testing.T) {
	sched := []proto.Segment{
		{Start: 0, Duration: 2 * time.Second, From: 1000, To: 1000, Connections: 10},
		{Start: 2 * time.Second, Duration: 2 * time.Second, From: 1500, To: 1500, Connections: 10},
		{Start: 4 * time.Second, Duration: 2 * time.Second, From: 500, To: 500, Connections: 12},
	}
	a := New(Options{Target: "http://x/", Schedule: sched, Open: true})
	for seq := 0; seq < 6; seq++ {
		a.Add(stepIV(seq, 0, uint64(sched[seq/2].From)))
	}
	a.Add(stepIV(6, 9, 100)) // a step the schedule does not know
	r := a.Report(7 * time.Second)
	if len(r.Steps) != 2 {
		t.Fatalf("%d rows: %+v", len(r.Steps), r.Steps)
	}
	s := r.Steps[0]
	if s.Step != 1 || s.Label != "6s @500–1500/s c=10–12" || s.Sent != 6000 || s.TargetRate != 1000 || s.TargetRateMin != 500 || s.TargetRateMax != 1500 {
		t.Fatalf("row %+v", s)
	}
	if x := r.Steps[1]; x.Step != 10 || x.Label != "step 10 (not in the schedule)" || x.Sent != 100 {
		t.Fatalf("extra row %+v", x)
	}
	sumSteps(t, r)
	if out := text(t, r); !strings.Contains(out, "500–1500") {
		t.Fatalf("text:\n%s", out)
	}
}

// TestStepsStoppedEarly: rows exist for the steps that ran; the target
// rate of a step cut short is what was asked over the part that ran.
func TestStepsStoppedEarly(t *testing.T) {
	sched := []proto.Segment{
		{Start: 0, Duration: 2 * time.Second, From: 0, To: 2000, Connections: 4, Step: 0},
		{Start: 2 * time.Second, Duration: 2 * time.Second, From: 3000, To: 3000, Connections: 4, Step: 1},
	}
	a := New(Options{Target: "http://x/", Schedule: sched, Open: true})
	a.Add(stepIV(0, 0, 500))
	r := a.Report(time.Second)
	if len(r.Steps) != 1 || r.Steps[0].TargetRate != 500 || r.Steps[0].Label != "2s 0→2000/s c=4" || r.TargetRate != 500 {
		t.Fatalf("rows %+v target %v", r.Steps, r.TargetRate)
	}
	sumSteps(t, r)
}

func TestPlannedRate(t *testing.T) {
	sched := []proto.Segment{
		{Start: 0, Duration: 10 * time.Second, From: 0, To: 1000, Connections: 4},
		{Start: 10 * time.Second, Duration: 5 * time.Second, From: 300, To: 300, Connections: 4, Step: 1},
	}
	for _, tc := range []struct {
		from, to time.Duration
		want     float64
	}{
		{0, time.Second, 50},                     // ramp: the mean over its first second
		{9 * time.Second, 11 * time.Second, 625}, // (950 + 300) / 2
		{12 * time.Second, 13 * time.Second, 300},
		{20 * time.Second, 21 * time.Second, 0}, // past the end
	} {
		if got := PlannedRate(sched, tc.from, tc.to); got < tc.want-1e-9 || got > tc.want+1e-9 {
			t.Errorf("PlannedRate(%s, %s) = %v, want %v", tc.from, tc.to, got, tc.want)
		}
	}
}
