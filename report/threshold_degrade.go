package report

import (
	"fmt"
	"math"
	"strings"
)

// Degradation is what graceful degradation (a plan's degrade section) did
// to a test: what the plan asked, each reduction with why, and the stop
// if it stopped the test. What was sent after each reduction is its
// step's row (each reduction is a live change, so a step of its own).
type Degradation struct {
	// Rule is the plan's degrade section in words.
	Rule string `json:"rule"`
	// Asked is what the plan asked when the test began ("1000 req/s",
	// "64 connections").
	Asked   string          `json:"asked"`
	Actions []DegradeAction `json:"actions"`
	// Stopped says why degradation stopped the test ("" if it did not).
	Stopped string `json:"stopped,omitempty"`
}

// DegradeAction is one reduction of the load.
type DegradeAction struct {
	// DecidedAt is when the window that called for it closed; At, when
	// the change took effect (seconds from the start; 0 if refused).
	DecidedAt float64 `json:"decided_at_seconds"`
	At        float64 `json:"at_seconds"`
	// ErrorRate is the share of errors (percent) over the window, which
	// ran from WindowFrom to DecidedAt.
	ErrorRate  float64 `json:"error_rate"`
	WindowFrom float64 `json:"window_from_seconds"`
	// What is "rate" or "connections"; From and To, the values.
	What string  `json:"what"`
	From float64 `json:"from"`
	To   float64 `json:"to"`
	// Error says why the change could not be made.
	Error string `json:"error,omitempty"`
}

// stepAt is the report's step row that starts at sec (a live change's
// instant), or nil.
func (r *Report) stepAt(sec float64) *Step {
	for i := range r.Steps {
		if math.Abs(r.Steps[i].StartSeconds-sec) < 1e-3 {
			return &r.Steps[i]
		}
	}
	return nil
}

// writeDegradation prints what degradation did.
func (r *Report) writeDegradation(b *strings.Builder) {
	d := r.Degradation
	if d == nil {
		return
	}
	fmt.Fprintf(b, "\nDegradation  the plan asked %s; %s\n", d.Asked, d.Rule)
	if len(d.Actions) == 0 && d.Stopped == "" {
		b.WriteString("  the load was never lowered: the errors stayed under the limit\n")
	}
	for _, a := range d.Actions {
		unit := " req/s"
		if a.What == "connections" {
			unit = " connections"
		}
		why := fmt.Sprintf("%s errors over %.1fs–%.1fs", fmtShare(a.ErrorRate/100), a.WindowFrom, a.DecidedAt)
		if a.Error != "" {
			fmt.Fprintf(b, "  at %.1fs: %s %s → %s%s refused (%s): %s\n", a.DecidedAt, a.What, fmtRate(a.From), fmtRate(a.To), unit, a.Error, why)
			continue
		}
		sent := ""
		if s := r.stepAt(a.At); s != nil {
			sent = fmt.Sprintf("; sent %.1f req/s from then (step %d)", s.RPS, s.Step)
		}
		fmt.Fprintf(b, "  from %.1fs: %s %s → %s%s because of %s%s\n", a.At, a.What, fmtRate(a.From), fmtRate(a.To), unit, why, sent)
	}
	if d.Stopped != "" {
		fmt.Fprintf(b, "  stopped the test: %s\n", d.Stopped)
	}
}
