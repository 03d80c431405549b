package engine

import (
	"fmt"
	"math"
	"time"

	"github.com/barrage-load/barrage/proto"
	reqmix "github.com/barrage-load/barrage/request"
	"github.com/barrage-load/barrage/schedule"
)

// Live control of a running engine: schedule edits applied at a time,
// rate, connections and mix changes, the lease and Stop.

// Apply changes the schedule from `at` (time since the run's start) on:
// from then the engine follows segs (times from the run's start, rates
// and connections over the whole engine, step numbers as given) with its
// hits offset by phase (see Options.Phase). What was due before `at` stays
// as it was (schedule.Splice), so nothing is sent twice or skipped; the
// connection count changes at `at` too, and an interval handed off keeps
// the step in force at its start. An `at` already past applies now. It
// may be called before Run or while waiting for the start (then `at` is
// from the start to come), from any goroutine.
//
// Every segment gets at least one connection per event loop (a loop
// without one could never send its share). It fails with ErrBadOptions on
// a phase outside [0, 1), an empty or malformed schedule, or a rate given
// to a closed-model engine.
func (e *Engine) Apply(at time.Duration, segs []proto.Segment, phase float64) error {
	if math.IsNaN(phase) || phase < 0 || phase >= 1 {
		return fmt.Errorf("%w: phase %g is not in [0, 1)", ErrBadOptions, phase)
	}
	e.mu.Lock()
	err := e.applyLocked(at, segs, phase)
	e.mu.Unlock()
	if err == nil {
		e.publish()
	}
	return err
}

// applyLocked checks segs and splices them in at `at`; e.mu is held.
func (e *Engine) applyLocked(at time.Duration, segs []proto.Segment, phase float64) error {
	if len(segs) == 0 {
		return fmt.Errorf("%w: an empty schedule", ErrBadOptions)
	}
	fixed := make([]proto.Segment, len(segs))
	for i, g := range segs {
		if g.Start < 0 || g.Duration < 0 || !(g.From >= 0) || !(g.To >= 0) || math.IsInf(g.From, 0) || math.IsInf(g.To, 0) {
			return fmt.Errorf("%w: bad segment %d: %+v", ErrBadOptions, i, g)
		}
		if !e.open && (g.From > 0 || g.To > 0) {
			return fmt.Errorf("%w: a live change cannot switch between the open and closed models", ErrBadOptions)
		}
		g.Connections = max(g.Connections, e.nloops)
		fixed[i] = g
	}
	now := time.Duration(0)
	if e.started {
		now = time.Since(e.epoch) - time.Duration(e.startNS)
	}
	at = max(at, now)
	e.sched = e.sched.Splice(at, fixed)
	if at <= 0 {
		e.phases = append(e.phases[:0], phaseChange{phase: phase})
	} else {
		k := len(e.phases)
		for k > 1 && e.phases[k-1].at >= int64(at) {
			k--
		}
		e.phases = e.phases[:k]
		if e.phases[k-1].phase != phase {
			e.phases = append(e.phases, phaseChange{at: int64(at), phase: phase})
		}
	}
	bs := schedule.Bounds(&e.sched, e.opts.Interval)
	e.bounds.Store(&bs)
	e.version++
	return nil
}

// publish hands a change to the loops and the clock. A loop that cannot
// run it yet takes the schedule when it starts.
func (e *Engine) publish() {
	for _, l := range e.loopList() {
		l.run(l.syncTask)
	}
	select {
	case e.changed <- struct{}{}:
	default:
	}
}

// phase is the phase in force last; e.mu is held.
func (e *Engine) phase() float64 { return e.phases[len(e.phases)-1].phase }

// edit applies, now, the segments edit makes of the schedule in force.
func (e *Engine) edit(f func(s *schedule.Schedule) []proto.Segment) error {
	e.mu.Lock()
	err := e.applyLocked(0, f(&e.sched), e.phase())
	e.mu.Unlock()
	if err == nil {
		e.publish()
	}
	return err
}

