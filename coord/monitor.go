package coord

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/barrage-load/barrage/fleet"
	"github.com/barrage-load/barrage/pipeline"
	"github.com/barrage-load/barrage/proto"
	"github.com/barrage-load/barrage/report"
)

// monitor is the coordinator's view of one running test: its poll loop
// reads snapshots, notices lost agents and live changes, and feeds the
// pipeline.
type monitor struct {
	c        *Coordinator
	st       *fleet.TestState
	stVer    int32
	takeover bool
	from     string // the coordinator taken over from
	start    time.Time
	ends     []time.Duration
	pipe     *pipeline.Pipeline
	budgets  map[string]proto.Budget
	cfgVer   int32
	// read holds the snapshot nodes folded (or refused) and not yet
	// deleted by a checkpoint, with their interval.
	read map[string]int
	// merged holds closed intervals not yet checkpointed, encoded.
	merged   map[int][]byte
	lastCkpt int
	nsnaps   int
	bytes    int
	maxBytes int
	foreign  int
	results  map[string]*fleet.AgentResult
	// rebalance is set when a loss still waits for its rebalance.
	rebalance bool
	// changes lists change versions not yet confirmed by every agent.
	changes []int
	// stop says why the loop ends early, and err what Run returns.
	stop string
	err  error
}

func newMonitor(c *Coordinator, st *fleet.TestState, stVer int32, takeover bool) *monitor {
	m := &monitor{c: c, st: st, stVer: stVer, takeover: takeover, budgets: map[string]proto.Budget{},
		read: map[string]int{}, merged: map[int][]byte{}, results: map[string]*fleet.AgentResult{}}
	m.ends = intervalEnds(st.Schedule, st.Interval)
	m.pipe = pipeline.New(m.pipeOptions())
	for _, a := range st.Agents {
		m.pipe.AddAgent(a.ID, a.Name, a.Host)
	}
	m.hook()
	return m
}

func (m *monitor) pipeOptions() pipeline.Options {
	return pipeline.Options{Plan: &m.st.Plan, Schedule: m.st.Schedule, Ends: m.ends}
}

// hook connects the pipeline's consumers: progress lines, the
// checkpoint's merged intervals, and the caller's own.
func (m *monitor) hook() {
	if w := m.c.o.Progress; w != nil {
		m.pipe.PrintProgress(w, true)
	}
	if fn := m.c.o.OnEvent; fn != nil {
		m.pipe.OnEvent(fn)
	}
	m.pipe.OnInterval(func(iv *proto.Stats, agents, of int) {
		b, err := proto.MarshalSnapshot(&proto.Snapshot{Stats: iv})
		if err != nil {
			panic("BUG: coord: cannot encode a merged interval: " + err.Error())
		}
		m.merged[iv.Seq] = b
		if fn := m.c.o.OnInterval; fn != nil {
			fn(iv, agents, of)
		}
		if fn := m.c.o.OnAgents; fn != nil {
			fn(m.agentRows())
		}
	})
	if fn := m.c.o.OnPipeline; fn != nil {
		fn(m.pipe, &m.st.Plan)
	}
}

func (m *monitor) begin() { m.start = time.Unix(0, m.st.StartAt) }

// since is the time since the test's start.
func (m *monitor) since() time.Duration { return time.Since(m.start) }

// alive lists the agents not declared lost.
func (m *monitor) alive() []fleet.AgentRef {
	var out []fleet.AgentRef
	for _, a := range m.st.Agents {
		if !m.st.IsLost(a.ID) {
			out = append(out, a)
		}
	}
	return out
}

func (m *monitor) aliveIDs() []string {
	var out []string
	for _, a := range m.alive() {
		out = append(out, a.ID)
	}
	return out
}

// fail records the first reason the test cannot go on.
func (m *monitor) fail(stop string, err error) {
	if m.err == nil {
		m.stop, m.err = stop, err
		m.c.logf("%s", stop)
		m.pipe.Emit(report.Event{At: m.since().Seconds(), Kind: report.EventStop, Text: stop})
	}
}

