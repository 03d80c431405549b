package engine

import (
	"context"
	"net"
	"sync/atomic"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"

	"github.com/barrage-load/barrage/proto"
	"github.com/barrage-load/barrage/proto/http1"
	"github.com/barrage-load/barrage/schedule"
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
	// connErrs counts failed connects; dialer goroutines add to it.
	connErrs atomic.Uint64
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
	// checkTask runs checkTimeouts on the loop; made once.
	checkTask gnet.Runnable

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
	cut      *proto.Stats
	cutSeq   int
	nextCut  int
	stopped  bool
	st       *proto.Stats
	sched    schedule.Schedule
	open     bool
	conns    []*conn
	want     int // connections wanted
	active   int // slots neither draining nor closed for good
	openN    int // connections open now
	freeQ    []*conn
	freeHead int
	dirty    []*conn
	// Token cursors (open model): next is the next local token to send,
	// nextAt its intended time (ns since start); seen is the next token
	// not yet counted as due, seenAt its time; seg/seenSeg are schedule
	// cursors.
	next, seen       uint64
	nextAt, seenAt   int64
	nextOK, seenOK   bool
	nextSeg, seenSeg int
	// expected is the closed model's expected interval between responses
	// (µs) used to back-fill the corrected histogram.
	expected  int64
	firstSend int64
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
	c.gc = gc
	c.open = true
	c.dialing = false
	c.reset()
	c.parser.Reset(l.e.opts.Head)
	l.openN++
	if l.stopped || c.draining {
		return nil, gnet.Close
	}
	if l.started {
		now := l.now()
		if l.open {
			l.enqueue(c)
			l.pump(now)
		} else {
			l.fill(c, now)
		}
		l.flush()
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
	st := l.st
	off := 0
	action := gnet.None
	for off < len(buf) {
		if c.n == 0 {
			// Bytes nobody asked for: the stream is out of step.
			c.setFail(proto.ErrProtocol)
			action = gnet.Close
			break
		}
		n, err := c.parser.Feed(buf[off:])
		off += n
		if err == http1.ErrNeedMore {
			break
		}
		if err != nil {
			c.setFail(proto.ErrProtocol)
			action = gnet.Close
			break
		}
		if c.parser.Informational() {
			c.parser.Reset(l.e.opts.Head)
			continue
		}
		l.complete(c, now)
		if !c.parser.KeepAlive() {
			// The rest of the pipeline will never be answered.
			c.setFail(proto.ErrReset)
			action = gnet.Close
			break
		}
		c.parser.Reset(l.e.opts.Head)
	}
	if action == gnet.Close {
		off = len(buf)
	}
	if off > 0 {
		// Hazard: gnet's Discard(n) with n <= 0 discards everything,
		// the partial response we must keep included.
		_, _ = gc.Discard(off)
	}
	st.BytesIn += uint64(off)
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
		} else if c.free() >= l.e.refillAt {
			l.fill(c, now)
		}
		l.flush()
	}
	return gnet.None
}

func (l *loop) OnClose(gc gnet.Conn, err error) gnet.Action {
	c, _ := gc.Context().(*conn)
	if c == nil || c.bell {
		return gnet.None
	}
	if c.open {
		l.openN--
	}
	c.open = false
	c.gc = nil
	if l.stopped {
		c.n = 0
		return gnet.None
	}
	if c.n > 0 && c.parser.Started() && c.parser.EOF() == nil {
		// A close-delimited body ends here: the close completes it.
		l.complete(c, l.now())
	}
	if c.n > 0 {
		kind := proto.ErrReset
		if c.failSet {
			kind = c.fail
		}
		l.st.Errors[kind] += uint64(c.n)
		c.n = 0
	}
	_ = err
	if c.draining {
		l.removeConn(c)
		return gnet.None
	}
	l.e.redial(l, c, true)
	return gnet.None
}

// ---- the hot path ----

