package coord

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/barrage-load/barrage/proto"
	"github.com/barrage-load/barrage/report"
	"github.com/barrage-load/barrage/schedule"
)

// Coordinator defaults.
const (
	DefaultWait     = 30 * time.Second
	DefaultInterval = time.Second
	// StartLead is how far ahead of "all agents acknowledged" the barrier
	// is set, so that every agent sees it before it passes.
	StartLead = 500 * time.Millisecond
	// AckTimeout bounds how long agents may take to prepare (connect).
	AckTimeout = 20 * time.Second
	// ResultGrace is how long after the planned end the coordinator waits
	// for the agents' final results.
	ResultGrace = 15 * time.Second
)

// Options configure a coordinator.
type Options struct {
	ZK        string
	Root      string
	Agents    int // agents to wait for
	MinAgents int // fewest agents a test may go on with; default Agents
	Wait      time.Duration
	Plan      *proto.Plan // nil: only take over a running test (standby)
	Standby   bool
	Interval  time.Duration
	Name      string
	// Progress receives one line per interval; Log, events. Nil discards.
	Progress, Log  io.Writer
	SessionTimeout time.Duration
	DialTimeout    time.Duration
}

// Coordinator runs tests. One is active per root; others wait as standby.
type Coordinator struct {
	o    Options
	p    paths
	conn *zk.Conn
	// created lists nodes this coordinator created for a test, so that a
	// failed start removes them; dirs, the parent nodes it created, which
	// go too if they are left empty.
	created []string
	dirs    []string
	me      string // our election node
}

func (c *Coordinator) logf(format string, args ...any) {
	if c.o.Log != nil {
		fmt.Fprintf(c.o.Log, "coord: %s\n", fmt.Sprintf(format, args...))
	}
}

// NewCoordinator connects to ZooKeeper.
func NewCoordinator(o Options) (*Coordinator, error) {
	if o.Root == "" {
		o.Root = DefaultRoot
	}
	if err := CheckRoot(o.Root); err != nil {
		return nil, err
	}
	if o.Wait == 0 {
		o.Wait = DefaultWait
	}
	if o.Interval == 0 {
		o.Interval = DefaultInterval
	}
	if o.MinAgents == 0 {
		o.MinAgents = o.Agents
	}
	if o.SessionTimeout == 0 {
		o.SessionTimeout = DefaultSessionTimeout
	}
	if o.DialTimeout == 0 {
		o.DialTimeout = 5 * time.Second
	}
	if o.Name == "" {
		h, _ := os.Hostname()
		o.Name = fmt.Sprintf("%s-%d", h, os.Getpid())
	}
	if o.Plan != nil && (o.Agents < 1 || o.MinAgents < 1 || o.MinAgents > o.Agents) {
		return nil, fmt.Errorf("coord: want --agents >= 1 and 1 <= --min-agents <= --agents, got %d and %d", o.Agents, o.MinAgents)
	}
	conn, _, err := Dial(o.ZK, o.SessionTimeout, o.DialTimeout, nil)
	if err != nil {
		return nil, err
	}
	return &Coordinator{o: o, p: paths{o.Root}, conn: conn}, nil
}

// Close ends the session (and so the leadership).
func (c *Coordinator) Close() { c.conn.Close() }

// Run becomes the leader (waiting as standby if asked), then either takes
// over the running test or starts the plan, and returns its report.
//
// A standby without a plan that finds itself leading with no test to take
// over steps aside (a coordinator with a plan could not start while it
// led), waits for a test to start, and joins the election again, behind
// the coordinator that runs it.
func (c *Coordinator) Run(ctx context.Context) (*report.Report, error) {
	for {
		if err := c.lead(ctx); err != nil {
			c.cleanup()
			return nil, err
		}
		if id, st := c.runningTest(); st != nil {
			c.logf("taking over test %s", id)
			return c.monitor(ctx, st, true)
		}
		if c.o.Plan != nil {
			break
		}
		c.cleanup()
		if !c.o.Standby {
			return nil, fmt.Errorf("%w to take over under %s", ErrNoTest, c.o.Root)
		}
		c.logf("no test is running under %s; standing by until one starts", c.o.Root)
		if err := c.awaitTest(ctx); err != nil {
			return nil, err
		}
	}
	st, err := c.start(ctx)
	if err != nil {
		c.cleanup()
		return nil, err
	}
	return c.monitor(ctx, st, false)
}

