package coord

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/barrage-load/barrage/fleet"
	"github.com/barrage-load/barrage/live"
	"github.com/barrage-load/barrage/proto"
	"github.com/barrage-load/barrage/report"
	reqmix "github.com/barrage-load/barrage/request"
	"github.com/barrage-load/barrage/schedule"
)

// boundaryAfter is the first interval boundary at or after t (from the
// start), or the test's end.
func (m *monitor) boundaryAfter(t time.Duration) time.Duration {
	return schedule.NextBoundary(m.ends, t)
}

// checkConfig turns a config written by `barrage set` into a change.
func (m *monitor) checkConfig(ctx context.Context, w *fleet.Watch) {
	c := m.c
	b, stat, err := w.Get(c.s.Conn, c.p.Config(m.st.ID))
	if err != nil || stat.Version <= m.cfgVer {
		return
	}
	m.cfgVer = stat.Version
	asked := time.Now()
	cfg, err := fleet.DecodeLiveConfig(b)
	if err != nil {
		c.logf("refused a live config: %v", err)
		return
	}
	ch := live.Keep("set")
	if cfg.Rate != m.st.Rate {
		ch.Rate = cfg.Rate
	}
	if cfg.Connections != m.st.Connections {
		ch.Connections = cfg.Connections
	}
	for k, v := range cfg.Headers {
		if m.st.Headers[k] != v {
			if ch.Headers == nil {
				ch.Headers = map[string]string{}
			}
			ch.Headers[k] = v
		}
	}
	if _, err := m.liveChange(ctx, ch, asked); err != nil {
		c.logf("live change refused: %v", err)
	}
	m.st.CfgVersion = stat.Version
	m.saveState()
}

// liveChange applies a live change from the next interval boundary a
// little ahead; it returns that instant.
func (m *monitor) liveChange(ctx context.Context, ch live.Change, asked time.Time) (time.Duration, error) {
	setRate := ch.SetsRate() && ch.Rate != m.st.Rate
	if setRate && !m.st.Plan.Open() {
		return 0, fmt.Errorf("%w (test %s)", live.ErrClosedModel, m.st.ID)
	}
	if setRate {
		if err := proto.CheckRate(ch.Rate); err != nil {
			return 0, err
		}
	}
	setConns := ch.Connections > 0 && ch.Connections != m.st.Connections
	if setConns {
		if err := proto.CheckConnections(ch.Connections); err != nil {
			return 0, err
		}
		if ch.Connections < len(m.alive()) {
			return 0, fmt.Errorf("%w: %d connections are fewer than the %d agents", ErrBadValue, ch.Connections, len(m.alive()))
		}
	}
	plan, hdrs, err := m.headerChange(ch.Headers)
	if err != nil {
		return 0, err
	}
	if !setRate && !setConns && plan == nil {
		return 0, nil
	}
	var what []string
	conns := 0
	if setRate {
		what = append(what, fmt.Sprintf("rate %g req/s", ch.Rate))
	}
	if setConns {
		conns = ch.Connections
		what = append(what, fmt.Sprintf("%d connections", conns))
	}
	what = append(what, hdrs...)
	at := m.boundaryAfter(m.since() + ChangeLead)
	eff := m.st.Schedule
	if setRate || setConns {
		eff = schedule.Edit(m.st.Schedule, at, setRate, ch.Rate, conns)
	}
	old := m.st.Plan
	if plan != nil {
		// apply assigns st.Plan: the new headers travel with the budgets.
		m.st.Plan = *plan
	}
	at, err = m.apply(ctx, ch.Reason, strings.Join(what, ", "), eff, asked)
	if err != nil {
		m.st.Plan = old
		return 0, err
	}
	if plan != nil {
		if m.st.Headers == nil {
			m.st.Headers = map[string]string{}
		}
		for k, v := range ch.Headers {
			m.st.Headers[k] = v
		}
	}
	if setRate {
		m.st.Rate = ch.Rate
	}
	if setConns {
		m.st.Connections = conns
	}
	return at, nil
}

// serve answers a change or stop asked in-process (live.Controller): the
// change is applied on the poll loop's goroutine, and the config node is
// rewritten so that `barrage set` reads what is in force.
func (m *monitor) serve(ctx context.Context, r request) {
	if r.stop != "" {
		m.writeStop(r.stop)
		m.fail("stopped: "+r.stop, fmt.Errorf("%w: %s", ErrStopped, r.stop))
		r.reply <- reply{}
		return
	}
	at, err := m.liveChange(ctx, *r.change, time.Now())
	if err == nil {
		cfg := mustJSON(fleet.LiveConfig{Rate: m.st.Rate, Connections: m.st.Connections, Headers: m.st.Headers,
			SetAt: time.Now().UnixNano(), Reason: r.change.Reason})
		if werr := m.c.fenced(opSet(m.c.p.Config(m.st.ID), cfg, m.cfgVer)); werr == nil {
			m.cfgVer++
			m.st.CfgVersion = m.cfgVer
		}
		m.saveState()
	}
	r.reply <- reply{at: at, err: err}
}

// doRebalance moves the lost agents' budget to the survivors.
func (m *monitor) doRebalance(ctx context.Context) {
	var names []string
	for _, l := range m.st.Lost {
		names = append(names, l.Name)
	}
	label := fmt.Sprintf("%d agents left (lost: %s)", len(m.alive()), strings.Join(names, ", "))
	if _, err := m.apply(ctx, "rebalance", label, m.st.Schedule, time.Now()); err != nil {
		m.c.logf("rebalance: %v (retrying)", err)
		return
	}
	m.rebalance = false
	m.st.Balanced = len(m.st.Lost)
	m.saveState()
}

