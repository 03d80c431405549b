package main

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/barrage-load/barrage/internal/zktest"
)

// Retries and the circuit breaker, end to end: the real binary against
// the real built-in target misbehaving on purpose. Every assertion is on
// counts the run reports about itself (never on free CPU), and every run
// is bounded in time.

// retryFlags retry 5xx answers, up to 10 attempts in all, with short backoffs: with
// the target failing 20% of its answers at random, a request fails all
// 10 attempts with probability 0.2^10 (1e-7): every request ends OK.
var retryFlags = []string{"--retry", "10", "--retry-on", "5xx", "--retry-base", "1ms", "--retry-max-delay", "10ms"}

// retriesOfReport returns the report's retries section.
func retriesOfReport(t *testing.T, rep map[string]any) map[string]any {
	t.Helper()
	r, ok := rep["retries"].(map[string]any)
	if !ok {
		t.Fatalf("no retries section in the report: %v", rep)
	}
	return r
}

// sumOf adds up a counter map of the report (absent: 0).
func sumOf(m map[string]any, key string) float64 {
	var n float64
	if mm, ok := m[key].(map[string]any); ok {
		for _, v := range mm {
			n += v.(float64)
		}
	}
	return n
}

// numOr is the number at path, or 0 when absent.
func numOr(m map[string]any, path ...string) float64 {
	var v any = m
	for _, p := range path {
		mm, ok := v.(map[string]any)
		if !ok {
			return 0
		}
		v = mm[p]
	}
	f, _ := v.(float64)
	return f
}

// checkRetries asserts the retry identities on a JSON report: attempts
// are every request sent (logical + retries); the retries by cause add up
// to the retries; every 5xx answer was retried, or ended the request
// (exhausted), or its retry was dropped; every logical request has one
// end-to-end latency (in flight at the end: a lower bound). It returns
// the section.
func checkRetries(t *testing.T, rep map[string]any) map[string]any {
	t.Helper()
	checkAccounting(t, rep)
	rs := retriesOfReport(t, rep)
	att, logical, retries := num(t, rs, "attempts"), num(t, rs, "logical"), num(t, rs, "retries")
	if att != num(t, rep, "sent") || att != logical+retries {
		t.Fatalf("attempts %v, sent %v, logical %v + retries %v", att, rep["sent"], logical, retries)
	}
	// Never more than told: at most max-1 retries per request (max is
	// the attempts in all).
	if max := 9.0; retries > max*logical {
		t.Fatalf("%v retries for %v requests, more than %v each", retries, logical, max)
	}
	if c := sumOf(rs, "by_cause"); c != retries {
		t.Fatalf("retries by cause %v sum to %v, not %v", rs["by_cause"], c, retries)
	}
	fails := numOr(rep, "status", "503")
	if got := numOr(rs, "by_cause", "5xx") + num(t, rs, "exhausted") + sumOf(rs, "dropped"); got != fails {
		t.Fatalf("503 answers %v != retried %v + exhausted %v + dropped %v", fails, rs["by_cause"], rs["exhausted"], rs["dropped"])
	}
	if n := num(t, rs, "end_to_end_us", "count"); n != logical {
		t.Fatalf("end-to-end latencies %v for %v requests", n, logical)
	}
	return rs
}

