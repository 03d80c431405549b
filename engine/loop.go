package engine

import (
	"context"
	"math/bits"
	"sync/atomic"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"

	"github.com/barrage-load/barrage/proto"
	"github.com/barrage-load/barrage/proto/http1"
	reqmix "github.com/barrage-load/barrage/request"
)

// loop is one gnet event loop pinned to one CPU, with everything it owns:
// its connections, its share of the schedule, its statistics. Only code
// running on the loop touches the fields below the line, except where a
// field says otherwise.
type loop struct {
	gnet.BuiltinEventEngine
	e        *Engine
	idx, cpu int
	cli      *gnet.Client
	// el is the gnet event loop, known from the first connection opened on
	// it; until then the loop runs nothing and the clock hands its interval
	// off by itself.
	el atomic.Pointer[gnet.EventLoop]
	// connErrs counts failed connects, tlsErrs failed TLS handshakes by
	// reason; dialer goroutines add to them.
	connErrs atomic.Uint64
	tlsErrs  [proto.NumTLSReasons]atomic.Uint64
	// connFails counts failed connects and TLS handshakes since the
	// start (the dialer adds to it; the breaker reads it).
	connFails atomic.Uint64
	// nextDue is the absolute time (ns since epoch) of the next token, read
	// by the pacer goroutine to know when to wake the loop.
	nextDue     atomic.Int64
	pumpPending atomic.Bool
	// cutDue is the absolute time (ns since epoch) of the next interval
	// boundary the loop will cut at (see maybeCut), read by the pacer.
	cutDue atomic.Int64
	pool   chan *proto.Stats // recycled interval stats
	// bellFD is the pacer's end of the doorbell connection (open model).
	bellFD int
	// Tasks made once: checkTimeouts, adjust and syncSchedule on the loop.
	checkTask, adjustTask, syncTask gnet.Runnable
	// wantN is the connections the loop is to hold: the clock sets it,
	// adjust reads it when it runs (so tasks run out of order never leave
	// a stale count behind).
	wantN atomic.Int64

	// ---- owned by the loop ----
	pinned  bool
	started bool
	// lastCPU is the loop's CPU time at the last hand-off (see cpuTime).
	lastCPU time.Duration
	// Interval cuts: at each boundary but the last (Engine.bounds) the
	// loop itself moves its statistics aside into cut, at the instant, so
	// the interval's counts do not depend on when the clock's hand-off
	// reaches the loop. nextCut indexes the next boundary to cut at;
	// cutSeq is the interval cut holds.
	cut     *proto.Stats
	cutSeq  int
	nextCut int
	stopped bool
	st      *proto.Stats
	open    bool
	// pc is the loop's share of the schedule and its token cursors (open
	// model); schedVersion is the engine's schedule version it follows.
	pc           pacing
	schedVersion uint64
	phaseBuf     []phaseChange
	conns        []*conn
	// drained holds the open slots being drained, the first to revive.
	drained  []*conn
	want     int // connections wanted (wantN when adjust last ran)
	active   int // slots neither draining nor closed for good
	openN    int // connections open now
	dialingN int // slots the dialer holds
	shrinkAt int // where the next drain scan resumes, from the end
	freeQ    []*conn
	freeHead int
	dirty    []*conn
	// expected is the closed model's expected interval between responses
	// (µs) used to back-fill the corrected histogram.
	expected  int64
	firstSend int64

	// The requests (owned by the loop): mix is the mix in force and rend
	// the loop's renderer; fixed is the one request's bytes when nothing
	// in it varies (Options.Request without a mix), sent as they are.
	// nextMix takes over once the run's clock reaches nextMixAt (a live
	// header change; never when none waits); mixVersion is the engine's
	// mix version the loop follows. perName: the stats carry per-request
	// figures.
	mix        *reqmix.Mix
	rend       *reqmix.Renderer
	fixed      []byte
	nextMix    *reqmix.Mix
	nextMixAt  time.Duration
	mixVersion uint64
	perName    bool
	nreq       int
	// plain receives the plaintext of TLS records, one at a time (only
	// over TLS).
	plain []byte
	// refillAt is how many free pipeline slots a closed-model connection
	// waits for before it writes again (see setRefill).
	refillAt int
	// rt is the loop's retry queue and breaker counting (retry.go); nil
	// with neither retries nor a breaker. pubAt is when the loop next
	// publishes its counts to the breaker (never without one).
	rt    *retrier
	pubAt int64
}

// setRefill sets when a pipelined closed-model connection writes again,
// from how many connections the loop holds open.
//
// The kernel's cost is per write (and per segment), not per byte, so
// the fewer refills the better: a connection with its whole pipeline
// answered refills it in one write, as wrk does. But while it waits for
// its last responses and then for its new batch to arrive, the server
// has none of its requests: with few connections the server sits idle
// (against nginx, 1 connection at depth 16 lost 25-40% of its rate that
// way, 4 connections up to 30%). With refillWholeConns open connections
// or more on the loop, the others keep the server busy, and a connection
// refills once its whole pipeline is answered; with fewer, at half depth,
// so requests stay queued at the server while the refill travels.
func (l *loop) setRefill() {
	d := l.e.opts.Pipeline
	if l.openN >= refillWholeConns {
		l.refillAt = d
	} else {
		l.refillAt = max(1, d/2)
	}
}

