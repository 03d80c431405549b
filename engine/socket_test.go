package engine

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/barrage-load/barrage/proto"
	"github.com/barrage-load/barrage/server"
)

// silentServer is the built-in server in its silent mode: it accepts
// connections and reads them, and never answers.
func silentServer(t *testing.T) string {
	t.Helper()
	s, err := server.Start(server.Options{Listen: "127.0.0.1:0", Loops: 1, Silent: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop() })
	return s.Addr()
}

// blackHole is a listening socket that never accepts, with the smallest
// backlog: once it is full, connects hang until their timeout.
func blackHole(t *testing.T) string {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	a := sa.(*unix.SockaddrInet4)
	return (&net.TCPAddr{IP: net.IP(a.Addr[:]), Port: a.Port}).String()
}

// TestCensoredWhenNeverAnswered: a target that accepts and never answers
// gives latencies, as lower bounds, not "no samples".
func TestCensoredWhenNeverAnswered(t *testing.T) {
	addr := silentServer(t)
	// Open model: 4 requests go (one per connection), the other tokens
	// wait for a connection until the end; all are censored, from their
	// intended times (the first waited the whole second).
	plan := []proto.Segment{{Duration: time.Second, From: 200, To: 200, Connections: 4}}
	total, _ := run(t, Options{Addr: addr, Request: request(addr, false), Schedule: plan}, nil)
	checkAccounting(t, total)
	checkOpenAccounting(t, total)
	if total.Responses != 0 || total.Sent != 4 || total.Unfinished != 4 || total.Scheduled != 200 {
		t.Fatalf("sent %d, responses %d, unfinished %d, scheduled %d", total.Sent, total.Responses, total.Unfinished, total.Scheduled)
	}
	if total.Censored != 200 || total.Latency.TotalCount() != 200 {
		t.Fatalf("censored %d, %d latencies; want all 200 tokens", total.Censored, total.Latency.TotalCount())
	}
	if mx := total.Latency.Max(); mx < 900_000 {
		t.Fatalf("the longest wait is %dµs, want about 1s", mx)
	}
	// Closed model: everything sent at the start is censored from its
	// send, at the end.
	total, _ = run(t, Options{Addr: addr, Request: request(addr, false), Schedule: closedPlan(4, time.Second), Pipeline: 2}, nil)
	checkAccounting(t, total)
	if total.Sent != 8 || total.Unfinished != 8 || total.Censored != 8 {
		t.Fatalf("sent %d, unfinished %d, censored %d; want 8", total.Sent, total.Unfinished, total.Censored)
	}
	if mn := total.Latency.Min(); mn < 500_000 {
		t.Fatalf("a request in flight for the whole run is censored at %dµs", mn)
	}
}

// TestTimeoutsAreCensored: requests that time out count as failed and as
// censored latencies of at least the timeout.
func TestTimeoutsAreCensored(t *testing.T) {
	addr := silentServer(t)
	total, _ := run(t, Options{Addr: addr, Request: request(addr, false), Schedule: closedPlan(2, 1500*time.Millisecond),
		Pipeline: 2, Timeout: 200 * time.Millisecond}, nil)
	checkAccounting(t, total)
	if total.Errors[proto.ErrTimeout] == 0 || total.Responses != 0 {
		t.Fatalf("want timeouts: %d responses, errors %v", total.Responses, total.Errors)
	}
	if mn := total.Latency.Min(); total.Unfinished == 0 && mn < 200_000 {
		t.Fatalf("a timed-out request censored at %dµs, under the timeout", mn)
	}
}

// closeServer answers every request with a close-delimited HTTP/1.0
// response and closes: the close completes the body.
func closeServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) {
				defer c.Close()
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil {
					return
				}
				_ = req.Body.Close()
				_, _ = c.Write([]byte("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello, closed"))
			}(c)
		}
	}()
	return ln.Addr().String()
}

