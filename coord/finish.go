package coord

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/barrage-load/barrage/fleet"
	"github.com/barrage-load/barrage/proto"
	"github.com/barrage-load/barrage/report"
)

// finish ends the coordinator's part in the test: it collects the last
// snapshots and results (bounded in time), builds the report, and, when
// it still leads, marks the test done and removes its state.
func (m *monitor) finish(ctx context.Context, interrupted bool) (*report.Report, error) {
	c := m.c
	// Changes asked while the loop ended get no test.
	for drained := false; !drained; {
		select {
		case r := <-c.reqs:
			r.reply <- reply{err: fmt.Errorf("%w: test %s is ending", ErrNoTest, m.st.ID)}
		default:
			drained = true
		}
	}
	dur := m.st.Plan.Duration.D()
	elapsed := min(m.since(), dur)
	if !interrupted && m.err == nil {
		// Cut off at the end: wait for the connection to come back, or
		// for a session timeout to say ZooKeeper is lost.
		for c.s.Down() > 0 && m.healthy() {
			time.Sleep(100 * time.Millisecond)
		}
	}
	switch {
	case interrupted:
		m.stop = fmt.Sprintf("stopped early by a signal after %.1fs of %s: partial report", elapsed.Seconds(), dur)
		m.err = ErrInterrupted
		m.pipe.Emit(report.Event{At: elapsed.Seconds(), Kind: report.EventStop, Text: m.stop})
		c.logf("interrupted: stopping test %s", m.st.ID)
		deadline := time.Now().Add(StopGrace)
		done := make(chan struct{})
		go func() {
			defer close(done)
			m.writeStop("the coordinator was interrupted")
		}()
		select {
		case <-done:
		case <-time.After(time.Until(deadline)):
		}
		m.collect(deadline)
	case errors.Is(m.err, ErrSuperseded):
		return nil, m.err
	case errors.Is(m.err, ErrZooKeeperLost):
		// Nothing can be read or written: report what was folded.
	case m.err != nil:
		// Stopped (stop node, too few agents): the agents stop at once.
		m.collect(time.Now().Add(5 * time.Second))
	default:
		m.collect(m.start.Add(dur).Add(ResultGrace))
	}
	m.pipe.Close(m.aliveIDs(), true)
	rep := m.report(elapsed)
	if m.err == nil {
		rep.Outcome = "completed"
	} else {
		rep.Outcome = m.stop
	}
	if errors.Is(m.err, ErrZooKeeperLost) || c.s.IsExpired() {
		return rep, m.err
	}
	// Done: the test is marked so now; its state is removed by Cleanup,
	// after the report is out (a failed write leaves it for `barrage
	// report --zk` and the next coordinator).
	m.st.Phase = fleet.PhaseDone
	if m.saveState() {
		c.done = m.st
	}
	return rep, m.err
}

// Cleanup removes a finished test's state from ZooKeeper (its
// assignments, /current, its subtree) in a few batched writes, and leaves
// the election. Call it after the report is printed.
func (c *Coordinator) Cleanup() {
	if st := c.done; st != nil && !c.s.IsExpired() {
		c.done = nil
		var ops []any
		for _, a := range st.Agents {
			if ok, _, _ := c.s.Conn.Exists(c.p.Assign(a.ID)); ok {
				ops = append(ops, opDelete(c.p.Assign(a.ID)))
			}
		}
		if b, _, err := c.s.Conn.Get(c.p.Current()); err == nil && string(b) == st.ID {
			ops = append(ops, opDelete(c.p.Current()))
		}
		c.batch(ops)
		c.deleteTree(c.p.Test(st.ID))
	}
	c.leave()
}

// batch runs fenced deletes in multi-ops of at most 1000.
func (c *Coordinator) batch(ops []any) {
	for len(ops) > 0 {
		n := min(len(ops), 1000)
		_ = c.fenced(ops[:n]...)
		ops = ops[n:]
	}
}

