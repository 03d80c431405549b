//go:build !race

package server

import (
	"strings"
	"testing"
)

// TestFeedAllocs asserts the per-request path (parse, respond) allocates
// nothing once the output buffer has grown: pipelined GETs, a HEAD, a
// request with a body, and a head split across reads.
func TestFeedAllocs(t *testing.T) {
	rs := newResponses(200, 2)
	pipelined := []byte(strings.Repeat("GET /index.html HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: x\r\n\r\n", 16) +
		"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n" +
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody")
	split := []byte("GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")
	var ss session
	out := make([]byte, 0, 4096)
	allocs := testing.AllocsPerRun(1000, func() {
		var off, n int
		out, off, n, _ = rs.feed(&ss, pipelined, out[:0])
		if off != len(pipelined) || n != 18 {
			t.Fatalf("consumed %d of %d, %d responses", off, len(pipelined), n)
		}
		_, off, _, _ = rs.feed(&ss, split[:20], out[:0])
		_, off2, n, _ := rs.feed(&ss, split[off:], out[:0])
		if off2 != len(split)-off || n != 1 {
			t.Fatalf("split request: %d, %d responses", off2, n)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per run", allocs)
	}
}