// TestServerCloses: connections the server closes after a complete
// response are counted, and cost no error and no response.
func TestServerCloses(t *testing.T) {
	// Connection: close on every request, one in flight: every response
	// ends its connection.
	s := startTarget(t, server.Options{})
	total, _ := run(t, Options{Addr: s.Addr(), Request: request(s.Addr(), true), Schedule: closedPlan(4, time.Second)}, nil)
	checkAccounting(t, total)
	if total.Responses < 50 || total.Failed() != 0 || total.ServerCloses != total.Responses {
		t.Fatalf("close per request: %d responses, %d server closes, errors %v", total.Responses, total.ServerCloses, total.Errors)
	}
	// Pipelined behind a Connection: close: the first answer ends the
	// connection, the rest count as reset, and no response is counted
	// twice (the close used to complete the finished one again).
	s2 := startTarget(t, server.Options{})
	total, _ = run(t, Options{Addr: s2.Addr(), Request: request(s2.Addr(), true), Schedule: closedPlan(4, time.Second), Pipeline: 4}, nil)
	checkAccounting(t, total)
	if total.Responses == 0 || total.ServerCloses != total.Responses || total.Errors[proto.ErrReset] == 0 {
		t.Fatalf("pipelined close: %d responses, %d server closes, errors %v", total.Responses, total.ServerCloses, total.Errors)
	}
	if served := s2.Served(); total.Responses > served {
		t.Fatalf("%d responses counted, the server wrote %d", total.Responses, served)
	}
	// HTTP/1.0 with a body delimited by the close: a response, no error.
	addr := closeServer(t)
	total, _ = run(t, Options{Addr: addr, Request: request(addr, false), Schedule: closedPlan(2, time.Second)}, nil)
	checkAccounting(t, total)
	if total.Responses < 20 || total.Failed() != 0 || total.ServerCloses != total.Responses || total.Status[200] != total.Responses {
		t.Fatalf("close-delimited: %d responses, %d server closes, errors %v", total.Responses, total.ServerCloses, total.Errors)
	}
}

// TestLeaseFences: with Options.Lease, nothing goes without a lease, and
// what comes due after it lapsed is shed as fenced.
func TestLeaseFences(t *testing.T) {
	s := startTarget(t, server.Options{})
	plan := []proto.Segment{{Duration: time.Second, From: 1000, To: 1000, Connections: 4}}
	// Never renewed: every token is fenced.
	total, _ := run(t, Options{Addr: s.Addr(), Request: request(s.Addr(), false), Schedule: plan, Lease: true}, nil)
	checkAccounting(t, total)
	checkOpenAccounting(t, total)
	if total.Sent != 0 || total.Shed[proto.ShedFenced] != total.Scheduled || total.Scheduled != 1000 {
		t.Fatalf("no lease: sent %d, fenced %d of %d", total.Sent, total.Shed[proto.ShedFenced], total.Scheduled)
	}
	// A lease to 400ms after the start: what is due after it is fenced.
	var e *Engine
	o := Options{Addr: s.Addr(), Request: request(s.Addr(), false), Schedule: plan, Lease: true}
	o.Ready = func(context.Context) (time.Time, error) {
		at := time.Now().Add(50 * time.Millisecond)
		e.Renew(at.Add(400 * time.Millisecond))
		return at, nil
	}
	total = runEngine(t, o, func(x *Engine) { e = x })
	checkAccounting(t, total)
	checkOpenAccounting(t, total)
	if total.Sent > 401 || total.Shed[proto.ShedFenced] < 599 || total.Scheduled != 1000 {
		t.Fatalf("lease to 400ms: sent %d, fenced %d of %d", total.Sent, total.Shed[proto.ShedFenced], total.Scheduled)
	}
	// Closed model: no lease, no request.
	total, _ = run(t, Options{Addr: s.Addr(), Request: request(s.Addr(), false), Schedule: closedPlan(4, 500*time.Millisecond), Lease: true}, nil)
	if total.Sent != 0 {
		t.Fatalf("closed model without a lease sent %d", total.Sent)
	}
}

// runEngine is run with a hook that sees the engine before Run.
func runEngine(t *testing.T, o Options, before func(e *Engine)) *proto.Stats {
	t.Helper()
	var mu sync.Mutex
	var total *proto.Stats
	o.OnInterval = func(s *proto.Stats) {
		mu.Lock()
		defer mu.Unlock()
		if total == nil {
			total = proto.NewStats(s.Open())
		}
		total.Merge(s)
	}
	if len(o.CPUs) == 0 {
		o.CPUs = []int{0}
	}
	e, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	before(e)
	if _, err := e.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	return total
}