// now is the time in ns since the engine's epoch (monotonic).
func (l *loop) now() int64 { return int64(time.Since(l.e.epoch)) }

func (l *loop) eventLoop() gnet.EventLoop {
	if p := l.el.Load(); p != nil {
		return *p
	}
	return nil
}

// execute runs fn on the loop; false when the loop cannot run it (no
// connection ever opened on it, or it is shutting down).
func (l *loop) execute(fn func()) bool {
	return l.run(gnet.RunnableFunc(func(context.Context) error {
		fn()
		return nil
	}))
}

// run is execute for a task made once (checkTask): gnet's Execute then
// allocates only its queue node.
func (l *loop) run(task gnet.Runnable) bool {
	el := l.eventLoop()
	if el == nil {
		return false
	}
	return el.Execute(context.Background(), task) == nil
}

// cpuTime is the CPU time the loop has used, called on the loop: its
// thread's, or, when it floats on a one-CPU mask, the whole process's
// (everything then shares that one core).
func (l *loop) cpuTime() time.Duration {
	if l.e.float {
		return processCPU()
	}
	return threadCPU()
}

// ---- gnet callbacks (on the loop) ----

func (l *loop) OnOpen(gc gnet.Conn) ([]byte, gnet.Action) {
	c, _ := gc.Context().(*conn)
	if c == nil {
		return nil, gnet.Close
	}
	if !l.pinned {
		l.pinned = true
		el := gc.EventLoop()
		l.el.Store(&el)
		// Pinning failures (a CPU taken away) leave the loop unpinned but
		// working; the affinity mask was read at start, so it is rare.
		if !l.e.float {
			_ = pinThread(l.cpu)
		}
	}
	if c.bell {
		return nil, gnet.None
	}
	if c.dialing {
		c.dialing = false
		l.dialingN--
	}
	c.gc = gc
	c.open = true
	c.reset()
	c.parser.Reset(l.e.opts.Head)
	l.openN++
	l.setRefill()
	l.recordOpen(c)
	if l.stopped || c.draining {
		return nil, gnet.Close
	}
	if !l.started {
		// A loop whose first connection opened after the run started
		// starts now (its start task found no event loop to run on).
		if l.e.running.Load() {
			l.start()
		}
		return nil, gnet.None
	}
	now := l.now()
	l.maybeCut(now)
	if l.open {
		l.enqueue(c)
		l.pump(now)
	} else {
		l.fill(c, now)
	}
	l.flush()
	if l.active < l.want && l.dialingN < dialingPerLoop {
		// Slots are made as connections open (see dialingPerLoop).
		l.adjust()
	}
	return nil, gnet.None
}

func (l *loop) OnTraffic(gc gnet.Conn) gnet.Action {
	c, _ := gc.Context().(*conn)
	buf, _ := gc.Peek(-1)
	if c != nil && c.bell {
		if len(buf) > 0 {
			_, _ = gc.Discard(len(buf))
		}
		l.maybeCut(l.now())
		l.runPump()
		return gnet.None
	}
	if c == nil || l.stopped {
		_, _ = gc.Discard(len(buf))
		return gnet.None
	}
	now := l.now()
	l.maybeCut(now)
	var action gnet.Action
	if c.tls != nil && c.tls.fast {
		var off int
		off, action = l.readRecords(c, buf, now)
		if off > 0 {
			_, _ = gc.Discard(off)
		}
	} else if c.tls != nil {
		// crypto/tls takes every byte (a partial record waits in its
		// buffer), so all of them go.
		action = l.readTLS(c, buf, now)
		if len(buf) > 0 {
			_, _ = gc.Discard(len(buf))
		}
	} else {
		var off int
		off, action = l.consume(c, buf, now)
		if action == gnet.Close {
			off = len(buf)
		}
		if off > 0 {
			// Hazard: gnet's Discard(n) with n <= 0 discards everything,
			// the partial response we must keep included.
			_, _ = gc.Discard(off)
		}
		l.st.BytesIn += uint64(off)
	}
	if action == gnet.Close {
		return action
	}
	if c.draining {
		if c.n == 0 {
			return gnet.Close
		}
		return gnet.None
	}
	if l.started {
		if l.open {
			l.enqueue(c)
			l.pump(now)
		} else if c.free() >= l.refillAt {
			l.fill(c, now)
		}
		l.flush()
	}
	return gnet.None
}

