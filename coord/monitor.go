package coord

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/barrage-load/barrage/proto"
	"github.com/barrage-load/barrage/report"
	"github.com/barrage-load/barrage/schedule"
)

// run is the coordinator's view of one running test.
type run struct {
	c     *Coordinator
	st    *TestState
	start time.Time
	ends  []time.Duration
	// eff is the schedule in force (the plan's, edited by live changes).
	eff      []proto.Segment
	rate     float64
	conns    int
	snaps    map[string]map[int]*proto.Stats // agent → seq → stats
	read     map[string]bool                 // snapshot nodes read
	sizes    []int                           // snapshot sizes in bytes
	printed  int                             // last seq printed
	cfgVer   int32
	changes  []*change
	budgets  map[string]Budget
	firstErr error
}

// change is one live change whose propagation is being measured.
type change struct {
	version int
	reason  string
	setAt   time.Time
	applied time.Duration // from set to the last agent applying it
	done    bool
	agents  int
}

func (r *run) alive() []int {
	var out []int
	for i, id := range r.st.Agents {
		if !r.st.isLost(id) {
			out = append(out, i)
		}
	}
	return out
}

// monitor follows a running test to its end and builds its report.
func (c *Coordinator) monitor(ctx context.Context, st *TestState, takeover bool) (*report.Report, error) {
	r := &run{
		c: c, st: st, start: time.Unix(0, st.StartAt),
		snaps: map[string]map[int]*proto.Stats{}, read: map[string]bool{}, printed: -1,
		budgets: map[string]Budget{},
	}
	r.eff = st.Schedule
	if len(r.eff) == 0 {
		r.eff = st.Plan.Schedule()
	}
	r.ends = intervals(r.eff, st.Interval)
	r.rate, r.conns = st.Rate, st.Connections
	for _, id := range st.Agents {
		r.snaps[id] = map[int]*proto.Stats{}
		if b, _, err := c.conn.Get(c.p.assign(id)); err == nil {
			var asg Assignment
			if json.Unmarshal(b, &asg) == nil {
				r.budgets[id] = asg.Budget
			}
		}
	}
	if _, stat, err := c.conn.Get(c.p.config(st.ID)); err == nil {
		// A config written while no coordinator led is applied below.
		r.cfgVer = stat.Version
		if takeover && st.CfgVersion < stat.Version {
			r.cfgVer = st.CfgVersion
		}
	}
	end := r.start.Add(st.Plan.Duration.D())
	tick := time.NewTicker(st.Interval / 4)
	defer tick.Stop()
	for {
		var cfgCh, agentsCh <-chan zk.Event
		if _, _, ch, err := c.conn.GetW(c.p.config(st.ID)); err == nil {
			cfgCh = ch
		}
		if _, _, ch, err := c.conn.ChildrenW(c.p.agents()); err == nil {
			agentsCh = ch
		}
		select {
		case <-ctx.Done():
			// Interrupted: stop the agents, report what came.
			c.logf("interrupted: stopping test %s", st.ID)
			_, _ = c.conn.Create(c.p.stop(st.ID), nil, 0, zk.WorldACL(zk.PermAll))
			end = time.Now()
		case <-tick.C:
		case <-cfgCh:
		case <-agentsCh:
		}
		r.readSnaps()
		r.checkAgents(ctx)
		r.checkConfig(ctx)
		r.checkApplied()
		r.progress()
		if time.Now().After(end) || r.stopped() {
			break
		}
	}
	r.waitResults(ctx, end)
	r.readSnaps()
	rep := r.report()
	st.Phase = "done"
	_ = c.saveState(st)
	// The test is reported: remove its state.
	for _, id := range st.Agents {
		_ = c.conn.Delete(c.p.assign(id), -1)
	}
	_ = deleteTree(c.conn, c.p.test(st.ID))
	if b, _, err := c.conn.Get(c.p.current()); err == nil && string(b) == st.ID {
		_ = c.conn.Delete(c.p.current(), -1)
	}
	return rep, r.firstErr
}

func (r *run) stopped() bool {
	ok, _, _ := r.c.conn.Exists(r.c.p.stop(r.st.ID))
	return ok
}

