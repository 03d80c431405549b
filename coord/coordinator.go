package coord

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/barrage-load/barrage/fleet"
	"github.com/barrage-load/barrage/live"
	"github.com/barrage-load/barrage/pipeline"
	"github.com/barrage-load/barrage/proto"
	"github.com/barrage-load/barrage/report"
)

// Coordinator defaults.
const (
	DefaultWait     = 30 * time.Second
	DefaultInterval = time.Second
	// StartLead is how far ahead of "all agents acknowledged" the barrier
	// is set, so that every agent sees it before it passes.
	StartLead = 500 * time.Millisecond
	// ChangeLead is the least time between a change's activation and the
	// interval boundary it takes effect at, so that every agent sees the
	// activation before that instant.
	ChangeLead = 300 * time.Millisecond
	// AckTimeout bounds how long agents may take to prepare (connect).
	AckTimeout = 20 * time.Second
	// ChangeAckTimeout bounds how long agents may take to acknowledge a
	// live change or a rebalance.
	ChangeAckTimeout = 5 * time.Second
	// ResultGrace is how long after the planned end the coordinator waits
	// for the agents' final results.
	ResultGrace = 15 * time.Second
	// AbandonGrace is how long after its planned end a test whose
	// coordinator is gone is still taken for running; after it, the next
	// coordinator marks it abandoned. A live coordinator holds its
	// election node, so this only ever applies to dead ones: the agents
	// need no more than their result flush.
	AbandonGrace = 2 * time.Second
	// StopGrace bounds how long an interrupted coordinator waits for the
	// agents' last words before it prints what it has: SIGINT and SIGTERM
	// end it within 2 s.
	StopGrace = 1200 * time.Millisecond
)

// Sentinel errors. The command line maps them to exit codes.
var (
	// ErrTooFewAgents occurs when fewer agents than asked registered in
	// time, or fewer than --min-agents are left.
	ErrTooFewAgents = errors.New("coord: too few agents")
	// ErrNoTest occurs when `set` (or a standby) finds no running test.
	ErrNoTest = errors.New("coord: no running test")
	// ErrConflict occurs when a live change lost a compare-and-swap race.
	ErrConflict = errors.New("coord: the test's config changed meanwhile")
	// ErrBusy occurs when another coordinator leads, or a test whose
	// coordinator is gone still runs.
	ErrBusy = errors.New("coord: busy")
	// ErrAgentFailed occurs when an agent could not prepare the test or
	// refused it (target refused, unresolvable, not allowed, over caps).
	ErrAgentFailed = errors.New("coord: an agent could not run the test")
	// ErrSuperseded occurs when this coordinator lost its leadership (its
	// session expired: a standby took over). It wrote nothing after that.
	ErrSuperseded = errors.New("coord: superseded by another coordinator")
	// ErrZooKeeperLost occurs when ZooKeeper stayed unreachable for a
	// session timeout mid-test: the agents stop sending and keep their
	// results on disk (see `barrage report`).
	ErrZooKeeperLost = errors.New("coord: ZooKeeper lost")
	// ErrInterrupted occurs when the test was stopped early by a signal
	// (the report is partial).
	ErrInterrupted = errors.New("coord: interrupted")
	// ErrStopped occurs when the test was stopped by its stop node (made
	// by hand, or by a coordinator before this one).
	ErrStopped = errors.New("coord: stopped")
)

// Options configure a coordinator.
type Options struct {
	ZK   string
	Root string
	Auth *fleet.Auth
	// Agents is how many agents to wait for; MinAgents the fewest a test
	// may go on with after losses (default 1).
	Agents, MinAgents int
	Wait              time.Duration
	// Plan is the test to run; nil with Standby: only take over a
	// running test.
	Plan     *proto.Plan
	Standby  bool
	Interval time.Duration
	Name     string
	// Progress receives one line per interval; Log, events. Nil discards.
	Progress, Log  io.Writer
	SessionTimeout time.Duration
	DialTimeout    time.Duration
	// OnInterval, if set, also receives every merged interval (the
	// dashboard, metrics, thresholds hang here); it must not keep iv.
	OnInterval func(iv *proto.Stats, agents, of int)
	// OnEvent, if set, receives every event (steps, changes, agents lost,
	// stops) on the poll loop's goroutine.
	OnEvent func(e report.Event)
	// OnAgents, if set, receives the agents' rows after every merged
	// interval, on the poll loop's goroutine (the dashboard's table): the
	// report's rows without what only the end knows (final results,
	// missing intervals). The slice is the callee's.
	OnAgents func(rows []report.Agent)
	// OnPipeline, if set, is called with the test's pipeline and plan on
	// the poll loop's goroutine as soon as the pipeline is made (and again
	// when a checkpoint's restore replaces it), before any interval is
	// folded: consumers hang on it (OnInterval, OnAgentInterval, OnEvent,
	// Emit) as they do through local.Runner.With in run. After Run has
	// returned, the last pipeline given holds the whole test (every
	// interval closed) and may be read from Run's caller.
	OnPipeline func(p *pipeline.Pipeline, plan *proto.Plan)
	// AbandonGrace: see the constant; zero takes it.
	AbandonGrace time.Duration
}

// Coordinator runs tests. One leads per root; others wait as standby.
type Coordinator struct {
	o    Options
	p    fleet.Paths
	s    *fleet.Session
	me   string // our election node, once joined
	host string
	// made lists nodes a start created, so that a failed start removes
	// them; dirs, the parents it created, removed if left empty.
	made []string
	dirs []string
	// done is the test this coordinator finished, for Cleanup.
	done *fleet.TestState
	// reqs carries live changes and stops asked in-process (Change,
	// Stop) to the poll loop; monitoring is set while it runs.
	reqs       chan request
	monitoring atomic.Bool
}

