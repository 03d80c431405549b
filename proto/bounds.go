package proto

import (
	"fmt"
	"math"
	"time"
)

// The bounds every plan, flag, live change and budget is checked against:
// one set of numbers, applied by Validate, CheckRate, CheckConnections,
// CheckLiveRate, CheckCaps and Caps.CheckSegments.
const (
	// MaxRate is the highest rate, in requests per second, a whole test
	// may ask for (a fleet's total). It is 500 boxes at the ~200 k req/s
	// a 2-core box sends here. It also keeps the schedule's arithmetic
	// sound: a run asked for 1e9 req/s spun in its pacer and never ended
	// (not even on SIGTERM), while 1e8 req/s ran and reported itself
	// saturated (measured on this 2-core machine with -d 1s).
	MaxRate = 1e8
	// MaxDuration bounds a test's length: a week. Longer is a mistake
	// (a unit typo), and the bound keeps sums of step durations far from
	// time.Duration's overflow.
	MaxDuration = 7 * 24 * time.Hour
	// MaxTimeout bounds the request and connect timeouts. A request the
	// target has not answered in an hour is not load-tested any more.
	MaxTimeout = time.Hour
	// MaxSteps bounds a steps pattern's steps.
	MaxSteps = 10000
	// MaxSegments bounds a budget's segments: the plan's steps plus the
	// cuts that live changes make.
	MaxSegments = 1 << 16

	// DefaultAgentMaxRate is the rate one agent accepts unless its
	// operator raises it: 1e6 req/s, five times what a 2-core box sends
	// here (~200 k req/s, pipelined, measured) and about what a 10 to
	// 16-core box can. It bounds what a mistaken or hostile coordinator
	// (or anyone who can write the budget znode) can make one box send.
	DefaultAgentMaxRate = 1e6
	// DefaultAgentMaxConnections is the connection count one agent (or a
	// `barrage run`) accepts: 65536. The engine dials one target address
	// from one source address, so each connection needs its own local
	// port: no box can hold more than the ephemeral range allows
	// (28 232 by default, 64 511 at the widest, 1024–65535). A larger
	// count could only fail mid-test with EADDRNOTAVAIL or EMFILE.
	DefaultAgentMaxConnections = 1 << 16
)

// planError is a validation error: its text is the one line that says what
// to fix, and it matches ErrBadPlan with errors.Is. Wrapping ErrBadPlan with
// "%w: ..." would put "proto: bad plan: " in front of every message, and
// the command line's own prefix in front of that.
type planError struct{ msg string }

func (e *planError) Error() string { return e.msg }
func (e *planError) Unwrap() error { return ErrBadPlan }

// BadPlanf returns an error that matches ErrBadPlan and reads as the
// formatted message alone (no "proto: bad plan:" prefix): the form for a
// caller outside proto that finds a plan it cannot run.
func BadPlanf(format string, a ...any) error {
	return &planError{msg: fmt.Sprintf(format, a...)}
}

func bad(format string, a ...any) error { return BadPlanf(format, a...) }

// finite reports whether f is neither NaN nor ±Inf.
func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// checkRate checks one rate of a plan, named for the message.
func checkRate(name string, r, ceiling float64, whose string) error {
	switch {
	case !finite(r):
		return bad("%s %g is not a number of requests per second", name, r)
	case r < 0:
		return bad("%s must be >= 0 (0 = as fast as the target answers), got %g", name, r)
	case r > ceiling*(1+capSlack):
		return bad("%s %g req/s is above %s of %g req/s", name, r, whose, ceiling)
	}
	return nil
}

// capSlack forgives the rounding of a rate that went through a budget
// split and the schedule's per-nanosecond units (r/1e9*1e9 can exceed r by
// an ulp), so a budget exactly at a cap is not refused.
const capSlack = 1e-9

// CheckRate checks a rate in requests per second for a whole test (a flag,
// a plan field, `barrage set --rate`): finite, >= 0 (0 is the closed
// model) and at most MaxRate.
func CheckRate(r float64) error { return checkRate("rate", r, MaxRate, "the ceiling") }

// CheckConnections checks a connection count for a whole test (a flag, a
// plan field, `barrage set --connections`): 1 to MaxConnections.
func CheckConnections(n int) error {
	return checkConns("connections", n, MaxConnections, "the ceiling")
}

func checkConns(name string, n, ceiling int, whose string) error {
	if n < 1 {
		return bad("%s must be at least 1, got %d", name, n)
	}
	if n > ceiling {
		return bad("%s %d is above %s of %d", name, n, whose, ceiling)
	}
	return nil
}

// checkDur checks a duration that must be positive and at most max.
func checkDur(name string, d Duration, max time.Duration) error {
	if d <= 0 {
		return bad("%s must be positive, got %s", name, d)
	}
	if d.D() > max {
		return bad("%s %s is longer than %s", name, d, max)
	}
	return nil
}