// SetRate changes the open model's rate, in requests per second over the
// whole engine, from now to the end of the run (Apply, now).
func (e *Engine) SetRate(r float64) error {
	if !e.open {
		return ErrClosedModel
	}
	if !(r >= 0) || math.IsInf(r, 0) {
		return fmt.Errorf("%w: rate %g", ErrBadOptions, r)
	}
	return e.edit(func(s *schedule.Schedule) []proto.Segment {
		segs := s.Segments()
		for i := range segs {
			segs[i].From, segs[i].To = r, r
		}
		return segs
	})
}

// SetSchedule replaces the schedule from now on with segs (Apply, now,
// with the phase in force).
func (e *Engine) SetSchedule(segs []proto.Segment) error {
	return e.edit(func(*schedule.Schedule) []proto.Segment { return segs })
}

// SetConnections changes the number of connections, over the whole engine,
// from now to the end of the run (at least one per loop).
func (e *Engine) SetConnections(n int) error {
	if n < e.nloops {
		return fmt.Errorf("%w: %d connections for %d event loops", ErrBadOptions, n, e.nloops)
	}
	return e.edit(func(s *schedule.Schedule) []proto.Segment {
		segs := s.Segments()
		for i := range segs {
			segs[i].Connections = n
		}
		return segs
	})
}

// SetMix puts mix m in force from `at` (time since the run's start; one
// already past applies at once): each loop renders its requests from then
// on, keeping its random stream, its {{seq}} and its data cursors. m must
// be a Rebuild of the run's mix (the same requests: only what they send
// may change, e.g. a rotated credential). From any goroutine; before Run
// too.
func (e *Engine) SetMix(at time.Duration, m *reqmix.Mix) error {
	if e.opts.Mix == nil || m == nil || m.Len() != e.opts.Mix.Len() || m.Named() != e.opts.Mix.Named() || m.Head() != e.opts.Mix.Head() {
		return fmt.Errorf("%w: a live change of the requests must keep them (a Rebuild of the run's mix)", ErrBadOptions)
	}
	e.mu.Lock()
	now := time.Duration(0)
	if e.started {
		now = time.Since(e.epoch) - time.Duration(e.startNS)
	}
	if e.mixNext != nil && e.mixAt <= now {
		e.mixCur = e.mixNext
	}
	if at <= now {
		e.mixCur, e.mixNext, e.mixAt = m, nil, neverAt
	} else {
		e.mixNext, e.mixAt = m, at
	}
	e.mixVersion++
	e.mu.Unlock()
	e.publish()
	return nil
}

// Renew extends the lease (Options.Lease) to until. An agent calls it each
// time ZooKeeper confirms its session, from any goroutine; it is one
// compare-and-swap. A lease renewed after it had lapsed holds from now:
// what came due while it had lapsed stays shed, never sent late in a
// burst. It does nothing without Options.Lease, and after Stop.
func (e *Engine) Renew(until time.Time) {
	if !e.opts.Lease || e.halted.Load() {
		return
	}
	u := int64(until.Sub(e.epoch))
	for {
		old := e.lease.Load()
		now := int64(time.Since(e.epoch))
		nl := &lease{from: old.from, until: u}
		regained := now > old.until
		if regained {
			nl.from = now
		}
		if e.lease.CompareAndSwap(old, nl) {
			if regained && u >= now && e.running.Load() {
				// Closed-model connections left idle while it had lapsed
				// are refilled; the open model sends what came due since.
				for _, l := range e.loopList() {
					l.run(l.syncTask)
				}
			}
			return
		}
	}
}

// Stop ends the run at once, from any goroutine: nothing more is sent
// (the lease lapses for good), and Run hands off the interval under way as
// the last and returns, as when its context ends. Before the start, Run
// returns ErrStopped. An agent calls it when it fences itself and
// abandons a test.
func (e *Engine) Stop() {
	e.haltOnce.Do(func() {
		e.halted.Store(true)
		e.lease.Store(&lease{from: math.MaxInt64, until: math.MinInt64})
		close(e.halt)
	})
}
