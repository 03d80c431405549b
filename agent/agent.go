// Package agent is the agent side of a distributed test: it registers
// with ZooKeeper, checks every assignment as a plan file is checked (then
// against its own caps and target allowlist), runs the engine, publishes
// one snapshot per interval, and keeps every snapshot on its disk.
//
// Fencing: the agent sends only while it can confirm its ZooKeeper
// session, at least every session timeout (the engine's lease). Cut off
// for longer — frozen, partitioned, or with ZooKeeper down — it stops
// sending; when it finds its session expired or its registration gone it
// abandons the test (the coordinator has moved its budget to the
// survivors) and registers afresh. See fleet's package doc for the rule.
package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/barrage-load/barrage/engine"
	"github.com/barrage-load/barrage/fleet"
	"github.com/barrage-load/barrage/proto"
	"github.com/barrage-load/barrage/request"
)

// Options configure an agent.
type Options struct {
	ZK   string
	Root string // default fleet.DefaultRoot
	// Name is shown in reports; default HOSTNAME-PID (cleaned to a name).
	Name string
	// CPUs run one event loop each; default every allowed CPU.
	CPUs           []int
	SessionTimeout time.Duration // default fleet.DefaultSessionTimeout
	DialTimeout    time.Duration // default 5 s
	// Auth, if set, authenticates to ZooKeeper (--zk-auth).
	Auth *fleet.Auth
	// StateDir keeps every test's snapshots and result on disk; default
	// $TMPDIR/barrage-agent.
	StateDir string
	// Caps bound what the agent accepts; zero fields take
	// proto.DefaultAgentMaxRate and proto.DefaultAgentMaxConnections.
	Caps proto.Caps
	// Allow lists the targets the agent may load; nil: loopback only.
	Allow *Allowlist
	// Log receives one line per event worth telling; nil discards.
	Log io.Writer
	// OnInterval, if set, also receives each interval this agent
	// publishes (merged over its loops) with its test's plan, on the
	// engine's collector: it must not block and must not keep s (the
	// metrics endpoint hangs here).
	OnInterval func(plan *proto.Plan, s *proto.Stats)
	// HeaderFiles are headers whose values this agent reads from its own
	// files (--header-file): set on every request of every test it runs,
	// over the plan's, and read again whenever a file changes (a rotated
	// credential that never travels through ZooKeeper).
	HeaderFiles []request.HeaderFile
}

// Agent is one load agent.
type Agent struct {
	o    Options
	p    fleet.Paths
	info fleet.AgentInfo

	mu   sync.Mutex
	sess *fleet.Session
	id   string // registration node name of the current incarnation
	// registered is closed once the first registration is done.
	registered chan struct{}
	regOnce    sync.Once
	// test is the test running now ("" when idle), for Ready.
	test string
}

func (a *Agent) logf(format string, args ...any) {
	if a.o.Log != nil {
		fmt.Fprintf(a.o.Log, "agent %s: %s\n", a.info.Name, fmt.Sprintf(format, args...))
	}
}

// New checks the options and connects; the agent registers in Run.
func New(o Options) (*Agent, error) {
	if o.Root == "" {
		o.Root = fleet.DefaultRoot
	}
	if err := fleet.CheckRoot(o.Root); err != nil {
		return nil, err
	}
	if o.SessionTimeout == 0 {
		o.SessionTimeout = fleet.DefaultSessionTimeout
	}
	if o.DialTimeout == 0 {
		o.DialTimeout = 5 * time.Second
	}
	host, _ := os.Hostname()
	if o.Name == "" {
		o.Name = defaultName(host)
	}
	if err := fleet.CheckName("agent name", o.Name); err != nil {
		return nil, err
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
	if o.Caps.MaxRate == 0 {
		o.Caps.MaxRate = proto.DefaultAgentMaxRate
	}
	if o.Caps.MaxConnections == 0 {
		o.Caps.MaxConnections = proto.DefaultAgentMaxConnections
	}
	if err := os.MkdirAll(o.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("agent: cannot make the state dir: %w", err)
	}
	a := &Agent{o: o, p: fleet.Paths{Root: o.Root}, registered: make(chan struct{})}
	a.info = fleet.AgentInfo{Name: o.Name, Host: fleet.Clean(host, 255), Cores: len(o.CPUs), Version: fleet.Version,
		PID: os.Getpid(), MaxRate: o.Caps.MaxRate, MaxConnections: o.Caps.MaxConnections}
	if a.info.Host == "" {
		a.info.Host = "unknown"
	}
	s, err := a.dial()
	if err != nil {
		return nil, err
	}
	a.sess = s
	if err := a.register(); err != nil {
		s.Close()
		return nil, err
	}
	return a, nil
}

// defaultName is HOSTNAME-PID, made into a valid name.
func defaultName(host string) string {
	b := []byte(fmt.Sprintf("%s-%d", host, os.Getpid()))
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			b[i] = '_'
		}
	}
	if len(b) > fleet.MaxNameLen {
		b = b[len(b)-fleet.MaxNameLen:]
	}
	if b[0] == '.' || b[0] == '-' {
		b[0] = '_'
	}
	return string(b)
}

func (a *Agent) dial() (*fleet.Session, error) {
	return fleet.Dial(fleet.DialOptions{Hosts: a.o.ZK, SessionTimeout: a.o.SessionTimeout, Timeout: a.o.DialTimeout, Auth: a.o.Auth})
}

// Info is what the agent registers.
func (a *Agent) Info() fleet.AgentInfo { return a.info }

// ID is the current registration node's name (agent-NNNNNNNNNN).
func (a *Agent) ID() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.id
}

func (a *Agent) session() *fleet.Session {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.sess
}

