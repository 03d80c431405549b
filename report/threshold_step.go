package report

import (
	"fmt"

	"github.com/barrage-load/barrage/proto"
)

// StepVerdict is the verdict's rules applied to a part of a running test
// (a sustainable-throughput search's step): whether the generator kept
// its promises over that part, so that what the target did there can be
// held against the target.
type StepVerdict struct {
	// Valid is false when a rule lays the step at the generator's door
	// (or there is no measurement); Reasons say why.
	Valid   bool
	Reasons []string
	// Lateness is set when the generator's send lateness distorted the
	// step's latencies although its loops were not saturated (rule 4:
	// the delay came from outside them). It does not make the step
	// invalid: the caller decides (a search counts a broken latency
	// objective against the target only when the lateness did not
	// distort it).
	Lateness string
}

// JudgeStep applies the verdict's rules that hold for part of a test to
// s, the merged intervals of that part, of which asked requests were
// asked (open model): no answers (rule 1), the generator saturated, over
// the whole fleet and in each agent of agents (rule 3; agents holds each
// agent's counters summed over the part, histograms not needed), send
// lateness (rule 4), a rate shortfall the target does not explain (rule
// 5), the connections held (rule 6). Accounting (rule 2) is not judged:
// requests in flight cross the part's boundaries.
func JudgeStep(s *proto.Stats, asked float64, agents map[string]*proto.Stats) StepVerdict {
	v := StepVerdict{Valid: true}
	invalid := func(format string, args ...any) {
		v.Valid = false
		v.Reasons = append(v.Reasons, fmt.Sprintf(format, args...))
	}
	// 1. No answers.
	if s.Responses == 0 && (s.Sent > 0 || s.Scheduled > 0 || s.Errors[proto.ErrConnect] > 0) {
		invalid("the target answered nothing (%d sent, %d due)", s.Sent, s.Scheduled)
	}
	if s.Open() {
		// 3. Saturated: the whole, then each agent.
		if why := saturation(s, asked, "generator", "the generator's"); why != "" {
			invalid("%s", why)
		}
		empty := proto.NewHistogram()
		for name, a := range agents {
			if len(agents) < 2 {
				break // one agent is the whole
			}
			a.Lateness = empty
			if why := saturation(a, 0, "agent "+name, "the agent's"); why != "" {
				invalid("%s", why)
			}
		}
		// 4. Lateness.
		if v.Valid && latenessMatters(s) {
			share, late, lat, _ := latenessShare(s)
			if s.LoopCapacity <= 0 {
				invalid("generator fell behind its schedule: send lateness p99 %s is %.0f%% of the latency p99 %s, and how busy its loops were is unknown",
					fmtUS(late), 100*share, fmtUS(lat))
			} else {
				v.Lateness = fmt.Sprintf("the sends went out late: send lateness p99 %s is %.0f%% of the latency p99 %s with the loops %.0f%% busy (the delay came from outside them: other processes on the generator's CPUs, the OS scheduler)",
					fmtUS(late), 100*share, fmtUS(lat), 100*s.LoopBusy())
			}
		}
		// 5. Shortfall.
		short := asked - float64(s.Sent)
		fenced := s.Shed[proto.ShedFenced]
		waited := subSat(s.Scheduled, s.Sent+fenced)
		if v.Valid && asked > 0 && short > MaxRateShortfall*asked && float64(fenced+waited) < short/2 {
			invalid("generator sent %.0f of %.0f requests asked (%.1f%% short) while the target kept up", float64(s.Sent), asked, 100*short/asked)
		}
	}
	// 6. Connections held.
	if s.ConnsWanted > 0 {
		// One connection reopening after each server close is excused.
		held := int64(s.ConnsOpen) + min(max(0, int64(s.ConnsWanted)-int64(s.ConnsOpen)), int64(min(s.ServerCloses, 1<<62)))
		if float64(held) < MinConnsHeld*float64(s.ConnsWanted) {
			invalid("held %.1f%% of the connections asked for", 100*float64(held)/float64(s.ConnsWanted))
		}
	}
	return v
}
