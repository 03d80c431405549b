package engine

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/barrage-load/barrage/proto"
	"github.com/barrage-load/barrage/proto/http1"
	"github.com/barrage-load/barrage/server"
)

func startTarget(t *testing.T, o server.Options) *server.Server {
	t.Helper()
	o.Listen, o.Loops = "127.0.0.1:0", 1
	s, err := server.Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop() })
	return s
}

// run runs an engine and returns the merged totals and the intervals.
func run(t *testing.T, o Options, during func(e *Engine)) (*proto.Stats, []*proto.Stats) {
	t.Helper()
	var mu sync.Mutex
	var total *proto.Stats
	var ivs []*proto.Stats
	o.OnInterval = func(s *proto.Stats) {
		mu.Lock()
		defer mu.Unlock()
		if total == nil {
			total = proto.NewStats(s.Open())
		}
		total.Merge(s)
		ivs = append(ivs, s.Clone())
	}
	if len(o.CPUs) == 0 {
		o.CPUs = []int{0}
	}
	e, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if during != nil {
		go during(e)
	}
	if _, err := e.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	return total, ivs
}

func request(addr string, close bool) []byte {
	return http1.AppendRequest(nil, &http1.Request{Host: addr, Path: "/", Close: close})
}

func closedPlan(conns int, d time.Duration) []proto.Segment {
	return []proto.Segment{{Duration: d, Connections: conns}}
}

// checkAccounting asserts the invariants: every request sent is a
// response, a failed request or unfinished at stop; every latency recorded
// is a response's or a censored one's; every failed or unfinished request
// was censored (open model: and every token still waiting at the end).
func checkAccounting(t *testing.T, s *proto.Stats) {
	t.Helper()
	if s.Sent != s.Responses+s.Failed()+s.Unfinished {
		t.Fatalf("sent %d != responses %d + failed %d (%v) + unfinished %d",
			s.Sent, s.Responses, s.Failed(), s.Errors, s.Unfinished)
	}
	if n := s.Latency.TotalCount(); n != int64(s.Responses+s.Censored) {
		t.Fatalf("latency holds %d values for %d responses + %d censored", n, s.Responses, s.Censored)
	}
	if s.Censored < s.Failed()+s.Unfinished || !s.Open() && s.Censored != s.Failed()+s.Unfinished {
		t.Fatalf("censored %d, failed %d, unfinished %d", s.Censored, s.Failed(), s.Unfinished)
	}
}

// checkOpenAccounting asserts the open model's token accounting over a
// whole run: every token that came due was sent, shed, or was still
// waiting at the end (the censored that are neither failed nor
// unfinished).
func checkOpenAccounting(t *testing.T, s *proto.Stats) {
	t.Helper()
	waiting := s.Censored - s.Failed() - s.Unfinished
	if s.Scheduled != s.Sent+s.TotalShed()+waiting {
		t.Fatalf("scheduled %d != sent %d + shed %v + waiting %d", s.Scheduled, s.Sent, s.Shed, waiting)
	}
}

func TestClosedModelAccounting(t *testing.T) {
	s := startTarget(t, server.Options{})
	total, ivs := run(t, Options{Addr: s.Addr(), Request: request(s.Addr(), false), Schedule: closedPlan(8, time.Second), Pipeline: 4, Interval: 250 * time.Millisecond}, nil)
	checkAccounting(t, total)
	if total.Responses == 0 || total.TotalErrors() != 0 || total.Status[200] != total.Responses {
		t.Fatalf("totals: %d responses, errors %v", total.Responses, total.Errors)
	}
	if len(ivs) != 4 {
		t.Fatalf("%d intervals, want 4", len(ivs))
	}
	// Every request in flight at the stop is unfinished: at most 8
	// connections x 4, at least 8 x 2 (a connection refills at half depth).
	if total.Unfinished > 32 || total.Unfinished < 16 {
		t.Fatalf("unfinished %d, want 16..32", total.Unfinished)
	}
	// The server's count agrees with ours (it may have answered the
	// unfinished ones after we stopped listening).
	if got := s.Served(); got < total.Responses || got > total.Responses+total.Unfinished {
		t.Fatalf("server served %d, we counted %d responses", got, total.Responses)
	}
}

