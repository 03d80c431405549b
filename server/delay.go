package server

import (
	"context"
	"runtime"
	"sync"
	"time"

	"github.com/panjf2000/gnet/v2"
)

// Delay and stall mode.
//
// Each read's responses form a batch with a due time (see Server.due).
// Due times never decrease, on a connection or on a loop, which keeps
// everything a FIFO:
//
//   - a connection holds its batches' bytes in order (heldResponses) and
//     writes every batch that is due in one write;
//   - a loop queues (connection, due) pairs in order (wakeQueue), guarded
//     by a mutex shared only with that loop's timer goroutine;
//   - the loop's timer goroutine sleeps until the queue's head is due and
//     hands the loop one Execute, which pops and releases every due pair,
//     then waits for it to finish before looking at the queue again.
//
// gnet has no per-loop timers, hence the goroutine; and one Execute per
// wake-up rather than one Conn.Wake per connection keeps a thousand
// connections due at once to one task on the loop's queue.

// due returns when a response to a request read at now (since the server
// started) may go out: Delay later, and never inside a stall. Stalls
// begin at every multiple of StallEvery after the start (not at the
// start) and last StallFor; whatever falls inside one goes out when it
// ends.
func (s *Server) due(now time.Duration) time.Duration {
	d := now + s.o.Delay
	if every, length := s.o.StallEvery, s.o.StallFor; length > 0 {
		if k := d / every; k >= 1 && d-k*every < length {
			d = k*every + length
		}
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

// hold is OnTraffic's end in delay and stall mode: out (n responses) is
// written now if it is due and nothing is held before it, else held.
func (s *Server) hold(cs *connState, out []byte, n int, closeConn bool) gnet.Action {
	now := s.now()
	if len(out) > 0 {
		due := s.due(now)
		switch {
		case due <= now && cs.held.empty():
			_, _ = cs.c.Write(out)
			cs.l.count(n)
		case due <= now:
			// Everything held before is due too (due times never
			// decrease), whether or not its timer has fired yet.
			cs.held.add(out, n, due)
			s.release(cs, now)
		default:
			cs.held.add(out, n, due)
			cs.l.timer.push(cs, due)
		}
	}
	if closeConn {
		cs.closing = true
	}
	if cs.closing && cs.held.empty() {
		return gnet.Close
	}
	return gnet.None
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

// timerState is a loop's side of its timer goroutine.
type timerState struct {
	mu sync.Mutex
	q  wakeQueue // guarded by mu

	kick chan struct{} // a push into an empty queue
	ran  chan struct{} // the loop has run release: the timer may look again
	run  gnet.Runnable // releaseDue, built once
	due  []wake        // the loop's scratch for releaseDue
}

func (t *timerState) init() {
	t.kick = make(chan struct{}, 1)
	t.ran = make(chan struct{}, 1)
}

type wake struct {
	cs  *connState
	due time.Duration
}

// push queues cs to be released at due; on the loop.
func (t *timerState) push(cs *connState, due time.Duration) {
	t.mu.Lock()
	wasEmpty := t.q.len() == 0
	t.q.push(wake{cs, due})
	t.mu.Unlock()
	if wasEmpty {
		select {
		case t.kick <- struct{}{}:
		default:
		}
	}
}

// wakeQueue is a FIFO of wakes in due order.
type wakeQueue struct {
	items []wake
	head  int
}

func (q *wakeQueue) len() int { return len(q.items) - q.head }

func (q *wakeQueue) push(w wake) {
	if q.head > 1024 && q.head > len(q.items)/2 {
		k := copy(q.items, q.items[q.head:])
		clear(q.items[k:])
		q.items, q.head = q.items[:k], 0
	}
	q.items = append(q.items, w)
}

// popDue appends the wakes due by now to dst.
func (q *wakeQueue) popDue(now time.Duration, dst []wake) []wake {
	for q.head < len(q.items) && q.items[q.head].due <= now {
		dst = append(dst, q.items[q.head])
		q.items[q.head] = wake{}
		q.head++
	}
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	}
	return dst
}

// releaseDue runs on the loop: it releases every connection due by now.
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
		s.release(cs, now)
		if cs.closing && !cs.closed && cs.held.empty() {
			_ = l.el.Close(cs.c) // we are on cs's loop, as Close requires
		}
	}
}

// runTimer is loop l's timer goroutine: it wakes the loop when the head of
// its queue is due, until the server stops.
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
		empty := t.q.len() == 0
		var next time.Duration
		if !empty {
			next = t.q.items[t.q.head].due
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
			// Long waits on a Go timer, so that Stop is not kept waiting.
			coarse.Reset(wait - time.Millisecond)
			select {
			case <-coarse.C:
				continue
			case <-s.stop:
				return
			}
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
