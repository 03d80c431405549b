package report

import (
	"fmt"
	"io"
	"strings"

	"github.com/barrage-load/barrage/proto"
)

// ProgressOptions is what a progress line shows beside the interval's own
// counters.
type ProgressOptions struct {
	// Expect is the plan's success set (NewExpect(plan.ExpectStatus)):
	// responses outside it count as errors.
	Expect Expect
	// TargetRate is the open model's rate asked over the interval
	// (PlannedRate(schedule, iv.Start, iv.End)); 0 leaves it out.
	TargetRate float64
	// Agents and AgentsTotal, when AgentsTotal > 0, show "agents 2/3":
	// the agents whose snapshots the line merges, of the test's.
	Agents, AgentsTotal int
}

// ProgressLine prints the one-line progress of interval iv (merged over
// loops, or over agents): elapsed time, responses per second (and the
// target rate in the open model), p99, errors as users count them with
// their kinds, and total's errors so far, requests shed if any, retries
// sent if any, the connections held, and the agents reporting. `run` and `coord` both
// print it, once per interval. total may be nil.
//
//	[   3.0s]      4998 req/s (target 5000)  p99 3.06ms    errors 12 (http_5xx 12), 36 in all  shed 3 (backlog 3)  conns 64/64  agents 3/3
func ProgressLine(w io.Writer, iv, total *proto.Stats, o ProgressOptions) error {
	var b strings.Builder
	rps := 0.0
	if d := (iv.End - iv.Start).Seconds(); d > 0 {
		rps = float64(iv.Responses) / d
	}
	fmt.Fprintf(&b, "[%6.1fs] %9.0f req/s", iv.End.Seconds(), rps)
	if o.TargetRate > 0 {
		fmt.Fprintf(&b, " (target %s)", fmtRate(o.TargetRate))
	}
	p99 := "-"
	if iv.Latency != nil && iv.Latency.TotalCount() > 0 {
		p99 = fmtUS(iv.Latency.ValueAtQuantile(99))
	}
	fmt.Fprintf(&b, "  p99 %-8s", p99)
	errs := CountErrors(iv, o.Expect)
	fmt.Fprintf(&b, "  errors %d", errs.Total())
	if kinds := errs.nonZero(", "); kinds != "" {
		fmt.Fprintf(&b, " (%s)", kinds)
	}
	if total != nil {
		if n := CountErrors(total, o.Expect).Total(); n > 0 {
			fmt.Fprintf(&b, ", %d in all", n)
		}
	}
	if shed := iv.TotalShed(); shed > 0 {
		var kinds []string
		for k := proto.ShedKind(0); k < proto.NumShedKinds; k++ {
			if iv.Shed[k] > 0 {
				kinds = append(kinds, fmt.Sprintf("%s %d", k, iv.Shed[k]))
			}
		}
		fmt.Fprintf(&b, "  shed %d (%s)", shed, strings.Join(kinds, ", "))
	}
	if r := iv.TotalRetries(); r > 0 {
		// Retries are extra load on top of the schedule: say how many of
		// the interval's sends they were.
		fmt.Fprintf(&b, "  retries %d", r)
	}
	fmt.Fprintf(&b, "  conns %d/%d", iv.ConnsOpen, iv.ConnsWanted)
	if o.AgentsTotal > 0 {
		fmt.Fprintf(&b, "  agents %d/%d", o.Agents, o.AgentsTotal)
	}
	b.WriteByte('\n')
	_, err := io.WriteString(w, b.String())
	return err
}

// Progress prints iv's progress line with the aggregator's success set,
// the rate its schedule asks over iv (open model) and its totals so far
// (call it after Add(iv)). It is what `run` prints each interval.
func (a *Aggregator) Progress(w io.Writer, iv *proto.Stats) error {
	o := ProgressOptions{Expect: a.expect}
	if a.open {
		o.TargetRate = PlannedRate(a.Schedule, iv.Start, iv.End)
	}
	return ProgressLine(w, iv, a.total, o)
}
