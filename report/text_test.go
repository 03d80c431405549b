package report

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/barrage-load/barrage/proto"
)

func TestFmtRate(t *testing.T) {
	for _, tc := range []struct {
		r    float64
		want string
	}{
		{0, "0"},
		{0.5, "0.5"},
		{1.0 / 3, "0.3333"},
		{33.3333, "33.33"},
		{999.95, "1000"},
		{1000, "1000"},
		{16666.667, "16667"},
		{30000, "30000"},
	} {
		if got := fmtRate(tc.r); got != tc.want {
			t.Errorf("fmtRate(%v) = %q, want %q", tc.r, got, tc.want)
		}
	}
	if plural(1, "connection", "connections") != "1 connection" || plural(0, "connection", "connections") != "0 connections" {
		t.Fatal("plural")
	}
	if subSat(3, 5) != 0 || subSat(5, 3) != 2 {
		t.Fatal("subSat")
	}
}

// TestHeader: the Load line shows the schedule, not an average: the
// steps' rates and connections, a ramp's ends, a fractional rate, and "1
// connection" in the singular.
func TestHeader(t *testing.T) {
	steps := []proto.Segment{
		{Start: 0, Duration: 3 * time.Second, From: 5000, To: 5000, Connections: 32, Step: 0},
		{Start: 3 * time.Second, Duration: 3 * time.Second, From: 15000, To: 15000, Connections: 32, Step: 1},
		{Start: 6 * time.Second, Duration: 3 * time.Second, From: 30000, To: 30000, Connections: 64, Step: 2},
	}
	var many []proto.Segment
	for i := 0; i < 10; i++ {
		many = append(many, proto.Segment{Start: time.Duration(i) * time.Second, Duration: time.Second, From: float64(1000 * (i + 1)), To: float64(1000 * (i + 1)), Connections: 8, Step: i})
	}
	for _, tc := range []struct {
		name  string
		sched []proto.Segment
		open  bool
		load  string
	}{
		{"steps", steps, true, "Load        open model, 3 steps of 5000 / 15000 / 30000 req/s, 32 / 32 / 64 connections (16667 req/s on average), pipeline 1, 9.00s\n"},
		{"ten steps", many, true, "Load        open model, 10 steps of 1000–10000 req/s, 8 connections (5000 req/s on average), pipeline 1, 9.00s\n"},
		{"ramp", []proto.Segment{{Duration: 9 * time.Second, From: 100, To: 10000, Connections: 64}}, true, "Load        open model, 100→10000 req/s, 64 connections (5050 req/s on average), pipeline 1, 9.00s\n"},
		{"half a request a second", constant(0.5, 9*time.Second, 1), true, "Load        open model, 0.5 req/s, 1 connection, pipeline 1, 9.00s\n"},
		{"closed", constant(0, 9*time.Second, 1), false, "Load        closed model (as fast as the target answers), 1 connection, pipeline 1, 9.00s\n"},
		{"closed steps", []proto.Segment{{Duration: time.Second, Connections: 8}, {Start: time.Second, Duration: 8 * time.Second, Connections: 16, Step: 1}}, false,
			"Load        closed model (as fast as the target answers), 2 steps of 8 / 16 connections, pipeline 1, 9.00s\n"},
	} {
		a := New(Options{Target: "http://x/", Schedule: tc.sched, Pipeline: 1, Open: tc.open})
		r := a.Report(9 * time.Second)
		if out := text(t, r); !strings.Contains(out, tc.load) {
			t.Errorf("%s: want %q in:\n%s", tc.name, tc.load, out)
		}
	}
	a := New(Options{Target: "http://x/", Schedule: steps, Pipeline: 1, Open: true})
	r := a.Report(9 * time.Second)
	if r.TargetRateMin != 5000 || r.TargetRateMax != 30000 || r.ConnectionsMin != 32 || r.Connections != 64 || r.PlannedSeconds != 9 {
		t.Fatalf("rates %v–%v conns %d–%d planned %v", r.TargetRateMin, r.TargetRateMax, r.ConnectionsMin, r.Connections, r.PlannedSeconds)
	}
	r = New(Options{Target: "http://x/", Schedule: constant(0.5, 9*time.Second, 1), Open: true}).Report(9 * time.Second)
	if out := text(t, r); !strings.Contains(out, "(target 0.5 req/s)") {
		t.Fatalf("throughput line:\n%s", out)
	}
}

