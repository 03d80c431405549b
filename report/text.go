package report

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

func fmtUS(us int64) string {
	d := time.Duration(us) * time.Microsecond
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", us)
	case d < time.Second:
		return fmt.Sprintf("%.2fms", float64(us)/1e3)
	default:
		return fmt.Sprintf("%.2fs", float64(us)/1e6)
	}
}

func fmtBytes(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.2f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func latencyRow(w io.Writer, name string, l *Latency) {
	if l == nil || l.Count == 0 {
		fmt.Fprintf(w, "  %s\t(no samples)\n", name)
		return
	}
	fmt.Fprintf(w, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", name,
		fmtUS(int64(l.Mean)), fmtUS(int64(l.Stdev)), fmtUS(l.Min), fmtUS(l.P50), fmtUS(l.P75),
		fmtUS(l.P90), fmtUS(l.P99), fmtUS(l.P999), fmtUS(l.P9999), fmtUS(l.Max))
}

// WriteText prints the report for people, wrk-style.
func (r *Report) WriteText(out io.Writer) error {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	model := "closed model (as fast as the target answers)"
	if r.Model == "open" {
		model = fmt.Sprintf("open model, target rate %.0f req/s", r.TargetRate)
	}
	fmt.Fprintf(&b, "Target      %s\n", r.Target)
	fmt.Fprintf(&b, "Load        %s, %d connections, pipeline %d, %.2fs\n", model, r.Connections, r.Pipeline, r.DurationSeconds)
	fmt.Fprintf(&b, "Requests    %d responses (%d sent, %d failed, %d unfinished at stop)\n",
		r.Requests, r.Sent, r.Sent-r.Requests-r.Unfinished, r.Unfinished)
	if r.Model == "open" {
		fmt.Fprintf(&b, "Throughput  %.1f req/s (target %.1f req/s)\n", r.RPS, r.TargetRate)
	} else {
		fmt.Fprintf(&b, "Throughput  %.1f req/s\n", r.RPS)
	}
	fmt.Fprintf(&b, "Transfer    %s in, %s out\n", fmtBytes(r.BytesIn), fmtBytes(r.BytesOut))
	if r.LoopBusy > 0 {
		fmt.Fprintf(&b, "Generator   event loops %.0f%% busy (CPU time over one core per loop)\n", 100*r.LoopBusy)
	}
	b.WriteString("\n")
	fmt.Fprintf(w, "Latency\tmean\tstdev\tmin\tp50\tp75\tp90\tp99\tp99.9\tp99.99\tmax\n")
	if r.Model == "open" {
		latencyRow(w, "from intended send", r.Latency)
		latencyRow(w, "service time", r.Service)
		latencyRow(w, "send lateness", r.Lateness)
	} else {
		latencyRow(w, "service time", r.Latency)
		latencyRow(w, "CO-corrected", r.Corrected)
	}
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
	b.WriteString("\nErrors        ")
	first := true
	for _, k := range []string{"connect", "timeout", "reset", "protocol"} {
		if !first {
			b.WriteString(", ")
		}
		first = false
		fmt.Fprintf(&b, "%s %d", k, r.ErrorKinds[k])
	}
	b.WriteString("\n")
	if len(r.Steps) > 1 {
		b.WriteString("\nSteps\n")
		w = tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		fmt.Fprintf(w, "  #\tplan\trequests\treq/s\ttarget/s\tp50\tp99\tmax\terrors\n")
		for _, s := range r.Steps {
			l := s.Latency
			if l == nil {
				l = &Latency{}
			}
			fmt.Fprintf(w, "  %d\t%s\t%d\t%.1f\t%.0f\t%s\t%s\t%s\t%d\n", s.Step, s.Label, s.Requests, s.RPS,
				s.TargetRate, fmtUS(l.P50), fmtUS(l.P99), fmtUS(l.Max), s.Errors)
		}
		w.Flush()
	}
	if len(r.Agents) > 0 {
		b.WriteString("\nAgents\n")
		w = tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		fmt.Fprintf(w, "  name\thost\tbudget\trequests\treq/s\tp99\terrors\tloops busy\tintervals\tstatus\n")
		for _, a := range r.Agents {
			busy := "-"
			if a.LoopBusy > 0 {
				busy = fmt.Sprintf("%.0f%%", 100*a.LoopBusy)
			}
			fmt.Fprintf(w, "  %s\t%s\t%s\t%d\t%.1f\t%s\t%d\t%s\t%d/%d\t%s\n", a.Name, a.Host, a.Budget, a.Requests,
				a.RPS, fmtUS(a.P99), a.Errors, busy, a.Received, a.Expected, a.Status)
		}
		w.Flush()
		if r.StartSkewMS > 0 {
			fmt.Fprintf(&b, "  start skew across agents (first send): %.3f ms\n", r.StartSkewMS)
		}
	}
	if len(r.Notes) > 0 {
		b.WriteString("\nNotes\n")
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "  - %s\n", n)
		}
	}
	if r.Valid {
		b.WriteString("\nVerdict     valid: the generator kept its schedule and its connections\n")
	} else {
		b.WriteString("\nVerdict     NOT VALID as a measurement of the target:\n")
		for _, s := range r.InvalidReasons {
			fmt.Fprintf(&b, "  - %s\n", s)
		}
	}
	_, err := io.WriteString(out, b.String())
	return err
}
