package server

import (
	"context"
	"runtime"
	"sync"
	"time"

	"github.com/panjf2000/gnet/v2"
)

// Held responses (Delay, stalls, the Capacity queue) and connections
// that close once their output has drained.
//
// Each read's responses form a batch with a due time (see Server.due);
// in Capacity mode each response is a batch of its own, due when the
// queue has served it (see queue.reserve).
//
//   - a connection holds its batches' bytes in order (heldResponses) and
//     writes, in one write, every batch from the first that is due; a
//     batch never overtakes one read before it;
//   - a loop keeps one wake (connection, due) per held batch in a
//     min-heap (wakeHeap), guarded by a mutex shared only with that
//     loop's timer goroutine;
//   - the loop's timer goroutine sleeps until the heap's head is due and
//     hands the loop one Execute, which pops and releases every due wake,
//     then waits for it to finish before looking at the heap again.
//
// gnet has no per-loop timers, hence the goroutine; and one Execute per
// wake-up rather than one Conn.Wake per connection keeps a thousand
// connections due at once to one task on the loop's queue.
//
// Due times need not increase: a batch's wake may fire while an earlier
// batch of the same connection is not due yet; it then goes out with
// that batch, when that batch's own wake fires.

// drainPoll is how often a connection that must close is checked for
// output gnet still holds (the socket was full): closing at once would
// drop it, and a close-delimited body would look complete.
const drainPoll = 5 * time.Millisecond

// due returns when a response to a request read at now (since the server
// started) may go out: Delay later, and never inside a stall.
func (s *Server) due(now time.Duration) time.Duration { return s.stallEnd(now + s.o.Delay) }

// stallEnd is d, or the end of the stall d falls in. Stalls begin at
// every multiple of StallEvery after the start (not at the start) and
// last StallFor; whatever falls inside one goes out when it ends.
func (s *Server) stallEnd(d time.Duration) time.Duration {
	if every, length := s.o.StallEvery, s.o.StallFor; length > 0 && inWindow(d, every, length) {
		d = d/every*every + length
	}
	return d
}

// now is the time since the server started, on the monotonic clock.
func (s *Server) now() time.Duration { return time.Since(s.start) }

// heldResponses are a connection's responses waiting for their due time.
type heldResponses struct {
	buf     []byte  // the bytes of the batches, from off on
	off     int     // bytes of buf already written
	batches []batch // from first on
	first   int
}

type batch struct {
	end int           // where the batch ends in buf
	due time.Duration // since the server started
	n   int           // responses in the batch
}

func (h *heldResponses) empty() bool { return h.first == len(h.batches) }

func (h *heldResponses) add(out []byte, n int, due time.Duration) {
	if h.off > 64<<10 && h.off > len(h.buf)/2 {
		// Compact: many batches went out while later ones waited.
		k := copy(h.buf, h.buf[h.off:])
		h.buf = h.buf[:k]
		m := copy(h.batches, h.batches[h.first:])
		h.batches = h.batches[:m]
		for i := range h.batches {
			h.batches[i].end -= h.off
		}
		h.off, h.first = 0, 0
	}
	h.buf = append(h.buf, out...)
	h.batches = append(h.batches, batch{end: len(h.buf), due: due, n: n})
}

// hold is OnTraffic's end in the timed modes: out (n responses, read at
// the loop's policy's now) is written now if it is due and nothing is
// held before it, else held.
func (s *Server) hold(cs *connState, out []byte, n int, closeConn bool) gnet.Action {
	l := cs.l
	now := l.pol.now
	switch {
	case len(out) == 0:
	case s.queue != nil:
		s.holdQueued(cs, out, now)
	default:
		due := s.due(now)
		switch {
		case due <= now && cs.held.empty():
			_, _ = cs.c.Write(out)
			l.count(n)
		case due <= now:
			cs.held.add(out, n, due)
			s.release(cs, now)
		default:
			cs.held.add(out, n, due)
			l.timer.push(wake{cs: cs, due: due})
		}
	}
	if closeConn {
		cs.closing = true
	}
	if cs.closing && cs.held.empty() && !cs.closed && s.drained(cs, now) {
		return gnet.Close
	}
	return gnet.None
}

// holdQueued holds each response of out until the capacity queue has
// served it. The loop's policy recorded where each ends; bytes after the
// last (a "100 Continue") go with the last response's due time.
func (s *Server) holdQueued(cs *connState, out []byte, now time.Duration) {
	l := cs.l
	ends := l.pol.ends
	start := 0
	due := s.due(now)
	if len(ends) > 0 {
		first := s.queue.reserve(now, len(ends))
		for i, end := range ends {
			due = s.stallEnd(max(now+s.o.Delay, s.queue.at(first, i)))
			cs.held.add(out[start:end], 1, due)
			l.timer.push(wake{cs: cs, due: due})
			start = end
		}
	}
	if start < len(out) {
		cs.held.add(out[start:], 0, due)
		l.timer.push(wake{cs: cs, due: due})
	}
	if due <= now {
		s.release(cs, now)
	}
}

// release writes, in one write, the connection's held batches due by now.
func (s *Server) release(cs *connState, now time.Duration) {
	h := &cs.held
	k, n := h.first, 0
	for k < len(h.batches) && h.batches[k].due <= now {
		n += h.batches[k].n
		k++
	}
	if k == h.first {
		return
	}
	end := h.batches[k-1].end
	_, _ = cs.c.Write(h.buf[h.off:end])
	cs.l.count(n)
	if cs.closed {
		return // the write failed and gnet closed the connection
	}
	h.off, h.first = end, k
	if h.empty() {
		h.buf, h.off = h.buf[:0], 0
		h.batches, h.first = h.batches[:0], 0
	}
}

