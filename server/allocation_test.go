//go:build !race

package server

import (
	"strings"
	"testing"
	"time"
)

// TestFeedAllocs asserts the per-request path (parse, respond) allocates
// nothing once the output buffer has grown: pipelined GETs, a HEAD, a
// request with a body, and a head split across reads.
func TestFeedAllocs(t *testing.T) {
	rs := testResponses(200, 2)
	pipelined := []byte(strings.Repeat("GET /index.html HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: x\r\n\r\n", 16) +
		"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n" +
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody")
	split := []byte("GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")
	var ss session
	var p policy
	out := make([]byte, 0, 4096)
	allocs := testing.AllocsPerRun(1000, func() {
		var off, n int
		out, off, n, _ = rs.feed(&ss, pipelined, out[:0], &p)
		if off != len(pipelined) || n != 18 {
			t.Fatalf("consumed %d of %d, %d responses", off, len(pipelined), n)
		}
		_, off, _, _ = rs.feed(&ss, split[:20], out[:0], &p)
		_, off2, n, _ := rs.feed(&ss, split[off:], out[:0], &p)
		if off2 != len(split)-off || n != 1 {
			t.Fatalf("split request: %d, %d responses", off2, n)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per run", allocs)
	}
}

// TestFeedAllocsMisbehaving: the same with every per-request decision on
// (fail rate, outage windows, the shared rate limiter, the capacity
// queue's response ends, close-delimited responses).
func TestFeedAllocsMisbehaving(t *testing.T) {
	o := Options{FailRate: 0.3, FailEvery: time.Second, FailFor: 100 * time.Millisecond,
		RateLimit: 1e6, Capacity: 1e6, Close: false}
	if err := o.normalize(); err != nil {
		t.Fatal(err)
	}
	s := &Server{o: o, limiter: newGCRA(o.RateLimit), queue: newQueue(o.Capacity)}
	rs := newResponses(&o)
	p := s.newPolicy(0)
	pipelined := []byte(strings.Repeat("GET / HTTP/1.1\r\nHost: x\r\n\r\n", 32))
	var ss session
	out := make([]byte, 0, 8192)
	now := time.Duration(0)
	allocs := testing.AllocsPerRun(1000, func() {
		now += time.Millisecond
		p.begin(now)
		var n int
		out, _, n, _ = rs.feed(&ss, pipelined, out[:0], &p)
		if n != 32 || len(p.ends) != 32 {
			t.Fatalf("%d responses, %d ends", n, len(p.ends))
		}
		_ = s.queue.reserve(now, n)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per run", allocs)
	}
}
