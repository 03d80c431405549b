package find

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/barrage-load/barrage/report"
)

// Answer is the search's one-line answer.
func (r *Result) Answer(slo []string) string {
	at := strings.Join(slo, ", ")
	switch r.Limit {
	case LimitSLO:
		return fmt.Sprintf("sustainable: %s req/s at %s (it broke at %s req/s)", fmtRate(r.Sustainable), at, fmtRate(r.Broke))
	case LimitMax:
		return fmt.Sprintf("sustainable: at least %s req/s at %s (%s)", fmtRate(r.Sustainable), at, r.Reason)
	case LimitMin:
		return "no sustainable rate: " + r.Reason
	case LimitGenerator:
		return "no answer: " + r.Reason
	}
	if r.Reason != "" {
		return "no answer: " + r.Reason
	}
	return "no answer: the search did not finish"
}

// fmtUS writes microseconds as the report does.
func fmtUS(us int64) string { return report.FormatUS(us) }

// StepLine says one step in a line (progress).
func StepLine(m Measurement) string {
	s := fmt.Sprintf("find: %s req/s → %.0f req/s, p99 %s, errors %d", fmtRate(m.Rate), m.Achieved, fmtUS(m.P99), m.Errors)
	switch {
	case !m.Valid:
		s += "; NOT VALID: " + strings.Join(m.Invalid, "; ")
	case m.SLO:
		s += "; SLO ok"
	default:
		s += "; SLO broken: " + strings.Join(m.Failed, ", ")
		if m.Lateness != "" {
			s += " (not held against the target: " + m.Lateness + ")"
		}
	}
	return s
}

// WriteTable prints the steps, one row each, then the answer.
func (r *Result) WriteTable(w io.Writer, slo []string) error {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "rate/s\tachieved/s\tp50\tp99\tp99.9\terrors\tloops\tvalid\tSLO\t\n")
	for _, m := range r.Steps {
		valid := "yes"
		if !m.Valid {
			valid = "NO"
		} else if !m.Counts() {
			valid = "late"
		}
		slo := "ok"
		if !m.SLO {
			slo = "FAIL"
		}
		errs := fmt.Sprintf("%d", m.Errors)
		if m.Errors > 0 {
			errs += fmt.Sprintf(" (%.2f%%)", 100*m.ErrorShare)
		}
		rate := fmtRate(m.Rate)
		if m.Try > 0 {
			rate = "(again) " + rate
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%s\t%s\t%s\t%s\t%.0f%%\t%s\t%s\t\n", rate, m.Achieved, fmtUS(m.P50), fmtUS(m.P99), fmtUS(m.P999), errs, 100*m.LoopBusy, valid, slo)
	}
	tw.Flush()
	b.WriteString("\n")
	for _, m := range r.Steps {
		if len(m.Invalid) > 0 {
			fmt.Fprintf(&b, "not valid at %s req/s: %s\n", fmtRate(m.Rate), strings.Join(m.Invalid, "; "))
		} else if !m.Counts() {
			fmt.Fprintf(&b, "not held against the target at %s req/s: %s\n", fmtRate(m.Rate), m.Lateness)
		}
	}
	b.WriteString(r.Answer(slo) + "\n")
	_, err := io.WriteString(w, b.String())
	return err
}
