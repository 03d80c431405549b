package engine

import (
	"time"

	"github.com/barrage-load/barrage/proto"
)

// TEMPORARY stand-ins for the engine helper's lease and Apply (merged
// later); they let the agent build.

// Renew extends the lease.
func (e *Engine) Renew(until time.Time) {}

// Apply follows segs from at on.
func (e *Engine) Apply(at time.Duration, segs []proto.Segment, phase float64) error {
	return e.SetSchedule(segs)
}

// Started is the wall-clock instant the schedule started (zero before).
func (e *Engine) Started() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.started {
		return time.Time{}
	}
	return e.epoch.Add(time.Duration(e.startNS))
}