// Ready says whether the agent can take a test now: nil when it is
// registered under a session that is connected and it runs no test;
// otherwise why not (/readyz).
func (a *Agent) Ready() error {
	a.mu.Lock()
	s, id, test := a.sess, a.id, a.test
	a.mu.Unlock()
	switch {
	case s == nil || id == "":
		return errors.New("not registered with ZooKeeper")
	case s.IsExpired():
		return errors.New("ZooKeeper session expired: registering again")
	case s.Down() > 0:
		return fmt.Errorf("ZooKeeper unreachable for %s", s.Down().Round(time.Millisecond))
	case test != "":
		return fmt.Errorf("running test %s", test)
	}
	return nil
}

// Running is the test the agent runs now ("" when idle).
func (a *Agent) Running() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.test
}

func (a *Agent) setTest(test string) {
	a.mu.Lock()
	a.test = test
	a.mu.Unlock()
}

// Close ends the session, which removes the registration.
func (a *Agent) Close() {
	if s := a.session(); s != nil {
		s.Close()
	}
}

// register creates the registration node under the current session.
func (a *Agent) register() error {
	s := a.session()
	for _, p := range []string{a.p.Agents(), a.p.Assigns(), a.p.Tests()} {
		if _, err := s.Ensure(p); err != nil {
			return fmt.Errorf("agent: cannot register %q: %w", a.info.Name, err)
		}
	}
	b := mustJSON(a.info)
	var path string
	err := fleet.Retry(10*time.Second, func() (err error) {
		path, err = s.Create(a.p.Agent("agent-"), b, zk.FlagEphemeral|zk.FlagSequence)
		return err
	})
	if err != nil {
		return fmt.Errorf("agent: cannot register %q: %w", a.info.Name, err)
	}
	a.mu.Lock()
	a.id = filepath.Base(path)
	a.mu.Unlock()
	a.logf("registered as %s (caps: %g req/s, %d connections; targets: %s)", filepath.Base(path), a.o.Caps.MaxRate, a.o.Caps.MaxConnections, a.o.Allow)
	a.regOnce.Do(func() { close(a.registered) })
	return nil
}

// reincarnate drops the current session (its registration is gone or
// expired) and registers under a new one, retrying until ctx is done.
func (a *Agent) reincarnate(ctx context.Context, why string) error {
	a.logf("%s: registering again under a new session", why)
	if old := a.session(); old != nil {
		old.Close()
	}
	backoff := 200 * time.Millisecond
	for ctx.Err() == nil {
		s, err := a.dial()
		if err == nil {
			a.mu.Lock()
			a.sess = s
			a.mu.Unlock()
			if err = a.register(); err == nil {
				return nil
			}
			s.Close()
		}
		a.logf("cannot register again: %v (retrying)", err)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
	return ctx.Err()
}

// Run waits for assignments and runs them until ctx is done.
func (a *Agent) Run(ctx context.Context) error {
	// Stopping closes the session: every ZooKeeper call blocked (there
	// may be no server to answer it) returns at once, so the agent stops
	// within 2 s whatever ZooKeeper does. What it measured is on disk.
	stopped := make(chan struct{})
	defer close(stopped)
	go func() {
		select {
		case <-ctx.Done():
			a.Close()
		case <-stopped:
		}
	}()
	done := map[string]bool{}
	var w, reg fleet.Watch
	var watched *fleet.Session
	for ctx.Err() == nil {
		s, id := a.session(), a.ID()
		if s != watched {
			// A new session: the old one's watches died with it.
			w, reg, watched = fleet.Watch{}, fleet.Watch{}, s
		}
		if s.IsExpired() {
			if err := a.reincarnate(ctx, "ZooKeeper session expired"); err != nil {
				return nil
			}
			continue
		}
		data, _, err := w.Get(s.Conn, a.p.Assign(id))
		ok, rerr := reg.Exists(s.Conn, a.p.Agent(id))
		if rerr == nil && !ok {
			if err := a.reincarnate(ctx, "my registration was deleted"); err != nil {
				return nil
			}
			continue
		}
		if err == nil && len(data) > 0 {
			asg, derr := fleet.DecodeAssignment(data)
			switch {
			case derr != nil:
				a.logf("refused an assignment: %v", derr)
				// Tell the coordinator, if the test is readable.
				a.refuse(s, id, data, derr)
			case !done[asg.Test]:
				done[asg.Test] = true
				fenced := a.runTest(ctx, s, id, asg)
				if fenced != "" {
					if err := a.reincarnate(ctx, fenced); err != nil {
						return nil
					}
				}
				continue
			}
		}
		select {
		case <-ctx.Done():
		case <-w.C():
			w.Fired()
		case <-reg.C():
			reg.Fired()
		case <-s.Expired():
		case <-time.After(a.o.SessionTimeout):
		}
	}
	return nil
}

// refuse acknowledges an assignment that failed to decode with its
// error, when its test ID can be read at all.
func (a *Agent) refuse(s *fleet.Session, id string, data []byte, err error) {
	var head struct {
		Test    string `json:"test"`
		Version int    `json:"version"`
	}
	if decodeHead(data, &head) != nil || fleet.CheckTestID(head.Test) != nil {
		return
	}
	a.ack(s, head.Test, id, fleet.Ack{Version: max(head.Version, 1), Error: "refused: " + err.Error()})
}

func (a *Agent) ack(s *fleet.Session, test, id string, ack fleet.Ack) {
	ack.At = time.Now().UnixNano()
	_ = fleet.Retry(5*time.Second, func() error { return s.SetOrCreate(a.p.Ack(test, id), mustJSON(ack)) })
}

// errFenced marks a run the agent stopped because it could no longer
// confirm its session.
var errFenced = errors.New("agent: fenced")
