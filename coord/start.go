package coord

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/barrage-load/barrage/fleet"
	"github.com/barrage-load/barrage/proto"
	"github.com/barrage-load/barrage/schedule"
)

type agentEntry struct {
	id   string
	info *fleet.AgentInfo
}

// listAgents reads the registry; registrations that do not decode are
// skipped (and said once).
func (c *Coordinator) listAgents() ([]agentEntry, error) {
	kids, _, err := c.s.Conn.Children(c.p.Agents())
	if errors.Is(err, zk.ErrNoNode) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	sort.Strings(kids)
	var out []agentEntry
	for _, k := range kids {
		if fleet.CheckAgentID(k) != nil {
			continue
		}
		b, _, err := c.s.Conn.Get(c.p.Agent(k))
		if err != nil {
			continue
		}
		info, err := fleet.DecodeAgentInfo(b)
		if err != nil {
			c.logf("ignoring registration %s: %v", k, err)
			continue
		}
		out = append(out, agentEntry{k, info})
	}
	return out, nil
}

// busy reports whether an agent still runs another test.
func (c *Coordinator) busy(id string) bool {
	b, _, err := c.s.Conn.Get(c.p.Assign(id))
	if err != nil || len(b) == 0 {
		return false
	}
	asg, err := fleet.DecodeAssignment(b)
	if err != nil {
		return false
	}
	st, _, err := c.testState(asg.Test)
	if err != nil || (st.Phase != fleet.PhaseRunning && st.Phase != fleet.PhaseAssigned) || c.past(st) {
		return false
	}
	ok, _, _ := c.s.Conn.Exists(c.p.Result(asg.Test, id))
	return !ok
}

// start waits for the agents, assigns budgets, collects acknowledgements
// and sets the barrier.
func (c *Coordinator) start(ctx context.Context) (*monitor, error) {
	deadline := time.Now().Add(c.o.Wait)
	var agents []agentEntry
	said := 0
	for {
		all, err := c.listAgents()
		if err != nil {
			return nil, fmt.Errorf("coord: cannot list agents under %s: %w", c.p.Agents(), err)
		}
		agents = agents[:0]
		for _, a := range all {
			if !c.busy(a.id) {
				agents = append(agents, a)
			}
		}
		if len(agents) >= c.o.Agents {
			agents = agents[:c.o.Agents]
			break
		}
		if len(agents) != said {
			c.logf("%d of %d agents registered and free", len(agents), c.o.Agents)
			said = len(agents)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%w: %d of %d agents registered (and free) under %s within %s", ErrTooFewAgents,
				len(agents), c.o.Agents, c.p.Agents(), c.o.Wait)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w while waiting for agents", ErrInterrupted)
		case <-time.After(200 * time.Millisecond):
		}
	}
	plan := c.o.Plan
	st := &fleet.TestState{
		ID: "t" + strconv.FormatInt(time.Now().UnixMilli(), 10), Plan: *plan, Interval: c.o.Interval,
		Phase: fleet.PhaseAssigned, Version: 1, Epoch: 1, Leader: c.me, LeaderName: c.o.Name,
		MinAgents: c.o.MinAgents, Schedule: plan.Schedule(), Rate: plan.Rate, Connections: plan.Connections,
	}
	for _, a := range agents {
		st.Agents = append(st.Agents, fleet.AgentRef{ID: a.id, Name: a.info.Name, Host: a.info.Host, Cores: a.info.Cores,
			MaxRate: a.info.MaxRate, MaxConnections: a.info.MaxConnections})
	}
	for _, p := range []string{c.p.Tests(), c.p.Assigns()} {
		made, err := c.s.Ensure(p)
		c.dirs = append(c.dirs, made...)
		if err != nil {
			return nil, err
		}
	}
	budgets, short := Budgets(st.Schedule, cores(st.Agents), caps(st.Agents))
	if short > 0 {
		return nil, fmt.Errorf("%w: the agents' --max-rate caps hold %.0f req/s less than the plan asks at its peak (add agents or raise their caps)", ErrTooFewAgents, short)
	}
	b, _ := json.Marshal(st)
	cfg, _ := json.Marshal(fleet.LiveConfig{Rate: plan.Rate, Connections: plan.Connections, Reason: "plan", SetAt: time.Now().UnixNano()})
	ops := []any{c.opCreate(c.p.Test(st.ID), b), c.opCreate(c.p.Config(st.ID), cfg)}
	for _, p := range []string{c.p.Acks(st.ID), c.p.Snaps(st.ID), c.p.Results(st.ID), c.p.Applieds(st.ID), c.p.Merged(st.ID)} {
		ops = append(ops, c.opCreate(p, nil))
	}
	if err := c.fencedRetry(ops...); err != nil {
		return nil, fmt.Errorf("coord: cannot create test %s: %w", st.ID, err)
	}
	c.made = append(c.made, c.p.Test(st.ID))
	m := newMonitor(c, st, 0, false)
	for i, a := range st.Agents {
		asg := fleet.Assignment{Test: st.ID, Epoch: st.Epoch, Version: st.Version, Plan: *plan, Budget: budgets[i],
			Schedule: st.Schedule, Interval: st.Interval}
		if err := c.setOrCreate(c.p.Assign(a.ID), mustJSON(asg)); err != nil {
			return nil, fmt.Errorf("coord: cannot assign agent %s: %w", a.Name, err)
		}
		c.made = append(c.made, c.p.Assign(a.ID))
		m.budgets[a.ID] = budgets[i]
	}
	c.logf("test %s: assigned %d agents, waiting for them to connect", st.ID, len(st.Agents))
	if err := m.waitAcks(ctx, st.Version, AckTimeout+plan.ConnectTimeout.D(), st.Agents); err != nil {
		return nil, err
	}
	startAt := time.Now().Add(StartLead)
	st.StartAt = startAt.UnixNano()
	st.EndAt = startAt.Add(plan.Duration.D()).UnixNano()
	st.Phase = fleet.PhaseRunning
	b, _ = json.Marshal(st)
	bb, _ := json.Marshal(st.StartAt)
	cur := c.opCreate(c.p.Current(), []byte(st.ID))
	if ok, _, _ := c.s.Conn.Exists(c.p.Current()); ok {
		cur = opSet(c.p.Current(), []byte(st.ID), -1)
	}
	if err := c.fencedRetry(opSet(c.p.Test(st.ID), b, -1), c.opCreate(c.p.Barrier(st.ID), bb), cur); err != nil {
		return nil, fmt.Errorf("coord: cannot set the start barrier: %w", err)
	}
	if _, v, err := c.testState(st.ID); err == nil {
		m.stVer = v
	}
	c.made = nil // the test runs: from here on it is reported, not withdrawn
	c.logf("test %s: all agents ready; starting at %s", st.ID, startAt.Format("15:04:05.000"))
	m.begin()
	return m, nil
}

