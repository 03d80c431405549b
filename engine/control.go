package engine

import (
	"github.com/barrage-load/barrage/proto"
)

// Control, run on the loop through execute: start, schedule and connection
// changes, timeouts, and the bookkeeping of connections.

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