// apply pushes a new schedule to the agents alive: new budgets, each
// acknowledged, then activated at an interval boundary a little ahead,
// so every agent switches at the same instant (two phases: an agent that
// cannot take its budget stops the change before anyone applies it).
func (m *monitor) apply(ctx context.Context, reason, label string, eff []proto.Segment, asked time.Time) (time.Duration, error) {
	c, st := m.c, m.st
	alive := m.alive()
	if len(alive) == 0 {
		return 0, fmt.Errorf("no agent left")
	}
	budgets, short := Budgets(eff, cores(alive), caps(alive))
	for j, a := range alive {
		// An agent keeps the data slice and the part of the fleet it
		// started with: its data is loaded and its streams drawn (a lost
		// agent's rows go unused).
		if b, ok := m.budgets[a.ID]; ok {
			budgets[j].Data, budgets[j].Part, budgets[j].Parts = b.Data, b.Part, b.Parts
		}
	}
	st.Version++
	v := st.Version
	for j, a := range alive {
		asg := fleet.Assignment{Test: st.ID, Epoch: st.Epoch, Version: v, Plan: st.Plan, Budget: budgets[j],
			Schedule: eff, Interval: st.Interval}
		if err := c.setOrCreate(c.p.Assign(a.ID), mustJSON(asg)); err != nil {
			m.write("assign "+a.Name, err)
			return 0, err
		}
	}
	if err := m.waitAcks(ctx, v, ChangeAckTimeout, alive); err != nil {
		return 0, err
	}
	lead := ChangeLead
	if reason == "rebalance" {
		// An agent whose registration was deleted (its session still
		// alive) stops within a quarter session timeout: its budget goes
		// to the survivors only after that.
		lead = max(lead, m.c.o.SessionTimeout/4+100*time.Millisecond)
	}
	at := m.boundaryAfter(m.since() + lead)
	act := mustJSON(fleet.Activation{Version: v, Epoch: st.Epoch, At: at})
	if err := c.setOrCreate(c.p.Active(st.ID), act); err != nil {
		m.write("activate change", err)
		return 0, err
	}
	for j, a := range alive {
		m.budgets[a.ID] = budgets[j]
	}
	for i := range st.Lost {
		if st.Lost[i].Moved == 0 {
			st.Lost[i].Moved = at.Seconds()
		}
	}
	s := schedule.New(st.Schedule)
	sp := s.Splice(at, eff)
	st.Schedule = sp.Segments()
	m.pipe.SetSchedule(st.Schedule)
	rec := fleet.Change{Version: v, Reason: reason, Label: label, At: at.Seconds(),
		Asked: asked.Sub(m.start).Seconds(), Agents: len(alive)}
	if short > 0 {
		rec.Label += fmt.Sprintf("; the agents' caps hold %.0f req/s less than asked", short)
	}
	st.Changes = append(st.Changes, rec)
	kind := report.EventChange
	if reason == "rebalance" {
		kind = report.EventRebalance
	}
	m.pipe.Emit(report.Event{At: at.Seconds(), Kind: kind, Text: fmt.Sprintf("%s: %s", reason, rec.Label)})
	m.changes = append(m.changes, v)
	c.logf("change %d (%s: %s): %d agents prepared; takes effect at %.1fs", v, reason, label, len(alive), at.Seconds())
	return at, nil
}

// checkApplied notes when every agent applied each change.
func (m *monitor) checkApplied() {
	keep := m.changes[:0]
	for _, ch := range m.changes {
		all := true
		for _, a := range m.alive() {
			b, _, err := m.c.s.Conn.Get(m.c.p.Applied(m.st.ID, a.ID))
			if err != nil {
				all = false
				break
			}
			ack, err := fleet.DecodeAck(b)
			if err != nil || ack.Version < ch {
				all = false
				break
			}
		}
		if all {
			for i := range m.st.Changes {
				if m.st.Changes[i].Version == ch {
					m.st.Changes[i].Applied = true
				}
			}
			continue
		}
		keep = append(keep, ch)
	}
	m.changes = keep
}

// headerChange checks a live header change against the test: a secret
// header only under --zk-auth (it travels in the assignments), every
// value compiled against the plan's data files. It returns the plan with
// the headers set on every request (nil when nothing changes) and what
// changed, for the report, with secret values redacted.
func (m *monitor) headerChange(h map[string]string) (*proto.Plan, []string, error) {
	if len(h) == 0 {
		return nil, nil, nil
	}
	p := m.st.Plan.Clone()
	names := make([]string, 0, len(h))
	for k := range h {
		names = append(names, k)
	}
	sort.Strings(names)
	var what []string
	for _, k := range names {
		if p.IsSecret(k) && m.c.o.Auth == nil {
			return nil, nil, fmt.Errorf("%w: header %s is a secret: it travels through ZooKeeper only under --zk-auth (this coordinator has none)", ErrBadValue, k)
		}
		p.SetHeader(k, h[k])
		what = append(what, "header "+k+": "+p.Redacted(k, h[k]))
	}
	p.Normalize()
	if err := p.Validate(); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrBadValue, err)
	}
	if err := reqmix.Check(p, nil); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrBadValue, err)
	}
	return p, what, nil
}