// complete records the response that just ended for the oldest request of c.
func (l *loop) complete(c *conn, now int64) {
	st := l.st
	f := c.pop()
	st.Responses++
	code := c.parser.Status()
	if code > 0 && code < proto.MaxStatus {
		st.Status[code]++
	} else {
		st.Status[0]++
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

// send appends one request to c's batch.
func (l *loop) send(c *conn, intended, now int64) {
	c.wbuf = append(c.wbuf, l.e.opts.Request...)
	c.push(intended, now)
	l.st.Sent++
	if !c.dirty {
		c.dirty = true
		l.dirty = append(l.dirty, c)
	}
	if l.firstSend == 0 {
		l.firstSend = now
	}
}

// fill tops c up to its pipeline depth (closed model).
func (l *loop) fill(c *conn, now int64) {
	if !c.open || c.draining {
		return
	}
	for c.n < len(c.ring) {
		l.send(c, now, now)
	}
}

// flush writes every batch built since the last flush, one write per
// connection.
func (l *loop) flush() {
	for i, c := range l.dirty {
		l.dirty[i] = nil
		c.dirty = false
		if c.gc != nil && len(c.wbuf) > 0 {
			n := len(c.wbuf)
			if _, err := c.gc.Write(c.wbuf); err != nil {
				c.setFail(proto.ErrReset)
			} else {
				l.st.BytesOut += uint64(n)
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

// pump sends every token that is due and has a free connection, and counts
// the tokens that came due (open model).
func (l *loop) pump(now int64) {
	e := l.e
	t := now - e.startNS
	for l.nextOK && l.nextAt <= t {
		c := l.takeFree()
		if c == nil {
			break
		}
		if l.next >= l.seen {
			// Sent in the pump that found it due: what it waited is the
			// generator's own lateness. A token sent later waited for
			// the target (it was backlogged) and is not counted here.
			l.record(l.st.Lateness, t-l.nextAt)
		}
		l.send(c, l.nextAt+e.startNS, now)
		l.next++
		l.nextAt, l.nextSeg, l.nextOK = l.sched.At(l.next*uint64(e.nloops)+uint64(l.idx), l.nextSeg)
	}
	for l.seenOK && l.seenAt <= t {
		l.st.Scheduled++
		if l.seen >= l.next {
			l.st.Backlogged++
		}
		l.seen++
		l.seenAt, l.seenSeg, l.seenOK = l.sched.At(l.seen*uint64(e.nloops)+uint64(l.idx), l.seenSeg)
	}
	due := int64(1 << 62)
	if l.nextOK {
		due = l.nextAt + e.startNS
		if l.next < l.seen {
			// A backlog waits for a connection, not for the clock.
			due = now + int64(MaxPacerTick)
		}
	}
	l.nextDue.Store(due)
}

// resetCursors recomputes the token cursors after the schedule changed.
func (l *loop) resetCursors() {
	n := uint64(l.e.nloops)
	i := uint64(l.idx)
	l.nextAt, l.nextSeg, l.nextOK = l.sched.At(l.next*n+i, 0)
	l.seenAt, l.seenSeg, l.seenOK = l.sched.At(l.seen*n+i, 0)
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
	l.started = true
	l.lastCPU = l.cpuTime()
	l.nextCut = 0
	l.cutDue.Store(l.cutAt(0))
	now := l.now()
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
}

// checkTimeouts closes every connection whose oldest request is older than
// the timeout; its requests count as timeouts.
func (l *loop) checkTimeouts() {
	if l.stopped {
		return
	}
	now := l.now()
	limit := int64(l.e.opts.Timeout)
	el := l.eventLoop()
	for _, c := range l.conns {
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

// setWant changes the number of connections the loop holds.
func (l *loop) setWant(n int) {
	l.want = n
	l.adjust()
}

func (l *loop) adjust() {
	if l.stopped {
		return
	}
	for l.active < l.want {
		// Revive a draining slot first: its connection is still open.
		revived := false
		for _, c := range l.conns {
			if c.draining {
				c.draining = false
				l.active++
				revived = true
				if l.started && c.open {
					if l.open {
						l.enqueue(c)
					} else {
						l.fill(c, l.now())
					}
				}
				break
			}
		}
		if !revived {
			c := l.newConn()
			l.e.redial(l, c, false)
		}
	}
	for i := len(l.conns) - 1; i >= 0 && l.active > l.want; i-- {
		c := l.conns[i]
		if c.draining {
			continue
		}
		c.draining = true
		l.active--
		if c.open && c.n == 0 && c.gc != nil {
			if el := l.eventLoop(); el != nil {
				_ = el.Close(c.gc)
			}
		}
	}
	l.flush()
}

func (l *loop) newConn() *conn {
	c := &conn{l: l, ring: make([]inflight, l.e.opts.Pipeline)}
	c.wbuf = make([]byte, 0, len(l.e.opts.Request)*l.e.opts.Pipeline)
	l.conns = append(l.conns, c)
	l.active++
	return c
}

// removeConn drops a drained slot for good.
func (l *loop) removeConn(c *conn) {
	for i, x := range l.conns {
		if x == c {
			last := len(l.conns) - 1
			l.conns[i] = l.conns[last]
			l.conns[last] = nil
			l.conns = l.conns[:last]
			return
		}
	}
}

// handoff ends the loop's interval: it sends its stats to the collector and
// starts a fresh set. final also stops the loop and counts the requests in
// flight as unfinished.
func (l *loop) handoff(seq, step int, start, end time.Duration, final bool) {
	st := l.st
	cut := l.cut != nil && l.cutSeq == seq
	if cut {
		st = l.cut
		l.cut = nil
		if final {
			// Stopped early, just after the cut: nothing may be lost.
			st.Merge(l.st)
			l.st.Reset()
		}
	}
	// A boundary that passed with no event on the loop was not cut: the
	// next cut is for the next interval, never for this one. So a cut
	// always belongs to the hand-off that comes next.
	if l.nextCut <= seq {
		l.nextCut = seq + 1
		l.cutDue.Store(l.cutAt(l.nextCut))
	}
	if final {
		l.stopped = true
		for _, c := range l.conns {
			st.Unfinished += uint64(c.n)
		}
	}
	st.Seq, st.Step, st.Start, st.End = seq, step, start, end
	st.Errors[proto.ErrConnect] += l.connErrs.Swap(0)
	st.ConnsOpen, st.ConnsWanted = l.openN, l.want
	if cpu := l.cpuTime(); cpu > 0 {
		st.LoopCPU, st.LoopCapacity = cpu-l.lastCPU, end-start
		l.lastCPU = cpu
	}
	if !l.open && st.Latency.TotalCount() > 0 {
		l.expected = int64(st.Latency.Mean())
	}
	if !cut {
		l.st = l.fresh()
	}
	l.e.collect <- part{loop: l.idx, st: st}
}

// fresh returns empty stats, recycled when the collector has some back.
func (l *loop) fresh() *proto.Stats {
	select {
	case s := <-l.pool:
		return s
	default:
		return proto.NewStats(l.open)
	}
}

// cutAt is the absolute time (ns since epoch) of boundary i, or never for
// the last boundary (the run's end, handed off by the clock alone).
func (l *loop) cutAt(i int) int64 {
	b := l.e.bounds
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
	if now < l.cutDue.Load() || l.cut != nil || !l.started || l.stopped {
		return
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

// dialTCP opens one connection with the connect timeout.
func dialTCP(addr string, timeout time.Duration) (net.Conn, error) {
	return net.DialTimeout("tcp", addr, timeout)
}