// readSnaps fetches the snapshots not yet read: one listing per call.
func (r *run) readSnaps() {
	c := r.c
	kids, _, err := c.conn.Children(c.p.snaps(r.st.ID))
	if err != nil {
		return
	}
	for _, k := range kids {
		if r.read[k] {
			continue
		}
		b, _, err := c.conn.Get(c.p.snaps(r.st.ID) + "/" + k)
		if err != nil {
			continue
		}
		r.read[k] = true
		sn, err := proto.UnmarshalSnapshot(b)
		if err != nil {
			c.logf("bad snapshot %s: %v", k, err)
			continue
		}
		r.sizes = append(r.sizes, len(b))
		m := r.snaps[sn.Agent]
		if m == nil {
			continue // not an agent of this test
		}
		m[sn.Stats.Seq] = sn.Stats
	}
}

// progress prints each interval once every agent still alive reported it.
func (r *run) progress() {
	for {
		seq := r.printed + 1
		if seq >= len(r.ends) {
			return
		}
		merged := proto.NewStats(r.st.Plan.Open())
		alive := 0
		for _, i := range r.alive() {
			s := r.snaps[r.st.Agents[i]][seq]
			if s == nil {
				return
			}
			merged.Merge(s)
			alive++
		}
		r.printed = seq
		if w := r.c.o.Progress; w != nil {
			d := (merged.End - merged.Start).Seconds()
			rps := 0.0
			if d > 0 {
				rps = float64(merged.Responses) / d
			}
			p99 := "-"
			if merged.Latency.TotalCount() > 0 {
				p99 = (time.Duration(merged.Latency.ValueAtQuantile(99)) * time.Microsecond).String()
			}
			fmt.Fprintf(w, "[%6.1fs] %10.0f req/s  p99 %-10s errors %d  agents %d/%d\n",
				merged.End.Seconds(), rps, p99, merged.TotalErrors(), alive, len(r.st.Agents))
		}
	}
}

// checkAgents notices agents whose registration vanished and moves their
// budget to the survivors, or stops the test when too few remain.
func (r *run) checkAgents(ctx context.Context) {
	c := r.c
	kids, _, err := c.conn.Children(c.p.agents())
	if err != nil {
		return
	}
	present := map[string]bool{}
	for _, k := range kids {
		present[k] = true
	}
	lost := false
	for i, id := range r.st.Agents {
		if present[id] || r.st.isLost(id) {
			continue
		}
		// An agent that already delivered its result finished cleanly.
		if ok, _, _ := c.conn.Exists(c.p.result(r.st.ID, id)); ok {
			continue
		}
		at := time.Since(r.start).Seconds()
		r.st.Lost = append(r.st.Lost, LostAgent{Agent: id, Name: r.st.Names[i], At: at})
		c.logf("agent %s (%s) lost at %.1fs", r.st.Names[i], id, at)
		lost = true
	}
	if !lost {
		return
	}
	if n := len(r.alive()); n < r.st.MinAgent {
		c.logf("only %d agents left, fewer than --min-agents %d: stopping the test", n, r.st.MinAgent)
		_ = c.saveState(r.st)
		_, _ = c.conn.Create(c.p.stop(r.st.ID), nil, 0, zk.WorldACL(zk.PermAll))
		r.firstErr = fmt.Errorf("%w: %d agents left of %d, --min-agents is %d; test stopped early",
			ErrTooFewAgents, n, len(r.st.Agents), r.st.MinAgent)
		return
	}
	if err := r.apply(ctx, "rebalance after agent loss", time.Now()); err != nil {
		c.logf("rebalance: %v", err)
	}
}

// checkConfig applies a config written by `barrage set`.
func (r *run) checkConfig(ctx context.Context) {
	c := r.c
	b, stat, err := c.conn.Get(c.p.config(r.st.ID))
	if err != nil || stat.Version <= r.cfgVer {
		return
	}
	r.cfgVer = stat.Version
	var cfg LiveConfig
	if err := json.Unmarshal(b, &cfg); err != nil {
		c.logf("bad live config: %v", err)
		return
	}
	at := time.Since(r.start)
	s := schedule.New(r.eff)
	if cfg.Rate != r.rate && r.st.Plan.Open() {
		s = s.WithRate(at, cfg.Rate)
		r.rate = cfg.Rate
	}
	if cfg.Connections > 0 && cfg.Connections != r.conns {
		s = s.WithConnections(at, cfg.Connections)
		r.conns = cfg.Connections
	}
	r.eff = s.Segments()
	if err := r.apply(ctx, "set", time.Unix(0, cfg.SetAt)); err != nil {
		c.logf("live change: %v", err)
	}
}