// deleteTree removes a test's subtree (two levels deep: see the layout)
// in batched multi-ops, children first.
func (c *Coordinator) deleteTree(path string) {
	kids, _, err := c.s.Conn.Children(path)
	if err != nil {
		return
	}
	var ops []any
	for _, k := range kids {
		sub := path + "/" + k
		if grand, _, err := c.s.Conn.Children(sub); err == nil && len(grand) > 0 {
			var leaf []any
			for _, g := range grand {
				leaf = append(leaf, opDelete(sub+"/"+g))
			}
			c.batch(leaf)
		}
		ops = append(ops, opDelete(sub))
	}
	c.batch(ops)
	_ = c.fenced(opDelete(path))
}

// collect reads snapshots and results until every agent alive delivered
// its result, or until the deadline.
func (m *monitor) collect(deadline time.Time) {
	c := m.c
	var agW fleet.Watch
	for {
		if c.s.Down() > 0 {
			return
		}
		m.readSnaps()
		missing := 0
		// One listing tells which results are there: only those are read.
		have := map[string]bool{}
		if kids, _, err := c.s.Conn.Children(c.p.Results(m.st.ID)); err == nil {
			for _, k := range kids {
				have[k] = true
			}
		}
		for _, a := range m.alive() {
			if m.results[a.ID] != nil {
				continue
			}
			if !have[a.ID] {
				missing++
				continue
			}
			b, _, err := c.s.Conn.Get(c.p.Result(m.st.ID, a.ID))
			if err != nil {
				missing++
				continue
			}
			r, err := fleet.DecodeAgentResult(b)
			if err != nil {
				c.logf("refused the result of %s: %v", a.Name, err)
				m.results[a.ID] = &fleet.AgentResult{Agent: a.ID, Name: a.Name, Error: "its result did not decode"}
				continue
			}
			m.results[a.ID] = r
		}
		if missing == 0 || !time.Now().Before(deadline) {
			// The snapshots written just before the results.
			m.readSnaps()
			return
		}
		if m.err == nil {
			m.checkAgents(context.Background(), &agW)
		}
		time.Sleep(min(100*time.Millisecond, time.Until(deadline)))
	}
}

