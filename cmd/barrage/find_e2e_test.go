package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/barrage-load/barrage/internal/zktest"
)

// barrage find end to end: the real binary against the built-in target
// with a capacity (a queue that serves at most N req/s: past N, latency
// climbs without bound), in run and through the coordinator.
//
// The machine is shared and loaded: when the generator's sends go out
// late enough to explain a broken SLO, the search says the generator is
// the limit instead of giving a number; a target starved of CPU may break
// the SLO even at the lowest rate. Those are right answers too; the test
// then checks that the search says so, and why. A number, when given, must
// be near the capacity: at most the resolution plus what the backlog of a
// step just over it takes to break the SLO above it, and not under half
// of it (the target starved of CPU serves less).

const findCapacity = 2000

// findArgs are a short search: steps of 2 s after 1 s of settling, 10%:
// 750, 1500, 3000 (broken), then 2250 (broken), 1875 (held: not the
// backlog of the broken steps), 2063: the answer is 1875.
var findArgs = []string{"--threshold", "p99 < 200ms", "--min-rate", "750", "--max-rate", "8000",
	"--step", "2s", "--settle", "1s", "--warmup", "2s", "--resolution", "10%", "-c", "64"}

type findOut struct {
	Steps []struct {
		Rate     float64 `json:"rate"`
		Achieved float64 `json:"achieved"`
		Valid    bool    `json:"valid"`
		SLO      bool    `json:"slo_ok"`
		Lateness string  `json:"lateness"`
	} `json:"steps"`
	Sustainable float64        `json:"sustainable"`
	Broke       float64        `json:"broke_at"`
	Limit       string         `json:"limit"`
	Reason      string         `json:"reason"`
	Found       bool           `json:"found"`
	Answer      string         `json:"answer"`
	Report      map[string]any `json:"report"`
}

// checkFind checks a search's exit status, table (unless "") and JSON.
func checkFind(t *testing.T, code int, table string, out findOut) {
	t.Helper()
	t.Logf("exit %d\n%s", code, table)
	if table != "" && (!strings.Contains(table, "rate/s  achieved/s") || !strings.Contains(table, out.Answer)) {
		t.Fatalf("table:\n%s\nJSON answer %q", table, out.Answer)
	}
	if len(out.Steps) < 1 {
		t.Fatalf("no step: %+v", out)
	}
	// The first steps double from the lowest rate.
	if out.Steps[0].Rate != 750 || (len(out.Steps) > 1 && out.Steps[1].Rate != 1500) {
		t.Fatalf("steps %+v", out.Steps)
	}
	switch out.Limit {
	case "slo":
		if code != 0 || !out.Found || !strings.HasPrefix(out.Answer, "sustainable: ") {
			t.Fatalf("exit %d, %+v", code, out)
		}
		if out.Sustainable < findCapacity/2 || out.Sustainable > 1.15*findCapacity || out.Broke <= out.Sustainable ||
			out.Broke > out.Sustainable*1.1+1 {
			t.Fatalf("sustainable %v, broke at %v, for a capacity of %d", out.Sustainable, out.Broke, findCapacity)
		}
		// The bisection measured the target, not the backlog the broken
		// steps left: a step after the first break held (1875 req/s, under
		// the capacity), so the answer is above the last doubling's.
		if out.Sustainable <= 1500 {
			t.Fatalf("no step held after the first break (the backlog carried over?): %+v", out.Steps)
		}
	case "generator":
		// Only a step that does not count may have ended it.
		last := out.Steps[len(out.Steps)-1]
		if code != 1 || out.Found || (last.Valid && last.Lateness == "") || !strings.Contains(out.Reason, "is the limit, not the target") {
			t.Fatalf("exit %d, %+v", code, out)
		}
		t.Logf("the generator was the limit on this machine: %s", out.Reason)
	case "min":
		// A target starved of CPU (another process's load on this shared
		// machine) can break the SLO at the lowest rate: the search says
		// so, with the step that shows it, and exits 3.
		first := out.Steps[0]
		if code != 3 || out.Found || len(out.Steps) != 1 || first.SLO || !first.Valid || !strings.HasPrefix(out.Answer, "no sustainable rate: ") {
			t.Fatalf("exit %d, %+v", code, out)
		}
		t.Logf("the target broke the SLO at the lowest rate on this machine: %s", out.Answer)
	default:
		t.Fatalf("exit %d, limit %q: %s", code, out.Limit, out.Reason)
	}
	// A step held must be at or under the capacity's reach; the steps at
	// twice the capacity cannot have held.
	for _, s := range out.Steps {
		if s.Rate >= 2*findCapacity && s.SLO {
			t.Fatalf("the SLO held at %v req/s against a capacity of %d", s.Rate, findCapacity)
		}
	}
}

