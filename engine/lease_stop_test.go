package engine

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/barrage-load/barrage/proto"
	"github.com/barrage-load/barrage/server"
)

// childEnv makes the test binary run leaseChild instead of the tests.
const childEnv = "BARRAGE_ENGINE_LEASE_CHILD"

func TestMain(m *testing.M) {
	if v := os.Getenv(childEnv); v != "" {
		os.Exit(leaseChild(v))
	}
	os.Exit(m.Run())
}

// childResult is what leaseChild prints at the end.
type childResult struct {
	Sent, Scheduled, Fenced, Censored, Failed, Unfinished uint64
	LatenessMaxUS                                         int64
}

// leaseChild runs an open-model engine for 4s at 1000/s against addr,
// renewing its lease every 50ms for 500ms when lease is "1", the way an
// agent renews it while ZooKeeper confirms its session. It prints "stop"
// when its first interval ends (1s into the run) and its totals as JSON at
// the end.
func leaseChild(v string) int {
	addr, lease, _ := strings.Cut(v, ",")
	var mu sync.Mutex
	total := proto.NewStats(true)
	var e *Engine
	o := Options{
		Addr:     addr,
		Request:  request(addr, false),
		Schedule: []proto.Segment{{Duration: 4 * time.Second, From: 1000, To: 1000, Connections: 32}},
		Pipeline: 4,
		CPUs:     []int{0},
		Lease:    lease == "1",
		OnInterval: func(s *proto.Stats) {
			mu.Lock()
			total.Merge(s)
			mu.Unlock()
			if s.Seq == 0 {
				fmt.Println("stop")
			}
		},
		Ready: func(context.Context) (time.Time, error) {
			e.Renew(time.Now().Add(time.Second))
			go func() {
				for {
					time.Sleep(50 * time.Millisecond)
					e.Renew(time.Now().Add(500 * time.Millisecond))
				}
			}()
			return time.Now().Add(100 * time.Millisecond), nil
		},
	}
	var err error
	if e, err = New(o); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if _, err := e.Run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	mu.Lock()
	defer mu.Unlock()
	b, _ := json.Marshal(childResult{
		Sent: total.Sent, Scheduled: total.Scheduled, Fenced: total.Shed[proto.ShedFenced],
		Censored: total.Censored, Failed: total.Failed(), Unfinished: total.Unfinished,
		LatenessMaxUS: total.Lateness.Max(),
	})
	fmt.Println(string(b))
	return 0
}

// stopAndContinue runs leaseChild, stops it with SIGSTOP for 2s when its
// first interval ends, continues it, and returns its totals.
func stopAndContinue(t *testing.T, addr string, lease bool) childResult {
	t.Helper()
	l := "0"
	if lease {
		l = "1"
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+addr+","+l)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := time.AfterFunc(60*time.Second, func() { _ = cmd.Process.Kill() })
	defer killed.Stop()
	r := bufio.NewReader(out)
	if line, err := r.ReadString('\n'); err != nil || line != "stop\n" {
		t.Fatalf("child said %q: %v", line, err)
	}
	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	if err := cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	line, _ := r.ReadString('\n')
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
	var res childResult
	if err := json.Unmarshal([]byte(line), &res); err != nil {
		t.Fatalf("child's totals %q: %v", line, err)
	}
	waiting := res.Censored - res.Failed - res.Unfinished
	if res.Scheduled != res.Sent+res.Fenced+waiting {
		t.Fatalf("lease %v: scheduled %d != sent %d + fenced %d + waiting %d", lease, res.Scheduled, res.Sent, res.Fenced, waiting)
	}
	t.Logf("lease %v: %+v", lease, res)
	return res
}

// TestLeaseAcrossSIGSTOP: a process stopped for 2s and continued wakes its
// pacer and loops before anything can renew its lease. Without a lease it
// sends what came due meanwhile late, in a burst: the first of them goes
// about 2s late, and lateness is recorded for requests found due and sent
// at once. With one, nothing due while it was stopped is sent: what came
// due after the lease lapsed (the last 1.5s of the stop at least) is shed
// as fenced, and nothing goes anywhere near 2s late. (Bounds, not counts:
// the machine may starve the child besides.)
func TestLeaseAcrossSIGSTOP(t *testing.T) {
	s := startTarget(t, server.Options{})
	free := stopAndContinue(t, s.Addr(), false)
	if free.LatenessMaxUS < 1_500_000 || free.Fenced != 0 {
		t.Fatalf("without a lease: lateness max %dµs, fenced %d; want the 2s burst", free.LatenessMaxUS, free.Fenced)
	}
	fenced := stopAndContinue(t, s.Addr(), true)
	if fenced.LatenessMaxUS >= 1_500_000 || fenced.Fenced < 1400 {
		t.Fatalf("with a lease: lateness max %dµs, fenced %d; want no burst and the stop's requests fenced", fenced.LatenessMaxUS, fenced.Fenced)
	}
}
