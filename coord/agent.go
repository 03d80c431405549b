package coord

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/barrage-load/barrage/engine"
	"github.com/barrage-load/barrage/proto"
)

// AgentOptions configure an agent.
type AgentOptions struct {
	ZK             string
	Root           string // default DefaultRoot
	Name           string // default HOSTNAME-PID
	CPUs           []int  // default every allowed CPU
	SessionTimeout time.Duration
	DialTimeout    time.Duration
	// StateDir keeps a detached run's result on disk; default
	// $TMPDIR/barrage-agent.
	StateDir string
	// Log receives one line per event worth telling (assignment, start,
	// detachment); nil discards.
	Log io.Writer
}

// Agent is one load agent: it registers, waits for assignments and runs
// each with an engine.
type Agent struct {
	o     AgentOptions
	p     paths
	conn  *zk.Conn
	id    atomic.Value // string: our registration node's name
	info  AgentInfo
	mu    sync.Mutex
	lost  bool // the session expired: registration gone
	ready chan struct{}
}

func (a *Agent) logf(format string, args ...any) {
	if a.o.Log != nil {
		fmt.Fprintf(a.o.Log, "agent %s: %s\n", a.info.Name, fmt.Sprintf(format, args...))
	}
}

// ID is the agent's registration node name (agent-NNNNNNNNNN).
func (a *Agent) ID() string { s, _ := a.id.Load().(string); return s }

