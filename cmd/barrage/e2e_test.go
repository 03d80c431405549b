package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The end-to-end tests run the real binary against the real built-in target.

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "barrage-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "barrage")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// startTarget runs `barrage target` on a free port and returns its URL; it
// is stopped by PID when the test ends.
func startTarget(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"target", "--listen", "127.0.0.1:0", "-q", "--loops", "1"}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "listening on ") {
		t.Fatalf("target's first line %q: %v", line, err)
	}
	return "http://" + strings.TrimSpace(strings.TrimPrefix(line, "listening on ")) + "/"
}

type result struct {
	code           int
	stdout, stderr string
	report         map[string]any
}

// barrage runs the binary with a time limit; with --json - it decodes the
// report.
func barrage(t *testing.T, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("barrage %v did not end", args)
	}
	r := result{code: cmd.ProcessState.ExitCode(), stdout: so.String(), stderr: se.String()}
	for _, a := range args {
		if a == "-" && strings.HasPrefix(strings.TrimSpace(r.stdout), "{") {
			if err := json.Unmarshal(so.Bytes(), &r.report); err != nil {
				t.Fatalf("JSON report: %v\n%s", err, so.String())
			}
		}
	}
	return r
}

func num(t *testing.T, m map[string]any, path ...string) float64 {
	t.Helper()
	var v any = m
	for _, p := range path {
		mm, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("no %v in report", path)
		}
		v = mm[p]
	}
	f, ok := v.(float64)
	if !ok {
		t.Fatalf("%v = %v, not a number", path, v)
	}
	return f
}

// checkAccounting asserts sent = responses + failed + unfinished.
func checkAccounting(t *testing.T, rep map[string]any) {
	t.Helper()
	sent, got, unf := num(t, rep, "sent"), num(t, rep, "requests"), num(t, rep, "unfinished")
	failed := num(t, rep, "error_kinds", "timeout") + num(t, rep, "error_kinds", "reset") + num(t, rep, "error_kinds", "protocol")
	if sent != got+failed+unf {
		t.Fatalf("sent %v != responses %v + failed %v + unfinished %v", sent, got, failed, unf)
	}
}

func TestRunClosedAndPipelined(t *testing.T) {
	url := startTarget(t)
	for _, p := range []string{"1", "16"} {
		r := barrage(t, "run", "-q", "--cores", "1", "-c", "64", "-p", p, "-d", "2s", "--json", "-", url)
		if r.code != 0 {
			t.Fatalf("-p %s: exit %d: %s", p, r.code, r.stderr)
		}
		rep := r.report
		if num(t, rep, "requests") < 1000 || num(t, rep, "errors") != 0 {
			t.Fatalf("-p %s: %v requests, %v errors", p, rep["requests"], rep["errors"])
		}
		if num(t, rep, "status", "200") != num(t, rep, "requests") {
			t.Fatalf("-p %s: status counts %v", p, rep["status"])
		}
		checkAccounting(t, rep)
		if !strings.Contains(r.stderr, "Latency") || !strings.Contains(r.stderr, "p99.9") {
			t.Fatalf("-p %s: text report missing on stderr:\n%s", p, r.stderr)
		}
	}
}

