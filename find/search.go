// Package find searches for the highest rate a target sustains within an
// SLO (thresholds): open-model steps, raised exponentially from a lowest
// rate until the SLO breaks, then bisected to a resolution. A step in
// which the generator (or any agent of the fleet) fell behind or was
// saturated is not held against the target: the search stops and says
// the generator is the limit instead of giving a number.
//
// The search itself (Search) is pure: it asks a Measurer for one step at
// a time. Live is the Measurer of a running test: each step is a live
// change (live.Controller.Change) of one long open-model test, so
// connections stay warm, measured on the merged intervals of the test's
// pipeline, in run (local.Runner) and through the coordinator alike.
package find

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/barrage-load/barrage/proto"
)

// Defaults of a search.
const (
	DefaultMin        = 1000
	DefaultMax        = 1e6
	DefaultStep       = 5 * time.Second
	DefaultSettle     = time.Second
	DefaultWarmup     = 5 * time.Second
	DefaultResolution = 0.02
	DefaultGrowth     = 2
)

// ErrBadOptions occurs when a search's options are out of bounds.
var ErrBadOptions = errors.New("find: bad options")

// Options bound a search.
type Options struct {
	// Min and Max bound the rates tried (requests per second).
	Min, Max float64
	// Step is how long each step is judged; Settle, how long each step
	// runs before that (a change's first interval); Warmup, how long the
	// test runs at Min before the first step (0: none).
	Step, Settle, Warmup time.Duration
	// Resolution is the relative width at which bisection stops (0.02:
	// the answer is within 2% of the rate at which the SLO broke).
	Resolution float64
	// Growth multiplies the rate from one step to the next until the SLO
	// breaks.
	Growth float64
	// Drain bounds the pause (rate 0) after a step that left requests
	// waiting for a connection, until they are sent (0: no pause; the
	// command sets the request timeout, after which the engine sheds
	// them anyway).
	Drain time.Duration
	// Generator names what sends the load in the answer: "generator"
	// (the default) or "fleet".
	Generator string
	// Confirm is how many times a step whose SLO broke is measured again
	// before the break is held against the target: a break that does not
	// repeat (a stall of the machine, not the target's limit) is taken
	// back. 0 believes the first measurement.
	Confirm int
	// OnStep, if set, gets each step as it is measured.
	OnStep func(Measurement)
}

// Normalize fills zero fields with the defaults (Settle, Warmup and
// Drain stay as given: 0 is a choice).
func (o *Options) Normalize() {
	if o.Min == 0 {
		o.Min = DefaultMin
	}
	if o.Max == 0 {
		o.Max = DefaultMax
	}
	if o.Step == 0 {
		o.Step = DefaultStep
	}
	if o.Resolution == 0 {
		o.Resolution = DefaultResolution
	}
	if o.Growth == 0 {
		o.Growth = DefaultGrowth
	}
	if o.Generator == "" {
		o.Generator = "generator"
	}
}

// Check refuses options no search can use; interval is the test's
// interval (a step must hold at least one).
func (o *Options) Check(interval time.Duration) error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrBadOptions, fmt.Sprintf(format, a...))
	}
	switch {
	case !(o.Min > 0) || math.IsInf(o.Min, 0):
		return bad("--min-rate %g must be above 0", o.Min)
	case !(o.Max >= o.Min) || math.IsInf(o.Max, 0):
		return bad("--max-rate %g must be at least --min-rate %g", o.Max, o.Min)
	case o.Max > proto.MaxRate:
		return bad("--max-rate %g is above the ceiling of %g req/s", o.Max, float64(proto.MaxRate))
	case o.Step < interval:
		return bad("--step %s is shorter than an interval (%s)", o.Step, interval)
	case o.Settle < 0 || o.Warmup < 0:
		return bad("--settle and --warmup must not be negative")
	case !(o.Resolution > 0 && o.Resolution < 1):
		return bad("--resolution %g must be between 0 and 100%%", o.Resolution)
	case !(o.Growth > 1 && o.Growth <= 100):
		return bad("--growth %g must be above 1 (2 doubles the rate each step)", o.Growth)
	case o.Confirm < 0 || o.Confirm > 10:
		return bad("--confirm %d must be between 0 and 10", o.Confirm)
	}
	return nil
}