func TestRetryClosedModel(t *testing.T) {
	url := startTarget(t, "--fail-rate", "0.2")
	args := append([]string{"run", "-q", "--cores", "1", "-c", "4", "-d", "2s", "--json", "-"}, retryFlags...)
	r := barrage(t, append(args, url)...)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	rep := r.report
	rs := checkRetries(t, rep)
	retries, fails := num(t, rs, "retries"), numOr(rep, "status", "503")
	if fails < 100 || retries < 100 {
		t.Fatalf("only %v failures and %v retries: the target did not fail as asked", fails, retries)
	}
	// Every logical request ended OK: none exhausted, none dropped but
	// those waiting when the run ended.
	if ex, dr := num(t, rs, "exhausted"), sumOf(rs, "dropped")-numOr(rs, "dropped", "end"); ex != 0 || dr != 0 {
		t.Fatalf("exhausted %v, dropped %v", ex, rs["dropped"])
	}
	if num(t, rs, "succeeded_after_retry") == 0 {
		t.Fatal("no request succeeded after a retry")
	}
	// What a caller sees includes the failed attempts and the backoffs:
	// in the closed model a request's end-to-end latency is at least the
	// sum of its attempts', so its mean is at least an attempt's.
	if e2e, att := num(t, rs, "end_to_end_us", "mean"), num(t, rep, "latency_us", "mean"); e2e < 0.99*att {
		t.Fatalf("end-to-end mean %vµs below the per-attempt mean %vµs", e2e, att)
	}
	if !strings.Contains(r.stderr, "Retries ") || !strings.Contains(r.stderr, "end to end (retries)") {
		t.Fatalf("text report lacks the retries:\n%s", r.stderr)
	}
}

func TestRetryOpenModel(t *testing.T) {
	url := startTarget(t, "--fail-rate", "0.2")
	args := append([]string{"run", "-q", "-c", "16", "-r", "1000", "-d", "2s", "--json", "-"}, retryFlags...)
	r := barrage(t, append(args, url)...)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	rep := r.report
	rs := checkRetries(t, rep)
	sched, logical, retries := num(t, rep, "scheduled"), num(t, rs, "logical"), num(t, rs, "retries")
	// The schedule's 2000 requests are the logical ones: the retries are
	// on top, never taken out of its budget.
	if math.Abs(sched-2000) > 20 {
		t.Fatalf("scheduled %v, the schedule asks 2000", sched)
	}
	if got := logical + sumOf(rep, "shed") + num(t, rep, "never_sent"); got != sched {
		t.Fatalf("logical %v + shed %v + never sent %v != scheduled %v", logical, rep["shed"], rep["never_sent"], sched)
	}
	if retries < 100 || num(t, rep, "sent") <= sched {
		t.Fatalf("retries %v, sent %v of %v scheduled: the retries are not extra load", retries, rep["sent"], sched)
	}
	want := itoa(int(sched)) + " scheduled + " + itoa(int(retries)) + " retries"
	if !strings.Contains(r.stderr, want) {
		t.Fatalf("text report lacks %q:\n%s", want, r.stderr)
	}
	// A shortfall the retries would hide is not there: the verdict judges
	// the schedule on first sends.
	if rep["valid"] != true {
		t.Logf("not valid (loaded machine?): %s", reasons(rep))
	}
}

// TestBreakerOpensAndCloses runs the open model against a target with an
// outage of 1s starting 3s after its start: the breaker opens, sheds what
// comes due while open, probes, and closes after the outage ends. The
// next outage (at 6s) comes after the run's end (4.5s from a start later
// than the target's).
func TestBreakerOpensAndCloses(t *testing.T) {
	url := startTarget(t, "--fail-every", "3s", "--fail-for", "1s")
	start := time.Now()
	r := barrage(t, "run", "-q", "-c", "16", "-r", "1000", "-d", "4.5s", "--retry", "2", "--retry-base", "1ms",
		"--breaker", "window=500ms,min_calls=20,error_rate=50%,open_for=300ms,half_open_probes=3", "--json", "-", url)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if time.Since(start) > 6*time.Second {
		t.Logf("run started late: the target's second outage may fall inside it")
	}
	rep := r.report
	checkRetries(t, rep)
	circuit := num(t, rep, "shed", "circuit")
	if circuit == 0 {
		t.Fatalf("nothing shed with the circuit open: %v", rep["shed"])
	}
	// Shed requests are never sent, never answered, never a latency.
	rs := retriesOfReport(t, rep)
	sched := num(t, rep, "scheduled")
	if got := num(t, rs, "logical") + sumOf(rep, "shed") + num(t, rep, "never_sent"); got != sched {
		t.Fatalf("logical %v + shed %v + never sent %v != scheduled %v", rs["logical"], rep["shed"], rep["never_sent"], sched)
	}
	if n, want := num(t, rep, "latency_us", "count"), num(t, rep, "requests")+num(t, rep, "censored"); n != want {
		t.Fatalf("%v latencies for %v answers + %v censored", n, rep["requests"], rep["censored"])
	}
	// The transitions are also in the JSON timeline, in their intervals.
	var inTimeline int
	for _, p := range rep["timeline"].([]any) {
		pt := p.(map[string]any)
		bk, _ := pt["breaker"].([]any)
		for _, e := range bk {
			// Never in an interval before its time (a transition the
			// breaker recorded late may land in the next one).
			if at := num(t, e.(map[string]any), "at_seconds"); at > num(t, pt, "end_seconds") {
				t.Fatalf("transition at %vs in the interval %v-%v", at, pt["start_seconds"], pt["end_seconds"])
			}
			inTimeline++
		}
	}
	if evs := countKind(rep, "breaker"); inTimeline != evs {
		t.Fatalf("%d transitions in the timeline, %d in the events", inTimeline, evs)
	}
	if opened, closed := checkTransitions(t, rep, ""); opened == 0 || closed == 0 {
		t.Fatalf("breaker opened %d and closed %d times: %v", opened, closed, rep["events"])
	}
	if !strings.Contains(r.stderr, "Circuit ") || !strings.Contains(r.stderr, "circuit open") {
		t.Fatalf("text report lacks the circuit:\n%s", r.stderr)
	}
}

