package zktest

import (
	"errors"
	"io"
	"log"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
)

func connect(t *testing.T, addrs []string, timeout time.Duration) *zk.Conn {
	t.Helper()
	c, events, err := zk.Connect(addrs, timeout, zk.WithLogger(log.New(io.Discard, "", 0)))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ev := <-events:
			if ev.State == zk.StateHasSession {
				t.Cleanup(c.Close)
				return c
			}
		case <-deadline:
			t.Fatal("no session")
		}
	}
}

func TestStandaloneEphemeral(t *testing.T) {
	t0 := time.Now()
	s := Start(t)
	t.Logf("standalone ready in %s at %s (mode %s)", time.Since(t0), s.Addr, Mode(s.Addr))
	c1 := connect(t, []string{s.Addr}, 2*time.Second)
	if _, err := c1.Create("/e", []byte("x"), zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	c2 := connect(t, []string{s.Addr}, 2*time.Second)
	if ok, _, _ := c2.Exists("/e"); !ok {
		t.Fatal("ephemeral node not seen by another session")
	}
	c1.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ok, _, err := c2.Exists("/e")
		if err == nil && !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("ephemeral node outlived its session")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestEnsembleFailover(t *testing.T) {
	t0 := time.Now()
	e := StartEnsemble(t, 3)
	t.Logf("3-node ensemble ready in %s", time.Since(t0))
	leader := e.Leader()
	if leader < 0 {
		t.Fatal("no leader")
	}
	c := connect(t, e.Addrs(), 4*time.Second)
	if _, err := c.Create("/x", []byte("1"), 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	t1 := time.Now()
	e.Servers[leader].Kill()
	deadline := time.Now().Add(20 * time.Second)
	for e.Leader() < 0 {
		if time.Now().After(deadline) {
			t.Fatal("no new leader")
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("new leader %d after %s", e.Leader(), time.Since(t1))
	for {
		_, err := c.Set("/x", []byte("2"), -1)
		if err == nil {
			break
		}
		if !errors.Is(err, zk.ErrConnectionClosed) && !errors.Is(err, zk.ErrNoServer) || time.Now().After(deadline) {
			t.Fatalf("session did not survive: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	b, _, err := c.Get("/x")
	if err != nil || string(b) != "2" {
		t.Fatalf("after failover: %q %v", b, err)
	}
}
