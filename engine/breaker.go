package engine

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/cpu"

	"github.com/barrage-load/barrage/proto"
)

// The circuit breaker (Options.Breaker): one per engine, shared by its
// loops.
//
// Who decides what. The loops never decide a transition: a transition
// needs the failures of every loop over the window, and a loop that
// decided would have to read the others' counts on its hot path, or
// contend with them on a shared counter per request. Instead:
//
//   - each loop counts the calls that ended and the failures among them
//     in plain fields of its own (retrier.calls, fails: no atomic per
//     request), and stores them into its own cache-line slot here at most
//     every half tick (loop.publish: two atomic stores per half tick);
//   - one goroutine (run) ticks every window/20 (at least 10 ms): it sums
//     the slots' deltas into a ring of buckets that spans the window,
//     and makes every transition itself, by storing the state word: so
//     no two transitions race, and there is no CAS loop anywhere;
//   - a loop reads the state word once per pump or fill (one atomic
//     load); only in half-open does a send take a probe permit (an atomic
//     add, at most half_open_probes of them succeed, then a load alone
//     says none is left), and only a probe's outcome is reported back (an
//     atomic add per probe).
//
// The goroutine also keeps time while no loop is busy: a closed-model
// run whose breaker opened has no traffic to wake it, so the goroutine
// wakes the loops (their sync task) at every transition.
//
// Hazard: decisions lag the failures by up to a tick and a half (the
// half tick of publishing, the tick of deciding). With the defaults
// (10 s window) that is 0.75 s; the opening is judged over a window 20
// times as long, so the lag changes little of what is counted.

// Breaker states (the state word).
const (
	stateClosed uint32 = iota
	stateOpen
	stateHalfOpen
)

// minBreakerTick bounds how often the breaker decides.
const minBreakerTick = 10 * time.Millisecond

// bkSlot is one loop's published counts, alone on its cache line.
type bkSlot struct {
	calls, fails atomic.Uint64
	_            cpu.CacheLinePad
}

type bkBucket struct{ calls, fails uint64 }

// breaker is an engine's circuit breaker.
type breaker struct {
	_ cpu.CacheLinePad
	// state is the word the loops read (stateClosed, stateOpen,
	// stateHalfOpen); only run stores it.
	state atomic.Uint32
	// permits are the probes left to send in this half-open; gen numbers
	// the half-open (1 to 255, never 0) so a probe's late outcome is
	// not counted in another one.
	permits atomic.Int64
	gen     atomic.Uint32
	// The outcomes of this half-open's probes.
	probeOK, probeFail atomic.Int64
	_                  cpu.CacheLinePad

	slots []bkSlot

	// Owned by run.
	cfg      proto.Breaker
	connects bool // failed connects count (FailSet.Connect)
	tick     int64
	buckets  []bkBucket
	cur      int64 // the tick the current bucket counts
	last     []bkBucket
	lastConn uint64
	until    int64 // end of the open state (ns since the epoch)

	mu     sync.Mutex
	events []proto.BreakerEvent
}

func newBreaker(cfg proto.Breaker, connects bool, loops int) *breaker {
	tick := max(cfg.Window.D()/20, minBreakerTick)
	n := int((cfg.Window.D() + tick - 1) / tick)
	return &breaker{cfg: cfg, connects: connects, tick: int64(tick), buckets: make([]bkBucket, n),
		slots: make([]bkSlot, loops), last: make([]bkBucket, loops)}
}

// permit takes a probe in half-open; it returns the probe's generation,
// or 0 when none is left.
func (b *breaker) permit() uint8 {
	if b.permits.Load() <= 0 || b.permits.Add(-1) < 0 {
		return 0
	}
	return uint8(b.gen.Load())
}

// unpermit gives back a probe taken and not sent.
func (b *breaker) unpermit() { b.permits.Add(1) }

// probed reports a probe's outcome (from a loop).
func (b *breaker) probed(gen uint8, failed bool) {
	if uint32(gen) != b.gen.Load() {
		return
	}
	if failed {
		b.probeFail.Add(1)
	} else {
		b.probeOK.Add(1)
	}
}

// publish stores the loop's counts into its slot for the breaker, and
// sets when to next do it.
func (l *loop) publish(now int64) {
	b := l.e.bk
	s := &b.slots[l.idx]
	s.calls.Store(l.rt.calls)
	s.fails.Store(l.rt.fails)
	l.pubAt = now + b.tick/2
}

// run decides the breaker's transitions every tick until ctx ends.
func (b *breaker) run(ctx context.Context, e *Engine) {
	t := time.NewTicker(time.Duration(b.tick))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			b.step(e, int64(time.Since(e.epoch)))
		}
	}
}