// consume parses the response bytes in buf for c's requests in flight
// and completes each response it ends; it returns how many bytes it
// consumed (the rest is a partial head, presented again with the next
// bytes) and gnet.Close when the connection must close.
func (l *loop) consume(c *conn, buf []byte, now int64) (int, gnet.Action) {
	st := l.st
	off := 0
	for off < len(buf) {
		if c.n == 0 {
			// Bytes nobody asked for: the stream is out of step.
			c.setFail(proto.ErrProtocol)
			return off, gnet.Close
		}
		n, err := c.parser.Feed(buf[off:])
		off += n
		if err == http1.ErrNeedMore {
			break
		}
		if err != nil {
			c.setFail(proto.ErrProtocol)
			return off, gnet.Close
		}
		if c.parser.Informational() {
			c.parser.Reset(l.e.opts.Head)
			continue
		}
		l.complete(c, now)
		if l.e.opts.NoKeepAlive {
			// Its one request is answered: the generator closes (and
			// the slot reconnects at once), whatever the server said.
			c.ownClose = true
			st.ClientCloses++
			c.parser.Reset(l.e.opts.Head)
			return off, gnet.Close
		}
		if !c.parser.KeepAlive() {
			// The server closes after this response (Connection: close,
			// HTTP/1.0): the rest of the pipeline will never be answered
			// and counts as reset when the close comes. The parser starts
			// afresh so the close completes nothing more.
			c.srvClose = true
			st.ServerCloses++
			c.parser.Reset(l.e.opts.Head)
			return off, gnet.Close
		}
		c.parser.Reset(l.e.opts.Head)
	}
	return off, gnet.None
}

// recordOpen records how long the connection just opened on slot c took
// to connect and, over TLS, to shake hands. The histograms are made on
// their first value (a run that opens no connection in an interval
// carries none).
func (l *loop) recordOpen(c *conn) {
	st := l.st
	if st.Connect == nil {
		st.Connect = proto.NewHistogram()
	}
	l.record(st.Connect, c.connectNS)
	if c.tls != nil {
		if st.Handshake == nil {
			st.Handshake = proto.NewHistogram()
		}
		l.record(st.Handshake, c.handshakeNS)
	}
}

func (l *loop) OnClose(gc gnet.Conn, err error) gnet.Action {
	c, _ := gc.Context().(*conn)
	if c == nil || c.bell {
		return gnet.None
	}
	if c.open {
		l.openN--
		l.setRefill()
	}
	c.open = false
	c.gc = nil
	if c.tls != nil {
		// The next connection gets a tls.Conn of its own; this one's
		// buffers go to the GC now rather than wait for it.
		c.tls.tc = nil
		c.tls.pipe.in = nil
		c.tls.rl.forget()
		c.tls.fast = false
	}
	if l.stopped {
		// Counted as unfinished by the final hand-off.
		c.n = 0
		return gnet.None
	}
	now := l.now()
	l.maybeCut(now)
	st := l.st
	// A close of ours (a timeout, a protocol error) cuts a response
	// short; one of the server's may complete it.
	ours := c.failSet && c.fail != proto.ErrReset
	if c.n > 0 && !ours && c.parser.Started() && c.parser.EOF() == nil {
		// A close-delimited body ends here: the close completes it.
		l.complete(c, now)
		if !c.srvClose {
			c.srvClose = true
			st.ServerCloses++
		}
	}
	if c.n > 0 {
		kind := proto.ErrReset
		if c.failSet {
			kind = c.fail
		}
		st.Errors[kind] += uint64(c.n)
		l.failReqs(st, c, kind)
		l.censor(st, c, now)
		if l.rt != nil {
			l.failedAll(c, kind, now)
		}
		c.n = 0
	} else if !c.failSet && !c.srvClose && !c.ownClose && !c.draining {
		// The server closed a connection with nothing in flight (its
		// keep-alive timeout or request limit).
		c.srvClose = true
		st.ServerCloses++
	}
	_ = err
	if c.draining {
		l.removeConn(c)
		return gnet.None
	}
	// After a server's close, or the generator's own after the one
	// request of a connection, the slot reconnects at once; after a
	// failure, with backoff.
	l.redial(c, !c.srvClose && !c.ownClose)
	return gnet.None
}

// redial hands slot c to the dialer.
func (l *loop) redial(c *conn, wait bool) {
	if l.e.dialer == nil {
		return
	}
	c.dialing = true
	l.dialingN++
	l.e.dialer.add(l, c, wait)
}

// ---- the hot path ----

// complete records the response that just ended for the oldest request of c.
func (l *loop) complete(c *conn, now int64) {
	st := l.st
	i := c.head
	f := c.pop()
	st.Responses++
	code := c.parser.Status()
	if code <= 0 || code >= proto.MaxStatus {
		code = 0
	}
	st.Status[code]++
	if l.perName {
		l.completeReq(st, f, code, now)
	}
	if l.rt != nil {
		l.answered(c, i, f, code, now)
	}
	if l.open {
		l.record(st.Latency, now-f.intended)
		l.record(st.Service, now-f.sent)
		return
	}
	us := l.clampUS(now - f.sent)
	_ = st.Latency.RecordValue(us)
	_ = st.Corrected.RecordCorrectedValue(us, l.expected)
}

// completeReq records a response in its request's figures: the same
// latency Stats.Latency records (clamped, but counted as clamped once,
// there).
func (l *loop) completeReq(st *proto.Stats, f inflight, code int, now int64) {
	r := &st.Requests[f.req]
	r.Responses++
	r.Status[code]++
	from := f.sent
	if l.open {
		from = f.intended
	}
	_ = r.Latency.RecordValue(min(max((now-from)/1000, 0), proto.HistMax))
}