// write runs a fenced write and turns a lost leadership into the end of
// this coordinator's part in the test.
func (m *monitor) write(what string, err error) bool {
	if err == nil {
		return true
	}
	if errors.Is(err, ErrSuperseded) {
		m.fail("superseded: another coordinator leads test "+m.st.ID+" now; this one writes nothing more", err)
		return false
	}
	m.c.logf("cannot %s: %v", what, err)
	return false
}

// saveState writes the test state with a compare-and-swap on its version.
func (m *monitor) saveState() bool {
	b := mustJSON(m.st)
	err := m.c.fencedRetry(opSet(m.c.p.Test(m.st.ID), b, m.stVer))
	if err == nil {
		m.stVer++
	}
	return m.write("save the test state", err)
}

// run follows the test to its end and returns its report.
func (m *monitor) run(ctx context.Context) (*report.Report, error) {
	c := m.c
	end := m.start.Add(m.st.Plan.Duration.D())
	tick := time.NewTicker(m.st.Interval / 4)
	defer tick.Stop()
	var cfgW, agW, stopW fleet.Watch
	interrupted := false
	c.monitoring.Store(true)
	defer c.monitoring.Store(false)
	// Hazard: a ZooKeeper call made while the ensemble has no quorum can
	// block for good (a server that accepts and drops connections keeps
	// go-zookeeper from ever failing it). A watchdog closes the session
	// once it has been down a session timeout: every call blocked returns,
	// and the loop ends with "ZooKeeper lost".
	watchdog := make(chan struct{})
	defer close(watchdog)
	go func() {
		tick := time.NewTicker(c.o.SessionTimeout / 8)
		defer tick.Stop()
		for {
			select {
			case <-watchdog:
				return
			case <-tick.C:
				if c.s.Down() > c.o.SessionTimeout {
					c.s.Close()
					return
				}
			}
		}
	}()
	for m.err == nil {
		if !m.healthy() {
			break
		}
		if data, _, err := stopW.Get(c.s.Conn, c.p.Stop(m.st.ID)); err == nil {
			why := fleet.DecodeStopInfo(data).Reason
			m.fail("stopped by the stop node: "+why, fmt.Errorf("%w: %s", ErrStopped, why))
			break
		}
		m.readSnaps()
		m.checkAgents(ctx, &agW)
		if m.err != nil {
			break
		}
		m.checkConfig(ctx, &cfgW)
		if m.rebalance {
			m.doRebalance(ctx)
		}
		m.checkApplied()
		m.pipe.Close(m.aliveIDs(), false)
		m.checkpoint(false)
		if !time.Now().Before(end) {
			break
		}
		select {
		case <-ctx.Done():
			interrupted = true
		case <-tick.C:
		case <-cfgW.C():
			cfgW.Fired()
		case <-agW.C():
			agW.Fired()
		case <-stopW.C():
			stopW.Fired()
		case <-c.s.Expired():
		case r := <-c.reqs:
			m.serve(ctx, r)
		}
		if interrupted {
			break
		}
	}
	return m.finish(ctx, interrupted)
}

// healthy checks the session: an expired one means another coordinator
// may lead (superseded); one cut off for a session timeout means
// ZooKeeper is lost. Either ends this coordinator's part in the test.
func (m *monitor) healthy() bool {
	c := m.c
	if c.s.IsExpired() {
		m.fail(fmt.Sprintf("superseded: my ZooKeeper session expired at %.1fs (frozen or cut off past %s); a standby may lead test %s now, and this coordinator writes nothing more",
			m.since().Seconds(), c.o.SessionTimeout, m.st.ID), ErrSuperseded)
		return false
	}
	if d := c.s.Down(); d > c.o.SessionTimeout {
		at := m.since() - d
		m.fail(fmt.Sprintf("ZooKeeper lost at %.1fs; agents stop sending a session timeout after they lose it and keep their results (barrage report --state-dir DIR... rebuilds the whole test)", at.Seconds()),
			fmt.Errorf("%w at %.1fs", ErrZooKeeperLost, at.Seconds()))
		return false
	}
	return m.err == nil
}

