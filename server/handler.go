package server

import (
	"sync"
	"sync/atomic"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/cpu"
)

// handler is the server's gnet event handler.
type handler struct {
	gnet.BuiltinEventEngine
	s *Server

	mu      sync.Mutex // guards the fields below; taken per connection, never per request
	loops   map[gnet.EventLoop]*loop
	list    []*loop
	stopped bool // Stop has begun: start no more timer goroutines
}

// loop is the state of one event loop. Only that loop touches it, except
// for served (read by Served and the rate log) and the timer hand-off
// fields, which say who else may touch them.
type loop struct {
	_      cpu.CacheLinePad
	served atomic.Uint64 // responses written; only this loop writes it
	out    []byte        // the responses of one OnTraffic, written at once
	el     gnet.EventLoop
	pol    policy // which response each request gets

	// Held responses and closes waiting for output to drain (delay.go).
	timer timerState

	_ cpu.CacheLinePad
}

// count adds n responses to the loop's counter. The loop is the only
// writer, so a plain load and store do: no locked instruction per write.
func (l *loop) count(n int) {
	l.served.Store(l.served.Load() + uint64(n))
}

// connState is one connection's state, owned by its loop.
type connState struct {
	session
	l      *loop
	c      gnet.Conn
	closed bool // OnClose has run: the connection must not be touched
	// closing: the connection closes once the responses held for it are
	// written and gnet has handed them all to the socket; reads are
	// ignored meanwhile.
	closing  bool
	draining bool // a drain wake is queued (delay.go)

	held heldResponses // timed modes only (see delay.go)
}

func (h *handler) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	c.SetContext(&connState{l: h.loop(c.EventLoop()), c: c})
	return nil, gnet.None
}

// loop returns the state of event loop el, making it on el's first
// connection (gnet does not tell a handler its loops up front).
func (h *handler) loop(el gnet.EventLoop) *loop {
	h.mu.Lock()
	defer h.mu.Unlock()
	if l := h.loops[el]; l != nil {
		return l
	}
	l := &loop{el: el, pol: h.s.newPolicy(uint64(len(h.list)))}
	h.loops[el] = l
	h.list = append(h.list, l)
	if !h.stopped {
		// Every loop has a timer: held responses need it, and so does
		// any connection that must close while gnet still holds output
		// for it. Idle, it is a goroutine blocked on a channel.
		l.timer.init()
		h.s.wg.Add(1)
		go h.s.runTimer(l)
	}
	return l
}

// served sums the loops' counters.
func (h *handler) served() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	var n uint64
	for _, l := range h.list {
		n += l.served.Load()
	}
	return n
}

func (h *handler) OnClose(c gnet.Conn, _ error) gnet.Action {
	if cs, ok := c.Context().(*connState); ok {
		cs.closed = true
		cs.held = heldResponses{}
	}
	return gnet.None
}

func (h *handler) OnTraffic(c gnet.Conn) gnet.Action {
	cs, ok := c.Context().(*connState)
	if !ok {
		panic("BUG: server: connection without state")
	}
	s := h.s
	buf, _ := c.Peek(-1)
	if cs.closing || s.o.Silent {
		// Closing: waiting for held responses or for gnet to drain;
		// the client's later bytes are not answered. Silent: nothing
		// is ever answered.
		if len(buf) > 0 {
			_, _ = c.Discard(len(buf))
		}
		return gnet.None
	}
	l := cs.l
	if s.clocked {
		l.pol.begin(s.now())
	}
	out, off, n, closeConn := s.rs.feed(&cs.session, buf, l.out[:0], &l.pol)
	l.out = out
	if off > 0 {
		// Hazard: gnet's Discard(n) with n <= 0 discards everything,
		// partial request included.
		_, _ = c.Discard(off)
	}
	if s.timed {
		return s.hold(cs, out, n, closeConn)
	}
	if len(out) > 0 {
		// One write for every response of this read. Write copies what
		// the socket does not take, so l.out can be reused at once.
		_, _ = c.Write(out)
		l.count(n)
	}
	if closeConn && !cs.closed && s.drained(cs, s.now()) {
		return gnet.Close
	}
	return gnet.None
}
