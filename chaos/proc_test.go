package chaos

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Exit codes the rows expect. killed is what ProcessState.ExitCode reports
// for a process ended by a signal it did not handle (the harness's kill -9
// faults); notStarted marks a process that could not be started at all.
const (
	killed     = -1
	notStarted = -2
)

// tailLines is how many lines of each process's stderr are kept in memory
// for failure messages; the whole log goes to a file.
const tailLines = 40

// maxStdout bounds what is kept of a process's stdout in memory (a JSON
// report is a few tens of KB).
const maxStdout = 8 << 20

// lineBuf keeps the last tailLines lines written to it and calls onLine for
// each complete line. It is an exec.Cmd's Stdout or Stderr: os/exec copies
// the pipe into it from a goroutine of its own, and Wait waits for that copy.
type lineBuf struct {
	mu     sync.Mutex
	part   []byte
	lines  []string
	full   *bytes.Buffer // nil: keep only the tail
	path   string        // the whole output, on disk
	file   *os.File
	onLine func(line string, at time.Time)
}

func (b *lineBuf) Write(p []byte) (int, error) {
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.file != nil {
		_, _ = b.file.Write(p)
	}
	if b.full != nil && b.full.Len() < maxStdout {
		b.full.Write(p)
	}
	b.part = append(b.part, p...)
	for {
		i := bytes.IndexByte(b.part, '\n')
		if i < 0 {
			break
		}
		line := string(b.part[:i])
		b.part = b.part[i+1:]
		b.lines = append(b.lines, line)
		if len(b.lines) > 2*tailLines {
			b.lines = append(b.lines[:0], b.lines[len(b.lines)-tailLines:]...)
		}
		if b.onLine != nil {
			b.onLine(line, now)
		}
	}
	return len(p), nil
}

func (b *lineBuf) tail() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	l := b.lines
	if len(l) > tailLines {
		l = l[len(l)-tailLines:]
	}
	out := strings.Join(l, "\n")
	if len(b.part) > 0 {
		out += "\n" + string(b.part)
	}
	return out
}

// contains says whether the output holds s anywhere: the file on disk has
// all of it (the tail in memory may have lost an early line behind
// progress lines).
func (b *lineBuf) contains(s string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.file != nil {
		_ = b.file.Sync()
	}
	if all, err := os.ReadFile(b.path); err == nil {
		return bytes.Contains(all, []byte(s))
	}
	if b.full != nil {
		return bytes.Contains(b.full.Bytes(), []byte(s))
	}
	for _, l := range b.lines {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

func (b *lineBuf) bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.full == nil {
		return nil
	}
	return append([]byte(nil), b.full.Bytes()...)
}

func (b *lineBuf) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.file != nil {
		_ = b.file.Close()
		b.file = nil
	}
}

// proc is one barrage process the harness started. Every proc is ended by
// its PID: it exits by itself, or the harness signals that PID, never a
// name.
type proc struct {
	role   string // the key of the row's expected exit codes: "coord", "standby", "agent", ...
	label  string // unique in the row: "agent chaos-B", "coord#2"
	daemon bool   // runs until told to stop (agents, the target, a standby waiting for a test)
	args   []string
	cmd    *exec.Cmd
	done   chan struct{}
	stdout *lineBuf
	stderr *lineBuf
	// What the harness did to it.
	mu          sync.Mutex
	faultKilled bool // killed -9 as the row's fault: expected to end by signal
	stopped     bool // SIGSTOPped and not yet continued
	forced      bool // killed -9 because it did not end in time: a failure (e)
	startErr    error
}

// startProc starts the binary with args (behind wrap, a command that execs
// it, such as taskset: the PID stays the binary's); its stderr (and
// stdout) go to files in logDir and to bounded in-memory buffers.
func startProc(logDir, role, label string, daemon bool, wrap, args []string, onStderr func(string, time.Time)) *proc {
	p := &proc{role: role, label: label, daemon: daemon, args: args, done: make(chan struct{})}
	base := filepath.Join(logDir, strings.NewReplacer(" ", "_", "/", "_", "#", "_").Replace(label))
	p.stdout = &lineBuf{full: &bytes.Buffer{}}
	p.stderr = &lineBuf{onLine: onStderr}
	if f, err := os.Create(base + ".stdout"); err == nil {
		p.stdout.file, p.stdout.path = f, f.Name()
	}
	if f, err := os.Create(base + ".stderr"); err == nil {
		p.stderr.file, p.stderr.path = f, f.Name()
	}
	argv := append(append(append([]string(nil), wrap...), binary), args...)
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	// A process that is gone but left its pipe open elsewhere must not
	// hold Wait forever (barrage starts no children; this is a bound).
	p.cmd.WaitDelay = 2 * time.Second
	if err := p.cmd.Start(); err != nil {
		p.startErr = err
		p.stdout.close()
		p.stderr.close()
		close(p.done)
		return p
	}
	go func() {
		_ = p.cmd.Wait()
		p.stdout.close()
		p.stderr.close()
		close(p.done)
	}()
	return p
}

func (p *proc) pid() int {
	if p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// code is the exit code once the process is gone: killed for a signal,
// notStarted if it never ran.
func (p *proc) code() int {
	if p.startErr != nil {
		return notStarted
	}
	if !p.exited() || p.cmd.ProcessState == nil {
		return notStarted
	}
	return p.cmd.ProcessState.ExitCode()
}

// signal sends sig to this process's PID if it still runs.
func (p *proc) signal(sig syscall.Signal) {
	if p.exited() || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(sig)
}

// wait waits at most d for the process to end.
func (p *proc) wait(d time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(d):
		return false
	}
}

func (p *proc) String() string {
	return fmt.Sprintf("%s (pid %d: barrage %s)", p.label, p.pid(), strings.Join(p.args, " "))
}

// codeString shows an exit code as the table does.
func codeString(c int) string {
	switch c {
	case killed:
		return "killed"
	case notStarted:
		return "none"
	}
	return fmt.Sprint(c)
}