// Caps are one box's own limits, which an agent (and `barrage run`)
// applies on top of a plan's validation: whatever a coordinator asks, the
// box sends at most MaxRate requests per second over at most
// MaxConnections connections. A zero field means the absolute bound
// (MaxRate, MaxConnections).
type Caps struct {
	MaxRate        float64
	MaxConnections int
}

// DefaultCaps are the caps of an agent whose operator set none.
func DefaultCaps() Caps {
	return Caps{MaxRate: DefaultAgentMaxRate, MaxConnections: DefaultAgentMaxConnections}
}

func (c Caps) rate() float64 {
	if c.MaxRate > 0 && c.MaxRate < MaxRate {
		return c.MaxRate
	}
	return MaxRate
}

func (c Caps) conns() int {
	if c.MaxConnections > 0 && c.MaxConnections < MaxConnections {
		return c.MaxConnections
	}
	return MaxConnections
}

// check refuses caps that are themselves nonsense (a NaN rate would let
// every comparison pass).
func (c Caps) check() error {
	if !finite(c.MaxRate) || c.MaxRate < 0 {
		return bad("rate cap %g is not a rate", c.MaxRate)
	}
	if c.MaxConnections < 0 {
		return bad("connection cap %d is negative", c.MaxConnections)
	}
	return nil
}

// CheckCaps checks a valid plan against one box's caps: its peak rate and
// its peak connection count over the whole schedule.
func (p *Plan) CheckCaps(c Caps) error {
	if err := c.check(); err != nil {
		return err
	}
	var peak float64
	var conns int
	for _, s := range p.Schedule() {
		peak = max(peak, s.From, s.To)
		conns = max(conns, s.Connections)
	}
	name := "rate"
	if p.Pattern.Type != PatternConstant {
		name = "peak rate"
	}
	if err := checkRate(name, peak, c.rate(), capName(c.rate() < MaxRate)); err != nil {
		return err
	}
	return checkConns("connections", conns, c.conns(), capName(c.conns() < MaxConnections))
}

func capName(own bool) string {
	if own {
		return "this box's cap"
	}
	return "the ceiling"
}

// CheckSegments checks a schedule or a per-agent budget (the segments an
// agent is told to run) as it arrives, before anything is sent: between 1
// and MaxSegments segments; each with finite rates >= 0 within the caps,
// 1 to the caps' connections, a positive duration; starts at or after 0,
// in order and not overlapping (gaps are allowed), and the last ending by
// MaxDuration. A negative or NaN rate is refused here rather than read as
// the closed model.
func (c Caps) CheckSegments(segs []Segment) error {
	if err := c.check(); err != nil {
		return err
	}
	if len(segs) == 0 {
		return bad("the schedule has no segments")
	}
	if len(segs) > MaxSegments {
		return bad("the schedule has %d segments, more than %d", len(segs), MaxSegments)
	}
	rate, conns := c.rate(), c.conns()
	whoseRate, whoseConns := capName(rate < MaxRate), capName(conns < MaxConnections)
	var end time.Duration
	for i, s := range segs {
		n := i + 1
		if err := checkRate(fmt.Sprintf("segment %d: rate", n), s.From, rate, whoseRate); err != nil {
			return err
		}
		if err := checkRate(fmt.Sprintf("segment %d: rate", n), s.To, rate, whoseRate); err != nil {
			return err
		}
		if err := checkConns(fmt.Sprintf("segment %d: connections", n), s.Connections, conns, whoseConns); err != nil {
			return err
		}
		// Bound each term before adding, so Start+Duration cannot wrap.
		if s.Duration <= 0 || s.Duration > MaxDuration {
			return bad("segment %d: duration must be positive and at most %s, got %s", n, MaxDuration, s.Duration)
		}
		if s.Start < end || s.Start > MaxDuration {
			return bad("segment %d: starts at %s, before the previous one ends (%s) or past %s", n, s.Start, end, MaxDuration)
		}
		if s.End() > MaxDuration {
			return bad("segment %d: ends at %s, past %s", n, s.End(), MaxDuration)
		}
		if s.Step < 0 || s.Step > i {
			return bad("segment %d: step %d out of order", n, s.Step)
		}
		if i > 0 && s.Step < segs[i-1].Step {
			return bad("segment %d: step %d after step %d", n, s.Step, segs[i-1].Step)
		}
		end = s.End()
	}
	return nil
}

// CheckLiveRate checks a rate change (`barrage set --rate`) for a running
// test of plan p: the rate must pass CheckRate, and the test must use the
// open model. A closed-model test has no rate to change: its connections
// send as fast as the target answers, and quietly turning it into an
// open-model test mid-run would split its report across two models.
func (p *Plan) CheckLiveRate(r float64) error {
	if err := CheckRate(r); err != nil {
		return err
	}
	if !p.Open() {
		return bad("this test runs the closed model (no rate): --rate cannot change it; change --connections, or start an open-model test (-r)")
	}
	return nil
}