// NewAgent connects to ZooKeeper and registers the agent.
func NewAgent(o AgentOptions) (*Agent, error) {
	if o.Root == "" {
		o.Root = DefaultRoot
	}
	if err := CheckRoot(o.Root); err != nil {
		return nil, err
	}
	if o.SessionTimeout == 0 {
		o.SessionTimeout = DefaultSessionTimeout
	}
	if o.DialTimeout == 0 {
		o.DialTimeout = 5 * time.Second
	}
	host, _ := os.Hostname()
	if o.Name == "" {
		o.Name = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	if len(o.CPUs) == 0 {
		cpus, err := engine.AllowedCPUs()
		if err != nil {
			return nil, err
		}
		o.CPUs = cpus
	}
	if o.StateDir == "" {
		o.StateDir = filepath.Join(os.TempDir(), "barrage-agent")
	}
	a := &Agent{o: o, p: paths{o.Root}, ready: make(chan struct{})}
	a.info = AgentInfo{Name: o.Name, Host: host, Cores: len(o.CPUs), Version: Version, PID: os.Getpid()}
	conn, events, err := Dial(o.ZK, o.SessionTimeout, o.DialTimeout, nil)
	if err != nil {
		return nil, err
	}
	a.conn = conn
	if err := a.register(); err != nil {
		conn.Close()
		return nil, err
	}
	go a.watchSession(events)
	return a, nil
}

func (a *Agent) register() error {
	for _, p := range []string{a.p.agents(), a.p.assigns(), a.p.tests()} {
		if err := ensure(a.conn, p); err != nil {
			return err
		}
	}
	b, _ := json.Marshal(a.info)
	var path string
	err := retry(10*time.Second, func() (err error) {
		path, err = a.conn.Create(a.p.agent("agent-"), b, zk.FlagEphemeral|zk.FlagSequence, zk.WorldACL(zk.PermAll))
		return err
	})
	if err != nil {
		return fmt.Errorf("coord: cannot register agent %q: %w", a.info.Name, err)
	}
	a.id.Store(filepath.Base(path))
	a.logf("registered as %s", filepath.Base(path))
	return nil
}

// watchSession re-registers after a session expiry; a run under way goes on
// regardless (fail-static).
func (a *Agent) watchSession(events <-chan zk.Event) {
	for ev := range events {
		switch ev.State {
		case zk.StateExpired:
			a.mu.Lock()
			a.lost = true
			a.mu.Unlock()
			a.logf("ZooKeeper session expired: my registration is gone; a test under way goes on alone")
		case zk.StateHasSession:
			a.mu.Lock()
			lost := a.lost
			a.lost = false
			a.mu.Unlock()
			if lost {
				if err := a.register(); err != nil {
					a.logf("cannot register again: %v", err)
				}
			}
		}
	}
}

// Close ends the session, which removes the registration.
func (a *Agent) Close() { a.conn.Close() }

// Run waits for assignments and runs them until ctx is done.
func (a *Agent) Run(ctx context.Context) error {
	done := map[string]bool{}
	for ctx.Err() == nil {
		id := a.ID()
		data, _, ch, err := a.conn.GetW(a.p.assign(id))
		if errors.Is(err, zk.ErrNoNode) {
			var ok bool
			ok, _, ch, err = a.conn.ExistsW(a.p.assign(id))
			if err == nil && ok {
				continue
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			time.Sleep(200 * time.Millisecond)
			continue
		}
		if data != nil {
			var asg Assignment
			if err := json.Unmarshal(data, &asg); err == nil && asg.Test != "" && !done[asg.Test] {
				done[asg.Test] = true
				if err := a.runTest(ctx, id, &asg); err != nil {
					a.logf("test %s: %v", asg.Test, err)
				}
				continue
			}
		}
		select {
		case <-ch:
		case <-ctx.Done():
		}
	}
	return nil
}

// runTest runs one assignment from preparation to the final result.
func (a *Agent) runTest(ctx context.Context, id string, asg *Assignment) error {
	test := asg.Test
	a.logf("assigned test %s: %s", test, describeBudget(asg.Budget, asg.Plan.Open()))
	opts, err := engine.FromPlan(&asg.Plan)
	if err != nil {
		a.ack(test, id, -1)
		return err
	}
	opts.Schedule = asg.Budget.Schedule
	opts.CPUs = a.o.CPUs
	opts.Interval = asg.Interval

	pub := newPublisher(a, test, id)
	defer pub.stop()
	var eng *engine.Engine
	opts.OnInterval = func(s *proto.Stats) { pub.publish(s, false, time.Time{}) }
	opts.Ready = func(ctx context.Context) (time.Time, error) {
		a.ack(test, id, asg.Version)
		return a.waitBarrier(ctx, test)
	}
	eng, err = engine.New(opts)
	if err != nil {
		a.ack(test, id, -1)
		return err
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go a.follow(runCtx, cancel, test, id, eng, asg.Version)
	res, err := eng.Run(runCtx)
	if err != nil {
		a.writeResult(test, id, &AgentResult{Agent: id, Name: a.info.Name, Error: err.Error()})
		return err
	}
	r := &AgentResult{Agent: id, Name: a.info.Name, Intervals: pub.count, Sent: pub.sent, Responses: pub.responses}
	if !res.FirstSend.IsZero() {
		r.FirstSend = res.FirstSend.UnixNano()
	}
	pub.flush()
	if pub.detached() {
		r.Detached = true
		path := a.keepOnDisk(test, id, r, pub)
		a.logf("test %s finished without ZooKeeper; result kept in %s", test, path)
	}
	a.writeResult(test, id, r)
	a.logf("test %s done: %d responses", test, r.Responses)
	return nil
}

func describeBudget(b Budget, open bool) string {
	switch {
	case !open:
		return fmt.Sprintf("closed model, %d connections (weight %.3f)", b.Connections, b.Weight)
	case b.Rate == 0:
		return fmt.Sprintf("%.1f%% of the plan's schedule, %d connections", 100*b.Weight, b.Connections)
	}
	return fmt.Sprintf("%.1f req/s, %d connections (weight %.3f)", b.Rate, b.Connections, b.Weight)
}

func (a *Agent) ack(test, id string, version int) {
	b, _ := json.Marshal(Ack{Version: version, At: time.Now().UnixNano()})
	_ = retry(5*time.Second, func() error { return setOrCreate(a.conn, a.p.ack(test, id), b) })
}

// waitBarrier waits for the coordinator's start instant.
func (a *Agent) waitBarrier(ctx context.Context, test string) (time.Time, error) {
	for {
		data, _, ch, err := a.conn.GetW(a.p.barrier(test))
		if err == nil {
			var ns int64
			if err := json.Unmarshal(data, &ns); err != nil {
				return time.Time{}, fmt.Errorf("coord: bad barrier: %w", err)
			}
			return time.Unix(0, ns), nil
		}
		if errors.Is(err, zk.ErrNoNode) {
			var ok bool
			ok, _, ch, err = a.conn.ExistsW(a.p.barrier(test))
			if err == nil && ok {
				continue
			}
		}
		if err != nil {
			if ok, _, _ := a.conn.Exists(a.p.test(test)); !ok && err == nil {
				return time.Time{}, fmt.Errorf("coord: test %s was withdrawn", test)
			}
			time.Sleep(100 * time.Millisecond)
			continue
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(2 * time.Second):
			// The test may have been withdrawn (its start failed).
			if ok, _, err := a.conn.Exists(a.p.test(test)); err == nil && !ok {
				return time.Time{}, fmt.Errorf("coord: test %s was withdrawn before its start", test)
			}
		}
	}
}

// follow applies live changes (two phases: prepare on a new assignment
// version with an ack, apply when /active names that version) and stops the
// run when the coordinator writes /stop. It waits on watches, and re-reads
// every second in case a watch was lost with a connection.
func (a *Agent) follow(ctx context.Context, cancel context.CancelFunc, test, id string, eng *engine.Engine, version int) {
	prepared := map[int]*Assignment{}
	getW := func(path string) ([]byte, <-chan zk.Event) {
		data, _, ch, err := a.conn.GetW(path)
		if errors.Is(err, zk.ErrNoNode) {
			_, _, ch, _ = a.conn.ExistsW(path)
			return nil, ch
		}
		return data, ch
	}
	for ctx.Err() == nil {
		stopped, _, stopCh, _ := a.conn.ExistsW(a.p.stop(test))
		if stopped {
			a.logf("test %s: the coordinator stopped it", test)
			cancel()
			return
		}
		asgData, asgCh := getW(a.p.assign(id))
		var asg Assignment
		if asgData != nil && json.Unmarshal(asgData, &asg) == nil && asg.Test == test &&
			asg.Version > version && prepared[asg.Version] == nil {
			prepared[asg.Version] = &asg
			a.ack(test, id, asg.Version)
		}
		actData, actCh := getW(a.p.active(test))
		var act Ack
		if actData != nil && json.Unmarshal(actData, &act) == nil && act.Version > version {
			if asg := prepared[act.Version]; asg != nil {
				err := eng.SetSchedule(asg.Budget.Schedule)
				if err == nil {
					err = eng.SetConnections(max(asg.Budget.Connections, eng.Loops()))
				}
				version = act.Version
				b, _ := json.Marshal(Ack{Version: version, At: time.Now().UnixNano()})
				_ = setOrCreate(a.conn, a.p.applied(test, id), b)
				if err != nil {
					a.logf("test %s: change %d: %v", test, version, err)
				} else {
					a.logf("test %s: applied change %d: %s", test, version, describeBudget(asg.Budget, asg.Plan.Open()))
				}
				continue
			}
		}
		select {
		case <-ctx.Done():
		case <-stopCh:
		case <-asgCh:
		case <-actCh:
		case <-time.After(time.Second):
		}
	}
}

func setOrCreate(c *zk.Conn, path string, data []byte) error {
	_, err := c.Set(path, data, -1)
	if errors.Is(err, zk.ErrNoNode) {
		_, err = c.Create(path, data, 0, zk.WorldACL(zk.PermAll))
		if errors.Is(err, zk.ErrNodeExists) {
			_, err = c.Set(path, data, -1)
		}
	}
	return err
}

func (a *Agent) writeResult(test, id string, r *AgentResult) {
	b, _ := json.Marshal(r)
	_ = retry(5*time.Second, func() error { return setOrCreate(a.conn, a.p.result(test, id), b) })
}

// keepOnDisk writes a detached run's result and snapshots to the state dir.
func (a *Agent) keepOnDisk(test, id string, r *AgentResult, pub *publisher) string {
	dir := filepath.Join(a.o.StateDir, test+"-"+id)
	_ = os.MkdirAll(dir, 0o755)
	b, _ := json.MarshalIndent(r, "", "  ")
	_ = os.WriteFile(filepath.Join(dir, "result.json"), b, 0o644)
	pub.mu.Lock()
	for seq, snap := range pub.all {
		_ = os.WriteFile(filepath.Join(dir, fmt.Sprintf("snap-%06d.bin", seq)), snap, 0o644)
	}
	pub.mu.Unlock()
	return dir
}

// publisher writes an agent's snapshots from a goroutine of its own.
// Hazard: OnInterval runs on the engine's collector, and the loops wait for
// the collector; a ZooKeeper write that blocks (no server) must never be
// made there, or the load would stop with ZooKeeper. Snapshots that cannot
// be written wait in memory and go out when ZooKeeper is back.
type publisher struct {
	a        *Agent
	test, id string
	kick     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
	writeMu  sync.Mutex // one writePending at a time

	mu              sync.Mutex
	pending         []int // seqs not yet written
	all             map[int][]byte
	count           int
	sent, responses uint64
	failures        int
}

func newPublisher(a *Agent, test, id string) *publisher {
	p := &publisher{a: a, test: test, id: id, kick: make(chan struct{}, 1), done: make(chan struct{}), all: map[int][]byte{}}
	go p.run()
	return p
}

// publish encodes s and queues it; it never blocks on ZooKeeper.
func (p *publisher) publish(s *proto.Stats, final bool, first time.Time) {
	b, err := proto.MarshalSnapshot(&proto.Snapshot{Agent: p.id, Stats: s, Final: final, FirstSend: first})
	p.mu.Lock()
	p.count++
	p.sent += s.Sent
	p.responses += s.Responses
	if err == nil {
		p.all[s.Seq] = b
		p.pending = append(p.pending, s.Seq)
	}
	p.mu.Unlock()
	if err != nil {
		p.a.logf("BUG: cannot encode snapshot %d: %v", s.Seq, err)
		return
	}
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// run writes queued snapshots until the run ends, retrying failures.
func (p *publisher) run() {
	for {
		select {
		case <-p.kick:
		case <-p.done:
			return
		case <-time.After(500 * time.Millisecond):
		}
		p.writePending()
	}
}

// writePending tries every pending snapshot once.
func (p *publisher) writePending() bool {
	p.writeMu.Lock()
	defer p.writeMu.Unlock()
	p.mu.Lock()
	seqs := append([]int(nil), p.pending...)
	p.mu.Unlock()
	var failed []int
	for _, seq := range seqs {
		p.mu.Lock()
		b := p.all[seq]
		p.mu.Unlock()
		_, err := p.a.conn.Create(p.a.p.snap(p.test, p.id, seq), b, 0, zk.WorldACL(zk.PermAll))
		if err != nil && !errors.Is(err, zk.ErrNodeExists) {
			failed = append(failed, seq)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.failures += len(failed)
	// Keep what failed and what was queued meanwhile.
	kept := failed
	for _, seq := range p.pending[len(seqs):] {
		kept = append(kept, seq)
	}
	p.pending = kept
	return len(p.pending) == 0
}

// stop ends the writer goroutine.
func (p *publisher) stop() { p.stopOnce.Do(func() { close(p.done) }) }

// flush stops the writer and tries the pending snapshots for at most 3 s.
func (p *publisher) flush() {
	p.stop()
	deadline := time.Now().Add(3 * time.Second)
	for !p.writePending() && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
}

func (p *publisher) detached() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.pending) > 0 || p.a.lostSession()
}

func (a *Agent) lostSession() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lost
}