// countKind counts the report's events of a kind.
func countKind(rep map[string]any, kind string) int {
	n := 0
	evs, _ := rep["events"].([]any)
	for _, e := range evs {
		if e.(map[string]any)["kind"] == kind {
			n++
		}
	}
	return n
}

// checkTransitions asserts that the breaker events of one generator
// (agent: its name in a fleet, "" for run) are in time order and each
// legal: closed -> open -> half-open -> open or closed. It returns how
// many times it opened and closed.
func checkTransitions(t *testing.T, rep map[string]any, agent string) (opened, closed int) {
	t.Helper()
	evs, _ := rep["events"].([]any)
	state := "closed"
	var last float64
	for _, e := range evs {
		m := e.(map[string]any)
		if m["kind"] != "breaker" {
			continue
		}
		at, text := num(t, m, "at_seconds"), m["text"].(string)
		if agent != "" {
			if !strings.HasPrefix(text, agent+": ") {
				continue
			}
			text = strings.TrimPrefix(text, agent+": ")
		}
		if at < last {
			t.Fatalf("breaker events out of order: %v", evs)
		}
		last = at
		next := strings.Fields(strings.TrimPrefix(text, "circuit "))[0]
		ok := next == "open" && (state == "closed" || state == "half-open") ||
			next == "half-open" && state == "open" ||
			next == "closed" && state == "half-open"
		if !ok {
			t.Fatalf("%sbreaker went from %s to %s at %.2fs: %v", agent, state, next, at, evs)
		}
		state = next
		switch next {
		case "open":
			opened++
		case "closed":
			closed++
		}
	}
	return opened, closed
}

