package report

import (
	"fmt"
	"strings"
	"time"

	"github.com/barrage-load/barrage/proto"
)

// The verdict says whether the run is a valid measurement of the target:
// whether the generator kept its promises (the schedule, the connections)
// and whether there is a measurement at all. It must not lie either way:
// never pass the generator's limits off as the target's, and never blame
// the generator for what the target, the server's policy or the machine
// did. The rule, checked in this order:
//
//  1. No answers. A run in which the target answered nothing while
//     requests were sent or due (or connections were attempted) is NOT
//     VALID, and Report.NoAnswers asks the command to exit non-zero
//     (Report.ExitCode). Its latencies are only lower bounds.
//  2. Accounting. sent = responses + failed + unfinished must hold; if
//     not, the report is NOT VALID with a BUG reason.
//  3. Generator saturated (open model). The generator is to blame only
//     when its event loops were busy, MaxLoopBusy (95%) of their cores or
//     more, and that cost the measurement something: over
//     MaxRateShortfall (1%) of the requests due waited for a free
//     connection (a loop that is never idle reads responses late, so its
//     connections look busy for longer), or over 1% of the requests asked
//     were not sent, or its send lateness distorted the result (rule 4's
//     test). The same rule is applied to each agent (Report.JudgeAgent),
//     so one saturated agent is not averaged away by idle ones.
//  4. Send lateness. The lateness of the requests sent at once is in
//     every latency measured from the intended send time, so what it does
//     to the result is judged against that latency, not against a fixed
//     limit. It distorted the result when its p99 is over
//     MaxLatenessShare (10%) of the latency p99 and over
//     MinLatenessJudged (100 µs, what a pacer woken by the OS can promise
//     on an idle machine). With loops 95% busy or more that is rule 3;
//     with loops less busy the delay came from outside their own work
//     (other processes on the generator's CPUs, the OS scheduler, the Go
//     runtime): the run stays valid and a note gives the lateness, its
//     share of the latency p99 and the service time p99 to read instead.
//     When the OS did not say how busy the loops were, nothing clears the
//     generator: NOT VALID.
//  5. Rate shortfall (open model, loops not busy). When over 1% of the
//     requests asked were not sent, the shortfall is explained, in a note,
//     by a lost agent (Degraded), by fencing (an agent that lost
//     ZooKeeper may not send), or by the target (the requests were due
//     and waited for a free connection: shed after waiting too long, or
//     still waiting at the end). Only a shortfall none of these explains
//     for at least half is the generator's: NOT VALID.
//  6. Connections held. Once a step is under way (its first interval
//     excepted) the connections open at the interval ends must be
//     MinConnsHeld (99%) of those asked for. A connection the server
//     closed after a complete response (Connection: close, HTTP/1.0) is
//     reopened at once; one sampled while it reconnects counts as held
//     (at most one per close in that interval, Stats.ServerCloses), and a
//     note says so.
//
// Whether the test completed (Report.Outcome) is not part of validity: a
// partial report can be a valid measurement of the part that ran; the
// text report and the exit status say it was partial.

// Limits behind the verdict.
const (
	// MaxRateShortfall is the fraction of the asked rate the generator may
	// miss, and of the requests due that may wait for a free connection,
	// before either counts.
	MaxRateShortfall = 0.01
	// MinConnsHeld is the fraction of the asked connections that must be
	// open on average once a step is under way.
	MinConnsHeld = 0.99
	// MaxLoopBusy is how busy the generator's event loops may be before
	// what went wrong is laid at the generator's door: a loop that is
	// never idle reads responses and sends requests late.
	MaxLoopBusy = 0.95
	// MaxLatenessShare is the share of the latency p99 that the send
	// lateness p99 may reach before the lateness is said to have distorted
	// the result (the generator's fault when its loops were MaxLoopBusy
	// busy, the machine's otherwise).
	MaxLatenessShare = 0.10
	// MinLatenessJudged is the send lateness p99 below which lateness is
	// never judged: a pacer that sleeps and is woken by the OS cannot
	// promise better on an idle machine (measured here: 79-134 µs p99 at
	// 20000-85000 req/s with the loops 56-91% busy), while a machine whose
	// CPUs are contended delays wake-ups by milliseconds.
	MinLatenessJudged = 100 * time.Microsecond
)

// latenessShare compares s's send lateness p99 with its latency p99 (both
// open model); ok is false when either has no samples.
func latenessShare(s *proto.Stats) (share float64, late, lat int64, ok bool) {
	if s.Lateness == nil || s.Latency == nil || s.Lateness.TotalCount() == 0 || s.Latency.TotalCount() == 0 {
		return 0, 0, 0, false
	}
	late, lat = s.Lateness.ValueAtQuantile(99), s.Latency.ValueAtQuantile(99)
	if lat <= 0 {
		return 0, late, lat, late > 0
	}
	return float64(late) / float64(lat), late, lat, true
}

