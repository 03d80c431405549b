package report

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/barrage-load/barrage/proto"
)

func latencyRow(w io.Writer, name string, l *Latency) {
	if l == nil || l.Count == 0 {
		fmt.Fprintf(w, "  %s\t(no samples)\n", name)
		return
	}
	fmt.Fprintf(w, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", name,
		fmtUS(int64(l.Mean)), fmtUS(int64(l.Stdev)), fmtUS(l.Min), fmtUS(l.P50), fmtUS(l.P75),
		fmtUS(l.P90), fmtUS(l.P99), fmtUS(l.P999), fmtUS(l.P9999), fmtUS(l.Max))
}

// OutcomeText says how the test ended, for people: "completed", or the
// Outcome with how much of the plan ran ("stopped early (SIGINT) after
// 3.2 s of 10 s: partial report"), and who it was taken over from. It is
// empty when the caller set no Outcome and no TakenOverFrom.
func (r *Report) OutcomeText() string {
	var s string
	switch {
	case r.Outcome == "" && r.TakenOverFrom == "":
		return ""
	case r.Completed():
		s = OutcomeCompleted
	default:
		s = r.Outcome + " after " + fmtSeconds(r.DurationSeconds)
		if r.PlannedSeconds > 0 {
			s += " of " + fmtSeconds(r.PlannedSeconds)
		}
		s += ": partial report"
	}
	if r.TakenOverFrom != "" {
		s += "; taken over from coordinator " + r.TakenOverFrom
	}
	return s
}

// errorKindsText lists the error kinds with a count: "0" when there are
// none, else "12: http_5xx 12".
func (r *Report) errorKindsText() string {
	if r.Errors == 0 {
		return "0"
	}
	var parts []string
	for _, k := range errorKindOrder {
		if n := r.ErrorKinds[k]; n > 0 {
			part := fmt.Sprintf("%s %d", k, n)
			if k == proto.ErrTLS.String() && len(r.TLSErrors) > 0 {
				part += " (" + r.tlsReasonsText() + ")"
			}
			parts = append(parts, part)
		}
	}
	return fmt.Sprintf("%d: %s", r.Errors, strings.Join(parts, ", "))
}

// tlsReasonsText lists the TLS failures by reason, in proto's order:
// "unknown_authority 12, host_name 1".
func (r *Report) tlsReasonsText() string {
	var parts []string
	for k := proto.TLSReason(0); k < proto.NumTLSReasons; k++ {
		if n := r.TLSErrors[k.String()]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, n))
		}
	}
	return strings.Join(parts, ", ")
}

// errorKindOrder is the order kinds are printed in.
var errorKindOrder = func() []string {
	var out []string
	Errors{}.Each(func(k string, _ uint64) { out = append(out, k) })
	return out
}()