// report builds the report with one row per agent.
func (m *monitor) report(elapsed time.Duration) *report.Report {
	st := m.st
	if len(st.Lost) > 0 {
		var names []string
		for _, l := range st.Lost {
			names = append(names, fmt.Sprintf("%s at %.1fs", l.Name, l.At))
		}
		m.pipe.Aggregator().Degraded("agents lost (" + strings.Join(names, ", ") + ") until their budget moved to the survivors")
		// A lost agent's requests in flight when it died were never
		// answered nor counted as failed: they are unfinished, so that
		// sent = responses + failed + unfinished still holds.
		for _, l := range st.Lost {
			if ag := m.pipe.Agent(l.Agent); ag != nil {
				if acc := ag.Responses + ag.Failed() + ag.Unfinished; ag.Sent > acc {
					m.pipe.Aggregator().AddLostInFlight(ag.Sent - acc)
				}
			}
		}
	}
	for _, ch := range st.Changes {
		if ch.Reason == "set" {
			_, step := stepAt(st.Schedule, time.Duration(ch.At*float64(time.Second)))
			m.pipe.Aggregator().StepNote(step, fmt.Sprintf("set at %.1fs: %s", ch.At, ch.Label))
		}
	}
	rep := m.pipe.Report(elapsed)
	rep.TakenOverFrom = m.from
	open := st.Plan.Open()
	empty := proto.NewHistogram()
	var firsts []int64
	for _, a := range st.Agents {
		ag := m.pipe.Agent(a.ID)
		row := report.Agent{Name: a.Name, Host: a.Host, Status: "ok"}
		if b, ok := m.budgets[a.ID]; ok {
			row.Budget = b.Describe(open)
		}
		m.pipe.Aggregator().FillAgent(&row, ag.Stats())
		owed, partial := elapsed, true
		if l := m.lostAt(a.ID); l >= 0 {
			row.Lost, row.LostAt = true, l.Seconds()
			// It died up to a session timeout before it was seen to:
			// the intervals ending before that, and any before its last
			// snapshot, were owed.
			owed, partial = max(ag.End, l-m.c.o.SessionTimeout-st.Interval), false
			row.Status = fmt.Sprintf("LOST at %.1fs (last snapshot ends %.1fs)", l.Seconds(), ag.End.Seconds())
			if ag.DiscardN > 0 {
				row.Status += fmt.Sprintf("; %d later snapshots (%d sent) discarded", ag.DiscardN, ag.Discarded.Sent)
			}
		}
		report.IntervalCoverage(m.ends, owed, partial, ag.Received.List()).Apply(&row)
		if r := m.results[a.ID]; r != nil {
			if r.FirstSend > 0 {
				firsts = append(firsts, r.FirstSend)
			}
			row.P99 = r.P99
			if !row.Lost && len(row.Missing) == 0 && r.Fenced == "" && r.Sent != ag.Sent {
				rep.Valid = false
				rep.InvalidReasons = append(rep.InvalidReasons, fmt.Sprintf(
					"agent %s says it sent %d requests but the snapshots folded under its name say %d (forged or lost snapshot nodes)",
					a.Name, r.Sent, ag.Sent))
			}
			switch {
			case r.Error != "":
				row.Status = "failed: " + r.Error
			case r.Fenced != "":
				row.Status = "fenced: " + r.Fenced
			}
		} else if !row.Lost {
			row.Status = "no final result"
		}
		if len(row.Missing) > 0 {
			row.Notes = append(row.Notes, fmt.Sprintf("missing intervals %v", row.Missing))
			row.Status += fmt.Sprintf(", %d intervals missing", len(row.Missing))
		}
		if open && ag.Scheduled > 0 {
			rep.JudgeAgent(a.Name, &proto.Stats{Scheduled: ag.Scheduled, Backlogged: ag.Backlogged,
				LoopCPU: ag.LoopCPU, LoopCapacity: ag.LoopCap, Lateness: empty})
		}
		rep.Agents = append(rep.Agents, row)
	}
	if len(firsts) > 1 {
		sort.Slice(firsts, func(i, j int) bool { return firsts[i] < firsts[j] })
		rep.StartSkewMS = float64(firsts[len(firsts)-1]-firsts[0]) / 1e6
	}
	if len(st.Lost) > 0 {
		for _, l := range st.Lost {
			moved := "its budget never moved (no survivor took it)"
			if l.Moved > 0 {
				moved = fmt.Sprintf("its budget moved to the survivors at %.1fs; its snapshots before then are included, later ones discarded", l.Moved)
			}
			rep.Notes = append(rep.Notes, fmt.Sprintf("agent %s was lost at %.1fs (%s); %s", l.Name, l.At, l.Why, moved))
		}
	}
	for _, ch := range st.Changes {
		conf := "confirmed by every agent"
		if !ch.Applied {
			conf = "not confirmed by every agent"
		}
		rep.Notes = append(rep.Notes, fmt.Sprintf("change %d (%s: %s) asked at %.1fs took effect at %.1fs on %d agents, %s",
			ch.Version, ch.Reason, ch.Label, ch.Asked, ch.At, ch.Agents, conf))
	}
	if m.nsnaps > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("%d snapshots read, %.0f bytes on average, %d at most", m.nsnaps, float64(m.bytes)/float64(m.nsnaps), m.maxBytes))
	}
	if m.foreign > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("%d snapshot nodes were refused (not from an agent of this test, or not what they claimed)", m.foreign))
	}
	if m.takeover {
		rep.Notes = append(rep.Notes, fmt.Sprintf("this coordinator (%s) took the test over from %s", m.c.o.Name, m.from))
	}
	return rep
}

// stepAt is the connections and step in force at t.
func stepAt(segs []proto.Segment, t time.Duration) (conns, step int) {
	for _, g := range segs {
		if t >= g.Start && t < g.End() {
			return g.Connections, g.Step
		}
	}
	return 0, 0
}