// apply pushes the schedule in force to the agents alive: new budgets,
// acknowledged, then activated (two phases, so all switch together).
func (r *run) apply(ctx context.Context, reason string, setAt time.Time) error {
	c, st := r.c, r.st
	alive := r.alive()
	cores := make([]int, len(alive))
	for j, i := range alive {
		cores[j] = st.Cores[i]
	}
	conns := r.conns
	if len(alive) > conns {
		conns = len(alive)
	}
	budgets := Budgets(r.eff, r.rate, conns, cores)
	st.Version++
	st.Schedule, st.Rate, st.Connections, st.CfgVersion = r.eff, r.rate, r.conns, r.cfgVer
	v := st.Version
	for j, i := range alive {
		id := st.Agents[i]
		asg := Assignment{Test: st.ID, Version: v, Plan: st.Plan, Budget: budgets[j], Interval: st.Interval}
		b, _ := json.Marshal(asg)
		if err := retry(5*time.Second, func() error { return setOrCreate(c.conn, c.p.assign(id), b) }); err != nil {
			return err
		}
		r.budgets[id] = budgets[j]
	}
	_ = c.saveState(st)
	if err := c.waitAcks(ctx, st, v, 5*time.Second); err != nil {
		return err
	}
	act, _ := json.Marshal(Ack{Version: v, At: time.Now().UnixNano()})
	if err := retry(5*time.Second, func() error { return setOrCreate(c.conn, c.p.active(st.ID), act) }); err != nil {
		return err
	}
	r.changes = append(r.changes, &change{version: v, reason: reason, setAt: setAt, agents: len(alive)})
	c.logf("change %d (%s): %d agents prepared, activated", v, reason, len(alive))
	return nil
}

// checkApplied measures when every agent applied each change.
func (r *run) checkApplied() {
	for _, ch := range r.changes {
		if ch.done {
			continue
		}
		var last time.Time
		all := true
		for _, i := range r.alive() {
			b, _, err := r.c.conn.Get(r.c.p.applied(r.st.ID, r.st.Agents[i]))
			var a Ack
			if err != nil || json.Unmarshal(b, &a) != nil || a.Version < ch.version {
				all = false
				break
			}
			if t := time.Unix(0, a.At); t.After(last) {
				last = t
			}
		}
		if all {
			ch.done = true
			ch.applied = last.Sub(ch.setAt)
			r.c.logf("change %d (%s) applied by all agents %.1f ms after it was asked for", ch.version, ch.reason,
				float64(ch.applied)/1e6)
		}
	}
}

// waitResults waits for every live agent's final result, at most
// ResultGrace past the end.
func (r *run) waitResults(ctx context.Context, end time.Time) {
	deadline := end.Add(ResultGrace)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		missing := 0
		for _, i := range r.alive() {
			if ok, _, _ := r.c.conn.Exists(r.c.p.result(r.st.ID, r.st.Agents[i])); !ok {
				missing++
			}
		}
		if missing == 0 {
			return
		}
		r.checkAgents(ctx)
		time.Sleep(100 * time.Millisecond)
	}
}