// MaxSteps bounds the steps a search takes: the exponential phase, then
// the bisection of the last bracket to the resolution, with the
// confirmations of the breaks.
func (o *Options) MaxSteps() int {
	grow := int(math.Ceil(math.Log(o.Max/o.Min)/math.Log(o.Growth))) + 1
	bisect := int(math.Ceil(math.Log2((o.Growth-1)/o.Resolution))) + 1
	// Every break may be measured Confirm more times: one in the growth,
	// and any in the bisection.
	return grow + max(bisect, 0)*(1+o.Confirm) + o.Confirm
}

// Duration bounds how long a search's test must be planned for: the
// warm-up, then MaxSteps steps, each with its settling time and up to
// lead (an interval, plus the controller's lead) before its change takes
// effect, and a pause to drain the backlog a broken step left: a step at
// most Growth times a rate the target held left at most Growth-1 times
// its length of work waiting, which drains in as long at the target's
// pace (at most Drain).
func (o *Options) Duration(lead time.Duration) time.Duration {
	per := o.Settle + o.Step + lead
	if o.Drain > 0 {
		per += min(o.Drain, time.Duration((o.Growth-1)*float64(o.Settle+o.Step))) + 2*lead
	}
	return o.Warmup + time.Duration(o.MaxSteps())*per + lead
}

// Measurement is one step of a search.
type Measurement struct {
	// Rate is the rate asked; Achieved, the responses per second; Sent,
	// the requests sent per second.
	Rate     float64 `json:"rate"`
	Achieved float64 `json:"achieved"`
	Sent     float64 `json:"sent"`
	// From and To bound the part judged (seconds from the test's start).
	From float64 `json:"from_seconds"`
	To   float64 `json:"to_seconds"`
	// P50, P99 and P999 are the leading latency's (microseconds).
	P50  int64 `json:"p50_us"`
	P99  int64 `json:"p99_us"`
	P999 int64 `json:"p999_us"`
	// LoopBusy is how busy the generator's event loops were (the
	// fleet's, merged: the per-agent rule is in Valid).
	LoopBusy float64 `json:"loop_busy"`
	// Errors counts the errors; ErrorShare is their share of the
	// requests completed.
	Errors     uint64  `json:"errors"`
	ErrorShare float64 `json:"error_share"`
	// Valid is false when the generator (an agent) is to blame for the
	// step; Invalid says why. Lateness is set when the SLO broke and the
	// sends' lateness (from outside the generator's loops) may explain
	// it: the step is then not held against the target.
	Valid    bool     `json:"valid"`
	Invalid  []string `json:"invalid_reasons,omitempty"`
	Lateness string   `json:"lateness,omitempty"`
	// Try numbers a step measured again at the same rate (Confirm).
	Try int `json:"try,omitempty"`
	// SLO is true when every threshold held; Failed lists those that did
	// not, with their values.
	SLO    bool     `json:"slo_ok"`
	Failed []string `json:"slo_failed,omitempty"`
}

// Counts says whether the step may be held for or against the target: it
// is valid, and a broken SLO is not explained by late sends.
func (m *Measurement) Counts() bool { return m.Valid && (m.SLO || m.Lateness == "") }

// Measurer runs one step at rate and measures it.
type Measurer interface {
	Measure(ctx context.Context, rate float64) (Measurement, error)
}

// Limits: what ended a search.
const (
	// LimitSLO: the SLO broke and the bracket was bisected to the
	// resolution; Sustainable is the answer.
	LimitSLO = "slo"
	// LimitMax: the SLO held at the highest rate allowed.
	LimitMax = "max"
	// LimitMin: the SLO broke at the lowest rate: no answer.
	LimitMin = "min"
	// LimitGenerator: a step was not valid (the generator or an agent
	// fell behind or was saturated): no answer; Sustainable is only a
	// lower bound.
	LimitGenerator = "generator"
)