// readSnaps folds the snapshots not yet read: one listing per call; the
// nodes are deleted by the next checkpoint, so the listing stays short.
func (m *monitor) readSnaps() {
	c := m.c
	kids, _, err := c.s.Conn.Children(c.p.Snaps(m.st.ID))
	if err != nil {
		return
	}
	for _, k := range kids {
		if _, done := m.read[k]; done {
			continue
		}
		agent, seq, ok := fleet.ParseSnapName(k)
		if !ok || m.st.Agent(agent) < 0 {
			m.read[k] = -1
			m.foreign++
			continue
		}
		b, _, err := c.s.Conn.Get(c.p.Snaps(m.st.ID) + "/" + k)
		if err != nil {
			continue
		}
		m.read[k] = seq
		sn, err := proto.ParseSnapshot(b)
		if err != nil || sn.Agent != agent || sn.Stats.Seq != seq {
			c.logf("refused snapshot %s: %v", k, errOr(err, "its content names another agent or interval"))
			m.foreign++
			continue
		}
		m.nsnaps++
		m.bytes += len(b)
		m.maxBytes = max(m.maxBytes, len(b))
		if l := m.movedAt(agent); l >= 0 && sn.Stats.Start >= l {
			// Its budget went to the survivors: what it sent after it was
			// declared lost is not part of the plan's load.
			m.pipe.Discard(agent, sn.Stats)
			continue
		}
		m.pipe.AddParsed(agent, sn)
	}
}

func errOr(err error, s string) string {
	if err != nil {
		return err.Error()
	}
	return s
}

// movedAt is when a lost agent's budget moved to the survivors (from the
// start), or -1.
func (m *monitor) movedAt(id string) time.Duration {
	for _, l := range m.st.Lost {
		if l.Agent == id && l.Moved > 0 {
			return time.Duration(l.Moved * float64(time.Second))
		}
	}
	return -1
}

// lostAt is when an agent was declared lost (from the start), or -1.
func (m *monitor) lostAt(id string) time.Duration {
	for _, l := range m.st.Lost {
		if l.Agent == id {
			return time.Duration(l.At * float64(time.Second))
		}
	}
	return -1
}

// checkAgents notices agents whose registration vanished: their budget
// moves to the survivors, or the test stops when fewer than --min-agents
// remain.
func (m *monitor) checkAgents(ctx context.Context, w *fleet.Watch) {
	c := m.c
	kids, err := w.Children(c.s.Conn, c.p.Agents())
	if err != nil {
		return
	}
	present := map[string]bool{}
	for _, k := range kids {
		present[k] = true
	}
	var lost []fleet.LostAgent
	for _, a := range m.st.Agents {
		if present[a.ID] || m.st.IsLost(a.ID) || m.results[a.ID] != nil {
			continue
		}
		// An agent that delivered its result finished cleanly.
		if b, _, err := c.s.Conn.Get(c.p.Result(m.st.ID, a.ID)); err == nil {
			if r, err := fleet.DecodeAgentResult(b); err == nil {
				m.results[a.ID] = r
				continue
			}
		}
		at := m.since().Seconds()
		lost = append(lost, fleet.LostAgent{Agent: a.ID, Name: a.Name, At: at,
			Why: "its registration vanished (session expired, process gone, or node deleted)"})
		c.logf("agent %s (%s) lost at %.1fs", a.Name, a.ID, at)
		m.pipe.Emit(report.Event{At: at, Kind: report.EventAgentLost, Text: fmt.Sprintf("agent %s lost", a.Name)})
	}
	if len(lost) == 0 {
		return
	}
	m.st.Lost = append(m.st.Lost, lost...)
	if !m.saveState() {
		return
	}
	if n := len(m.alive()); n < m.st.MinAgents {
		why := fmt.Sprintf("only %d agents left, fewer than --min-agents %d", n, m.st.MinAgents)
		m.writeStop("too few agents: " + why)
		m.fail("stopping the test: "+why, fmt.Errorf("%w: %s", ErrTooFewAgents, why))
		return
	}
	m.rebalance = true
}

// writeStop creates the stop node, so every agent stops now.
func (m *monitor) writeStop(why string) {
	b := mustJSON(fleet.StopInfo{Reason: why, At: time.Now().UnixNano()})
	err := m.c.fenced(m.c.opCreate(m.c.p.Stop(m.st.ID), b))
	if errors.Is(err, zk.ErrNodeExists) {
		err = nil
	}
	m.write("create the stop node", err)
}