// TestStop: Stop ends a run at once, with its last interval handed off;
// before the start it makes Run fail with ErrStopped.
func TestStop(t *testing.T) {
	s := startTarget(t, server.Options{})
	plan := []proto.Segment{{Duration: time.Minute, From: 1000, To: 1000, Connections: 4}}
	var e *Engine
	start := time.Now()
	total := runEngine(t, Options{Addr: s.Addr(), Request: request(s.Addr(), false), Schedule: plan}, func(x *Engine) {
		e = x
		time.AfterFunc(500*time.Millisecond, e.Stop)
	})
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Stop took the run %v to end", d)
	}
	checkAccounting(t, total)
	checkOpenAccounting(t, total)
	if total.Sent == 0 {
		t.Fatalf("nothing sent before the stop")
	}
	e2, err := New(Options{Addr: s.Addr(), Request: request(s.Addr(), false), Schedule: plan, CPUs: []int{0}})
	if err != nil {
		t.Fatal(err)
	}
	e2.Stop()
	if _, err := e2.Run(context.Background()); !errors.Is(err, ErrStopped) {
		t.Fatalf("Run after Stop: %v", err)
	}
}

// endsSoon runs e and cancels its context when cancel says; Run must
// return within 2 s of the cancel.
func endsSoon(t *testing.T, name string, o Options, cancelAfter func(e *Engine) <-chan struct{}) {
	t.Helper()
	if len(o.CPUs) == 0 {
		o.CPUs = []int{0}
	}
	e, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var cancelled time.Time
	go func() {
		<-cancelAfter(e)
		cancelled = time.Now()
		cancel()
	}()
	done := make(chan struct{})
	go func() {
		_, _ = e.Run(ctx)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatalf("%s: Run did not end", name)
	}
	if cancelled.IsZero() {
		t.Fatalf("%s: Run ended before the cancel", name)
	}
	if d := time.Since(cancelled); d > 2*time.Second {
		t.Fatalf("%s: Run ended %v after the cancel, want within 2s", name, d)
	}
	t.Logf("%s: ended %v after the cancel", name, time.Since(cancelled))
}

func after(d time.Duration) func(*Engine) <-chan struct{} {
	return func(*Engine) <-chan struct{} {
		ch := make(chan struct{})
		time.AfterFunc(d, func() { close(ch) })
		return ch
	}
}

// TestStopsWithin2s: a cancelled context ends Run within 2 s in every
// state: dialing (connects hanging), waiting for the start, running at an
// absurd rate, running with a huge connection count asked for, and with
// many requests never answered.
func TestStopsWithin2s(t *testing.T) {
	s := startTarget(t, server.Options{})
	req := request(s.Addr(), false)
	hole := blackHole(t)
	endsSoon(t, "initial dial, connects hanging", Options{Addr: hole, Request: req, Schedule: closedPlan(300, time.Minute),
		ConnectTimeout: time.Minute}, after(500*time.Millisecond))
	endsSoon(t, "waiting for the start", Options{Addr: s.Addr(), Request: req, Schedule: closedPlan(4, time.Minute),
		StartAt: time.Now().Add(time.Hour)}, after(500*time.Millisecond))
	endsSoon(t, "waiting in Ready", Options{Addr: s.Addr(), Request: req, Schedule: closedPlan(4, time.Minute),
		Ready: func(ctx context.Context) (time.Time, error) { <-ctx.Done(); return time.Time{}, ctx.Err() }}, after(500*time.Millisecond))
	endsSoon(t, "1e12 req/s", Options{Addr: s.Addr(), Request: req,
		Schedule: []proto.Segment{{Duration: time.Minute, From: 1e12, To: 1e12, Connections: 16}}}, after(time.Second))
	endsSoon(t, "200000 connections asked for", Options{Addr: s.Addr(), Request: req, Schedule: closedPlan(8, time.Minute)},
		func(e *Engine) <-chan struct{} {
			ch := make(chan struct{})
			time.AfterFunc(500*time.Millisecond, func() {
				if err := e.SetConnections(200000); err != nil {
					t.Error(err)
				}
				time.AfterFunc(time.Second, func() { close(ch) })
			})
			return ch
		})
	silent := silentServer(t)
	endsSoon(t, "never answered", Options{Addr: silent, Request: request(silent, false), Schedule: closedPlan(500, time.Minute), Pipeline: 16},
		after(time.Second))
}

// TestAbsurdRateEndsOnTime: 1e12 req/s for a second ends on time, with
// every token accounted for.
func TestAbsurdRateEndsOnTime(t *testing.T) {
	s := startTarget(t, server.Options{})
	plan := []proto.Segment{{Duration: time.Second, From: 1e12, To: 1e12, Connections: 16}}
	start := time.Now()
	total, _ := run(t, Options{Addr: s.Addr(), Request: request(s.Addr(), false), Schedule: plan}, nil)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("a 1s run took %v", d)
	}
	checkAccounting(t, total)
	checkOpenAccounting(t, total)
	if total.Scheduled != 1e12 {
		t.Fatalf("scheduled %d, want 1e12", total.Scheduled)
	}
}

