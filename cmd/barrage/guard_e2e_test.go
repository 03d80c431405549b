package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/barrage-load/barrage/internal/zktest"
)

// Thresholds and graceful degradation end to end: the real binary
// against the real target's misbehaviour modes.

// thresholds returns the report's thresholds by expression.
func thresholds(t *testing.T, rep map[string]any) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	ts, _ := rep["thresholds"].([]any)
	for _, x := range ts {
		m := x.(map[string]any)
		out[m["expr"].(string)] = m
	}
	return out
}

func writePlan(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "plan.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestThresholdsRateLimit is the seed's rate-limit validation as a plan:
// against a target that answers 429 above 1000 req/s, 1500 req/s gets
// 429s for a third of its requests (the thresholds pass, exit 0); 900
// req/s gets none (status_429 > 10% fails, exit 3).
func TestThresholdsRateLimit(t *testing.T) {
	url := startTarget(t, "--rate-limit", "1000")
	for _, tc := range []struct {
		rate string
		code int
		ok   bool
	}{
		{"1500", 0, true},
		{"900", 3, false},
	} {
		plan := writePlan(t, "target_url: "+url+"\nrate: "+tc.rate+"\nduration: 3s\nconnections: 32\n"+
			"thresholds: [\"status_429 > 10%\", \"p99 < 5s\"]\n")
		r := runReport(t, "run", "-q", "--cores", "1", "-f", plan, "--json", "-")
		th := thresholds(t, r.report)
		if r.code != tc.code || len(th) != 2 {
			t.Fatalf("%s req/s: exit %d (want %d), thresholds %v\n%s", tc.rate, r.code, tc.code, r.report["thresholds"], r.stderr)
		}
		s429 := th["status_429 > 10%"]
		if s429["ok"] != tc.ok || s429["unit"] != "%" || th["p99 < 5s"]["ok"] != true {
			t.Fatalf("%s req/s: %v", tc.rate, r.report["thresholds"])
		}
		// The value is what the report's status counts say.
		n429, _ := r.report["status"].(map[string]any)["429"].(float64) // absent when none
		share := 100 * n429 / num(t, r.report, "requests")
		if v := num(t, s429, "value"); v < share-0.01 || v > share+0.01 {
			t.Fatalf("%s req/s: status_429 value %v, the report's counts say %v%%", tc.rate, v, share)
		}
		if !strings.Contains(r.stderr, "Thresholds  ") {
			t.Fatalf("no thresholds section:\n%s", r.stderr)
		}
		t.Logf("%s req/s: status_429 %.1f%%, exit %d", tc.rate, share, r.code)
	}
}

// TestThresholdBadInput: a bad expression, from a flag or a plan, stops
// the command before it runs, in one line with the column (exit 2).
func TestThresholdBadInput(t *testing.T) {
	plan := writePlan(t, "target_url: http://127.0.0.1:1/\nrate: 10\nthresholds: [\"p99 < 1s\", \"errors{kind=slow} < 1%\"]\n")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "--threshold", "p99 < 25xs", "http://127.0.0.1:1/"}, `threshold "p99 < 25xs": column 9: unknown unit "xs"`},
		{[]string{"run", "-f", plan}, `column 13: unknown error kind "slow"`},
		{[]string{"run", "--threshold", "rps >= 99% target", "http://127.0.0.1:1/"}, "needs the open model"},
		{[]string{"run", "-r", "10", "--degrade", "error_rate=50", "http://127.0.0.1:1/"}, "not a share"},
		{[]string{"run", "-r", "10", "--abort-on-fail", "5s", "http://127.0.0.1:1/"}, "abort_on_fail needs thresholds"},
		{[]string{"coord", "--zk", "127.0.0.1:1", "--threshold", "p99 <", "http://127.0.0.1:1/"}, "want a limit"},
		{[]string{"find", "--threshold", "p99 < 1ss", "http://127.0.0.1:1/"}, `unknown unit "ss"`},
	} {
		r := barrage(t, tc.args...)
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		if r.code != 2 || len(lines) != 1 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q (want one line with %q)", tc.args, r.code, r.stderr, tc.want)
		}
	}
}

// TestAbortOnFail: a target slower than the threshold stops the test
// once the grace has passed, with exit 3 and the reason in the outcome.
func TestAbortOnFail(t *testing.T) {
	url := startTarget(t, "--delay", "200ms")
	start := time.Now()
	r := runReport(t, "run", "-q", "--cores", "1", "-r", "200", "-c", "64", "-d", "30s",
		"--threshold", "p99 < 50ms", "--threshold", "errors < 1%", "--abort-on-fail", "2s", "--json", "-", url)
	th := thresholds(t, r.report)
	p99 := th["p99 < 50ms"]
	if r.code != 3 || p99["ok"] != false || !strings.Contains(p99["aborted"].(string), "threshold p99 < 50ms failed") ||
		th["errors < 1%"]["ok"] != true {
		t.Fatalf("exit %d, thresholds %v\n%s", r.code, r.report["thresholds"], r.stderr)
	}
	if o := r.report["outcome"].(string); !strings.HasPrefix(o, "stopped: threshold p99 < 50ms failed") {
		t.Fatalf("outcome %q", o)
	}
	// Stopped well before its 30 s (the grace is 2 s; a loaded machine
	// closes intervals late, never 20 s late).
	if d := num(t, r.report, "duration_seconds"); d > 20 || time.Since(start) > 25*time.Second {
		t.Fatalf("ran %v s", d)
	}
}