// failReqs counts the requests in flight on c as failed with kind, in
// their requests' figures (named mixes).
func (l *loop) failReqs(st *proto.Stats, c *conn, kind proto.ErrKind) {
	if !l.perName {
		return
	}
	for i := 0; i < c.n; i++ {
		st.Requests[c.at(i).req].Errors[kind]++
	}
}

func (l *loop) clampUS(ns int64) int64 {
	us := ns / 1000
	if us > proto.HistMax {
		l.st.Clamped++
		return proto.HistMax
	}
	if us < 0 {
		return 0
	}
	return us
}

func (l *loop) record(h *hdrhistogram.Histogram, ns int64) {
	_ = h.RecordValue(l.clampUS(ns))
}

// recordN records n values of ns into h, a histogram of st.
func recordN(st *proto.Stats, h *hdrhistogram.Histogram, ns int64, n uint64) {
	us := max(ns/1000, 0)
	if us > proto.HistMax {
		st.Clamped += n
		us = proto.HistMax
	}
	_ = h.RecordValues(us, int64(n))
}

// censor records the requests in flight on c as lower bounds of their
// latency: they were never answered (the connection died, or the run
// ended), and waited at least until now. The open model measures from
// the intended send time, the closed one from the actual send.
func (l *loop) censor(st *proto.Stats, c *conn, now int64) {
	for i := 0; i < c.n; i++ {
		f := c.at(i)
		from := f.sent
		if l.open {
			from = f.intended
		}
		recordN(st, st.Latency, now-from, 1)
		if l.perName {
			_ = st.Requests[f.req].Latency.RecordValue(min(max((now-from)/1000, 0), proto.HistMax))
		}
	}
	st.Censored += uint64(c.n)
}

// censorWaiting records the tokens still waiting for a connection at the
// end as lower bounds of their latency, from their intended times. Hazard:
// an absurd rate leaves billions: past censorBuckets they go in that many
// batches, each recorded at its middle token's wait.
func (l *loop) censorWaiting(st *proto.Stats, now int64) {
	p := &l.pc
	n := p.waiting()
	if n == 0 {
		return
	}
	start := l.e.startNS
	if n <= censorBuckets {
		seg := p.nextSeg
		for j := p.next; j < p.seen; j++ {
			at, sg, ok := p.at(j, seg)
			seg = sg
			if !ok {
				at = now - start
			}
			recordN(st, st.Latency, now-start-at, 1)
		}
	} else {
		for b := uint64(0); b < censorBuckets; b++ {
			lo, hi := p.next+mulDiv(n, b, censorBuckets), p.next+mulDiv(n, b+1, censorBuckets)
			if hi == lo {
				continue
			}
			at, _, ok := p.at(lo+(hi-lo)/2, 0)
			if !ok {
				at = now - start
			}
			recordN(st, st.Latency, now-start-at, hi-lo)
		}
	}
	st.Censored += n
}

// mulDiv is a*b/c without overflow (b <= c).
func mulDiv(a, b, c uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	q, _ := bits.Div64(hi, lo, c)
	return q
}

// send appends one request to c's batch: the one fixed request, or the
// mix's next pick rendered in place (no allocation once c.wbuf has room).
func (l *loop) send(c *conn, intended, now int64) {
	if time.Duration(now-l.e.startNS) >= l.nextMixAt {
		l.takeMix()
	}
	req := 0
	start := len(c.wbuf)
	if l.fixed != nil {
		c.wbuf = append(c.wbuf, l.fixed...)
	} else {
		c.wbuf, req = l.rend.Append(c.wbuf, l.mix, l.e.unixNS+now)
	}
	if c.sentB != nil {
		l.keep(c, start)
	}
	if l.perName {
		l.st.Requests[req].Sent++
	}
	c.push(intended, now, req)
	l.st.Sent++
	if !c.dirty {
		c.dirty = true
		l.dirty = append(l.dirty, c)
	}
	if l.firstSend == 0 {
		l.firstSend = now
	}
}

// fill tops c up to its pipeline depth (closed model). While the lease
// has lapsed it sends nothing: the requests in flight complete, no new
// one goes (one atomic load per call).
func (l *loop) fill(c *conn, now int64) {
	if !c.open || c.draining || now > l.e.lease.Load().until {
		return
	}
	if l.rt != nil {
		l.fillGuarded(c, now)
		return
	}
	for c.n < len(c.ring) {
		l.send(c, now, now)
	}
}

// flush writes every batch built since the last flush, one write per
// connection (over TLS, the batch encrypted: one record, one write).
func (l *loop) flush() {
	for i, c := range l.dirty {
		l.dirty[i] = nil
		c.dirty = false
		if c.gc != nil {
			if c.tls != nil {
				l.flushTLS(c)
			} else if len(c.wbuf) > 0 {
				n := len(c.wbuf)
				if _, err := c.gc.Write(c.wbuf); err != nil {
					c.setFail(proto.ErrReset)
				} else {
					l.st.BytesOut += uint64(n)
				}
			}
		}
		c.wbuf = c.wbuf[:0]
	}
	l.dirty = l.dirty[:0]
}