// Result is a search's outcome.
type Result struct {
	Steps []Measurement `json:"steps"`
	// Sustainable is the highest rate at which the SLO held with a valid
	// generator (0 if none); Broke, the lowest at which it broke (0 if
	// none).
	Sustainable float64 `json:"sustainable"`
	Broke       float64 `json:"broke_at,omitempty"`
	// Limit is one of the Limit* constants; Reason says it in words.
	Limit  string `json:"limit"`
	Reason string `json:"reason"`
}

// Found reports whether the search gives a sustainable rate.
func (r *Result) Found() bool { return r.Limit == LimitSLO || r.Limit == LimitMax }

// round keeps a rate readable: whole requests per second from 100 up.
func round(r float64) float64 {
	if r >= 100 {
		return math.Round(r)
	}
	return math.Round(r*100) / 100
}

// Search runs the search. An error (the measurer's, or ctx's) ends it
// with the steps so far in the result.
func Search(ctx context.Context, m Measurer, o Options) (*Result, error) {
	res := &Result{}
	step := func(rate float64) (*Measurement, error) {
		for try := 0; ; try++ {
			ms, err := m.Measure(ctx, rate)
			if err != nil {
				return nil, err
			}
			ms.Try = try
			res.Steps = append(res.Steps, ms)
			if o.OnStep != nil {
				o.OnStep(ms)
			}
			// A break that counts is measured again, up to Confirm
			// times: one that does not repeat was a passing disturbance.
			if ms.SLO || !ms.Counts() || try >= o.Confirm {
				return &res.Steps[len(res.Steps)-1], nil
			}
		}
	}
	generator := func(ms *Measurement) {
		res.Limit = LimitGenerator
		why := ms.Lateness
		if len(ms.Invalid) > 0 {
			why = ms.Invalid[0]
		}
		res.Reason = fmt.Sprintf("at %s req/s the %s is the limit, not the target: %s", fmtRate(ms.Rate), o.Generator, why)
		if res.Sustainable > 0 {
			res.Reason += fmt.Sprintf("; the SLO held up to %s req/s", fmtRate(res.Sustainable))
		}
	}
	// Exponential phase.
	rate := round(o.Min)
	for {
		ms, err := step(rate)
		if err != nil {
			return res, err
		}
		if !ms.Counts() {
			generator(ms)
			return res, nil
		}
		if !ms.SLO {
			res.Broke = rate
			break
		}
		res.Sustainable = rate
		if rate >= o.Max {
			res.Limit = LimitMax
			res.Reason = fmt.Sprintf("the SLO held at the highest rate allowed, %s req/s (raise --max-rate)", fmtRate(rate))
			return res, nil
		}
		rate = round(min(rate*o.Growth, o.Max))
	}
	if res.Sustainable == 0 {
		res.Limit = LimitMin
		res.Reason = fmt.Sprintf("the SLO broke at the lowest rate, %s req/s (lower --min-rate)", fmtRate(rate))
		return res, nil
	}
	// Bisection.
	for res.Broke-res.Sustainable > o.Resolution*res.Sustainable {
		mid := round((res.Sustainable + res.Broke) / 2)
		if mid <= res.Sustainable || mid >= res.Broke {
			break
		}
		ms, err := step(mid)
		if err != nil {
			return res, err
		}
		if !ms.Counts() {
			generator(ms)
			return res, nil
		}
		if ms.SLO {
			res.Sustainable = mid
		} else {
			res.Broke = mid
		}
	}
	res.Limit = LimitSLO
	res.Reason = fmt.Sprintf("the SLO held at %s req/s and broke at %s req/s", fmtRate(res.Sustainable), fmtRate(res.Broke))
	return res, nil
}

// fmtRate writes a rate with thin groups of thousands: "41 200".
func fmtRate(r float64) string {
	if r != math.Trunc(r) || r < 1000 {
		return fmt.Sprintf("%g", r)
	}
	s := fmt.Sprintf("%.0f", r)
	out := ""
	for len(s) > 3 {
		out = " " + s[len(s)-3:] + out
		s = s[:len(s)-3]
	}
	return s + out
}