// TestFileLimit: the soft limit goes up to the hard one, and a count
// beyond it is refused with a message naming the fix.
func TestFileLimit(t *testing.T) {
	soft, hard, err := RaiseFileLimit()
	if err != nil {
		t.Fatal(err)
	}
	if soft != hard {
		t.Fatalf("soft limit %d after raising, hard %d", soft, hard)
	}
	if err := CheckFileLimit(10); err != nil {
		t.Fatalf("10 connections: %v", err)
	}
	err = CheckFileLimit(int(hard) + 1)
	if !errors.Is(err, ErrFileLimit) || !strings.Contains(err.Error(), "ulimit -n") || !strings.Contains(err.Error(), "RLIMIT_NOFILE") {
		t.Fatalf("over the hard limit: %v", err)
	}
}

// TestApplyAtInstant: a change applied ahead of its instant, before the
// start or during the run, takes effect at that instant: the rate, the
// connections and the step; the intervals before keep their step.
func TestApplyAtInstant(t *testing.T) {
	s := startTarget(t, server.Options{})
	plan := []proto.Segment{{Duration: 2 * time.Second, From: 1000, To: 1000, Connections: 2}}
	next := []proto.Segment{{Duration: 2 * time.Second, From: 2000, To: 2000, Connections: 6, Step: 3}}
	for _, when := range []string{"before the start", "during the run"} {
		var mu sync.Mutex
		var ivs []*proto.Stats
		var e *Engine
		apply := func() {
			if err := e.Apply(time.Second, next, 0.5); err != nil {
				t.Error(err)
			}
		}
		o := Options{Addr: s.Addr(), Request: request(s.Addr(), false), Schedule: plan, Interval: 500 * time.Millisecond, CPUs: []int{0}}
		o.OnInterval = func(st *proto.Stats) {
			mu.Lock()
			ivs = append(ivs, st.Clone())
			mu.Unlock()
			if st.Seq == 0 && when == "during the run" {
				apply() // 500ms in, half a second ahead of the change
			}
		}
		var err error
		if e, err = New(o); err != nil {
			t.Fatal(err)
		}
		if when == "before the start" {
			apply()
		}
		if _, err := e.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		if len(ivs) != 4 {
			t.Fatalf("%s: %d intervals", when, len(ivs))
		}
		// Steps, connection counts and the tokens due in each interval
		// are exact (a token counts in the interval it is due in, however
		// late the loop finds it).
		var total uint64
		for i, iv := range ivs {
			step, conns, due := 0, 2, int64(500)
			if i >= 2 {
				step, conns, due = 3, 6, 1000
			}
			if iv.Step != step || iv.ConnsWanted != conns || int64(iv.Scheduled) != due {
				t.Errorf("%s: interval %d: step %d, %d connections wanted, %d due; want %d, %d, %d", when, i, iv.Step, iv.ConnsWanted, iv.Scheduled, step, conns, due)
			}
			total += iv.Scheduled
		}
		if total != 3000 {
			t.Errorf("%s: %d due in all, want 3000", when, total)
		}
	}
}

// TestRateDropShedsBacklog: after an absurd rate, a sane one is not spent
// sending the backlog the absurd one left: tokens that waited longer than
// the timeout are shed. Within half a second of the drop, sends are back
// to the new rate.
func TestRateDropShedsBacklog(t *testing.T) {
	s := startTarget(t, server.Options{})
	plan := []proto.Segment{
		{Duration: time.Second, From: 1e9, To: 1e9, Connections: 8},
		{Start: time.Second, Duration: time.Second, From: 2000, To: 2000, Connections: 8, Step: 1},
	}
	total, ivs := run(t, Options{Addr: s.Addr(), Request: request(s.Addr(), false), Schedule: plan, Timeout: 200 * time.Millisecond,
		Interval: 500 * time.Millisecond}, nil)
	checkAccounting(t, total)
	checkOpenAccounting(t, total)
	if total.Shed[proto.ShedBacklog] < 9e8 {
		t.Fatalf("shed %d of the 1e9 backlog", total.Shed[proto.ShedBacklog])
	}
	// The last interval (1.5s..2s): 1000 tokens due at 2000/s; the target
	// answers tens of thousands a second, so a carried backlog would show
	// as far more sent.
	last := ivs[len(ivs)-1]
	if last.Sent > 1100 {
		t.Fatalf("the last half second sent %d, want the new rate's 1000 (the backlog was carried)", last.Sent)
	}
}