// enqueue puts c in the free queue if it can take a request.
func (l *loop) enqueue(c *conn) {
	if c.queued || !c.open || c.draining || c.n >= len(c.ring) {
		return
	}
	c.queued = true
	// Hazard: the queue is a slice eaten from the front; unless the dead
	// front is reclaimed it grows for as long as the queue never empties
	// (a leak of 8 bytes per request at high connection counts).
	if l.freeHead > 0 && (l.freeHead == len(l.freeQ) || l.freeHead >= 64 && 2*l.freeHead >= len(l.freeQ)) {
		n := copy(l.freeQ, l.freeQ[l.freeHead:])
		clear(l.freeQ[n:])
		l.freeQ, l.freeHead = l.freeQ[:n], 0
	}
	l.freeQ = append(l.freeQ, c)
}

// takeFree returns a connection that can take one request, or nil. The
// connection goes to the back of the queue if it can take more, so tokens
// spread over the connections.
func (l *loop) takeFree() *conn {
	for l.freeHead < len(l.freeQ) {
		c := l.freeQ[l.freeHead]
		l.freeQ[l.freeHead] = nil
		l.freeHead++
		c.queued = false
		if c.open && !c.draining && c.n < len(c.ring) {
			if c.n+1 < len(c.ring) {
				l.enqueue(c)
			}
			return c
		}
	}
	// Compact so the queue's memory is reused rather than grown.
	l.freeQ, l.freeHead = l.freeQ[:0], 0
	return nil
}

// pump sends the tokens that are due on free connections, and counts the
// tokens that came due (open model). now is the time in ns since the
// engine's epoch: the caller's clock, so tests drive it with made-up
// times. Its work is bounded whatever the rate: counting and shedding are
// O(1) (see pacing), and it sends at most MaxPumpSends.
//
// Order matters: a lapsed lease sheds everything due (fenced); then the
// tokens due before the lease was (re)gained are shed (fenced: never sent
// late in a burst); then those that waited longer than the timeout for a
// connection (backlog); only then does anything go.
func (l *loop) pump(now int64) {
	e := l.e
	p := &l.pc
	st := l.st
	t := now - e.startNS
	ls := e.lease.Load()
	if now > ls.until {
		p.fence(t, st)
		l.nextDue.Store(l.due(now, t, false))
		return
	}
	if p.nextOK && p.nextAt+e.startNS < ls.from {
		p.shed(p.count(ls.from-e.startNS-1), proto.ShedFenced, st)
	}
	gate := stateClosed
	if e.bk != nil {
		if gate = e.bk.state.Load(); gate == stateOpen {
			l.shedOpen(now, t)
			return
		}
	}
	if p.nextOK && t-p.nextAt > int64(e.opts.Timeout) {
		p.shed(p.count(t-int64(e.opts.Timeout)-1), proto.ShedBacklog, st)
	}
	offered := p.offered
	sends := 0
	if l.rt != nil && l.rt.pending() {
		sends = l.sendRetries(nil, now, gate, MaxPumpSends)
	}
	for p.nextOK && p.nextAt <= t && sends < MaxPumpSends {
		if gate == stateHalfOpen {
			if !l.probeToken(now, t) {
				break
			}
			sends++
			continue
		}
		c := l.takeFree()
		if c == nil {
			break
		}
		if p.next >= offered {
			// Sent in the pump that found it due: what it waited is the
			// generator's own lateness. A token sent later waited for
			// the target (it was backlogged) and is not counted here.
			l.record(st.Lateness, t-p.nextAt)
		}
		l.send(c, p.nextAt+e.startNS, now)
		p.take()
		sends++
	}
	// Count what came due: one token (the usual case) in line, more
	// through observe, in O(1).
	if p.seenOK && p.seenAt <= t {
		p.seeOne(st)
		if p.seenOK && p.seenAt <= t {
			p.observe(t, st)
		}
	}
	p.offer(st)
	l.nextDue.Store(l.due(now, t, sends == MaxPumpSends))
}

// due is when the pacer must next wake the loop for its tokens (ns since
// the epoch): at the next token's time; at once when a pump stopped at its
// bound with tokens due; else a backlog waits for a connection, looked at
// every MaxPacerTick (and at every response).
func (l *loop) due(now, t int64, more bool) int64 {
	d := l.dueToken(now, t, more)
	if l.rt != nil && l.rt.pending() {
		// A retry due and waiting for a connection is looked at with the
		// backlog's tokens.
		r := l.dueRetry()
		if r <= now {
			r = now + int64(MaxPacerTick)
		}
		d = min(d, r)
	}
	return d
}

// dueToken is due for the schedule's tokens alone.
func (l *loop) dueToken(now, t int64, more bool) int64 {
	p := &l.pc
	switch {
	case !p.nextOK:
		return 1 << 62
	case p.nextAt > t:
		return p.nextAt + l.e.startNS
	case more:
		return now
	}
	return now + int64(MaxPacerTick)
}