// TestDegradeHalvesOnce: against a target failing 60% of its responses
// the rate halves once (the next decision needs 3 s of the lowered load,
// which the 6 s test does not have), and the report says why.
func TestDegradeHalvesOnce(t *testing.T) {
	url := startTarget(t, "--fail-rate", "0.6")
	plan := writePlan(t, "target_url: "+url+"\nrate: 400\nduration: 6s\nconnections: 16\n"+
		"degrade: {error_rate: 50%, for: 3s, factor: 0.5, stop_above: 80%}\n")
	r := runReport(t, "run", "-q", "--cores", "1", "-f", plan, "--json", "-")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	d, _ := r.report["degradation"].(map[string]any)
	acts, _ := d["actions"].([]any)
	if len(acts) != 1 || d["asked"] != "400 req/s" {
		t.Fatalf("degradation %v", d)
	}
	a := acts[0].(map[string]any)
	if a["what"] != "rate" || num(t, a, "from") != 400 || num(t, a, "to") != 200 || num(t, a, "error_rate") <= 50 || num(t, a, "at_seconds") < 4 {
		t.Fatalf("action %v", a)
	}
	// Its own step row: asked 200 req/s from the change on.
	steps, _ := r.report["steps"].([]any)
	if len(steps) != 2 || num(t, steps[1].(map[string]any), "target_rate") != 200 || num(t, steps[1].(map[string]any), "start_seconds") != num(t, a, "at_seconds") {
		t.Fatalf("steps %v", r.report["steps"])
	}
	var ev []string
	for _, e := range r.report["events"].([]any) {
		if m := e.(map[string]any); m["kind"] == "degrade" {
			ev = append(ev, m["text"].(string))
		}
	}
	if len(ev) != 1 || !strings.Contains(ev[0], "are above 50%: rate 400 → 200") {
		t.Fatalf("events %q", ev)
	}
	for _, s := range []string{"Degradation  the plan asked 400 req/s", "rate 400 → 200 req/s because of", "errors over 0.0s–3.0s"} {
		if !strings.Contains(r.stderr, s) {
			t.Fatalf("text report lacks %q:\n%s", s, r.stderr)
		}
	}
	checkAccounting(t, r.report)
}

// TestDegradeStops: against a target failing 90%, the test stops once
// the errors have stayed above stop_above for the window: exit 1, the
// outcome says why.
func TestDegradeStops(t *testing.T) {
	url := startTarget(t, "--fail-rate", "0.9")
	r := runReport(t, "run", "-q", "--cores", "1", "-r", "400", "-c", "16", "-d", "30s",
		"--degrade", "error_rate=50%,for=2s,stop_above=80%", "--json", "-", url)
	o, _ := r.report["outcome"].(string)
	if r.code != 1 || !strings.Contains(o, "stopped: degrade: errors") || !strings.Contains(o, "are above stop_above 80%") {
		t.Fatalf("exit %d, outcome %q\n%s", r.code, o, r.stderr)
	}
	d, _ := r.report["degradation"].(map[string]any)
	if acts, _ := d["actions"].([]any); len(acts) != 0 || d["stopped"] == "" {
		t.Fatalf("degradation %v", d)
	}
	if num(t, r.report, "duration_seconds") > 20 {
		t.Fatalf("ran %v s", r.report["duration_seconds"])
	}
	if !strings.Contains(r.stderr, "stopped the test: degrade: errors") {
		t.Fatalf("text:\n%s", r.stderr)
	}
}

// TestClusterThresholds: through the coordinator, thresholds are judged
// on the fleet's merged intervals, and a live abort stops the test
// through the coordinator (exit 3, not the stop node's 1).
func TestClusterThresholds(t *testing.T) {
	zk := zktest.Start(t)
	url := startTarget(t, "--delay", "100ms")
	startAgents(t, zk.Addr, 2)
	out := filepath.Join(t.TempDir(), "r.json")
	c := startProc(t, nil, "coord", "--zk", zk.Addr, "--agents", "2", "-c", "32", "-r", "200", "-d", "30s",
		"--threshold", "p99 < 20ms", "--threshold", "p50 > 90ms", "--abort-on-fail", "2s", "--json", out, url)
	if code := c.wait(t, 60*time.Second); code != 3 {
		t.Fatalf("coord exit %d (want 3):\n%s", code, c.log.String())
	}
	rep := readReport(t, out)
	th := thresholds(t, rep)
	if th["p99 < 20ms"]["ok"] != false || th["p99 < 20ms"]["aborted"] == nil || th["p50 > 90ms"]["ok"] != true {
		t.Fatalf("thresholds %v", rep["thresholds"])
	}
	if o := rep["outcome"].(string); !strings.Contains(o, "threshold p99 < 20ms failed") {
		t.Fatalf("outcome %q", o)
	}
	if len(agentsOf(t, rep)) != 2 {
		t.Fatalf("agents %v", rep["agents"])
	}
}