// latenessMatters reports whether s's send lateness p99 is over
// MinLatenessJudged and over MaxLatenessShare of its latency p99.
func latenessMatters(s *proto.Stats) bool {
	share, late, _, ok := latenessShare(s)
	return ok && time.Duration(late)*time.Microsecond > MinLatenessJudged && share > MaxLatenessShare
}

// saturation says what a busy generator cost the measurement, or "" when
// it was not saturated (rule 3). asked is the requests the schedule asked
// for (0: unknown, the shortfall is not judged). subject names it
// ("generator", "agent a1"); whose ends the sentence.
func saturation(s *proto.Stats, asked float64, subject, whose string) string {
	if !s.Open() || s.LoopBusy() < MaxLoopBusy {
		return ""
	}
	var costs []string
	if s.Scheduled > 0 && float64(s.Backlogged) > MaxRateShortfall*float64(s.Scheduled) {
		costs = append(costs, fmt.Sprintf("%d of its %d requests due waited for a free connection", s.Backlogged, s.Scheduled))
	}
	if short := asked - float64(s.Logical()); asked > 0 && short > MaxRateShortfall*asked {
		costs = append(costs, fmt.Sprintf("%.0f of %.0f requests asked were not sent", short, asked))
	}
	if latenessMatters(s) {
		share, late, lat, _ := latenessShare(s)
		costs = append(costs, fmt.Sprintf("its sends went out late (send lateness p99 %s, %.0f%% of the latency p99 %s)",
			fmtUS(late), 100*share, fmtUS(lat)))
	}
	if len(costs) == 0 {
		return ""
	}
	return fmt.Sprintf("%s saturated: its event loops were %.0f%% busy while %s; the wait may be %s own (add cores or agents, or lower the rate)",
		subject, 100*s.LoopBusy(), strings.Join(costs, "; "), whose)
}

// judge decides whether the run is a valid measurement (see the rule
// above).
func (a *Aggregator) judge(r *Report, hits float64) {
	t := a.total
	invalid := func(format string, args ...any) {
		r.Valid = false
		r.InvalidReasons = append(r.InvalidReasons, fmt.Sprintf(format, args...))
	}
	note := func(format string, args ...any) {
		r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
	}
	// 1. No answers.
	if connErrs, tlsErrs := t.Errors[proto.ErrConnect], t.Errors[proto.ErrTLS]; t.Responses == 0 && (t.Sent > 0 || t.Scheduled > 0 || connErrs > 0 || tlsErrs > 0) {
		r.NoAnswers = true
		parts := []string{"0 responses to " + plural(int64(t.Sent), "request", "requests") + " sent"}
		if t.Scheduled > 0 {
			parts = append(parts, fmt.Sprintf("%d due", t.Scheduled))
		}
		if f := t.Failed(); f > 0 {
			parts = append(parts, fmt.Sprintf("%d failed", f))
		}
		if t.Unfinished > 0 {
			parts = append(parts, fmt.Sprintf("%d unfinished at the end", t.Unfinished))
		}
		if connErrs > 0 {
			parts = append(parts, plural(int64(connErrs), "connection attempt", "connection attempts")+" failed")
		}
		if tlsErrs > 0 {
			parts = append(parts, plural(int64(tlsErrs), "TLS failure", "TLS failures")+" ("+r.tlsReasonsText()+")")
		}
		bounds := ""
		if t.Censored > 0 {
			bounds = "; the latencies shown are lower bounds (waits of requests never answered)"
		}
		invalid("the target answered nothing: %s%s", strings.Join(parts, ", "), bounds)
	}
	// 2. Accounting.
	if t.Sent != t.Responses+t.Failed()+t.Unfinished {
		invalid("BUG: accounting does not add up: sent %d != responses %d + failed %d + unfinished %d",
			t.Sent, t.Responses, t.Failed(), t.Unfinished)
	}
	if a.open {
		a.judgeOpen(r, hits, invalid, note)
	}
	// 6. Connections held.
	if a.connsWanted > 0 {
		held := a.connsHeld + a.connsExcused
		pct := 100 * float64(held) / float64(a.connsWanted)
		if float64(held) < MinConnsHeld*float64(a.connsWanted) {
			why := fmt.Sprintf("held %.1f%% of the connections asked for (%d connection-intervals of %d)", pct, held, a.connsWanted)
			if a.connsExcused > 0 {
				why += fmt.Sprintf(", counting %d that were reopening after the server (or, without keep-alive, the generator) closed them", a.connsExcused)
			}
			if n := t.Errors[proto.ErrConnect]; n > 0 {
				why += fmt.Sprintf("; %s failed", plural(int64(n), "connection attempt", "connection attempts"))
			}
			if n := t.Errors[proto.ErrTLS]; n > 0 {
				why += fmt.Sprintf("; %s (%s)", plural(int64(n), "TLS failure", "TLS failures"), r.tlsReasonsText())
			}
			invalid("%s", why)
		} else if a.connsExcused > 0 && t.ClientCloses > 0 {
			note("without keep-alive, each connection carried one request and was reopened at once: %.1f%% of the connections asked for were open at the interval ends, the rest were reconnecting by the plan's policy",
				100*float64(a.connsHeld)/float64(a.connsWanted))
		} else if a.connsExcused > 0 {
			note("the server closed %s after a complete response (Connection: close or HTTP/1.0) and each was reopened at once: %.1f%% of the connections asked for were open at the interval ends, the rest were reconnecting by the server's policy, not for want of the generator's",
				plural(int64(t.ServerCloses), "connection", "connections"), 100*float64(a.connsHeld)/float64(a.connsWanted))
		}
	}
	if a.lostInFlight > 0 {
		note("%d requests were in flight on lost agents and are counted as unfinished", a.lostInFlight)
	}
	if a.dropped > 0 {
		note("%d latency values were dropped while merging histograms", a.dropped)
	}
	if t.Clamped > 0 {
		top := time.Duration(proto.HistMax) * time.Microsecond
		note("%d latencies above %s were recorded as %s", t.Clamped, top, top)
	}
	if r.Corrected != nil && r.Latency != nil && r.Latency.Count > 0 && r.Corrected.P999 > 2*r.Latency.P999 {
		note("closed model: requests waited behind stalled ones; corrected for coordinated omission p99.9 is %s, not %s (use --rate for the open model)",
			fmtUS(r.Corrected.P999), fmtUS(r.Latency.P999))
	}
}

