package coord

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/barrage-load/barrage/fleet"
	"github.com/barrage-load/barrage/internal/zktest"
	"github.com/barrage-load/barrage/proto"
	"github.com/barrage-load/barrage/report"
)

func TestSplit(t *testing.T) {
	for _, tc := range []struct {
		n       int
		weights []float64
		want    []int
	}{
		// Equal weights: the remainder goes to the first.
		{10, []float64{1, 1, 1}, []int{4, 3, 3}},
		// Weighted by cores.
		{48, []float64{4, 2, 2}, []int{24, 12, 12}},
		// Every agent gets at least one connection when there are enough.
		{3, []float64{100, 1, 1}, []int{1, 1, 1}},
		// Fewer units than parts: some get none.
		{1, []float64{1, 1}, []int{1, 0}},
	} {
		got := Split(tc.n, tc.weights, true)
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("Split(%d, %v) = %v, want %v", tc.n, tc.weights, got, tc.want)
		}
	}
	// The parts always add up.
	w := make([]float64, 1000)
	for i := range w {
		w[i] = float64(1 + i%7)
	}
	sum := 0
	for _, x := range Split(123457, w, true) {
		sum += x
	}
	if sum != 123457 {
		t.Fatalf("parts add up to %d", sum)
	}
}

func TestBudgets(t *testing.T) {
	p := &proto.Plan{TargetURL: "http://h/", Rate: 900, Connections: 30, Duration: proto.Duration(4 * time.Second),
		Pattern: proto.Pattern{Type: proto.PatternSpike, SpikeRate: 3000, At: proto.Duration(time.Second), For: proto.Duration(time.Second)}}
	p.Normalize()
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	b, short := Budgets(p.Schedule(), []int{2, 1}, []proto.Caps{{}, {}})
	if short != 0 || b[0].Schedule[0].From != 600 || b[1].Schedule[0].From != 300 || b[0].Schedule[0].Connections != 20 || b[1].Schedule[0].Connections != 10 {
		t.Fatalf("budgets: %+v", b)
	}
	if g := b[0].Schedule[1]; g.From != 2000 || g.Start != time.Second || g.Connections != 20 {
		t.Fatalf("spike segment of agent 0: %+v", g)
	}
	if b[0].Phase != 0 || b[1].Phase != 0.5 {
		t.Fatalf("phases %v %v", b[0].Phase, b[1].Phase)
	}
	// Caps: the capped agent's excess goes to the other; over both, short.
	b, short = Budgets(p.Schedule(), []int{1, 1}, []proto.Caps{{MaxRate: 1000}, {MaxRate: 5000}})
	if short != 0 || b[0].Schedule[1].From != 1000 || b[1].Schedule[1].From != 2000 {
		t.Fatalf("capped spike: %+v / %+v, short %g", b[0].Schedule[1], b[1].Schedule[1], short)
	}
	_, short = Budgets(p.Schedule(), []int{1, 1}, []proto.Caps{{MaxRate: 1000}, {MaxRate: 1000}})
	if short != 1000 {
		t.Fatalf("short %g, want 1000", short)
	}
}

func checkReport(t *testing.T, rep *report.Report, agents int) {
	t.Helper()
	if len(rep.Agents) != agents {
		t.Fatalf("%d agent rows, want %d", len(rep.Agents), agents)
	}
	var sum uint64
	for _, a := range rep.Agents {
		sum += a.Requests
		if a.Received != a.Expected || len(a.Missing) > 0 {
			t.Errorf("agent %s: %d of %d intervals, missing %v", a.Name, a.Received, a.Expected, a.Missing)
		}
	}
	if sum != rep.Requests {
		t.Fatalf("merged requests %d != sum over agents %d", rep.Requests, sum)
	}
	if rep.Sent != rep.Requests+rep.ErrorKinds["timeout"]+rep.ErrorKinds["reset"]+rep.ErrorKinds["protocol"]+rep.Unfinished {
		t.Fatalf("accounting: %+v", rep)
	}
	if rep.HistogramDropped != 0 {
		t.Fatalf("%d values dropped in merges", rep.HistogramDropped)
	}
}