// step is one tick of the breaker at now (ns since the epoch).
func (b *breaker) step(e *Engine, now int64) {
	// Count what ended since the last tick into the current bucket,
	// clearing the buckets of ticks that passed.
	k := (now - e.startNS) / b.tick
	for b.cur < k {
		b.cur++
		b.buckets[b.cur%int64(len(b.buckets))] = bkBucket{}
	}
	var d bkBucket
	for i := range b.slots {
		c, f := b.slots[i].calls.Load(), b.slots[i].fails.Load()
		d.calls += c - b.last[i].calls
		d.fails += f - b.last[i].fails
		b.last[i] = bkBucket{c, f}
	}
	if b.connects {
		var n uint64
		for _, l := range e.loops {
			n += l.connFails.Load()
		}
		d.calls += n - b.lastConn
		d.fails += n - b.lastConn
		b.lastConn = n
	}
	cb := &b.buckets[b.cur%int64(len(b.buckets))]
	cb.calls += d.calls
	cb.fails += d.fails

	switch b.state.Load() {
	case stateClosed:
		var w bkBucket
		for _, x := range b.buckets {
			w.calls += x.calls
			w.fails += x.fails
		}
		if w.calls >= uint64(b.cfg.MinCalls) && float64(w.fails) >= float64(b.cfg.ErrorRate)*float64(w.calls) {
			b.open(e, now, w.calls, w.fails)
		}
	case stateOpen:
		if now >= b.until {
			b.halfOpen(e, now)
		}
	case stateHalfOpen:
		ok, fail := b.probeOK.Load(), b.probeFail.Load()
		switch {
		case fail > 0:
			b.open(e, now, uint64(ok+fail), uint64(fail))
		case ok >= int64(b.cfg.HalfOpenProbes):
			b.close(e, now, uint64(ok))
		}
	}
}

func (b *breaker) clearWindow() { clear(b.buckets) }

func (b *breaker) open(e *Engine, now int64, calls, fails uint64) {
	b.state.Store(stateOpen)
	b.permits.Store(0)
	b.until = now + int64(b.cfg.OpenFor)
	b.clearWindow()
	b.record(e, now, proto.BreakerOpen, calls, fails)
}

func (b *breaker) halfOpen(e *Engine, now int64) {
	g := b.gen.Load()%255 + 1
	b.gen.Store(g)
	b.probeOK.Store(0)
	b.probeFail.Store(0)
	b.permits.Store(int64(b.cfg.HalfOpenProbes))
	b.state.Store(stateHalfOpen)
	b.record(e, now, proto.BreakerHalfOpen, 0, 0)
}

func (b *breaker) close(e *Engine, now int64, probes uint64) {
	b.clearWindow()
	b.state.Store(stateClosed)
	b.record(e, now, proto.BreakerClosed, probes, 0)
}

// record keeps a transition for the interval it falls in, and wakes the
// loops: a closed-model loop resumes (or drops its retries) only when
// told.
func (b *breaker) record(e *Engine, now int64, state string, calls, fails uint64) {
	b.mu.Lock()
	b.events = append(b.events, proto.BreakerEvent{At: time.Duration(now - e.startNS), State: state, Calls: calls, Failed: fails})
	b.mu.Unlock()
	for _, l := range e.loops {
		l.run(l.syncTask)
	}
}

// take moves the transitions before end (all of them when final) into
// st (the collector, for the interval it hands off).
func (b *breaker) take(st *proto.Stats, end time.Duration, final bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, ev := range b.events {
		if final || ev.At < end {
			st.Breaker = append(st.Breaker, ev)
		} else {
			b.events[n] = ev
			n++
		}
	}
	b.events = b.events[:n]
}

// ---- the loop's side (on the loop) ----

// fillGuarded is fill with retries or a breaker: nothing goes while the
// circuit is open (and the retries waiting are dropped); due retries go
// before new requests; in half-open only probes go.
func (l *loop) fillGuarded(c *conn, now int64) {
	gate := stateClosed
	bk := l.e.bk
	if bk != nil {
		if gate = bk.state.Load(); gate == stateOpen {
			if l.rt.pending() {
				l.dropAll(l.st, proto.RetryDropCircuit, now)
			}
			return
		}
	}
	if l.rt.pending() {
		l.sendRetries(c, now, gate, len(c.ring))
	}
	if gate == stateHalfOpen {
		for c.n < len(c.ring) {
			probe := bk.permit()
			if probe == 0 {
				return
			}
			l.send(c, now, now)
			c.markProbe(probe)
		}
		return
	}
	for c.n < len(c.ring) {
		l.send(c, now, now)
	}
}

// shedOpen is the pump while the circuit is open: the tokens due are
// shed (circuit), the retries waiting dropped.
func (l *loop) shedOpen(now, t int64) {
	l.pc.shedDue(t, proto.ShedCircuit, l.st)
	if l.rt != nil && l.rt.pending() {
		l.dropAll(l.st, proto.RetryDropCircuit, now)
	}
	l.nextDue.Store(l.due(now, t, false))
}

// probeToken sends the next token due as a probe (half-open). With no
// probe left it sheds every token due (circuit); with no free connection
// it leaves them waiting. It reports whether it sent one.
func (l *loop) probeToken(now, t int64) bool {
	p, bk := &l.pc, l.e.bk
	if bk.permits.Load() <= 0 {
		p.shedDue(t, proto.ShedCircuit, l.st)
		return false
	}
	c := l.takeFree()
	if c == nil {
		return false
	}
	probe := bk.permit()
	if probe == 0 {
		l.enqueue(c)
		p.shedDue(t, proto.ShedCircuit, l.st)
		return false
	}
	l.send(c, p.nextAt+l.e.startNS, now)
	c.markProbe(probe)
	p.take()
	return true
}