// report merges every agent's snapshots, interval by interval, and adds
// the per-agent rows with their coverage.
func (r *run) report() *report.Report {
	st := r.st
	open := st.Plan.Open()
	agg := report.NewAggregator(st.Plan.TargetURL, r.eff, st.Plan.Pipeline, open)
	maxSeq := -1
	for _, m := range r.snaps {
		for seq := range m {
			maxSeq = max(maxSeq, seq)
		}
	}
	var elapsed time.Duration
	for seq := 0; seq <= maxSeq; seq++ {
		merged := proto.NewStats(open)
		n := 0
		for _, id := range st.Agents {
			if s := r.snaps[id][seq]; s != nil {
				agg.AddDropped(merged.Merge(s))
				merged.Seq, merged.Step = s.Seq, s.Step
				n++
			}
		}
		if n == 0 {
			continue
		}
		agg.Add(merged)
		elapsed = max(elapsed, merged.End)
	}
	var lostNames []string
	for _, l := range st.Lost {
		lostNames = append(lostNames, fmt.Sprintf("%s at %.1fs", l.Name, l.At))
		total := proto.NewStats(open)
		for _, s := range r.snaps[l.Agent] {
			total.Merge(s)
		}
		if acc := total.Responses + total.Failed() + total.Unfinished; total.Sent > acc {
			agg.AddLostInFlight(total.Sent - acc)
		}
	}
	if len(lostNames) > 0 {
		agg.Degraded("agents lost (" + strings.Join(lostNames, ", ") + ") until their budget moved to the survivors")
	}
	rep := agg.Report(elapsed)
	var firsts []int64
	for i, id := range st.Agents {
		row := report.Agent{Name: st.Names[i], Host: st.Hosts[i], Status: "ok"}
		if b, ok := r.budgets[id]; ok {
			row.Budget = strings.TrimSpace(describeBudget(b, open))
		}
		total := proto.NewStats(open)
		var got []int
		var end time.Duration
		for seq, s := range r.snaps[id] {
			total.Merge(s)
			got = append(got, seq)
			end = max(end, s.End)
		}
		sort.Ints(got)
		row.Requests, row.Errors, row.LoopBusy = total.Responses, total.TotalErrors(), total.LoopBusy()
		rep.JudgeAgent(row.Name, total)
		if end > 0 {
			row.RPS = float64(total.Responses) / end.Seconds()
		}
		if total.Latency.TotalCount() > 0 {
			row.P99 = total.Latency.ValueAtQuantile(99)
		}
		expectUntil := elapsed
		for _, l := range st.Lost {
			if l.Agent == id {
				row.Lost, row.LostAt = true, l.At
				// It died at most one session timeout before it was seen
				// to: the intervals ending before that were owed.
				// Any gap before its last snapshot is owed too.
				expectUntil = max(end, time.Duration((l.At)*float64(time.Second))-r.c.o.SessionTimeout-st.Interval)
				row.Status = fmt.Sprintf("LOST at %.1fs (last snapshot ends %.1fs)", l.At, end.Seconds())
			}
		}
		have := map[int]bool{}
		for _, s := range got {
			have[s] = true
		}
		for seq, e := range r.ends {
			if e <= expectUntil || (!row.Lost && e <= elapsed) {
				row.Expected++
				if !have[seq] {
					row.Missing = append(row.Missing, seq)
				}
			}
		}
		row.Received = len(got)
		if b, _, err := r.c.conn.Get(r.c.p.result(st.ID, id)); err == nil {
			var res AgentResult
			if json.Unmarshal(b, &res) == nil {
				if res.FirstSend > 0 {
					firsts = append(firsts, res.FirstSend)
				}
				if res.Detached {
					row.Status = "finished alone (lost ZooKeeper)"
				}
				if res.Error != "" {
					row.Status = "failed: " + res.Error
				}
			}
		} else if !row.Lost {
			row.Status = "no final result"
		}
		if len(row.Missing) > 0 {
			row.Notes = append(row.Notes, fmt.Sprintf("missing intervals %v", row.Missing))
			row.Status += fmt.Sprintf(", %d intervals missing", len(row.Missing))
		}
		rep.Agents = append(rep.Agents, row)
	}
	if len(firsts) > 1 {
		sort.Slice(firsts, func(i, j int) bool { return firsts[i] < firsts[j] })
		rep.StartSkewMS = float64(firsts[len(firsts)-1]-firsts[0]) / 1e6
	}
	for _, l := range st.Lost {
		rep.Notes = append(rep.Notes, fmt.Sprintf("agent %s was lost at %.1fs; its budget moved to the %d survivors and its published snapshots are included",
			l.Name, l.At, len(r.alive())))
	}
	for _, ch := range r.changes {
		if ch.done {
			rep.Notes = append(rep.Notes, fmt.Sprintf("live change %d (%s) reached all %d agents %.1f ms after it was asked for",
				ch.version, ch.reason, ch.agents, float64(ch.applied)/1e6))
		} else {
			rep.Notes = append(rep.Notes, fmt.Sprintf("live change %d (%s) was not confirmed by every agent", ch.version, ch.reason))
		}
	}
	if len(r.sizes) > 0 {
		sum, mx := 0, 0
		for _, s := range r.sizes {
			sum += s
			mx = max(mx, s)
		}
		rep.Notes = append(rep.Notes, fmt.Sprintf("%d snapshots read, %.0f bytes on average, %d at most", len(r.sizes), float64(sum)/float64(len(r.sizes)), mx))
	}
	return rep
}