// settle brings the token count to the run's end (ns since the start) at
// the final hand-off, and censors the tokens still waiting.
func (l *loop) settle(st *proto.Stats, now, end int64) {
	e := l.e
	p := &l.pc
	t := now - e.startNS
	ls := e.lease.Load()
	if now > ls.until {
		p.fence(end, st)
	} else {
		if p.nextOK && p.nextAt+e.startNS < ls.from {
			p.shed(p.count(ls.from-e.startNS-1), proto.ShedFenced, st)
		}
		if e.bk != nil && e.bk.state.Load() == stateOpen {
			p.shedDue(end, proto.ShedCircuit, st)
		}
		if p.nextOK && t-p.nextAt > int64(e.opts.Timeout) {
			p.shed(p.count(t-int64(e.opts.Timeout)-1), proto.ShedBacklog, st)
		}
		p.observe(end, st)
		p.offer(st)
	}
	l.censorWaiting(st, now)
}

// runPump is what the pacer asks the loop to run.
func (l *loop) runPump() {
	l.pumpPending.Store(false)
	if !l.started || l.stopped {
		return
	}
	l.pump(l.now())
	l.flush()
}

// ---- control (on the loop, through execute) ----

func (l *loop) start() {
	if l.started || l.stopped {
		return
	}
	l.started = true
	l.syncSchedule()
	l.lastCPU = l.cpuTime()
	now := l.now()
	// Hazard: gnet runs tasks from two queues, so a hand-off may run
	// before this start, and a loop may start late (its first connection
	// opened after the run began). The next cut is the first boundary
	// still ahead, never one a hand-off already passed: a cut for a past
	// interval would be handed to nobody, and lose what it counted.
	bs := l.e.loadBounds()
	i := l.nextCut
	for i < len(bs)-1 && l.e.startNS+int64(bs[i].At) <= now {
		i++
	}
	l.nextCut = i
	l.cutDue.Store(l.cutAt(i))
	for _, c := range l.conns {
		if !c.open || c.draining {
			continue
		}
		if l.open {
			l.enqueue(c)
		} else {
			l.fill(c, now)
		}
	}
	if l.open {
		l.pump(now)
	}
	l.flush()
	l.adjust()
}

// syncSchedule takes the engine's schedule and phases if they changed
// (Engine.Apply); the cursors stay, so nothing is sent twice or skipped.
func (l *loop) syncSchedule() {
	e := l.e
	e.mu.Lock()
	if l.schedVersion == e.version && l.mixVersion == e.mixVersion && l.pc.rules != nil {
		e.mu.Unlock()
		return
	}
	s := e.sched
	l.phaseBuf = append(l.phaseBuf[:0], e.phases...)
	l.schedVersion = e.version
	if l.mixVersion != e.mixVersion {
		// A live header change: the mix in force now, and the one to
		// take over at its instant.
		l.mixVersion = e.mixVersion
		if e.mixCur != l.mix {
			l.setMix(e.mixCur)
		}
		l.nextMix, l.nextMixAt = e.mixNext, e.mixAt
		if e.mixNext == nil {
			l.nextMixAt = neverAt
		}
	}
	e.mu.Unlock()
	l.pc.setSchedule(s, l.phaseBuf)
	if l.started && !l.stopped {
		// The boundaries may have moved with the schedule.
		l.cutDue.Store(l.cutAt(l.nextCut))
	}
}

// resume is syncTask's body, and what a renewed lease runs: take the
// schedule in force and send what is due.
func (l *loop) resume() {
	l.syncSchedule()
	if !l.started || l.stopped {
		return
	}
	now := l.now()
	l.maybeCut(now)
	if l.open {
		l.pump(now)
	} else {
		for _, c := range l.conns {
			l.fill(c, now)
		}
	}
	l.flush()
}

// checkTimeouts closes every connection whose oldest request is older than
// the timeout; its requests count as timeouts.
func (l *loop) checkTimeouts() {
	if l.stopped {
		return
	}
	now := l.now()
	l.maybeCut(now)
	limit := int64(l.e.opts.Timeout)
	el := l.eventLoop()
	// Downward: a close may remove a drained slot, which moves the last
	// slot (already looked at) into its place.
	for i := len(l.conns) - 1; i >= 0; i-- {
		if i >= len(l.conns) {
			continue
		}
		c := l.conns[i]
		if c.open && c.n > 0 && now-c.ring[c.head].sent > limit {
			c.setFail(proto.ErrTimeout)
			if el != nil && c.gc != nil {
				_ = el.Close(c.gc)
			}
		}
	}
	if l.started && l.open {
		l.pump(now)
		l.flush()
	}
}