func TestFindLocal(t *testing.T) {
	url := startTarget(t, "--capacity", "2000")
	dir := t.TempDir()
	js := filepath.Join(dir, "find.json")
	start := time.Now()
	r := barrage(t, append(append([]string{"find", "-q", "--cores", "1", "--json", js}, findArgs...), url)...)
	var out findOut
	b, err := os.ReadFile(js)
	if err != nil {
		t.Fatalf("exit %d, no JSON: %v\n%s", r.code, err, r.stderr)
	}
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	checkFind(t, r.code, r.stdout, out)
	// The steps are live changes of one test: its report has one step
	// row per rate, besides the pauses (rate 0) that drain the backlog a
	// broken step left.
	steps, _ := out.Report["steps"].([]any)
	var loaded []float64
	var rows []string
	for _, s := range steps {
		m, _ := s.(map[string]any)
		r, _ := m["target_rate_max"].(float64)
		rows = append(rows, fmt.Sprintf("%v %q %.0f/s", m["step"], m["label"], r))
		if r > 0 {
			loaded = append(loaded, r)
		}
	}
	if len(loaded) != len(out.Steps) {
		t.Fatalf("the test's report has %d steps with load, the search %d:\n%s", len(loaded), len(out.Steps), strings.Join(rows, "\n"))
	}
	for i, s := range out.Steps {
		if math.Abs(loaded[i]-s.Rate) > 0.5 {
			t.Fatalf("report step %d ran at %.0f/s, the search's step at %v:\n%s", i+1, loaded[i], s.Rate, strings.Join(rows, "\n"))
		}
	}
	t.Logf("took %s", time.Since(start).Round(time.Second))
}

// TestFindFleet: the same search through the coordinator and two agents.
func TestFindFleet(t *testing.T) {
	zk := zktest.Start(t)
	url := startTarget(t, "--capacity", "2000")
	startAgents(t, zk.Addr, 2)
	js := filepath.Join(t.TempDir(), "find.json")
	f := startProc(t, nil, append(append([]string{"find", "--zk", zk.Addr, "--agents", "2", "--json", js}, findArgs...), url)...)
	code := f.wait(t, 90*time.Second)
	b, err := os.ReadFile(js)
	if err != nil {
		t.Fatalf("exit %d, no JSON: %v\n%s", code, err, f.log.String())
	}
	var out findOut
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	t.Logf("coordinator's log:\n%s", f.log.String())
	checkFind(t, code, "", out)
	if agents, _ := out.Report["agents"].([]any); len(agents) != 2 {
		t.Fatalf("agents %v", out.Report["agents"])
	}
	if out.Limit == "generator" && !strings.Contains(out.Reason, "the fleet is the limit") {
		t.Fatalf("reason %q", out.Reason)
	}
}

// TestFindBadInput: what the search refuses (exit 2, one line).
func TestFindBadInput(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"find", "http://127.0.0.1:1/"}, "give the SLO"},
		{[]string{"find", "--threshold", "p99 < 1s", "-r", "100", "http://127.0.0.1:1/"}, "sets the rate and the duration itself"},
		{[]string{"find", "--threshold", "p99{step=2} < 1s", "http://127.0.0.1:1/"}, "drop step="},
		{[]string{"find", "--threshold", "p99 < 1s", "--min-rate", "0", "http://127.0.0.1:1/"}, "--min-rate 0"},
		{[]string{"find", "--threshold", "p99 < 1s", "--resolution", "150%", "http://127.0.0.1:1/"}, "--resolution"},
		{[]string{"find", "--threshold", "p99 < 1s", "--step", "10ms", "http://127.0.0.1:1/"}, "--step 10ms"},
	} {
		r := barrage(t, tc.args...)
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		if r.code != 2 || len(lines) != 1 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q (want one line with %q)", tc.args, r.code, r.stderr, tc.want)
		}
	}
	// A target that is not there: exit 1.
	r := barrage(t, "find", "-q", "--threshold", "p99 < 1s", "-c", "4", "http://127.0.0.1:1/")
	if r.code != 1 || !strings.Contains(r.stderr, "could not open any connection") {
		t.Errorf("unreachable: exit %d, %q", r.code, r.stderr)
	}
}
