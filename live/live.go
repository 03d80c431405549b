// Package live is how a test is changed while it runs: one interface for
// run's in-process agent and for the coordinator, used by the dashboard's
// controls, the sustainable-throughput search and graceful degradation.
// Every change takes effect at an interval boundary a little ahead, is its
// own step row in the report and an event on the timeline.
package live

import (
	"context"
	"errors"
	"math"
	"time"
)

// ErrClosedModel occurs when a rate is asked of a closed-model test (as
// fast as the target answers): a rate would switch models.
var ErrClosedModel = errors.New("live: a closed-model test has no rate to change (change its connections, or start an open-model test with a rate)")

// Change is a live change of a test's load.
type Change struct {
	// Rate is the new total rate (req/s); NaN leaves it.
	Rate float64
	// Connections is the new total connection count; 0 leaves it.
	Connections int
	// Headers set header values on every request of the test (a rotated
	// credential); nil leaves them. Their values may hold variables.
	Headers map[string]string
	// Reason says who asked: "set", "dashboard", "find", "degrade",
	// "header-file".
	Reason string
}

// Keep returns a change that leaves both rate and connections: set the
// field to change.
func Keep(reason string) Change { return Change{Rate: math.NaN(), Reason: reason} }

// SetsRate reports whether the change sets a rate.
func (c Change) SetsRate() bool { return !math.IsNaN(c.Rate) }

// Controller changes or stops a running test.
type Controller interface {
	// Change applies c at the first interval boundary at least a little
	// ahead and returns that instant (from the test's start) once every
	// generator has taken it.
	Change(ctx context.Context, c Change) (at time.Duration, err error)
	// Stop ends the test now; the report's outcome says why.
	Stop(reason string)
}