// request is a live change or stop asked in-process.
type request struct {
	change *live.Change
	stop   string
	reply  chan reply
}

type reply struct {
	at  time.Duration
	err error
}

// Change applies a live change to the running test (live.Controller).
func (c *Coordinator) Change(ctx context.Context, ch live.Change) (time.Duration, error) {
	if !c.monitoring.Load() {
		return 0, fmt.Errorf("%w under %s", ErrNoTest, c.o.Root)
	}
	r := request{change: &ch, reply: make(chan reply, 1)}
	select {
	case c.reqs <- r:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	select {
	case rp := <-r.reply:
		return rp.at, rp.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// Stop stops the running test (live.Controller); the report says why.
func (c *Coordinator) Stop(reason string) {
	if !c.monitoring.Load() {
		return
	}
	select {
	case c.reqs <- request{stop: reason, reply: make(chan reply, 1)}:
	default:
	}
}

func (c *Coordinator) logf(format string, args ...any) {
	if c.o.Log != nil {
		fmt.Fprintf(c.o.Log, "coord: %s\n", fmt.Sprintf(format, args...))
	}
}

// New checks the options and connects to ZooKeeper.
func New(o Options) (*Coordinator, error) {
	if o.Root == "" {
		o.Root = fleet.DefaultRoot
	}
	if err := fleet.CheckRoot(o.Root); err != nil {
		return nil, err
	}
	if o.Wait == 0 {
		o.Wait = DefaultWait
	}
	if o.Interval == 0 {
		o.Interval = DefaultInterval
	}
	if o.MinAgents == 0 {
		o.MinAgents = 1
	}
	if o.SessionTimeout == 0 {
		o.SessionTimeout = fleet.DefaultSessionTimeout
	}
	if o.DialTimeout == 0 {
		o.DialTimeout = 5 * time.Second
	}
	if o.AbandonGrace == 0 {
		o.AbandonGrace = AbandonGrace
	}
	host, _ := os.Hostname()
	if o.Name == "" {
		o.Name = fmt.Sprintf("coord-%d", os.Getpid())
	}
	if err := fleet.CheckName("coordinator name", o.Name); err != nil {
		return nil, err
	}
	if o.Plan != nil && (o.Agents < 1 || o.MinAgents < 1 || o.MinAgents > o.Agents) {
		return nil, fmt.Errorf("coord: want --agents >= 1 and 1 <= --min-agents <= --agents, got %d and %d", o.Agents, o.MinAgents)
	}
	s, err := fleet.Dial(fleet.DialOptions{Hosts: o.ZK, SessionTimeout: o.SessionTimeout, Timeout: o.DialTimeout, Auth: o.Auth})
	if err != nil {
		return nil, err
	}
	return &Coordinator{o: o, p: fleet.Paths{Root: o.Root}, s: s, host: fleet.Clean(host, 255), reqs: make(chan request, 8)}, nil
}

// Close removes a finished test's state (see Cleanup) and ends the
// session (and so the leadership).
func (c *Coordinator) Close() {
	c.Cleanup()
	c.s.Close()
}

// Run leads (or waits as standby), then runs the plan or takes over the
// running test, and returns its report. The report is returned whenever
// there is one, with the error saying why the test did not complete
// (report.Outcome says it in words).
func (c *Coordinator) Run(ctx context.Context) (*report.Report, error) {
	if c.o.Plan == nil {
		if !c.o.Standby {
			return nil, fmt.Errorf("%w to take over under %s (give a plan, or --standby)", ErrNoTest, c.o.Root)
		}
		return c.standby(ctx)
	}
	if err := c.leadNow(); err != nil {
		c.cleanup()
		return nil, err
	}
	if err := c.clearStale(ctx); err != nil {
		c.cleanup()
		return nil, err
	}
	m, err := c.start(ctx)
	if err != nil {
		c.cleanup()
		return nil, err
	}
	return m.run(ctx)
}

// cleanup removes what a failed start created, newest first, and the
// parents it created if nothing else uses them.
func (c *Coordinator) cleanup() {
	for i := len(c.made) - 1; i >= 0; i-- {
		_ = c.s.DeleteTree(c.made[i])
	}
	c.made = nil
	c.leave()
	for i := len(c.dirs) - 1; i >= 0; i-- {
		_ = c.s.Conn.Delete(c.dirs[i], -1) // fails, harmlessly, when not empty
	}
	c.dirs = nil
}

// agentRows are the agents' rows so far (for Options.OnAgents): figures
// from the merged intervals, budget, and whether the agent was lost.
// Intervals expected are those closed so far.
func (m *monitor) agentRows() []report.Agent {
	open := m.st.Plan.Open()
	next := m.pipe.Next()
	rows := make([]report.Agent, 0, len(m.st.Agents))
	for _, a := range m.st.Agents {
		row := report.Agent{Name: a.Name, Host: a.Host, Status: "ok", Expected: next}
		if b, ok := m.budgets[a.ID]; ok {
			row.Budget = b.Describe(open)
		}
		if ag := m.pipe.Agent(a.ID); ag != nil {
			m.pipe.Aggregator().FillAgent(&row, ag.Stats())
			for _, r := range ag.Received {
				row.Received += max(0, min(r[1], next-1)-r[0]+1)
			}
		}
		if l := m.lostAt(a.ID); l >= 0 {
			row.Lost, row.LostAt = true, l.Seconds()
			row.Status = fmt.Sprintf("LOST at %.1fs", l.Seconds())
		}
		rows = append(rows, row)
	}
	return rows
}