func cores(as []fleet.AgentRef) []int {
	out := make([]int, len(as))
	for i, a := range as {
		out[i] = a.Cores
	}
	return out
}

func caps(as []fleet.AgentRef) []proto.Caps {
	out := make([]proto.Caps, len(as))
	for i, a := range as {
		out[i] = a.Caps()
	}
	return out
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("BUG: coord: cannot encode " + err.Error())
	}
	return b
}

// waitAcks waits until every agent in want acknowledged version v. An
// agent that acknowledges with an error fails the wait at once, with its
// name and error: the coordinator never waits out its timeout for an
// agent that has already said it cannot run.
func (m *monitor) waitAcks(ctx context.Context, v int, timeout time.Duration, want []fleet.AgentRef) error {
	c := m.c
	deadline := time.Now().Add(timeout)
	for {
		var missing []string
		for _, a := range want {
			b, _, err := c.s.Conn.Get(c.p.Ack(m.st.ID, a.ID))
			if err != nil {
				missing = append(missing, a.Name)
				continue
			}
			ack, err := fleet.DecodeAck(b)
			if err != nil {
				missing = append(missing, a.Name)
				continue
			}
			if ack.Version >= v && ack.Error != "" {
				return fmt.Errorf("%w: agent %s (%s): %s", ErrAgentFailed, a.Name, a.Host, ack.Error)
			}
			if ack.Version < v {
				missing = append(missing, a.Name)
			}
		}
		if len(missing) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: agents %s did not acknowledge within %s (see their logs)", ErrAgentFailed, strings.Join(missing, ", "), timeout)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w while the agents prepared", ErrInterrupted)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// intervalEnds lists a schedule's interval ends as the engine hands them.
func intervalEnds(segs []proto.Segment, interval time.Duration) []time.Duration {
	s := schedule.New(segs)
	return schedule.IntervalEnds(&s, interval)
}
