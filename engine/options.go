package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/barrage-load/barrage/proto"
)

// Defaults applied by New to zero Options fields.
const (
	DefaultInterval       = time.Second
	DefaultTimeout        = 10 * time.Second
	DefaultConnectTimeout = 5 * time.Second
	DefaultPipeline       = 1
	// MinPacerTick bounds how often the open model's pacer wakes a loop: at
	// high rates one wake-up sends every request that came due since the
	// last one, each still stamped with its own intended time.
	MinPacerTick = 100 * time.Microsecond
	// MaxPacerTick bounds how long a pacer sleeps when nothing is due, so a
	// live rate change takes effect within it.
	MaxPacerTick = 5 * time.Millisecond
)

// Sentinel errors of the engine.
var (
	// ErrNoConnection occurs when not one of the first connections could be
	// opened: the target is down or the address is wrong.
	ErrNoConnection = errors.New("engine: could not open any connection to the target")
	// ErrBadOptions occurs when Options are inconsistent.
	ErrBadOptions = errors.New("engine: bad options")
)

// Options configure an Engine. Zero fields take the documented defaults.
type Options struct {
	// Addr is the target's host:port.
	Addr string
	// Request holds the bytes of one request, sent as they are for every
	// request (built once by proto/http1.AppendRequest).
	Request []byte
	// Head is true when Request is a HEAD request (its responses have no
	// body whatever their headers say).
	Head bool
	// Schedule is the load over time; rates are requests per second and
	// connections are totals over all loops. A schedule without any rate
	// runs the closed model.
	Schedule []proto.Segment
	// Pipeline is how many requests each connection keeps in flight
	// (closed model) or may have in flight (open model). Default 1.
	Pipeline int
	// Timeout bounds each request from its send to its response's end;
	// default DefaultTimeout. ConnectTimeout bounds each connect; default
	// DefaultConnectTimeout.
	Timeout, ConnectTimeout time.Duration
	// CPUs are the CPUs to run one event loop each on, pinned. Default:
	// every CPU in the process's allowed set (so taskset is respected).
	CPUs []int
	// Interval is how often loops hand their statistics over; default
	// DefaultInterval.
	Interval time.Duration
	// StartAt is the wall-clock instant the schedule starts; connections
	// are opened before it. Zero: as soon as the connections are open.
	StartAt time.Time
	// Ready, if set, is called once the first connections are open and
	// returns the wall-clock instant to start at (a coordinator's barrier);
	// it overrides StartAt. An error ends the run before it starts.
	Ready func(ctx context.Context) (time.Time, error)
	// OnInterval, if set, receives each interval's statistics merged over
	// the loops, in order, on one goroutine. It must not keep s past the
	// call unless it clones it.
	OnInterval func(s *proto.Stats)
	// Phase offsets this engine's arrivals by that fraction of its own
	// inter-arrival gap, in [0, 1) (agents interleave).
	Phase float64
	// Lease, when set, makes the engine send only while Renew has extended
	// its lease into the future.
	Lease bool
}

func (o *Options) normalize() error {
	if o.Addr == "" {
		return fmt.Errorf("%w: no target address", ErrBadOptions)
	}
	if len(o.Request) == 0 {
		return fmt.Errorf("%w: no request bytes", ErrBadOptions)
	}
	if len(o.Schedule) == 0 {
		return fmt.Errorf("%w: empty schedule", ErrBadOptions)
	}
	if o.Pipeline <= 0 {
		o.Pipeline = DefaultPipeline
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if len(o.CPUs) == 0 {
		cpus, err := AllowedCPUs()
		if err != nil {
			return err
		}
		o.CPUs = cpus
	}
	return nil
}

// timeoutCheck is how often the loops look for timed-out requests: a
// twentieth of the timeout, between 10 ms and 500 ms, so a timeout is
// seen at most 5% late above 200 ms. Each look goes through gnet's
// Execute, which allocates a queue node: with the default 10 s timeout
// that is 2 a second instead of one per 50 ms.
func timeoutCheck(timeout time.Duration) time.Duration {
	return min(max(timeout/20, 10*time.Millisecond), 500*time.Millisecond)
}