// judgeOpen applies rules 3 to 5 to an open-model run.
func (a *Aggregator) judgeOpen(r *Report, hits float64, invalid, note func(string, ...any)) {
	t := a.total
	// 3. Generator saturated.
	if why := saturation(t, hits, "generator", "the generator's"); why != "" {
		invalid("%s", why)
		return
	}
	// 4. Lateness from outside the loops.
	if latenessMatters(t) {
		share, late, lat, _ := latenessShare(t)
		if t.LoopCapacity <= 0 {
			// Nothing clears the generator: it is blamed.
			invalid("generator fell behind its schedule: send lateness p99 %s is %.0f%% of the latency p99 %s, and how busy its event loops were is unknown (the OS did not say), so the delay cannot be laid elsewhere",
				fmtUS(late), 100*share, fmtUS(lat))
		} else {
			svc := ""
			if r.Service != nil && r.Service.Count > 0 {
				svc = fmt.Sprintf(" (service time p99 %s)", fmtUS(r.Service.P99))
			}
			r.delayedSends = true
			note("sends went out late: send lateness p99 %s is %.0f%% of the latency p99 %s while the event loops were only %.0f%% busy, so the delay came from outside their own work (other processes on the generator's CPUs, the OS scheduler, the Go runtime); the latencies from the intended send time include it%s",
				fmtUS(late), 100*share, fmtUS(lat), 100*t.LoopBusy(), svc)
		}
	}
	// 5. Rate shortfall.
	// Retries are extra load on top of the schedule: the schedule is
	// judged on the requests sent for the first time (Logical), and the
	// ones the circuit breaker shed are the plan's doing, not a shortfall.
	circuit := t.Shed[proto.ShedCircuit]
	short := hits - float64(t.Logical()) - float64(circuit)
	fenced := t.Shed[proto.ShedFenced]
	waited := subSat(t.Scheduled, t.Logical()+fenced+circuit) // due, never sent for want of a connection
	if circuit > 0 {
		note("%d requests due were shed while the circuit breaker was open (not sent, no latency recorded: see the breaker events)", circuit)
	}
	switch {
	case hits > 0 && short > MaxRateShortfall*hits:
		if a.degraded != "" {
			note("%.1f%% of the requests asked were not sent: %s", 100*short/hits, a.degraded)
			return
		}
		if float64(fenced+waited) < short/2 {
			invalid("generator sent %.0f of %.0f requests asked (%.1f%% short) while the target kept up",
				float64(t.Logical()), hits, 100*short/hits)
			return
		}
		if fenced > 0 {
			note("%d requests due were not sent because an agent lost touch with ZooKeeper (fenced: it may not send on a budget it cannot confirm)", fenced)
		}
		if waited > 0 {
			note("target did not keep up: %d of %.0f requests asked were never sent for want of a free connection (%d shed after waiting too long, %d still waiting at the end); %d waited for one (their latency includes the wait)",
				waited, hits, t.Shed[proto.ShedBacklog], r.NeverSent, t.Backlogged)
		}
	case t.Backlogged > 0:
		note("%d requests waited for a free connection (the target was slower than the rate at times); their latency includes the wait", t.Backlogged)
	}
}

// JudgeAgent applies the generator-saturation rule (rule 3, without the
// rate shortfall, which is judged on the whole test) to one agent's merged
// statistics: the coordinator's verdict on the whole test works on the
// merged figures, where one saturated agent among idle ones would be
// averaged away.
func (r *Report) JudgeAgent(name string, s *proto.Stats) {
	if !s.Open() || s.Scheduled == 0 {
		return
	}
	reason := saturation(s, 0, "agent "+name, "the agent's")
	if reason == "" {
		return
	}
	for _, have := range r.InvalidReasons {
		if have == reason {
			return
		}
	}
	r.Valid = false
	r.InvalidReasons = append(r.InvalidReasons, reason)
}