// TestRunOnOneCPU runs under `taskset -c CPU --cores 1`, where the
// engine's one loop runs unlocked when pipelining or in the open model
// (the affinity mask alone keeps it on its CPU; keep-alive stays locked)
// and the open model's pacer sleeps and rings with raw syscalls:
// every response is counted, the clock still hands over every interval,
// and the open model sends the count its schedule asks for.
func TestRunOnOneCPU(t *testing.T) {
	taskset, err := exec.LookPath("taskset")
	if err != nil {
		t.Fatalf("taskset (util-linux) is needed for this test: %v", err)
	}
	url := startTarget(t)
	cpu := "0"
	if b, err := os.ReadFile("/sys/devices/system/cpu/online"); err == nil {
		cpu = strings.FieldsFunc(strings.TrimSpace(string(b)), func(r rune) bool { return r == '-' || r == ',' })[0]
	}
	for _, p := range []string{"16", "1", "open"} {
		load := []string{"-c", "32", "-p", p}
		if p == "open" {
			load = []string{"-c", "64", "-r", "10000"}
		}
		args := append([]string{"-c", cpu, binary, "run", "-q", "--cores", "1", "-d", "3s", "--json", "-"}, load...)
		cmd := exec.Command(taskset, append(args, url)...)
		var so, se bytes.Buffer
		cmd.Stdout, cmd.Stderr = &so, &se
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		timer := time.AfterFunc(60*time.Second, func() { _ = cmd.Process.Kill() })
		err := cmd.Wait()
		timer.Stop()
		if err != nil {
			t.Fatalf("-p %s on CPU %s: %v: %s", p, cpu, err, se.String())
		}
		var rep map[string]any
		if err := json.Unmarshal(so.Bytes(), &rep); err != nil {
			t.Fatalf("JSON report: %v\n%s", err, so.String())
		}
		if num(t, rep, "requests") == 0 || num(t, rep, "errors") != 0 {
			t.Fatalf("-p %s: %v requests, %v errors", p, rep["requests"], rep["errors"])
		}
		checkAccounting(t, rep)
		if p == "open" {
			// The schedule asks for exactly 30000; what was sent depends
			// on free CPU, and the verdict must say so when it fell short.
			checkHonest(t, rep, 30000)
		}
		tl, _ := rep["timeline"].([]any)
		if len(tl) != 3 {
			t.Fatalf("-p %s: %d intervals in the timeline, want 3", p, len(tl))
		}
		var sum float64
		for i, pt := range tl {
			m, _ := pt.(map[string]any)
			if n := num(t, m, "requests"); n == 0 {
				t.Fatalf("-p %s: interval %d has no responses", p, i)
			} else {
				sum += n
			}
		}
		if sum != num(t, rep, "requests") {
			t.Fatalf("-p %s: the intervals sum to %v, the report says %v", p, sum, rep["requests"])
		}
	}
}

func TestRunOpenModelRate(t *testing.T) {
	url := startTarget(t)
	r := barrage(t, "run", "-q", "-c", "64", "-r", "20000", "-d", "5s", "--json", "-", url)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	rep := r.report
	// The schedule asks for exactly 100000 requests; what was sent depends
	// on free CPU, and the verdict must say so when it fell short.
	checkHonest(t, rep, 100000)
	if tr := num(t, rep, "target_rate"); tr != 20000 {
		t.Fatalf("target_rate %v", tr)
	}
	if num(t, rep, "errors") != 0 {
		t.Fatalf("errors: %v", rep["error_kinds"])
	}
	checkAccounting(t, rep)
}

func TestStallShowsInOpenModel(t *testing.T) {
	url := startTarget(t, "--stall-every", "2s", "--stall-for", "200ms")
	r := barrage(t, "run", "-q", "-c", "64", "-r", "2000", "-d", "5s", "--json", "-", url)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if p999 := num(t, r.report, "latency_us", "p999"); p999 < 100000 {
		t.Fatalf("open model p99.9 = %vµs, want the 200ms stall to show (>= 100ms)", p999)
	}
	// The closed model's service time hides the stall in its percentiles;
	// its coordinated-omission-corrected view must not.
	r = barrage(t, "run", "-q", "-c", "16", "-d", "5s", "--json", "-", url)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if p999 := num(t, r.report, "corrected_latency_us", "p999"); p999 < 100000 {
		t.Fatalf("closed model corrected p99.9 = %vµs, want >= 100ms", p999)
	}
	if mx := num(t, r.report, "latency_us", "max"); mx < 150000 {
		t.Fatalf("closed model max = %vµs, want the stall", mx)
	}
}