// TestBreakerFleet: each agent has its own breaker; both open on the
// target's outage and close after it, their transitions in the test's
// events named by agent, their sheds merged. The outage is at 4-5s of the
// target's time; the test starts at least 1s after the target, so the
// breakers close before its end at 5s.
func TestBreakerFleet(t *testing.T) {
	zk := zktest.Start(t)
	url := startTarget(t, "--fail-every", "4s", "--fail-for", "1s")
	t0 := time.Now()
	startAgents(t, zk.Addr, 2)
	time.Sleep(time.Second - time.Since(t0))
	out := filepath.Join(t.TempDir(), "r.json")
	c := startProc(t, nil, "coord", "--zk", zk.Addr, "--agents", "2", "-c", "16", "-r", "1000", "-d", "5s", "--json", out,
		"--breaker", "window=500ms,min_calls=10,error_rate=50%,open_for=300ms,half_open_probes=3", url)
	if code := c.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("coord exit %d:\n%s", code, c.log.String())
	}
	rep := readReport(t, out)
	if num(t, rep, "shed", "circuit") == 0 {
		t.Fatalf("nothing shed: %v", rep["shed"])
	}
	// An agent whose lease lapsed (ZooKeeper did not confirm its session
	// in time: a CPU-starved box) sends nothing, probes included, until
	// it is renewed: its breaker may then still be half-open at the end.
	// The report says so (shed fenced); only then is a closing not
	// required.
	fenced := num(t, rep, "shed", "fenced")
	for _, a := range []string{"agentA", "agentB"} {
		opened, closed := checkTransitions(t, rep, a)
		if fenced > 0 && opened > 0 && closed == 0 {
			t.Logf("%s's breaker did not close: %v requests were fenced (lease lapsed on a loaded machine)", a, fenced)
			continue
		}
		if opened == 0 || closed == 0 {
			t.Fatalf("%s's breaker opened %d and closed %d times: %v\nshed %v, timeline %v, notes %v", a, opened, closed, rep["events"], rep["shed"], rep["timeline"], rep["notes"])
		}
	}
	if n, want := num(t, rep, "latency_us", "count"), num(t, rep, "requests")+num(t, rep, "censored"); n != want {
		t.Fatalf("%v latencies for %v answers + %v censored", n, rep["requests"], rep["censored"])
	}
}

// TestRetryFleet runs the retries through a coordinator and two agents:
// the counters travel in the snapshots and merge exactly.
func TestRetryFleet(t *testing.T) {
	zk := zktest.Start(t)
	url := startTarget(t, "--fail-rate", "0.2")
	startAgents(t, zk.Addr, 2)
	out := filepath.Join(t.TempDir(), "r.json")
	args := append([]string{"coord", "--zk", zk.Addr, "--agents", "2", "-c", "8", "-d", "3s", "--json", out}, retryFlags...)
	c := startProc(t, nil, append(args, url)...)
	if code := c.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("coord exit %d:\n%s", code, c.log.String())
	}
	rep := readReport(t, out)
	rs := checkRetries(t, rep)
	if len(agentsOf(t, rep)) != 2 {
		t.Fatalf("agents: %v", rep["agents"])
	}
	if num(t, rs, "retries") < 100 || num(t, rs, "succeeded_after_retry") == 0 || num(t, rs, "exhausted") != 0 {
		t.Fatalf("retries section: %v", rs)
	}
}

func TestRetryBadInput(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		args       []string
	}{
		{"retry too many", "retry.max must be between 2 and 10 attempts in all", []string{"--retry", "11"}},
		{"retry one", "retry.max must be between 2 and 10 attempts in all (the first included), got 1", []string{"--retry", "1"}},
		{"retry negative", "retry.max must be between 2 and 10 attempts in all (the first included), got -1", []string{"--retry", "-1"}},
		{"unknown kind", `"teapot" is not one of`, []string{"--retry", "2", "--retry-on", "teapot"}},
		{"bad code", `"700" is not one of`, []string{"--retry", "2", "--retry-on", "700"}},
		{"negative base", "--retry-base must be above 0", []string{"--retry", "2", "--retry-base", "-1s"}},
		{"max delay below base", "retry.max_delay 10ms is shorter than retry.base 1s", []string{"--retry", "2", "--retry-base", "1s", "--retry-max-delay", "10ms"}},
		{"retry-on alone", "--retry-on needs --retry", []string{"--retry-on", "5xx"}},
		{"breaker rate", "breaker.error_rate 150% is not a share", []string{"--breaker", "error_rate=150%"}},
		{"breaker key", `unknown key "x"`, []string{"--breaker", "x=1"}},
		{"breaker zero", "min_calls must be above 0", []string{"--breaker", "min_calls=0"}},
		{"breaker window", "breaker.window 10ms is shorter than 100ms", []string{"--breaker", "window=10ms"}},
	} {
		wantBadInput(t, tc.name, tc.want, append(append([]string{"run"}, tc.args...), deadURL)...)
	}
}

