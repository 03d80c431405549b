package main

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRunAbsurdRateEndsOnTime: a rate no machine can send used to keep
// `run -d 1s` going for minutes at full CPU (1e12/s; 12.9 s at 1e9/s):
// the loop counted the tokens due one by one. Rates above proto.MaxRate
// are refused now (input_e2e_test.go); at the ceiling the run ends on
// time, every token accounted for.
func TestRunAbsurdRateEndsOnTime(t *testing.T) {
	url := startTarget(t)
	for _, rate := range []string{"1e8"} {
		start := time.Now()
		r := barrage(t, "run", "-q", "-c", "16", "-r", rate, "-d", "1s", "--json", "-", url)
		took := time.Since(start)
		if r.code != 0 {
			t.Fatalf("-r %s: exit %d: %s", rate, r.code, r.stderr)
		}
		// The connections are opened before the second starts; the rest
		// is the report. Ten seconds is a bound a loaded machine keeps.
		if took > 10*time.Second {
			t.Fatalf("-r %s -d 1s took %v", rate, took)
		}
		checkAccounting(t, r.report)
		if sent := num(t, r.report, "sent"); sent == 0 {
			t.Fatalf("-r %s: nothing sent", rate)
		}
		t.Logf("-r %s -d 1s: %v, %v sent", rate, took, r.report["sent"])
	}
}

// TestRunStopsOnSIGINT: SIGINT ends a run within 2 s at any rate, with a
// report.
func TestRunStopsOnSIGINT(t *testing.T) {
	url := startTarget(t)
	for _, load := range [][]string{{"-r", "1e8"}, {"-r", "1000"}, {}} {
		cmd := exec.Command(binary, append([]string{"run", "-q", "-c", "16", "-d", "60s", "--json", "-"}, append(load, url)...)...)
		var so, se bytes.Buffer
		cmd.Stdout, cmd.Stderr = &so, &se
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		time.Sleep(1500 * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		sent := time.Now()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Fatalf("%v: still running 30s after SIGINT", load)
		}
		if d := time.Since(sent); d > 2*time.Second {
			t.Fatalf("%v: ended %v after SIGINT, want within 2s", load, d)
		}
		if code := cmd.ProcessState.ExitCode(); code != 130 {
			t.Fatalf("%v: exit %d after SIGINT, want 130", load, code)
		}
		var rep map[string]any
		if err := json.Unmarshal(so.Bytes(), &rep); err != nil {
			t.Fatalf("%v: JSON report: %v\n%s", load, err, se.String())
		}
		checkAccounting(t, rep)
		t.Logf("%v: ended %v after SIGINT", load, time.Since(sent))
	}
}

// TestRunNeverAnswered: a target that accepts and never answers used to
// give "0 responses, (no samples)". The requests never answered are
// recorded as lower bounds of their latency.
func TestRunNeverAnswered(t *testing.T) {
	url := startTarget(t, "--silent")
	for _, load := range [][]string{{"-r", "100"}, {"-p", "2"}} {
		r := barrage(t, append([]string{"run", "-q", "-c", "4", "-d", "1s", "--json", "-"}, append(load, url)...)...)
		if r.code != 1 {
			t.Fatalf("%v: exit %d, want 1 (no measurement): %s", load, r.code, r.stderr)
		}
		checkAccounting(t, r.report)
		if n := num(t, r.report, "requests"); n != 0 {
			t.Fatalf("%v: %v responses from a silent target", load, n)
		}
		if n := num(t, r.report, "latency_us", "count"); n < 4 {
			t.Fatalf("%v: %v latencies; the unanswered requests must be recorded", load, n)
		}
		if mx := num(t, r.report, "latency_us", "max"); mx < 500_000 {
			t.Fatalf("%v: the longest wait is %vµs, want about the run's 1s", load, mx)
		}
	}
}

// TestRunUnderFileLimit: more connections than file descriptors. Under
// `ulimit -n 20000`, `-c 100000` ran 81.7 s for a 3 s run with 872 701
// connect errors and exit 0, no hint about the limit. Now a count that
// cannot fit is refused before the run, naming the limit and the fix.
// (The miscount it once showed, "sent < responses + unfinished", is
// engine.TestHandoffBeforeStart.)
func TestRunUnderFileLimit(t *testing.T) {
	url := startTarget(t)
	cmd := exec.Command("bash", "-c", `ulimit -n 1024 && exec "$0" "$@"`, binary, "run", "-q", "-c", "3000", "-d", "2s", url)
	var se bytes.Buffer
	cmd.Stderr = &se
	err := cmd.Run()
	code := cmd.ProcessState.ExitCode()
	if err == nil || code != 2 || !strings.Contains(se.String(), "ulimit -n") || !strings.Contains(se.String(), "1024") {
		t.Fatalf("exit %d: %s", code, se.String())
	}
	// What fits runs, and its counts add up.
	r := barrage(t, "run", "-q", "-c", "500", "-d", "1s", "--json", "-", url)
	if r.code != 0 {
		t.Fatalf("-c 500: exit %d: %s", r.code, r.stderr)
	}
	checkAccounting(t, r.report)
}