// TestOutcome: how the test ended is near the top and beside the
// verdict when it did not complete.
func TestOutcome(t *testing.T) {
	a := New(Options{Target: "http://x/", Schedule: constant(100, 10*time.Second, 2), Open: true})
	for seq := 0; seq < 4; seq++ {
		s := openIV(seq, 0, 100, 2, 0.1)
		if seq == 3 { // the partial interval at the stop
			s = openIV(seq, 0, 20, 2, 0.1)
			s.End = 3200 * time.Millisecond
		}
		rec(s.Latency, 100, int64(s.Responses))
		a.Add(s)
	}
	r := a.Report(3200 * time.Millisecond)
	if out := text(t, r); strings.Contains(out, "Outcome") {
		t.Fatalf("no outcome set, yet:\n%s", out)
	}
	r.Outcome = "stopped early (SIGINT)"
	out := text(t, r)
	const want = "Outcome     stopped early (SIGINT) after 3.2 s of 10 s: partial report\n"
	if !strings.HasPrefix(out, "Target      http://x/\n"+want) || !strings.Contains(out, "Verdict     valid: the generator kept its schedule and its connections\n"+want) {
		t.Fatalf("text:\n%s", out)
	}
	if r.ExitCode() != ExitIncomplete {
		t.Fatalf("exit %d", r.ExitCode())
	}
	r.Outcome, r.TakenOverFrom = OutcomeCompleted, "c-0000000001"
	out = text(t, r)
	if !strings.Contains(out, "Outcome     completed; taken over from coordinator c-0000000001\n") || strings.Contains(out, "partial") || r.ExitCode() != ExitOK {
		t.Fatalf("text:\n%s", out)
	}
	m := jsonOf(t, r)
	if m["outcome"] != "completed" || m["taken_over_from"] != "c-0000000001" || m["planned_seconds"] != 10.0 {
		t.Fatalf("json outcome %v from %v planned %v", m["outcome"], m["taken_over_from"], m["planned_seconds"])
	}
}

// TestShedAndCensoredShown: the open model's accounting line (due, sent,
// shed by kind, never sent at the end) and the censored line.
func TestShedAndCensoredShown(t *testing.T) {
	s := openIV(0, 0, 1000, 10, 0.1)
	s.Sent, s.Responses, s.Status[200], s.Unfinished = 900, 895, 895, 5
	s.Shed[proto.ShedBacklog], s.Shed[proto.ShedFenced] = 60, 30
	s.Censored = 15
	rec(s.Latency, 100, 910)
	a := New(Options{Target: "http://x/", Schedule: constant(1000, time.Second, 10), Open: true})
	a.Add(s)
	r := a.Report(time.Second)
	out := text(t, r)
	for _, want := range []string{
		"Due         1000: 900 sent, 90 shed (backlog 60, fenced 30), 10 never sent at the end\n",
		"Censored    15 never answered; their wait is in the percentiles as a lower bound\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("text lacks %q:\n%s", want, out)
		}
	}
	m := jsonOf(t, r)
	shed := m["shed"].(map[string]any)
	if shed["backlog"] != 60.0 || shed["fenced"] != 30.0 || m["censored"] != 15.0 || m["never_sent"] != 10.0 {
		t.Fatalf("json shed %v censored %v never sent %v", shed, m["censored"], m["never_sent"])
	}
	// The closed model has no schedule to account for; no censored line
	// when nothing was censored.
	c := New(Options{Target: "http://x/", Schedule: constant(0, time.Second, 1)})
	c.Add(interval(false, 0, 0, 10, 10, 0, 1, 1))
	out = text(t, c.Report(time.Second))
	if strings.Contains(out, "Due ") || strings.Contains(out, "Censored") {
		t.Fatalf("closed:\n%s", out)
	}
}