// lead joins the election and returns once this coordinator leads.
func (c *Coordinator) lead(ctx context.Context) error {
	made, err := ensureMade(c.conn, c.p.election())
	c.dirs = append(c.dirs, made...)
	if err != nil {
		return err
	}
	var me string
	err = retry(10*time.Second, func() (err error) {
		me, err = c.conn.Create(c.p.election()+"/c-", []byte(c.o.Name), zk.FlagEphemeral|zk.FlagSequence, zk.WorldACL(zk.PermAll))
		return err
	})
	if err != nil {
		return fmt.Errorf("coord: cannot join the election: %w", err)
	}
	me = me[strings.LastIndex(me, "/")+1:]
	c.me = me
	for {
		kids, _, err := c.conn.Children(c.p.election())
		if err != nil {
			return fmt.Errorf("coord: election: %w", err)
		}
		sort.Strings(kids)
		pred := ""
		for _, k := range kids {
			if k < me {
				pred = k
			}
		}
		if pred == "" {
			c.logf("leading (%s)", me)
			return nil
		}
		if !c.o.Standby {
			name, _, _ := c.conn.Get(c.p.election() + "/" + kids[0])
			_ = c.conn.Delete(c.p.election()+"/"+me, -1)
			return fmt.Errorf("coord: another coordinator (%s) is active under %s; use --standby to wait for it", name, c.o.Root)
		}
		// Watch only the predecessor: no herd when the leader goes.
		ok, _, ch, err := c.conn.ExistsW(c.p.election() + "/" + pred)
		if err != nil {
			return fmt.Errorf("coord: election: %w", err)
		}
		if !ok {
			continue
		}
		c.logf("standing by behind %s", pred)
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// awaitTest returns once a test is running under the root.
func (c *Coordinator) awaitTest(ctx context.Context) error {
	for {
		if _, st := c.runningTest(); st != nil {
			return nil
		}
		// The watch fires when /current is created, changed or deleted;
		// the timer covers a watch lost with the connection.
		var ch <-chan zk.Event
		if _, _, w, err := c.conn.ExistsW(c.p.current()); err == nil {
			ch = w
		}
		select {
		case <-ch:
		case <-time.After(time.Second):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// runningTest returns the test /current names, if it is not done.
func (c *Coordinator) runningTest() (string, *TestState) {
	data, _, err := c.conn.Get(c.p.current())
	if err != nil || len(data) == 0 {
		return "", nil
	}
	id := string(data)
	b, _, err := c.conn.Get(c.p.test(id))
	if err != nil {
		return "", nil
	}
	var st TestState
	if json.Unmarshal(b, &st) != nil || st.Phase == "done" {
		return "", nil
	}
	return id, &st
}

func (c *Coordinator) create(path string, data []byte) error {
	err := retry(5*time.Second, func() error {
		_, err := c.conn.Create(path, data, 0, zk.WorldACL(zk.PermAll))
		return err
	})
	if err == nil {
		c.created = append(c.created, path)
	}
	return err
}

// cleanup removes what a failed start created, newest first, and the
// parent nodes it created if nothing else uses them (the election node
// is ephemeral; it is removed first so its parent can go).
func (c *Coordinator) cleanup() {
	for i := len(c.created) - 1; i >= 0; i-- {
		_ = deleteTree(c.conn, c.created[i])
	}
	c.created = nil
	if c.me != "" {
		_ = c.conn.Delete(c.p.election()+"/"+c.me, -1)
		c.me = ""
	}
	for i := len(c.dirs) - 1; i >= 0; i-- {
		_ = c.conn.Delete(c.dirs[i], -1) // fails, harmlessly, when not empty
	}
	c.dirs = nil
}

type agentEntry struct {
	id   string
	info AgentInfo
}

func (c *Coordinator) listAgents() ([]agentEntry, error) {
	kids, _, err := c.conn.Children(c.p.agents())
	if errors.Is(err, zk.ErrNoNode) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	sort.Strings(kids)
	var out []agentEntry
	for _, k := range kids {
		b, _, err := c.conn.Get(c.p.agent(k))
		if err != nil {
			continue
		}
		var info AgentInfo
		if json.Unmarshal(b, &info) != nil {
			continue
		}
		out = append(out, agentEntry{k, info})
	}
	return out, nil
}

// start waits for the agents, assigns budgets, collects acknowledgements
// and sets the barrier.
func (c *Coordinator) start(ctx context.Context) (*TestState, error) {
	// The root must exist for agents to have registered; creating the
	// parents here would leave nodes behind under a mistyped root.
	deadline := time.Now().Add(c.o.Wait)
	var agents []agentEntry
	for {
		all, err := c.listAgents()
		if err != nil {
			return nil, fmt.Errorf("coord: cannot list agents under %s: %w", c.p.agents(), err)
		}
		// Agents that already run a test are busy.
		agents = agents[:0]
		for _, a := range all {
			if b, _, err := c.conn.Get(c.p.assign(a.id)); err == nil && len(b) > 0 {
				var asg Assignment
				if json.Unmarshal(b, &asg) == nil {
					if _, st := c.testState(asg.Test); st != nil && st.Phase != "done" {
						continue
					}
				}
			}
			agents = append(agents, a)
		}
		if len(agents) >= c.o.Agents {
			agents = agents[:c.o.Agents]
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%w: %d of %d agents registered under %s within %s", ErrTooFewAgents,
				len(agents), c.o.Agents, c.p.agents(), c.o.Wait)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	plan := c.o.Plan
	st := &TestState{
		ID:   "t" + strconv.FormatInt(time.Now().UnixMilli(), 10),
		Plan: *plan, Interval: c.o.Interval, Phase: "assigned", Version: 1, MinAgent: c.o.MinAgents,
		Schedule: plan.Schedule(), Rate: plan.Rate, Connections: plan.Connections,
	}
	for _, a := range agents {
		st.Agents = append(st.Agents, a.id)
		st.Names = append(st.Names, a.info.Name)
		st.Hosts = append(st.Hosts, a.info.Host)
		st.Cores = append(st.Cores, a.info.Cores)
	}
	for _, p := range []string{c.p.tests(), c.p.assigns()} {
		made, err := ensureMade(c.conn, p)
		c.dirs = append(c.dirs, made...)
		if err != nil {
			return nil, err
		}
	}
	b, _ := json.Marshal(st)
	if err := c.create(c.p.test(st.ID), b); err != nil {
		return nil, fmt.Errorf("coord: cannot create test %s: %w", st.ID, err)
	}
	cfg, _ := json.Marshal(LiveConfig{Rate: plan.Rate, Connections: plan.Connections, Reason: "plan", SetAt: time.Now().UnixNano()})
	for _, p := range []struct {
		path string
		data []byte
	}{{c.p.config(st.ID), cfg}, {c.p.acks(st.ID), nil}, {c.p.snaps(st.ID), nil}, {c.p.results(st.ID), nil}, {c.p.applieds(st.ID), nil}} {
		if err := retry(5*time.Second, func() error {
			_, err := c.conn.Create(p.path, p.data, 0, zk.WorldACL(zk.PermAll))
			return err
		}); err != nil {
			return nil, fmt.Errorf("coord: cannot create %s: %w", p.path, err)
		}
	}
	budgets := Budgets(plan.Schedule(), plan.Rate, plan.Connections, st.Cores)
	for i, id := range st.Agents {
		asg := Assignment{Test: st.ID, Version: st.Version, Plan: *plan, Budget: budgets[i], Interval: c.o.Interval}
		ab, _ := json.Marshal(asg)
		if err := retry(5*time.Second, func() error { return setOrCreate(c.conn, c.p.assign(id), ab) }); err != nil {
			return nil, fmt.Errorf("coord: cannot assign agent %s: %w", id, err)
		}
		c.created = append(c.created, c.p.assign(id))
	}
	c.logf("test %s: assigned %d agents, waiting for them to connect", st.ID, len(st.Agents))
	if err := c.waitAcks(ctx, st, st.Version, AckTimeout+plan.ConnectTimeout.D()); err != nil {
		return nil, err
	}
	startAt := time.Now().Add(StartLead)
	st.StartAt = startAt.UnixNano()
	st.Phase = "running"
	if err := c.saveState(st); err != nil {
		return nil, err
	}
	bb, _ := json.Marshal(st.StartAt)
	if err := c.create(c.p.barrier(st.ID), bb); err != nil {
		return nil, fmt.Errorf("coord: cannot set the start barrier: %w", err)
	}
	if err := retry(5*time.Second, func() error { return setOrCreate(c.conn, c.p.current(), []byte(st.ID)) }); err != nil {
		return nil, err
	}
	c.created = nil // the test runs: from here on it is reported, not withdrawn
	c.logf("test %s: all agents ready; starting at %s", st.ID, startAt.Format("15:04:05.000"))
	return st, nil
}

func (c *Coordinator) testState(id string) (int32, *TestState) {
	b, stat, err := c.conn.Get(c.p.test(id))
	if err != nil {
		return 0, nil
	}
	var st TestState
	if json.Unmarshal(b, &st) != nil {
		return 0, nil
	}
	return stat.Version, &st
}

func (c *Coordinator) saveState(st *TestState) error {
	b, _ := json.Marshal(st)
	return retry(5*time.Second, func() error {
		_, err := c.conn.Set(c.p.test(st.ID), b, -1)
		return err
	})
}

// waitAcks waits until every agent of the test acknowledged version v; an
// agent that acknowledges -1 failed to prepare.
func (c *Coordinator) waitAcks(ctx context.Context, st *TestState, v int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		missing := []string{}
		for i, id := range st.Agents {
			if st.isLost(id) {
				continue
			}
			b, _, err := c.conn.Get(c.p.ack(st.ID, id))
			var ack Ack
			if err != nil || json.Unmarshal(b, &ack) != nil || ack.Version < v {
				if ack.Version == -1 && err == nil {
					return fmt.Errorf("coord: agent %s (%s) could not prepare the test (see its log)", st.Names[i], id)
				}
				missing = append(missing, st.Names[i])
			}
		}
		if len(missing) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("coord: agents %s did not acknowledge within %s", strings.Join(missing, ", "), timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (st *TestState) isLost(id string) bool {
	for _, l := range st.Lost {
		if l.Agent == id {
			return true
		}
	}
	return false
}

// intervals lists the snapshot intervals' ends of a schedule, as the
// engine hands them off: every Interval and every step start.
func intervals(segs []proto.Segment, interval time.Duration) []time.Duration {
	s := schedule.New(segs)
	return schedule.IntervalEnds(&s, interval)
}
