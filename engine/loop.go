package engine

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/barrage-load/barrage/proto"
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