func TestStepsPlan(t *testing.T) {
	url := startTarget(t)
	plan := filepath.Join(t.TempDir(), "plan.yaml")
	os.WriteFile(plan, []byte("target_url: "+url+"\nconnections: 8\npattern:\n  type: steps\n  steps:\n    - {duration: 1s, rate: 1000}\n    - {duration: 1s, rate: 3000, connections: 16}\n"), 0o644)
	r := barrage(t, "run", "-q", "-f", plan, "--json", "-")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	steps, _ := r.report["steps"].([]any)
	if len(steps) != 2 {
		t.Fatalf("steps: %v", r.report["steps"])
	}
	s2 := steps[1].(map[string]any)
	if n := num(t, s2, "target_rate"); n != 3000 {
		t.Fatalf("step 2 asks %v req/s, want 3000", n)
	}
	checkHonest(t, r.report, 4000)
	if !strings.Contains(r.stderr, "Steps") {
		t.Fatalf("no steps table:\n%s", r.stderr)
	}
	checkAccounting(t, r.report)
}

func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	neg := filepath.Join(dir, "neg.yaml")
	os.WriteFile(neg, []byte("target_url: http://127.0.0.1:1/\nrate: -5\n"), 0o644)
	// A port nothing listens on: ask the OS for one and close it.
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"malformed URL", []string{"run", "-d", "1s", "http//nohost"}, 1, "target_url"},
		{"bad scheme", []string{"run", "-d", "1s", "ftp://127.0.0.1/"}, 1, "http://"},
		{"unknown flag", []string{"run", "--frobnicate", "http://127.0.0.1/"}, 2, "unknown flag"},
		{"negative rate plan", []string{"run", "-f", neg}, 2, "rate must be >= 0"},
		{"negative rate flag", []string{"run", "-r", "-1", "http://127.0.0.1:1/"}, 2, "rate must be >= 0"},
		{"unreachable port", []string{"run", "-d", "1s", "-c", "4", "http://127.0.0.1:1/"}, 1, "could not open any connection"},
		{"missing plan file", []string{"run", "-f", filepath.Join(dir, "nope.yaml")}, 2, "no such file"},
		{"unknown command", []string{"fly"}, 2, "unknown command"},
	} {
		r := barrage(t, tc.args...)
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		if r.code != tc.code || len(lines) != 1 || !strings.Contains(r.stderr, tc.want) ||
			strings.Contains(r.stderr, "goroutine") || strings.Contains(r.stderr, "panic") {
			t.Errorf("%s: exit %d (want %d), stderr %q (want one line with %q)", tc.name, r.code, tc.code, r.stderr, tc.want)
		}
	}
	if r := barrage(t, "run", "--help"); r.code != 0 || !strings.Contains(r.stdout, "--rate") {
		t.Errorf("--help: exit %d, %q", r.code, r.stdout)
	}
}

func TestSteadyStateAllocations(t *testing.T) {
	url := startTarget(t)
	r := barrage(t, "run", "-q", "--debug-stats", "--cores", "1", "-c", "16", "-p", "4", "-d", "4s", url)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	ds := debugStatsOf(t, r.stderr)
	t.Logf("%s", ds.line)
	// A count, not a timing: the hot path must not allocate per request.
	if ds.responses < 10000 || ds.per >= 0.01 {
		t.Fatalf("%d allocations for %d responses (%.4f per response), want < 0.01", ds.allocs, ds.responses, ds.per)
	}
	if ds.gcs > 3 {
		t.Fatalf("%d GC cycles in the steady state", ds.gcs)
	}
}

// debugStats is run --debug-stats' steady-state line, parsed.
type debugStats struct {
	line                          string
	allocs, bytes, responses, gcs uint64
	per, heapMB                   float64
}

// debugStatsOf parses the last debug-stats line of a run's stderr.
func debugStatsOf(t *testing.T, stderr string) debugStats {
	t.Helper()
	var ds debugStats
	for _, l := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(l, "debug-stats:") {
			ds.line = l
		}
	}
	if _, err := fmt.Sscanf(ds.line, "debug-stats: steady state: %d heap allocations (%d bytes) for %d responses = %f allocations per response; %d GC cycles; heap %f MB",
		&ds.allocs, &ds.bytes, &ds.responses, &ds.per, &ds.gcs, &ds.heapMB); err != nil {
		t.Fatalf("no debug-stats line (%v): %q", err, stderr)
	}
	return ds
}
