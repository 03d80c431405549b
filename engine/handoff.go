package engine

import (
	"time"

	"github.com/barrage-load/barrage/proto"
	reqmix "github.com/barrage-load/barrage/request"
)

// The interval hand-off: at each interval boundary a loop cuts its
// statistics and hands them to the collector, and a fresh set takes over.

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
		st.LoopCPU, st.LoopCapacity = cpu-l.lastCPU, time.Duration(float64(end-start)*l.e.cpuShare)
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
