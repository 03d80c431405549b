package chaos

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"
)

// sample is one of the target's "served N req/s total M" lines, stamped
// when the harness read it. The target counts the responses it wrote: the
// ground truth of every invariant here.
type sample struct {
	at    time.Time
	n     uint64 // since the previous line
	total uint64
}

// target is `barrage target` on a free loopback port.
type target struct {
	p       *proc
	mu      sync.Mutex
	samples []sample
	addr    chan string
}

func (t *target) onLine(line string, at time.Time) {
	var n, total uint64
	if _, err := fmt.Sscanf(line, "served %d req/s total %d", &n, &total); err != nil {
		return
	}
	t.mu.Lock()
	t.samples = append(t.samples, sample{at, n, total})
	t.mu.Unlock()
}

// startTarget runs the built-in server and waits for its address (first
// stdout line "listening on HOST:PORT").
func (e *env) startTarget() {
	t := &target{addr: make(chan string, 1)}
	args := []string{"target", "--listen", "127.0.0.1:0", "--loops", "1"}
	t.p = e.startLabelled("target", "target", true, args, t.onLine)
	// The stdout buffer has no line hook: poll it for the first line.
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) && !t.p.exited() {
		out := string(t.p.stdout.bytes())
		if line, _, ok := strings.Cut(out, "\n"); ok {
			addr, found := strings.CutPrefix(line, "listening on ")
			if !found {
				e.t.Fatalf("target's first line %q", line)
			}
			e.tgt, e.url = t, "http://"+strings.TrimSpace(addr)+"/"
			e.logf("target at %s", e.url)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.tgt = t
	e.t.Fatalf("target printed no address within 15 s:\n%s", t.p.stderr.tail())
}

func (t *target) snapshot() []sample {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]sample(nil), t.samples...)
}

// total is the latest running total the target printed.
func (t *target) total() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.samples) == 0 {
		return 0
	}
	return t.samples[len(t.samples)-1].total
}

// awaitTraffic returns when the target's traffic began after instant
// after: the first line after it that counts responses, less the time
// those responses take at the planned rate (the line covers the second
// before it, and a test may start anywhere in it); and the earliest it
// may have begun (the line before).
func (t *target) awaitTraffic(ctx context.Context, after time.Time, rate float64, within time.Duration, gone func() bool) (start, earliest time.Time, ok bool) {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		// Checked before the samples: a coordinator that ran its test
		// and ended still leaves its traffic in them.
		ended := gone()
		s := t.snapshot()
		for i := 1; i < len(s); i++ {
			if !s[i].at.After(after) || s[i].n == 0 {
				continue
			}
			start := s[i].at.Add(-time.Duration(float64(s[i].n) / rate * float64(time.Second)))
			if start.Before(s[i-1].at) {
				start = s[i-1].at
			}
			return start, s[i-1].at, true
		}
		if ended {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return time.Time{}, time.Time{}, false
}

// awaitQuiet waits until the target has served nothing for quiet (lines
// read after the call), at most within; it returns the total then.
func (t *target) awaitQuiet(ctx context.Context, quiet, within time.Duration) (uint64, bool) {
	from := time.Now()
	deadline := from.Add(within)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		s := t.snapshot()
		// The newest lines, read after from, all zero over quiet.
		var zeroSince time.Time
		for i := len(s) - 1; i >= 0 && s[i].at.After(from) && s[i].n == 0; i-- {
			zeroSince = s[i].at
		}
		if !zeroSince.IsZero() && len(s) > 0 && s[len(s)-1].at.Sub(zeroSince) >= quiet-time.Second {
			return s[len(s)-1].total, true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return t.total(), false
}
