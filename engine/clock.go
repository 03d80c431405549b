package engine

import (
	"context"
	"time"

	"github.com/barrage-load/barrage/proto"
)

// The engine's clock and collector: interval boundaries announced to the
// loops, their statistics gathered and handed out in order.

// clock drives the run from its own goroutine: it hands intervals off at
// every boundary, changes the connection counts when the schedule says,
// checks timeouts, and ends the run at the schedule's end or when ctx is
// done. A live change wakes it to look at the new boundaries.
func (e *Engine) clock(ctx context.Context) {
	start := e.epoch.Add(time.Duration(e.startNS))
	check := time.NewTicker(timeoutCheck(e.opts.Timeout))
	defer check.Stop()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	e.syncConns(0)
	connAt := time.Duration(0)
	var prev time.Duration
	for seq := 0; ; seq++ {
		var end time.Duration
		final := false
	wait:
		for {
			bs := e.loadBounds()
			i := min(seq, len(bs)-1)
			end, final = bs[i].At, i == len(bs)-1
			wake := end
			e.mu.Lock()
			cc, hasCC := e.sched.NextConnChange(connAt)
			e.mu.Unlock()
			if hasCC && cc < wake {
				wake = cc
			}
			timer.Reset(time.Until(start.Add(wake)))
			select {
			case <-timer.C:
				now := time.Since(start)
				if now >= end {
					// A change of connections at the boundary comes after
					// the hand-off: the interval ending there samples the
					// count it ran with.
					break wait
				}
				if hasCC && now >= cc {
					e.syncConns(cc)
					connAt = cc
				}
			case <-check.C:
				for _, l := range e.loops {
					l.run(l.checkTask)
				}
			case <-e.changed:
			case <-ctx.Done():
				end, final = time.Since(start), true
				break wait
			}
		}
		e.mu.Lock()
		conns, step := e.sched.Segment(prev)
		e.mu.Unlock()
		if final {
			e.finalSeq.Store(int64(seq))
		}
		for _, l := range e.loops {
			l := l
			s, p, end := seq, prev, end
			if !l.execute(func() { l.handoff(s, step, p, end, final) }) {
				l.offlineHandoff(s, step, p, end, max(e.share(conns, l.idx), 1))
			}
		}
		if final {
			return
		}
		for {
			e.mu.Lock()
			cc, ok := e.sched.NextConnChange(connAt)
			e.mu.Unlock()
			if !ok || cc > end {
				break
			}
			e.syncConns(cc)
			connAt = cc
		}
		prev = end
	}
}

// syncConns sets every loop's connection count to the schedule's at `at`.
func (e *Engine) syncConns(at time.Duration) {
	e.mu.Lock()
	n, _ := e.sched.Segment(at)
	e.mu.Unlock()
	for _, l := range e.loops {
		l.wantN.Store(int64(max(e.share(n, l.idx), 1)))
		l.run(l.adjustTask)
	}
}

// collector merges the loops' parts of each interval, hands the merged
// interval to OnInterval in order, and recycles the parts.
func (e *Engine) collector(done chan<- struct{}) {
	defer close(done)
	type pending struct {
		n  int
		st *proto.Stats
	}
	waiting := map[int]*pending{}
	// spares holds merged intervals handed back after OnInterval (which
	// must not keep them): a long run reuses a few rather than leaving
	// three histograms of garbage per interval for the GC.
	var spares []*proto.Stats
	next := 0
	for p := range e.collect {
		w := waiting[p.st.Seq]
		if w == nil {
			w = &pending{}
			if n := len(spares); n > 0 {
				w.st, spares = spares[n-1], spares[:n-1]
			} else {
				w.st = proto.NewStats(e.open)
			}
			waiting[p.st.Seq] = w
		}
		w.st.Merge(p.st)
		w.st.Seq, w.st.Step = p.st.Seq, p.st.Step
		w.st.Start, w.st.End = p.st.Start, p.st.End
		w.n++
		if p.loop >= 0 {
			p.st.Reset()
			select {
			case e.loops[p.loop].pool <- p.st:
			default:
			}
		}
		for {
			w := waiting[next]
			if w == nil || w.n < e.nloops {
				break
			}
			delete(waiting, next)
			if e.bk != nil {
				e.bk.take(w.st, w.st.End, int64(w.st.Seq) == e.finalSeq.Load())
			}
			if e.opts.OnInterval != nil {
				e.opts.OnInterval(w.st)
			}
			if int64(w.st.Seq) == e.finalSeq.Load() {
				return
			}
			w.st.Reset()
			spares = append(spares, w.st)
			next++
		}
	}
}