// SetOptions describe a live change.
type SetOptions struct {
	ZK, Root    string
	Test        string // default: the running test
	Rate        float64
	Connections int
	// Wait is how long to wait for the agents to apply it (0: don't).
	Wait time.Duration
}

// SetResult tells what a live change did.
type SetResult struct {
	Test    string
	Version int32
	// Applied is how long after the write every agent applied it (zero if
	// not waited for or not confirmed).
	Applied time.Duration
	Agents  int
}

// Set writes a new live config for a running test with a compare-and-swap
// on the config znode's version, then waits for the agents to apply it.
func Set(ctx context.Context, o SetOptions) (*SetResult, error) {
	if o.Root == "" {
		o.Root = DefaultRoot
	}
	if err := CheckRoot(o.Root); err != nil {
		return nil, err
	}
	conn, _, err := Dial(o.ZK, DefaultSessionTimeout, 10*time.Second, nil)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	p := paths{o.Root}
	test := o.Test
	if test == "" {
		b, _, err := conn.Get(p.current())
		if err != nil || len(b) == 0 {
			return nil, fmt.Errorf("%w under %s", ErrNoTest, o.Root)
		}
		test = string(b)
	}
	b, stat, err := conn.Get(p.config(test))
	if errors.Is(err, zk.ErrNoNode) {
		return nil, fmt.Errorf("%w: test %q under %s", ErrNoTest, test, o.Root)
	}
	if err != nil {
		return nil, fmt.Errorf("coord: cannot read the config of test %s: %w", test, err)
	}
	var cfg LiveConfig
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, fmt.Errorf("coord: bad config of test %s: %w", test, err)
	}
	if o.Rate >= 0 {
		cfg.Rate = o.Rate
	}
	if o.Connections > 0 {
		cfg.Connections = o.Connections
	}
	cfg.Reason = "set"
	cfg.SetAt = time.Now().UnixNano()
	nb, _ := json.Marshal(cfg)
	ns, err := conn.Set(p.config(test), nb, stat.Version)
	if errors.Is(err, zk.ErrBadVersion) {
		return nil, fmt.Errorf("%w (test %s); read it again and retry", ErrConflict, test)
	}
	if err != nil {
		return nil, fmt.Errorf("coord: cannot write the config of test %s: %w", test, err)
	}
	res := &SetResult{Test: test, Version: ns.Version}
	if o.Wait <= 0 {
		return res, nil
	}
	// The coordinator turns the config into a numbered change; wait for
	// /active to move past the version it had, then for every applied node.
	deadline := time.Now().Add(o.Wait)
	startVer := -1
	if b, _, err := conn.Get(p.active(test)); err == nil {
		var a Ack
		if json.Unmarshal(b, &a) == nil {
			startVer = a.Version
		}
	}
	for time.Now().Before(deadline) && ctx.Err() == nil {
		b, _, err := conn.Get(p.active(test))
		var a Ack
		if err == nil && json.Unmarshal(b, &a) == nil && a.Version > startVer {
			kids, _, err := conn.Children(p.applieds(test))
			if err == nil {
				var last int64
				n := 0
				for _, k := range kids {
					ab, _, err := conn.Get(p.applieds(test) + "/" + k)
					var ack Ack
					if err == nil && json.Unmarshal(ab, &ack) == nil && ack.Version >= a.Version {
						n++
						last = max(last, ack.At)
					}
				}
				tb, _, err := conn.Get(p.test(test))
				var st TestState
				if err == nil && json.Unmarshal(tb, &st) == nil {
					want := len(st.Agents) - len(st.Lost)
					if n >= want && n > 0 {
						res.Agents = n
						res.Applied = time.Duration(last - cfg.SetAt)
						return res, nil
					}
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return res, nil
}