// TestJSONFields: the fields the README promises, invalid_reasons an
// empty list (not null, not absent) for a valid run.
func TestJSONFields(t *testing.T) {
	a := New(Options{Target: "http://x/", Schedule: constant(1000, time.Second, 10), Open: true})
	s := openIV(0, 0, 1000, 10, 0.1)
	rec(s.Latency, 100, 1000)
	a.Add(s)
	r := a.Report(time.Second)
	mustValid(t, r)
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(`"invalid_reasons":[]`)) || !bytes.Contains(b, []byte(`"notes":[]`)) {
		t.Fatalf("json: %s", b)
	}
	m := jsonOf(t, r)
	for _, k := range []string{"requests", "sent", "failed", "errors", "http_errors", "unfinished", "duration_seconds", "planned_seconds",
		"rps", "target_rate", "target_rate_min", "target_rate_max", "schedule", "latency_us", "status", "error_kinds", "shed",
		"never_sent", "censored", "server_closes", "steps", "timeline", "outcome", "valid", "no_answers", "invalid_reasons"} {
		if _, ok := m[k]; !ok {
			t.Errorf("json lacks %q", k)
		}
	}
	kinds := m["error_kinds"].(map[string]any)
	for _, k := range []string{"connect", "timeout", "reset", "protocol", "http_4xx", "http_5xx", "http_other"} {
		if _, ok := kinds[k]; !ok {
			t.Errorf("error_kinds lacks %q", k)
		}
	}
}

// TestAgentIntervalsCapped: a row built with more intervals received
// than expected is shown capped, with the surplus named.
func TestAgentIntervalsCapped(t *testing.T) {
	r := &Report{Valid: true, Agents: []Agent{{Name: "a1", Expected: 5, Received: 6, Status: "ok"}, {Name: "a2", Expected: 5, Received: 5, Status: "ok"}}}
	out := text(t, r)
	if strings.Contains(out, "6/5") || !strings.Contains(out, "5/5 (+1 unexpected)") {
		t.Fatalf("text:\n%s", out)
	}
}

func TestFormats(t *testing.T) {
	for us, want := range map[int64]string{999: "999µs", 1500: "1.50ms", 2500000: "2.50s"} {
		if got := fmtUS(us); got != want {
			t.Errorf("fmtUS(%d) = %q, want %q", us, got, want)
		}
	}
	for n, want := range map[uint64]string{10: "10 B", 2048: "2.00 KiB", 3 << 20: "3.00 MiB", 5 << 30: "5.00 GiB"} {
		if got := fmtBytes(n); got != want {
			t.Errorf("fmtBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

// TestClosedModelNotes: values clamped at the histogram's top, and a
// closed-model run whose coordinated-omission-corrected tail is far above
// its service time, are noted.
func TestClosedModelNotes(t *testing.T) {
	s := interval(false, 0, 0, 100, 100, 0, 1, 1)
	rec(s.Corrected, 100, 90)
	rec(s.Corrected, 900000, 10)
	s.Clamped = 2
	a := New(Options{Target: "http://x/", Schedule: constant(0, time.Second, 1)})
	a.Add(s)
	if a.Total().Responses != 100 {
		t.Fatalf("total %d", a.Total().Responses)
	}
	r := a.Report(time.Second)
	notes := strings.Join(r.Notes, ";")
	if !strings.Contains(notes, "2 latencies above 1m0s were recorded as 1m0s") || !strings.Contains(notes, "corrected for coordinated omission p99.9 is 900") {
		t.Fatalf("notes %q", notes)
	}
}