// TestSteadyStateAllocationsRetry: with retries on and a fifth of the
// answers failing, the hot path still makes no allocation per request:
// the retry queue and the slots' buffers grow to their high-water marks,
// then are reused. Both ways a retry keeps its bytes are run: the fixed
// request (a slice header) and a templated mix (a copy per send into the
// slot's own buffer).
func TestSteadyStateAllocationsRetry(t *testing.T) {
	url := startTarget(t, "--fail-rate", "0.2")
	mix := writeFlash(t, t.TempDir(), url, 1000, "")
	src, _ := os.ReadFile(mix)
	s := strings.NewReplacer("rate: 2500\n", "", "pattern: {type: spike, spike_rate: 5000, at: 3s, for: 2s}\n", "", "duration: 8s", "duration: 4s", "connections: 64", "connections: 16").Replace(string(src))
	if err := os.WriteFile(mix, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"fixed", []string{"-c", "16", "-d", "4s", url}},
		{"mix", []string{"-f", mix}},
	} {
		args := append([]string{"run", "-q", "--debug-stats", "--cores", "1", "-p", "4", "--breaker", "on", "--json", "-"}, retryFlags...)
		r := barrage(t, append(args, tc.args...)...)
		if r.code != 0 {
			t.Fatalf("%s: exit %d: %s", tc.name, r.code, r.stderr)
		}
		ds := debugStatsOf(t, r.stderr)
		t.Logf("%s: %s", tc.name, ds.line)
		if rs := checkRetries(t, r.report); num(t, rs, "retries") < 1000 {
			t.Fatalf("%s: only %v retries: the retry path was not exercised", tc.name, rs["retries"])
		}
		if ds.responses < 10000 || ds.per >= 0.01 {
			t.Fatalf("%s: %d allocations for %d responses (%.4f per response), want < 0.01", tc.name, ds.allocs, ds.responses, ds.per)
		}
	}
}

// TestRetryHalfFailing is the case: a target failing half its
// answers at random, retry max 3 (attempts in all) on 5xx. A request
// succeeds unless all three attempts fail: 1 - 0.5^3 = 87.5% of them;
// attempts are 1 + 0.5 + 0.25 = 1.75 per request. Both are in the report.
func TestRetryHalfFailing(t *testing.T) {
	url := startTarget(t, "--fail-rate", "0.5")
	plan := writePlan(t, "target_url: "+url+"\nrate: 1000\nduration: 3s\nconnections: 16\n"+
		"retry: {max: 3, backoff: exponential, base: 1ms, max_delay: 4ms, jitter: true, on: [5xx]}\n")
	r := runReport(t, "run", "-q", "--cores", "1", "-f", plan, "--json", "-")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	rs := checkRetries(t, r.report)
	logical, att := num(t, rs, "logical"), num(t, rs, "attempts")
	ok := numOr(r.report, "status", "200")
	if logical != num(t, r.report, "scheduled") {
		t.Fatalf("%v requests sent first, %v scheduled", logical, r.report["scheduled"])
	}
	// The last requests' retries may fall after the end (dropped "end"):
	// they are left out of both shares.
	cut := sumOf(rs, "dropped")
	success := ok / (logical - cut)
	ratio := att / (logical - cut)
	t.Logf("%v requests, %v attempts (%.3f each), %.1f%% succeeded (%v only after a retry), %v exhausted, %v retries cut by the end",
		logical, att, ratio, 100*success, rs["succeeded_after_retry"], rs["exhausted"], cut)
	if success < 0.85 || ratio < 1.68 || ratio > 1.82 {
		t.Fatalf("success %.3f (want >= 0.85), attempts per request %.3f (want about 1.75)", success, ratio)
	}
	if after := num(t, rs, "succeeded_after_retry") / logical; after < 0.3 || after > 0.45 {
		t.Fatalf("succeeded only after a retry: %.3f of the requests, want about 0.375", after)
	}
	for _, want := range []string{"Retries     ", "succeeded only after a retry", "end to end (retries)", "scheduled + "} {
		if !strings.Contains(r.stderr, want) {
			t.Fatalf("the text report lacks %q:\n%s", want, r.stderr)
		}
	}
}
