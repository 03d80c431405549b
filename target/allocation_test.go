//go:build !race

package target

import (
	"strings"
	"testing"
)

func TestServeZeroAllocs(t *testing.T) {
	s := &Server{o: Options{BodySize: 2, Status: 200}}
	s.build()
	cs := &conn{}
	buf := []byte(strings.Repeat("GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n", 16))
	allocs := testing.AllocsPerRun(1000, func() {
		off, n, _ := s.serve(cs, buf)
		if off != len(buf) || n != 16 {
			t.Fatalf("served %d of 16", n)
		}
		cs.out = cs.out[:0]
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per 16 requests", allocs)
	}
}