// adjust moves the slots the loop holds toward wantN, at most
// adjustBatch of them per turn: a change of a million connections takes
// many short turns (each queues the next), with reads, hand-offs and the
// stop served in between. New slots beyond dialingPerLoop dialing at once
// wait for connections to open.
func (l *loop) adjust() {
	if l.stopped {
		return
	}
	l.want = int(l.wantN.Load())
	budget := adjustBatch
	now := l.now()
	for l.active < l.want && budget > 0 {
		budget--
		if c := l.popDrained(); c != nil {
			// Revive a draining slot first: its connection is open.
			c.draining = false
			l.active++
			if l.started {
				if l.open {
					l.enqueue(c)
				} else {
					l.fill(c, now)
				}
			}
			continue
		}
		if l.dialingN >= dialingPerLoop {
			break
		}
		l.redial(l.newConn(), false)
	}
	el := l.eventLoop()
	for scanned := 0; l.active > l.want && budget > 0 && len(l.conns) > 0 && scanned < 4*adjustBatch; scanned++ {
		if l.shrinkAt < 0 || l.shrinkAt >= len(l.conns) {
			l.shrinkAt = len(l.conns) - 1
		}
		c := l.conns[l.shrinkAt]
		l.shrinkAt--
		if c.draining {
			continue
		}
		budget--
		c.draining = true
		l.active--
		switch {
		case c.dialing:
			c.abandon.Store(true)
		case c.open:
			if c.n == 0 && c.gc != nil && el != nil {
				_ = el.Close(c.gc) // removes the slot (OnClose)
			} else {
				c.dpos = len(l.drained)
				l.drained = append(l.drained, c)
			}
		}
	}
	l.flush()
	if l.active != l.want && (budget == 0 || l.active > l.want) {
		// Another turn, after whatever the loop has queued.
		l.run(l.adjustTask)
	}
}

// popDrained returns a slot being drained whose connection is still
// open, or nil.
func (l *loop) popDrained() *conn {
	for n := len(l.drained); n > 0; n = len(l.drained) {
		c := l.drained[n-1]
		l.unDrain(c)
		if c.pos >= 0 && c.draining && c.open {
			return c
		}
	}
	return nil
}

// unDrain takes c out of the drained set.
func (l *loop) unDrain(c *conn) {
	i := c.dpos
	if i < 0 {
		return
	}
	last := len(l.drained) - 1
	l.drained[i] = l.drained[last]
	l.drained[i].dpos = i
	l.drained[last] = nil
	l.drained = l.drained[:last]
	c.dpos = -1
}

func (l *loop) newConn() *conn {
	c := &conn{l: l, ring: make([]inflight, l.e.opts.Pipeline), pos: len(l.conns), dpos: -1}
	if l.e.opts.TLS != nil {
		c.tls = &tlsState{}
	}
	size := len(l.e.opts.Request)
	if m := l.e.opts.Mix; m != nil {
		// A rendered request may be longer than its first rendering: a
		// little room to spare, then append grows it once.
		size = m.SizeHint() + m.SizeHint()/4
	}
	c.wbuf = make([]byte, 0, size*l.e.opts.Pipeline)
	if l.rt != nil && l.rt.on {
		c.sentB = make([][]byte, l.e.opts.Pipeline)
		c.own = make([][]byte, l.e.opts.Pipeline)
		c.origin = make([]int64, l.e.opts.Pipeline)
	}
	l.conns = append(l.conns, c)
	l.active++
	return c
}

// removeConn drops a drained slot for good, in O(1).
func (l *loop) removeConn(c *conn) {
	i := c.pos
	if i < 0 {
		return
	}
	l.unDrain(c)
	last := len(l.conns) - 1
	l.conns[i] = l.conns[last]
	l.conns[i].pos = i
	l.conns[last] = nil
	l.conns = l.conns[:last]
	c.pos = -1
}

// dropDialing forgets a slot the dialer dropped (drained while dialing).
func (l *loop) dropDialing(c *conn) {
	if c.pos >= 0 && c.dialing {
		c.dialing = false
		l.dialingN--
		l.removeConn(c)
	}
}

// handoff ends the loop's interval: it sends its stats to the collector and
// starts a fresh set. final also stops the loop and counts the requests in
// flight as unfinished.
func (l *loop) handoff(seq, step int, start, end time.Duration, final bool) {
	var st *proto.Stats
	switch {
	case l.cut != nil && l.cutSeq == seq && !final:
		// Cut at its boundary; l.st already counts the next interval.
		st, l.cut = l.cut, nil
	case l.cut != nil && (l.cutSeq <= seq || final):
		// The final hand-off just after a cut, or a cut a hand-off
		// overtook (gnet's two task queues may reorder hand-offs): one
		// part, so nothing is lost.
		st, l.cut = l.cut, nil
		st.Merge(l.st)
		l.st.Reset()
	default:
		// No cut: the boundary passed with no event on the loop. The
		// tokens due before it count in this interval all the same.
		if l.open && l.started && !final {
			l.pc.observe(int64(end)-1, l.st)
		}
		st = l.st
		l.st = l.fresh()
	}
	// A boundary that passed with no event on the loop was not cut: the
	// next cut is for the next interval, never for this one. So a cut
	// always belongs to the hand-off that comes next.
	if l.nextCut <= seq {
		l.nextCut = seq + 1
		l.cutDue.Store(l.cutAt(l.nextCut))
	}
	if final {
		now := l.now()
		if l.open && l.started {
			l.settle(st, now, int64(end))
		}
		for _, c := range l.conns {
			if c.n > 0 {
				st.Unfinished += uint64(c.n)
				if l.perName {
					for i := 0; i < c.n; i++ {
						st.Requests[c.at(i).req].Unfinished++
					}
				}
				l.censor(st, c, now)
			}
		}
		if l.rt != nil {
			l.endRetries(st, now)
		}
		l.stopped = true
	}
	st.Seq, st.Step, st.Start, st.End = seq, step, start, end
	st.Errors[proto.ErrConnect] += l.connErrs.Swap(0)
	l.takeTLSErrs(st)
	st.ConnsOpen, st.ConnsWanted = l.openN, l.want
	if cpu := l.cpuTime(); cpu > 0 {
		st.LoopCPU, st.LoopCapacity = cpu-l.lastCPU, end-start
		l.lastCPU = cpu
	}
	if !l.open && st.Latency.TotalCount() > 0 {
		l.expected = int64(st.Latency.Mean())
	}
	l.e.collect <- part{loop: l.idx, st: st}
}