// drained reports whether cs, which must close, may close now: gnet has
// written all its output to the socket (what is in the socket's buffer
// is still sent after close). If not, the loop's timer looks again in
// drainPoll. On cs's loop.
func (s *Server) drained(cs *connState, now time.Duration) bool {
	cs.closing = true // reads are ignored from now on
	if cs.c.OutboundBuffered() == 0 {
		return true
	}
	if !cs.draining {
		cs.draining = true
		cs.l.timer.push(wake{cs: cs, due: now + drainPoll, drain: true})
	}
	return false
}

// timerState is a loop's side of its timer goroutine.
type timerState struct {
	mu sync.Mutex
	q  wakeHeap // guarded by mu

	kick chan struct{} // a push made a new head: the timer must look again
	ran  chan struct{} // the loop has run releaseDue: the timer may look again
	run  gnet.Runnable // releaseDue, built once
	due  []wake        // the loop's scratch for releaseDue
}

func (t *timerState) init() {
	t.kick = make(chan struct{}, 1)
	t.ran = make(chan struct{}, 1)
}

// wake asks the loop to look at cs at due: to release its held batches,
// or (drain) to close it if its output has drained.
type wake struct {
	cs    *connState
	due   time.Duration
	drain bool
}

// push queues w; on the loop.
func (t *timerState) push(w wake) {
	t.mu.Lock()
	head := len(t.q) == 0 || w.due < t.q[0].due
	t.q.push(w)
	t.mu.Unlock()
	if head {
		select {
		case t.kick <- struct{}{}:
		default:
		}
	}
}

// wakeHeap is a binary min-heap of wakes by due time (container/heap
// would box every wake in an interface: an allocation per push).
type wakeHeap []wake

func (h *wakeHeap) push(w wake) {
	q := append(*h, w)
	i := len(q) - 1
	for i > 0 {
		parent := (i - 1) / 2
		if q[parent].due <= q[i].due {
			break
		}
		q[parent], q[i] = q[i], q[parent]
		i = parent
	}
	*h = q
}

func (h *wakeHeap) pop() wake {
	q := *h
	w := q[0]
	last := len(q) - 1
	q[0] = q[last]
	q[last] = wake{} // drop the reference to the connection
	q = q[:last]
	i := 0
	for {
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(q) && q[l].due < q[m].due {
			m = l
		}
		if r < len(q) && q[r].due < q[m].due {
			m = r
		}
		if m == i {
			break
		}
		q[i], q[m] = q[m], q[i]
		i = m
	}
	*h = q
	return w
}

// popDue appends the wakes due by now to dst, earliest first.
func (h *wakeHeap) popDue(now time.Duration, dst []wake) []wake {
	for len(*h) > 0 && (*h)[0].due <= now {
		dst = append(dst, h.pop())
	}
	return dst
}

// releaseDue runs on the loop: it releases every connection due by now,
// and closes those that were waiting for it.
func (s *Server) releaseDue(l *loop) {
	t := &l.timer
	now := s.now()
	t.mu.Lock()
	t.due = t.q.popDue(now, t.due[:0])
	t.mu.Unlock()
	for i, w := range t.due {
		t.due[i] = wake{}
		cs := w.cs
		if cs.closed {
			continue
		}
		if w.drain {
			cs.draining = false
		} else {
			s.release(cs, now)
		}
		if cs.closing && !cs.closed && cs.held.empty() && s.drained(cs, now) {
			_ = l.el.Close(cs.c) // we are on cs's loop, as Close requires
		}
	}
}

// runTimer is loop l's timer goroutine: it wakes the loop when the head of
// its heap is due, until the server stops.
func (s *Server) runTimer(l *loop) {
	defer s.wg.Done()
	t := &l.timer
	t.run = gnet.RunnableFunc(func(context.Context) error {
		s.releaseDue(l)
		select {
		case t.ran <- struct{}{}:
		default:
		}
		return nil
	})
	// The last stretch of each wait is a nanosleep with 1 µs of timer
	// slack on a thread of our own: Go's timers can fire up to a
	// millisecond late, and that would show in every delayed response.
	runtime.LockOSThread() // never unlocked: the thread ends with us
	precisionSetup()
	coarse := time.NewTimer(time.Hour)
	defer coarse.Stop()
	for {
		t.mu.Lock()
		empty := len(t.q) == 0
		var next time.Duration
		if !empty {
			next = t.q[0].due
		}
		t.mu.Unlock()
		if empty {
			select {
			case <-t.kick:
				continue
			case <-s.stop:
				return
			}
		}
		wait := next - s.now()
		if wait > 2*time.Millisecond {
			// Long waits on a Go timer, so that Stop and an earlier
			// wake are not kept waiting.
			coarse.Reset(wait - time.Millisecond)
			select {
			case <-coarse.C:
			case <-t.kick:
			case <-s.stop:
				return
			}
			continue
		}
		if wait > 0 {
			preciseSleep(wait)
		}
		if err := l.el.Execute(context.Background(), t.run); err != nil {
			<-s.stop // the engine is shutting down
			return
		}
		select {
		case <-t.ran:
		case <-s.stop:
			return
		}
	}
}
