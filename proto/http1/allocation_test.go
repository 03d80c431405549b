//go:build !race

package http1

import "testing"

func TestZeroAllocs(t *testing.T) {
	req := &Request{Method: "GET", Host: "127.0.0.1:8080", Path: "/x", Headers: []Header{{"X-A", "b"}}}
	buf := make([]byte, 0, 4096)
	pipelined := []byte(seedResponses[0] + seedResponses[2] + seedResponses[3] + seedResponses[6])
	var p Parser
	allocs := testing.AllocsPerRun(1000, func() {
		buf = AppendRequest(buf[:0], req)
		data := pipelined
		for len(data) > 0 {
			n, err := p.Feed(data)
			if err != nil {
				t.Fatal(err)
			}
			data = data[n:]
			p.Reset(false)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per encode + parse of 5 responses, want 0", allocs)
	}
}
