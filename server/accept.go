package server

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Accepting connections, and living through running out of descriptors.
//
// accept(2) fails with EMFILE when the process has as many descriptors
// open as RLIMIT_NOFILE allows, and ENFILE when the system does. The
// connections keep arriving meanwhile: the kernel completes their
// handshakes and queues them in the listen backlog. So the acceptor waits
// (5 ms, doubling up to 100 ms) and tries again; each connection that
// closes frees a descriptor, and the next try takes a queued one. It logs
// the first failure of an episode and its end, at most once in ten
// seconds, never once per failure.
//
// Hazard: handing a connection to gnet (Client.EnrollContext) duplicates
// its descriptor and then closes the original: for a moment a connection
// needs two. With the last descriptor taken by accept, the dup would fail
// and the connection would be lost. So the acceptor holds one descriptor
// in reserve (the spare, /dev/null), closes it just before the hand-off
// and opens it again after; it accepts only while it holds the spare, so
// every accepted connection has room for its dup.

const (
	minAcceptWait = 5 * time.Millisecond
	maxAcceptWait = 100 * time.Millisecond
	acceptLogGap  = 10 * time.Second
)

// acceptor is the accept goroutine's state; only it touches it.
type acceptor struct {
	s       *Server
	spare   int  // the reserve descriptor, -1 while not held
	noSpare bool // it cannot be opened at all (no /dev/null): do without

	wait    time.Duration // the next wait after a failure; 0 while accepting
	since   time.Time     // when the current episode began
	failed  int           // failures in the current episode
	logged  bool          // the current episode's start was logged
	lastLog time.Time
}

func newAcceptor(s *Server) *acceptor {
	return &acceptor{s: s, spare: -1}
}

// run accepts until the listener is closed.
func (a *acceptor) run() {
	defer close(a.s.accepted)
	defer a.closeSpare()
	for {
		if a.spare < 0 && !a.noSpare {
			if err := a.openSpare(); err != nil {
				if !isOutOfDescriptors(err) {
					a.noSpare = true
					continue
				}
				if !a.failure(fmt.Errorf("cannot keep a descriptor in reserve: %w", err)) {
					return
				}
				continue
			}
		}
		c, err := a.s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if !a.failure(err) {
				return
			}
			continue
		}
		a.success()
		if a.s.tls != nil {
			a.s.tls.serve(c)
			continue
		}
		a.closeSpare() // room for EnrollContext's dup
		if _, err := a.s.cli.EnrollContext(c, nil); err != nil {
			// EnrollContext has closed c: the connection is lost. It
			// cannot run out of descriptors (the spare made room), so
			// this is a connection already gone, or the loops stopping.
			continue
		}
	}
}

func (a *acceptor) openSpare() error {
	fd, err := unix.Open(os.DevNull, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	a.spare = fd
	return nil
}

func (a *acceptor) closeSpare() {
	if a.spare >= 0 {
		_ = unix.Close(a.spare)
		a.spare = -1
	}
}

// failure notes a failed accept, logs it if it starts an episode (and
// none was logged lately), and waits before the next try. It returns
// false when the server is stopping.
func (a *acceptor) failure(err error) bool {
	now := time.Now()
	if a.failed == 0 {
		a.since = now
		a.logged = false
		if a.lastLog.IsZero() || now.Sub(a.lastLog) >= acceptLogGap {
			what := "; trying again"
			if isOutOfDescriptors(err) {
				what = limitNote(err) + "; they wait in the listen backlog, and accepting resumes when descriptors free up"
			}
			a.logf("server: cannot accept connections: %v%s", err, what)
			a.logged = true
			a.lastLog = now
		}
	}
	a.failed++
	a.wait = min(max(2*a.wait, minAcceptWait), maxAcceptWait)
	t := time.NewTimer(a.wait)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-a.s.quit:
		return false
	}
}

// success ends an episode of failures, if one was going on.
func (a *acceptor) success() {
	if a.failed == 0 {
		return
	}
	if a.logged {
		a.logf("server: accepting connections again after %s (%d attempts failed)",
			time.Since(a.since).Round(time.Millisecond), a.failed)
		a.lastLog = time.Now()
	}
	a.failed, a.wait = 0, 0
}

func (a *acceptor) logf(format string, args ...any) {
	if w := a.s.o.ErrorLog; w != nil {
		fmt.Fprintf(w, format+"\n", args...)
	}
}

func isOutOfDescriptors(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}

// limitNote says which limit an EMFILE hit.
func limitNote(err error) string {
	if !errors.Is(err, syscall.EMFILE) {
		return ""
	}
	var l unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &l) != nil {
		return ""
	}
	return fmt.Sprintf(" (the limit is %d descriptors: ulimit -n)", l.Cur)
}
