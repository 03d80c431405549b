package chaos

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// binary is barrage, built once for the whole matrix.
var binary string

// openFiles caps RLIMIT_NOFILE, soft and hard, for the harness and
// everything it starts. A fleet that accepts `set --connections 2000000`
// then stops at a few thousand sockets per process instead of taking the
// machine's ephemeral ports from everyone else. The hard limit is what
// counts: every Go program raises its soft limit to the hard one when it
// starts.
const openFiles = 2048

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "barrage-chaos")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "barrage")
	out, err := exec.Command("go", "build", "-o", binary, "github.com/barrage-load/barrage/cmd/barrage").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "chaos: cannot build barrage: %v\n%s", err, out)
		os.Exit(1)
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Max > openFiles {
		lim.Cur, lim.Max = openFiles, openFiles
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			fmt.Fprintf(os.Stderr, "chaos: cannot lower RLIMIT_NOFILE: %v\n", err)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// selected says which rows run: CHAOS unset runs the fast rows, CHAOS=all
// every row, CHAOS=name,name those rows.
func selected(r *row) bool {
	v := strings.TrimSpace(os.Getenv("CHAOS"))
	switch v {
	case "":
		return r.fast
	case "all", "1":
		return true
	}
	for _, n := range strings.Split(v, ",") {
		if strings.TrimSpace(n) == r.name {
			return true
		}
	}
	return false
}

// TestChaos runs the selected rows one after another, prints the table,
// and with CHAOS_REPORT=FILE writes it into that file (RELIABILITY.md).
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("the chaos rows start ZooKeeper and a fleet; not in -short")
	}
	var results []*result
	for i := range rows {
		r := &rows[i]
		if !selected(r) {
			continue
		}
		t.Run(r.name, func(t *testing.T) {
			// The slot is filled before the row runs: a setup that ends
			// the subtest (t.Fatal) still leaves its row in the table.
			slot := len(results)
			results = append(results, nil)
			var res *result
			var earlier []string
			prev := ""
			for attempt := 1; ; attempt++ {
				res = &result{row: r, attempt: attempt, notes: append([]string(nil), earlier...)}
				results[slot] = res
				runRow(t, r, res)
				res.pause = machineProbes.worst(res.began, res.began.Add(res.took))
				// Run again only a failure that came with a pause of the
				// machine, and stop once one repeats: the same invariants
				// broken twice is the fleet, not the machine.
				letters := res.letters()
				if len(res.fails) == 0 || res.pause.len < stallLimit || attempt > retries() || letters == prev {
					break
				}
				prev = letters
				t.Logf("%s: attempt %d failed while CPU %d paused for %.1fs: running it again",
					r.name, attempt, res.pause.cpu, res.pause.len.Seconds())
				earlier = append(earlier, fmt.Sprintf("attempt %d failed (%s) while CPU %d paused for %.1f s; run again",
					attempt, res.letters(), res.pause.cpu, res.pause.len.Seconds()))
			}
			if len(res.fails) > 0 {
				t.Errorf("%s: %d invariants broken:\n  %s", r.name, len(res.fails), strings.Join(res.fails, "\n  "))
			}
		})
	}
	if len(results) == 0 {
		t.Fatalf("CHAOS=%q selects no row", os.Getenv("CHAOS"))
	}
	table := formatTable(results)
	fmt.Printf("\n%s\n", table)
	if path := os.Getenv("CHAOS_REPORT"); path != "" {
		if err := writeReliability(path, results); err != nil {
			t.Errorf("cannot write %s: %v", path, err)
		}
	}
}

// runRow runs one row and judges it. Everything after the scenario runs
// in a defer, so a setup that calls t.Fatal (ZooKeeper did not start)
// still tears down and records the row.
func runRow(t *testing.T, r *row, res *result) {
	res.began = time.Now()
	e := newEnv(t, r, res)
	defer func() {
		e.teardown()
		e.check()
		e.cancel()
		res.took = time.Since(res.began)
		if len(res.fails) > 0 {
			e.dumpLogs()
		}
	}()
	r.run(e)
}

// teardown ends every process the row started, by PID: processes that
// should have ended by themselves are ended (SIGQUIT for their stacks,
// then SIGKILL) and counted as left behind; daemons (agents, the target, a standby that never took over)
// get SIGTERM and termWait to end. ZooKeeper goes last.
func (e *env) teardown() {
	e.mu.Lock()
	procs := append([]*proc(nil), e.procs...)
	e.mu.Unlock()
	for _, p := range procs {
		if p.daemon || p.exited() {
			continue
		}
		e.fail("e", "%s had not ended by itself by the end of the row: %s", p.label, p.quitThenKill())
	}
	// The counts of an unfinished row (deadline, setup failure) are taken
	// as they are.
	for _, s := range e.segs {
		if !s.closed && e.tgt != nil {
			s.to, s.closed = e.tgt.total(), true
		}
	}
	for _, p := range procs {
		if p.daemon && p.role != "target" {
			e.term(p)
		}
	}
	if e.tgt != nil {
		e.term(e.tgt.p)
	}
	if e.zc != nil {
		e.zc.Close()
	}
	for _, s := range e.zkSrv {
		s.Kill() // idempotent; zktest's cleanup calls it again
	}
	for _, p := range procs {
		if !p.exited() {
			e.fail("e", "%s is still running after the teardown", p)
		}
	}
	for i, s := range e.zkSrv {
		if s.Alive() {
			e.fail("e", "ZooKeeper %d (pid %d) is still running after the teardown", i, s.PID())
		}
	}
}

// dumpLogs logs the tail of every process's stderr and the target's
// per-second counts.
func (e *env) dumpLogs() {
	for _, p := range e.procs {
		if p.role == "target" {
			continue
		}
		e.t.Logf("--- %s, exit %s, stderr tail:\n%s", p, codeString(p.code()), p.stderr.tail())
	}
	if e.tgt != nil {
		var b strings.Builder
		for _, s := range e.tgt.snapshot() {
			fmt.Fprintf(&b, " %d", s.n)
		}
		e.t.Logf("--- target, served per second:%s", b.String())
	}
	e.t.Logf("--- logs in %s", e.logDir)
}
