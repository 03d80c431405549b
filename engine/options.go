package engine

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/barrage-load/barrage/proto"
	// reqmix: the engine's tests have a helper named request.
	reqmix "github.com/barrage-load/barrage/request"
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
	// MaxPumpSends bounds the requests one wake-up of a loop sends, so a
	// backlog owed at an absurd rate never holds the loop away from its
	// reads, its hand-offs and its stop; the rest goes at the next wake-up,
	// MinPacerTick later.
	MaxPumpSends = 4096
	// MaxDials bounds the connects in flight over the whole engine, and so
	// the goroutines and descriptors dialing holds.
	MaxDials = 256
)

// Internal bounds of the work one turn of a loop does.
const (
	// adjustBatch is how many connection slots one turn of a loop adds or
	// drains; a change of a million connections takes many short turns,
	// with reads, hand-offs and the stop served between them.
	adjustBatch = 1024
	// dialingPerLoop bounds the slots a loop keeps dialing after the first
	// dial: more are made as connections open, so slots (memory) follow
	// what the descriptors allow, not what was asked for.
	dialingPerLoop = 1024
	// refillWholeConns is how many open connections a loop needs before a
	// pipelined connection waits for its whole pipeline to be answered
	// before it refills (see loop.setRefill).
	refillWholeConns = 16
	// censorBuckets bounds the work of recording the tokens still waiting
	// at the end: beyond it they are recorded in this many batches of
	// evenly spread waits.
	censorBuckets = 1024
)

// Sentinel errors of the engine.
var (
	// ErrNoConnection occurs when not one of the first connections could be
	// opened: the target is down or the address is wrong.
	ErrNoConnection = errors.New("engine: could not open any connection to the target")
	// ErrBadOptions occurs when Options are inconsistent.
	ErrBadOptions = errors.New("engine: bad options")
	// ErrStopped occurs when Stop ended a run before its start.
	ErrStopped = errors.New("engine: stopped before the start")
	// ErrFileLimit occurs when the connections asked for cannot fit under
	// the process's open-file limit (RLIMIT_NOFILE).
	ErrFileLimit = errors.New("engine: open-file limit too low")
)

// Options configure an Engine. Zero fields take the documented defaults.
type Options struct {
	// Addr is the target's host:port.
	Addr string
	// Request holds the bytes of one request, sent as they are for every
	// request (built once by proto/http1.AppendRequest). Mix, when set,
	// replaces it.
	Request []byte
	// Mix is the requests to send, picked by weight and rendered per
	// request by each loop (FromPlan builds it). With a named mix the
	// statistics carry per-request figures (proto.Stats.Requests).
	Mix *reqmix.Mix
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
	// Phase offsets the engine's hits by a fraction of its own gap between
	// hits, in [0, 1): its hit k is due when the schedule's integral
	// reaches k+Phase. N engines each given 1/N of a rate and the phases
	// 0, 1/N, ..., (N-1)/N send evenly spaced rather than in bursts of N.
	// Default 0. Apply may change it.
	Phase float64
	// TLS, when set, makes every connection a TLS client connection with
	// this configuration (FromPlan builds it for an https:// target: see
	// TLSConfig). The handshake runs on the dialer's goroutines, the rest
	// on the loops (tls.go). Nil: plain HTTP.
	TLS *tls.Config
	// NoKeepAlive sends one request per connection and closes it once
	// the response is complete (Request then says "Connection: close"):
	// the slot reconnects at once, so connect and handshake times are
	// part of every request's cycle (Stats.Connect, Stats.Handshake).
	// Pipeline must be 1.
	NoKeepAlive bool
	// Lease, when set, lets the engine send only while the lease granted
	// by Renew holds (an agent renews it each time ZooKeeper confirms its
	// session). While it has lapsed, open-model requests that come due are
	// shed (Stats.Shed[proto.ShedFenced]) and closed-model connections are
	// not refilled; requests in flight complete. Until the first Renew
	// nothing is sent. Default false: no lease.
	Lease bool
	// Retry, when set, sends a request whose attempt failed with one of
	// the FailOn kinds again, the same bytes, after its backoff (see
	// retry.go); it must be normalized and valid (proto.Plan.Validate).
	// Nil: no retries.
	Retry *proto.Retry
	// Breaker, when set, is the engine's circuit breaker (breaker.go),
	// counting the FailOn kinds as failures. Nil: none.
	Breaker *proto.Breaker
	// FailOn lists what retries are made for and the breaker counts
	// (proto.ParseFailOn); default proto.DefaultFailOn.
	FailOn []string
	// ExpectStatus is the success set (empty: every code below 400):
	// a request answered with one of them only after a retry counts in
	// Stats.RetriedOK.
	ExpectStatus []int
	// Seed seeds each loop's jitter stream (with its index).
	Seed uint64

	// Compiled by normalize.
	fail     proto.FailSet
	okStatus [proto.MaxStatus]bool
}

func (o *Options) normalize() error {
	if o.Addr == "" {
		return fmt.Errorf("%w: no target address", ErrBadOptions)
	}
	if len(o.Request) == 0 && o.Mix == nil {
		return fmt.Errorf("%w: no request bytes", ErrBadOptions)
	}
	if o.Mix != nil {
		o.Head = o.Mix.Head()
	}
	if len(o.Schedule) == 0 {
		return fmt.Errorf("%w: empty schedule", ErrBadOptions)
	}
	if math.IsNaN(o.Phase) || o.Phase < 0 || o.Phase >= 1 {
		return fmt.Errorf("%w: phase %g is not in [0, 1)", ErrBadOptions, o.Phase)
	}
	if o.Pipeline <= 0 {
		o.Pipeline = DefaultPipeline
	}
	if o.NoKeepAlive && o.Pipeline > 1 {
		return fmt.Errorf("%w: one request per connection (NoKeepAlive) with a pipeline of %d", ErrBadOptions, o.Pipeline)
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
	if o.Retry != nil || o.Breaker != nil {
		on := o.FailOn
		if len(on) == 0 {
			on = proto.DefaultFailOn
		}
		fs, err := proto.ParseFailOn(on)
		if err != nil {
			return fmt.Errorf("%w: fail kinds: %v", ErrBadOptions, err)
		}
		o.fail = fs
		if r := o.Retry; r != nil && (r.Max < 2 || r.Max > proto.MaxAttempts || r.Base <= 0 || r.MaxDelay < r.Base) {
			return fmt.Errorf("%w: retry %+v (normalize and validate the plan first)", ErrBadOptions, *r)
		}
		if b := o.Breaker; b != nil && (b.Window.D() < proto.MinBreakerWindow || b.MinCalls < 1 || b.ErrorRate <= 0 || b.OpenFor <= 0 || b.HalfOpenProbes < 1) {
			return fmt.Errorf("%w: breaker %+v (normalize and validate the plan first)", ErrBadOptions, *b)
		}
		// The success set, as report.Expect reads it: every code in
		// 100..399 by default; the listed ones otherwise (Status[0]
		// counts codes outside 1..599: a success when one such is
		// listed).
		for c := range o.okStatus {
			o.okStatus[c] = len(o.ExpectStatus) == 0 && c >= 100 && c < 400
		}
		for _, c := range o.ExpectStatus {
			if c > 0 && c < proto.MaxStatus {
				o.okStatus[c] = true
			} else {
				o.okStatus[0] = true
			}
		}
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