func TestReconnectsWhenServerCloses(t *testing.T) {
	// Connection: close on every request: the server closes after each
	// response, and the engine reconnects; nothing is miscounted.
	s := startTarget(t, server.Options{})
	total, _ := run(t, Options{Addr: s.Addr(), Request: request(s.Addr(), true), Schedule: closedPlan(4, time.Second), Pipeline: 1}, nil)
	checkAccounting(t, total)
	if total.Responses < 100 || total.Failed() != 0 {
		t.Fatalf("%d responses, errors %v", total.Responses, total.Errors)
	}
}

func TestTimeouts(t *testing.T) {
	s := startTarget(t, server.Options{Delay: 400 * time.Millisecond})
	total, _ := run(t, Options{Addr: s.Addr(), Request: request(s.Addr(), false), Schedule: closedPlan(2, 1500*time.Millisecond),
		Pipeline: 2, Timeout: 100 * time.Millisecond}, nil)
	checkAccounting(t, total)
	if total.Errors[proto.ErrTimeout] == 0 || total.Responses != 0 {
		t.Fatalf("want only timeouts: %d responses, errors %v", total.Responses, total.Errors)
	}
}

func TestConnectErrors(t *testing.T) {
	e, err := New(Options{Addr: "127.0.0.1:1", Request: []byte("x"), Schedule: closedPlan(2, time.Second), CPUs: []int{0}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Run(context.Background()); !errors.Is(err, ErrNoConnection) {
		t.Fatalf("a port nobody listens on: %v", err)
	}
}

func TestOpenModelRateAndLiveChange(t *testing.T) {
	s := startTarget(t, server.Options{})
	plan := []proto.Segment{{Duration: 2 * time.Second, From: 1000, To: 1000, Connections: 4}}
	total, _ := run(t, Options{Addr: s.Addr(), Request: request(s.Addr(), false), Schedule: plan}, func(e *Engine) {
		// From 1s on (whenever the call lands, before or after the
		// start): 3000/s on 8 connections.
		next := []proto.Segment{{Duration: 2 * time.Second, From: 3000, To: 3000, Connections: 8}}
		if err := e.Apply(time.Second, next, 0); err != nil {
			t.Error(err)
		}
	})
	checkAccounting(t, total)
	checkOpenAccounting(t, total)
	// A count, not a timing: 1000 in the first second and 3000 in the
	// second are due; what was not sent is accounted for.
	if total.Scheduled != 4000 {
		t.Fatalf("scheduled %d, want 4000", total.Scheduled)
	}
	if total.Sent < 3600 {
		t.Fatalf("sent %d of 4000", total.Sent)
	}
	if total.Service.TotalCount() != int64(total.Responses) {
		t.Fatalf("service time holds %d values for %d responses", total.Service.TotalCount(), total.Responses)
	}
}

func TestStepsChangeConnections(t *testing.T) {
	s := startTarget(t, server.Options{})
	plan := []proto.Segment{
		{Duration: time.Second, From: 500, To: 500, Connections: 2},
		{Start: time.Second, Duration: time.Second, From: 500, To: 500, Connections: 6, Step: 1},
	}
	_, ivs := run(t, Options{Addr: s.Addr(), Request: request(s.Addr(), false), Schedule: plan, Interval: 500 * time.Millisecond}, nil)
	if len(ivs) != 4 || ivs[0].Step != 0 || ivs[3].Step != 1 {
		t.Fatalf("intervals: %d", len(ivs))
	}
	if ivs[1].ConnsOpen != 2 || ivs[3].ConnsOpen != 6 || ivs[3].ConnsWanted != 6 {
		t.Fatalf("connections: %d/%d then %d/%d", ivs[1].ConnsOpen, ivs[1].ConnsWanted, ivs[3].ConnsOpen, ivs[3].ConnsWanted)
	}
}

// splitServer answers every request in two writes, cut inside the head, so
// the engine must keep a partial response across reads.
func splitServer(t *testing.T) string {
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
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					_ = req.Body.Close()
					if _, err := c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Le")); err != nil {
						return
					}
					time.Sleep(2 * time.Millisecond)
					if _, err := c.Write([]byte("ngth: 2\r\n\r\nok")); err != nil {
						return
					}
				}
			}(c)
		}
	}()
	return ln.Addr().String()
}

func TestPartialResponses(t *testing.T) {
	addr := splitServer(t)
	total, _ := run(t, Options{Addr: addr, Request: request(addr, false), Schedule: closedPlan(4, time.Second)}, nil)
	checkAccounting(t, total)
	if total.Responses < 100 || total.Failed() != 0 || total.Status[200] != total.Responses {
		t.Fatalf("%d responses, errors %v", total.Responses, total.Errors)
	}
}