func TestDistributedRun(t *testing.T) {
	cl := newCluster(t, 3)
	rep, err := cl.coordinate(t, Options{Agents: 3, Plan: cl.plan(t, 3000, 12, 3*time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	checkReport(t, rep, 3)
	if rep.Sent > 9000 {
		t.Fatalf("sent %d of 9000", rep.Sent)
	}
	checkHonest(t, rep, 9000)
	if rep.Latency == nil || rep.Latency.P99 == 0 {
		t.Fatal("no percentiles")
	}
	t.Logf("start skew %.3f ms", rep.StartSkewMS)
	// The skew depends on free CPU (a starved agent sends late): only its
	// presence and sanity are asserted; BENCHMARKS.md has measured figures.
	if rep.StartSkewMS <= 0 || rep.StartSkewMS > 1000 {
		t.Fatalf("start skew %.3f ms, want (0, 1000]", rep.StartSkewMS)
	}
	// The finished test leaves nothing behind but the registrations.
	c, err := cl.dial(t)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	kids, _, _ := c.Conn.Children(cl.root + "/tests")
	asg, _, _ := c.Conn.Children(cl.root + "/assign")
	if len(kids) != 0 || len(asg) != 0 {
		t.Fatalf("left behind: tests %v, assignments %v", kids, asg)
	}
}

func TestLiveChange(t *testing.T) {
	cl := newCluster(t, 2)
	done := make(chan *report.Report, 1)
	go func() {
		rep, err := cl.coordinate(t, Options{Agents: 2, Plan: cl.plan(t, 1000, 8, 5*time.Second)})
		if err != nil {
			t.Error(err)
		}
		done <- rep
	}()
	// Wait for the test to run, then double the rate.
	var res *SetResult
	deadline := time.Now().Add(15 * time.Second)
	for {
		time.Sleep(500 * time.Millisecond)
		r, err := Set(context.Background(), SetOptions{ZK: cl.zk.Addr, Root: cl.root, Rate: 3000, Wait: 5 * time.Second})
		if err == nil {
			res = r
			break
		}
		if !errors.Is(err, ErrNoTest) || time.Now().After(deadline) {
			t.Fatal(err)
		}
	}
	if res.Applied <= 0 || res.Agents != 2 {
		t.Fatalf("change not confirmed: %+v", res)
	}
	t.Logf("set -> applied by %d agents in %s", res.Agents, res.Applied)
	rep := <-done
	if rep == nil {
		t.Fatal("no report")
	}
	checkReport(t, rep, 2)
	// The change is its own step row, at the new rate, from an interval
	// boundary on; what was asked follows the changed schedule.
	if len(rep.Steps) != 2 || rep.Steps[1].TargetRate != 3000 || rep.Steps[1].Step != 2 {
		t.Fatalf("steps %+v", rep.Steps)
	}
	at := rep.Steps[1].StartSeconds
	if at != math.Trunc(at) {
		t.Fatalf("the change took effect at %.3fs, not on an interval boundary", at)
	}
	checkHonest(t, rep, 1000*at+3000*(5-at))
}

func TestFiftyAgents(t *testing.T) {
	if testing.Short() {
		t.Skip("50 agents")
	}
	if raceEnabled {
		// 50 sessions under the race detector on 2 cores miss their
		// heartbeats and reconnect, and go-zookeeper v1.0.4 races on
		// reconnection (lastZxid in recvLoop vs sendSetWatches; upstream
		// go-zookeeper/zk#35, unfixed): the detector would report the
		// library, not us. The other coordinator tests run under -race.
		t.Skip("50 agents under -race: go-zookeeper reconnect race")
	}
	cl := newCluster(t, 50)
	rep, err := cl.coordinate(t, Options{Agents: 50, Plan: cl.plan(t, 2000, 50, 3*time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	checkReport(t, rep, 50)
	if rep.Sent > 6000 {
		t.Fatalf("sent %d of 6000", rep.Sent)
	}
	checkHonest(t, rep, 6000)
	t.Logf("50 agents: %d requests, skew %.3f ms, notes %v", rep.Requests, rep.StartSkewMS, rep.Notes)
}

func TestBadInput(t *testing.T) {
	// ZooKeeper unreachable: a port nobody listens on.
	port, _ := zktest.FreePort()
	t0 := time.Now()
	_, err := New(Options{ZK: fmt.Sprintf("127.0.0.1:%d", port), Agents: 1, DialTimeout: 2 * time.Second,
		Plan: &proto.Plan{TargetURL: "http://h/"}})
	if !errors.Is(err, fleet.ErrZooKeeper) || time.Since(t0) > 5*time.Second {
		t.Fatalf("unreachable ZooKeeper: %v after %s", err, time.Since(t0))
	}
	if _, err := New(Options{ZK: "x", Root: "barrage", Agents: 1}); !errors.Is(err, fleet.ErrBadRoot) {
		t.Fatalf("bad root: %v", err)
	}
	// Too few agents: a clear error, and nothing left behind.
	cl := newCluster(t, 1)
	_, err = cl.coordinate(t, Options{Agents: 2, Wait: time.Second, Plan: cl.plan(t, 100, 2, time.Second)})
	if !errors.Is(err, ErrTooFewAgents) {
		t.Fatalf("too few agents: %v", err)
	}
	c, err := cl.dial(t)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	kids, _, _ := c.Conn.Children(cl.root + "/tests")
	if len(kids) != 0 {
		t.Fatalf("a failed start left tests %v", kids)
	}
	// A wrong root: no agents there.
	_, err = cl.coordinate(t, Options{Agents: 1, Wait: time.Second, Plan: cl.plan(t, 100, 2, time.Second), Root: "/elsewhere"})
	if !errors.Is(err, ErrTooFewAgents) {
		t.Fatalf("wrong root: %v", err)
	}
	if ok, _, _ := c.Conn.Exists("/elsewhere"); ok {
		t.Fatal("a failed start under a wrong root left /elsewhere behind")
	}
}
