package engine

import (
	"context"

	"golang.org/x/sys/unix"

	"github.com/barrage-load/barrage/proto"
)

// The pacer: the pump sends what the schedule has due on free connections;
// the pacer goroutine wakes the loop when the next send or interval cut is
// due.

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
