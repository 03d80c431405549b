package coord

import (
	"bufio"
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/barrage-load/barrage/fleet"
	"github.com/barrage-load/barrage/report"
)

// watchCount asks ZooKeeper (four-letter word mntr) how many watches it
// holds.
func watchCount(t *testing.T, addr string) int {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("mntr")); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "zk_watch_count"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("mntr gave no zk_watch_count")
	return 0
}

// TestWatchesDoNotGrow: the coordinator and the agents keep at most one
// watch per node they follow, however long the test (before, the
// coordinator set two new watches every 250 ms and each agent three a
// second, and go-zookeeper kept a channel per watch until the node
// changed).
func TestWatchesDoNotGrow(t *testing.T) {
	cl := newCluster(t, 2)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := cl.coordinate(t, Options{Agents: 2, Plan: cl.plan(t, 200, 2, 8*time.Second)}); err != nil {
			t.Error(err)
		}
	}()
	cl.waitServed(t, 200, 20*time.Second)
	time.Sleep(time.Second)
	early := watchCount(t, cl.zk.Addr)
	time.Sleep(5 * time.Second)
	late := watchCount(t, cl.zk.Addr)
	<-done
	t.Logf("watches: %d after 2 s, %d after 7 s", early, late)
	if late > early+2 {
		t.Fatalf("watches grew from %d to %d in 5 s", early, late)
	}
}

// TestStopNode: a test stopped through its stop node ends at once, says
// so, and does not exit as completed (before: exit 0, a short duration and
// no note).
func TestStopNode(t *testing.T) {
	cl := newCluster(t, 1)
	type out struct {
		rep *report.Report
		err error
	}
	done := make(chan out, 1)
	go func() {
		rep, err := cl.coordinate(t, Options{Agents: 1, Plan: cl.plan(t, 300, 2, 20*time.Second)})
		done <- out{rep, err}
	}()
	cl.waitServed(t, 300, 20*time.Second)
	s, err := cl.dial(t)
	if err != nil {
		t.Fatal(err)
	}
	ps := fleet.Paths{Root: cl.root}
	cur, _, err := s.Conn.Get(ps.Current())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ps.Stop(string(cur)), []byte(`{"reason":"an operator stopped it"}`), 0); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	o := <-done
	if !errors.Is(o.err, ErrStopped) || o.rep == nil || !strings.Contains(o.rep.Outcome, "an operator stopped it") || time.Since(t0) > 6*time.Second {
		t.Fatalf("after %s: %v, outcome %q", time.Since(t0), o.err, o.rep.Outcome)
	}
	if o.rep.ExitCode() == 0 {
		t.Fatal("a stopped test exits as completed")
	}
}

// TestInterrupted: an interrupted coordinator stops the agents and prints
// a partial report, marked so, within 2 s.
func TestInterrupted(t *testing.T) {
	cl := newCluster(t, 2)
	c, err := New(cl.options(Options{Agents: 2, Plan: cl.plan(t, 300, 2, 30*time.Second)}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	type out struct {
		rep *report.Report
		err error
	}
	done := make(chan out, 1)
	go func() { rep, err := c.Run(ctx); done <- out{rep, err} }()
	cl.waitServed(t, 600, 20*time.Second)
	t0 := time.Now()
	cancel()
	o := <-done
	took := time.Since(t0)
	if !errors.Is(o.err, ErrInterrupted) || o.rep == nil || !strings.Contains(o.rep.Outcome, "stopped early") || took > 2*time.Second {
		t.Fatalf("after %s: %v, %+v", took, o.err, o.rep)
	}
	// The agents stop too: the target's count stops growing.
	time.Sleep(500 * time.Millisecond)
	n := cl.tgt.Served()
	time.Sleep(time.Second)
	if m := cl.tgt.Served(); m != n {
		t.Fatalf("the agents went on sending: %d then %d", n, m)
	}
	t.Logf("stopped in %s: %s", took, o.rep.Outcome)
}

// TestQuorumLossAndRebuild: ZooKeeper goes away mid-test. The coordinator
// says so and exits 1 (before: it printed "BUG: accounting does not add
// up" and exited 0); the agents stop sending and keep their snapshots,
// from which `barrage report --state-dir` rebuilds the whole test: its
// total is what the target served.
func TestQuorumLossAndRebuild(t *testing.T) {
	cl := newCluster(t, 2)
	type out struct {
		rep *report.Report
		err error
	}
	done := make(chan out, 1)
	go func() {
		rep, err := cl.coordinate(t, Options{Agents: 2, Plan: cl.plan(t, 400, 2, 10*time.Second)})
		done <- out{rep, err}
	}()
	cl.waitServed(t, 1200, 20*time.Second)
	cl.zk.Kill()
	o := <-done
	if !errors.Is(o.err, ErrZooKeeperLost) || o.rep == nil || !strings.Contains(o.rep.Outcome, "ZooKeeper lost") {
		t.Fatalf("%v, %+v", o.err, o.rep)
	}
	// The agents stop within their session timeout of losing ZooKeeper.
	time.Sleep(sessionTimeout + time.Second)
	served := cl.tgt.Served()
	time.Sleep(time.Second)
	if later := cl.tgt.Served(); later != served {
		t.Fatalf("the agents kept sending without ZooKeeper: %d then %d", served, later)
	}
	// Wait for the agents to write what they kept.
	deadline := time.Now().Add(20 * time.Second)
	var rep *report.Report
	for {
		r, err := FromStateDirs([]string{cl.dir}, "")
		if err == nil && len(r.Agents) == 2 && !strings.Contains(r.Agents[0].Status+r.Agents[1].Status, "no result") {
			rep = r
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("state dirs: %v %+v", err, r)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("target served %d; rebuilt report %d responses, %d sent; outcome %q", served, rep.Requests, rep.Sent, rep.Outcome)
	if d := int64(served) - int64(rep.Requests); d < 0 || d > 8 {
		t.Fatalf("rebuilt %d responses, the target served %d", rep.Requests, served)
	}
	if o.rep.Requests >= rep.Requests {
		t.Fatalf("the coordinator's partial report (%d) should hold less than the agents kept (%d)", o.rep.Requests, rep.Requests)
	}
}
