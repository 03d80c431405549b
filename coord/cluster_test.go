package coord

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/barrage-load/barrage/agent"
	"github.com/barrage-load/barrage/fleet"
	"github.com/barrage-load/barrage/internal/zktest"
	"github.com/barrage-load/barrage/proto"
	"github.com/barrage-load/barrage/report"
	"github.com/barrage-load/barrage/server"
)

// sessionTimeout is the tests' ZooKeeper session timeout: longer than
// the default so that a starved 2-CPU machine (other tests and builds
// beside) does not expire sessions by itself, short enough that losses are
// seen within seconds.
const sessionTimeout = 4 * time.Second

// cluster is ZooKeeper, a target and in-process agents, for one test.
type cluster struct {
	zk     *zktest.Server
	tgt    *server.Server
	root   string
	auth   *fleet.Auth
	dir    string
	agents []*agent.Agent
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// clusterOptions tune newCluster.
type clusterOptions struct {
	auth  *fleet.Auth
	allow []string
	caps  proto.Caps
}

// newCluster starts ZooKeeper, a target and n in-process agents.
func newCluster(t *testing.T, n int) *cluster { return newClusterWith(t, n, clusterOptions{}) }

func newClusterWith(t *testing.T, n int, co clusterOptions) *cluster {
	t.Helper()
	cl := &cluster{zk: zktest.Start(t), root: "/barrage-test", auth: co.auth, dir: t.TempDir()}
	tgt, err := server.Start(server.Options{Listen: "127.0.0.1:0", Loops: 1})
	if err != nil {
		t.Fatal(err)
	}
	cl.tgt = tgt
	t.Cleanup(func() { _ = tgt.Stop() })
	cl.ctx, cl.cancel = context.WithCancel(context.Background())
	for i := 0; i < n; i++ {
		cl.addAgent(t, fmt.Sprintf("a%d", i), co)
	}
	t.Cleanup(func() {
		cl.cancel()
		for _, a := range cl.agents {
			a.Close()
		}
		cl.wg.Wait()
	})
	return cl
}

func (cl *cluster) addAgent(t *testing.T, name string, co clusterOptions) *agent.Agent {
	t.Helper()
	al, err := agent.ParseAllowlist(co.allow)
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(agent.Options{ZK: cl.zk.Addr, Root: cl.root, Name: name, CPUs: []int{0}, StateDir: cl.dir,
		Auth: cl.auth, Allow: al, Caps: co.caps, SessionTimeout: sessionTimeout})
	if err != nil {
		t.Fatal(err)
	}
	cl.agents = append(cl.agents, a)
	cl.wg.Add(1)
	go func() { defer cl.wg.Done(); _ = a.Run(cl.ctx) }()
	return a
}

func (cl *cluster) plan(t *testing.T, rate float64, conns int, d time.Duration) *proto.Plan {
	t.Helper()
	p := &proto.Plan{TargetURL: "http://" + cl.tgt.Addr() + "/", Rate: rate, Connections: conns, Duration: proto.Duration(d)}
	p.Normalize()
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	return p
}

func (cl *cluster) options(o Options) Options {
	o.ZK = cl.zk.Addr
	if o.Root == "" {
		o.Root = cl.root
	}
	if o.Wait == 0 {
		o.Wait = 10 * time.Second
	}
	if o.Auth == nil {
		o.Auth = cl.auth
	}
	if o.SessionTimeout == 0 {
		o.SessionTimeout = sessionTimeout
	}
	return o
}

func (cl *cluster) coordinate(t *testing.T, o Options) (*report.Report, error) {
	t.Helper()
	c, err := New(cl.options(o))
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.Run(context.Background())
}

// dial opens a plain ZooKeeper session to the cluster's server.
func (cl *cluster) dial(t *testing.T) (*fleet.Session, error) {
	t.Helper()
	s, err := fleet.Dial(fleet.DialOptions{Hosts: cl.zk.Addr, Auth: cl.auth})
	if err == nil {
		t.Cleanup(s.Close)
	}
	return s, err
}

// waitServed waits until the target has served n responses.
func (cl *cluster) waitServed(t *testing.T, n uint64, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for cl.tgt.Served() < n {
		if time.Now().After(deadline) {
			t.Fatalf("the target served %d of %d within %s", cl.tgt.Served(), n, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