// WriteText prints the report for people, wrk-style.
func (r *Report) WriteText(out io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Target      %s\n", r.Target)
	if o := r.OutcomeText(); o != "" {
		fmt.Fprintf(&b, "Outcome     %s\n", o)
	}
	load := r.Schedule
	if load == "" {
		load = plural(int64(r.Connections), "connection", "connections")
	}
	if r.Model == "open" {
		load = "open model, " + load
		if len(r.Steps) > 1 || r.TargetRateMin != r.TargetRateMax {
			load += fmt.Sprintf(" (%s req/s on average)", fmtRate(r.TargetRate))
		}
	} else {
		load = "closed model (as fast as the target answers), " + load
	}
	fmt.Fprintf(&b, "Load        %s, pipeline %d, %.2fs\n", load, r.Pipeline, r.DurationSeconds)
	fmt.Fprintf(&b, "Requests    %d sent: %d answered, %d failed, %d unfinished at stop\n",
		r.Sent, r.Requests, r.Failed, r.Unfinished)
	fmt.Fprintf(&b, "Errors      %s\n", r.errorKindsText())
	if r.Model == "open" {
		var shed uint64
		var kinds []string
		for k := proto.ShedKind(0); k < proto.NumShedKinds; k++ {
			shed += r.Shed[k.String()]
			if k == proto.ShedCircuit && r.Shed[k.String()] == 0 {
				continue // no breaker, or it never opened
			}
			kinds = append(kinds, fmt.Sprintf("%s %d", k, r.Shed[k.String()]))
		}
		sent := fmt.Sprintf("%d sent", r.Sent)
		if r.Retries != nil {
			sent = fmt.Sprintf("%d sent (+ %d retries on top: %d attempts)", r.Retries.Logical, r.Retries.Retries, r.Sent)
		}
		fmt.Fprintf(&b, "Due         %d: %s, %d shed (%s), %d never sent at the end\n",
			r.Scheduled, sent, shed, strings.Join(kinds, ", "), r.NeverSent)
		if r.Retries != nil {
			fmt.Fprintf(&b, "Load        %d scheduled + %d retries\n", r.Scheduled, r.Retries.Retries)
		}
	}
	r.writeRetries(&b)
	if r.Censored > 0 {
		fmt.Fprintf(&b, "Censored    %d never answered; their wait is in the percentiles as a lower bound\n", r.Censored)
	}
	if r.Model == "open" {
		fmt.Fprintf(&b, "Throughput  %.1f req/s (target %s req/s)\n", r.RPS, fmtRate(r.TargetRate))
	} else {
		fmt.Fprintf(&b, "Throughput  %.1f req/s\n", r.RPS)
	}
	fmt.Fprintf(&b, "Transfer    %s in, %s out\n", fmtBytes(r.BytesIn), fmtBytes(r.BytesOut))
	if r.LoopBusy > 0 {
		fmt.Fprintf(&b, "Generator   event loops %.0f%% busy (CPU time over one core per loop)\n", 100*r.LoopBusy)
	}
	if r.Seed != 0 {
		fmt.Fprintf(&b, "Seed        %d (--seed %d draws the same requests and values again)\n", r.Seed, r.Seed)
	}
	if r.ServerCloses > 0 {
		fmt.Fprintf(&b, "Server      closed %s after a complete response (reopened at once)\n",
			plural(int64(r.ServerCloses), "connection", "connections"))
	}
	if r.ClientCloses > 0 {
		fmt.Fprintf(&b, "No keep-alive  %s closed after their one request (reopened at once)\n",
			plural(int64(r.ClientCloses), "connection", "connections"))
	}
	b.WriteString("\n")
	w := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "Latency\tmean\tstdev\tmin\tp50\tp75\tp90\tp99\tp99.9\tp99.99\tmax\n")
	if r.Model == "open" {
		latencyRow(w, "from intended send", r.Latency)
		latencyRow(w, "service time", r.Service)
		latencyRow(w, "send lateness", r.Lateness)
	} else {
		latencyRow(w, "service time", r.Latency)
		latencyRow(w, "CO-corrected", r.Corrected)
	}
	// How long connections took to open, apart from the requests (with
	// --no-keepalive, once per request).
	if r.Connect != nil && r.Connect.Count > 0 {
		latencyRow(w, "connect", r.Connect)
	}
	if r.Handshake != nil && r.Handshake.Count > 0 {
		latencyRow(w, "TLS handshake", r.Handshake)
	}
	r.endToEndRow(w)
	w.Flush()
	b.WriteString("\nStatus codes  ")
	if len(r.Status) == 0 {
		b.WriteString("none")
	}
	for i, k := range SortedStatus(r.Status) {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s: %d", k, r.Status[k])
	}
	b.WriteString("\nError kinds   ")
	for i, k := range errorKindOrder {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %d", k, r.ErrorKinds[k])
	}
	b.WriteString("\n")
	if len(r.ByRequest) > 0 {
		r.writeRequests(&b)
	}
	if len(r.Steps) > 1 {
		r.writeSteps(&b)
	}
	if len(r.Agents) > 0 {
		r.writeAgents(&b)
	}
	r.writeDegradation(&b)
	r.writeThresholds(&b)
	if len(r.Notes) > 0 {
		b.WriteString("\nNotes\n")
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "  - %s\n", n)
		}
	}
	switch {
	case r.Valid && r.delayedSends:
		b.WriteString("\nVerdict     valid: the generator's loops kept up and held their connections, but its sends were delayed from outside them (see notes)\n")
	case r.Valid:
		b.WriteString("\nVerdict     valid: the generator kept its schedule and its connections\n")
	default:
		b.WriteString("\nVerdict     NOT VALID as a measurement of the target:\n")
		for _, s := range r.InvalidReasons {
			fmt.Fprintf(&b, "  - %s\n", s)
		}
	}
	if !r.Completed() {
		fmt.Fprintf(&b, "Outcome     %s\n", r.OutcomeText())
	}
	_, err := io.WriteString(out, b.String())
	return err
}

func (r *Report) writeSteps(b *strings.Builder) {
	b.WriteString("\nSteps\n")
	notes := false
	for _, s := range r.Steps {
		notes = notes || s.Note != ""
	}
	w := tabwriter.NewWriter(b, 0, 4, 2, ' ', 0)
	head := "  #\tplan\tsent\trequests\treq/s\ttarget/s\tp50\tp99\tmax\terrors"
	if notes {
		head += "\tnote"
	}
	fmt.Fprintln(w, head)
	for _, s := range r.Steps {
		l := s.Latency
		if l == nil {
			l = &Latency{}
		}
		target := "-"
		if r.Model == "open" {
			target = fmtRate(s.TargetRate)
			if s.TargetRateMin != s.TargetRateMax {
				target = span(s.TargetRateMin, s.TargetRateMax, fmtRate)
			}
		}
		fmt.Fprintf(w, "  %d\t%s\t%d\t%d\t%.1f\t%s\t%s\t%s\t%s\t%d", s.Step, s.Label, s.Sent, s.Requests, s.RPS,
			target, fmtUS(l.P50), fmtUS(l.P99), fmtUS(l.Max), s.Errors)
		if notes {
			fmt.Fprintf(w, "\t%s", s.Note)
		}
		fmt.Fprintln(w)
	}
	w.Flush()
}

func (r *Report) writeAgents(b *strings.Builder) {
	b.WriteString("\nAgents\n")
	w := tabwriter.NewWriter(b, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "  name\thost\tbudget\trequests\treq/s\tp99\terrors\tloops busy\tintervals\tstatus\n")
	for _, a := range r.Agents {
		busy := "-"
		if a.LoopBusy > 0 {
			busy = fmt.Sprintf("%.0f%%", 100*a.LoopBusy)
		}
		// Received never exceeds expected (IntervalCoverage counts every
		// interval received as expected); a row built otherwise is shown
		// capped, with the surplus named, rather than as "6/5".
		iv := fmt.Sprintf("%d/%d", min(a.Received, a.Expected), a.Expected)
		if a.Received > a.Expected {
			iv += fmt.Sprintf(" (+%d unexpected)", a.Received-a.Expected)
		}
		fmt.Fprintf(w, "  %s\t%s\t%s\t%d\t%.1f\t%s\t%d\t%s\t%s\t%s\n", a.Name, a.Host, a.Budget, a.Requests,
			a.RPS, fmtUS(a.P99), a.Errors, busy, iv, a.Status)
	}
	w.Flush()
	if r.StartSkewMS > 0 {
		fmt.Fprintf(b, "  start skew across agents (first send): %.3f ms\n", r.StartSkewMS)
	}
}