// fresh returns empty stats, recycled when the collector has some back.
func (l *loop) fresh() *proto.Stats {
	select {
	case s := <-l.pool:
		return s
	default:
		return l.newStats()
	}
}

// newStats returns empty stats with room for the mix's requests (named
// mixes): complete and send index them without a check.
func (l *loop) newStats() *proto.Stats {
	s := proto.NewStats(l.open)
	if l.perName {
		s.SetRequests(l.nreq)
	}
	if l.rt != nil && l.rt.on {
		s.EndToEnd = proto.NewHistogram()
	}
	return s
}

// takeMix puts the waiting mix in force.
func (l *loop) takeMix() {
	l.setMix(l.nextMix)
	l.nextMix, l.nextMixAt = nil, neverAt
}

// setMix puts m in force: its bytes as they are when nothing varies.
func (l *loop) setMix(m *reqmix.Mix) {
	if m == nil {
		return
	}
	l.mix = m
	l.fixed, _ = m.Static()
}

// cutAt is the absolute time (ns since epoch) of boundary i, or never for
// the last boundary (the run's end, handed off by the clock alone).
func (l *loop) cutAt(i int) int64 {
	b := l.e.loadBounds()
	if i >= len(b)-1 {
		return 1 << 62
	}
	return l.e.startNS + int64(b[i].At)
}

// maybeCut moves the interval's statistics aside when its boundary has
// passed, for the clock's hand-off to pick up. One cut waits at a time: if
// the clock is late by a whole interval, the later counts stay in l.st and
// go to the next interval.
func (l *loop) maybeCut(now int64) {
	if now >= l.pubAt {
		l.publish(now)
	}
	due := l.cutDue.Load()
	if now < due || l.cut != nil || !l.started || l.stopped {
		return
	}
	if l.open {
		// The tokens due before the boundary count in the interval it
		// ends, even those the loop finds due only now.
		l.pc.observe(due-l.e.startNS-1, l.st)
	}
	l.cut, l.cutSeq = l.st, l.nextCut
	l.st = l.fresh()
	l.nextCut++
	l.cutDue.Store(l.cutAt(l.nextCut))
}

// offlineHandoff stands in for handoff while the loop has no event loop to
// run on: it reports the connect errors and leaves l.st alone.
func (l *loop) offlineHandoff(seq, step int, start, end time.Duration, want int) {
	st := proto.NewStats(l.open)
	st.Seq, st.Step, st.Start, st.End = seq, step, start, end
	st.Errors[proto.ErrConnect] = l.connErrs.Swap(0)
	l.takeTLSErrs(st)
	st.ConnsWanted = want
	l.e.collect <- part{loop: -1, st: st}
}

// pacer wakes the loop when its next token is due (open model). It runs on
// its own OS thread pinned to the loop's CPU, sleeps with nanosleep and
// rings the loop's doorbell: one byte on a loopback connection, which
// unlike gnet's Execute allocates nothing.
func (l *loop) pacer(ctx context.Context) {
	_ = pinThread(l.cpu)
	setTimerSlack(1000)
	one := []byte{1}
	sleep, ring := sleepPrecise, func() error { _, err := unix.Write(l.bellFD, one); return err }
	if l.e.float {
		sleep, ring = sleepRaw, func() error { return writeRaw(l.bellFD, one) }
	}
	for ctx.Err() == nil {
		wait := l.wakeAt() - l.now()
		if wait < int64(MinPacerTick) {
			wait = int64(MinPacerTick)
		}
		if wait > int64(MaxPacerTick) {
			wait = int64(MaxPacerTick)
		}
		sleep(wait)
		// The loop pumps (and cuts) on every read too; when it already
		// moved both times into the future there is nothing to ring for.
		if l.wakeAt() > l.now() || l.pumpPending.Swap(true) {
			continue
		}
		if err := ring(); err != nil && err != unix.EAGAIN {
			l.pumpPending.Store(false)
		}
	}
}

// wakeAt is when the pacer must next ring: the next token or the next
// interval cut, whichever comes first (ns since epoch).
func (l *loop) wakeAt() int64 { return min(l.nextDue.Load(), l.cutDue.Load()) }
