package engine

import "time"

// Started is the wall-clock instant the schedule started, or zero before
// it has (live changes are timed from it).
func (e *Engine) Started() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.started {
		return time.Time{}
	}
	return e.epoch.Add(time.Duration(e.startNS))
}
