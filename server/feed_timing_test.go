package server

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/barrage-load/barrage/proto/http1"
)

// A wrk-like request, pipelined 16 deep.
var benchRequests = []byte(strings.Repeat("GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n", 16))

var sinkInt int

// BenchmarkFeed parses 16 pipelined requests and appends their responses.
func BenchmarkFeed(b *testing.B) {
	rs := testResponses(200, 2)
	var ss session
	var p policy
	out := make([]byte, 0, 4096)
	b.SetBytes(int64(len(benchRequests)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		var n int
		out, _, n, _ = rs.feed(&ss, benchRequests, out[:0], &p)
		sinkInt += n
	}
}

// BenchmarkFeedNetHTTP is BenchmarkFeed's twin with net/http's request
// parser and response writer on the same bytes.
func BenchmarkFeedNetHTTP(b *testing.B) {
	rd := bytes.NewReader(benchRequests)
	br := bufio.NewReader(rd)
	bw := bufio.NewWriter(io.Discard)
	resp := &http.Response{StatusCode: 200, ProtoMajor: 1, ProtoMinor: 1, ContentLength: 2,
		Header: http.Header{"Content-Type": {"text/plain"}}}
	b.SetBytes(int64(len(benchRequests)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		rd.Reset(benchRequests)
		br.Reset(rd)
		for range 16 {
			req, err := http.ReadRequest(br)
			if err != nil {
				b.Fatal(err)
			}
			resp.Body = io.NopCloser(strings.NewReader("ok"))
			resp.Request = req
			if err := resp.Write(bw); err != nil {
				b.Fatal(err)
			}
			sinkInt++
		}
		bw.Flush()
	}
}

// BenchmarkFeedBarrage is BenchmarkFeed with barrage's own requests
// (User-Agent and Connection: keep-alive on every one), 16 deep.
func BenchmarkFeedBarrage(b *testing.B) {
	one := http1.AppendRequest(nil, &http1.Request{Host: "127.0.0.1:8080", Path: "/"})
	reqs := bytes.Repeat(one, 16)
	rs := testResponses(200, 2)
	var ss session
	var p policy
	out := make([]byte, 0, 4096)
	b.SetBytes(int64(len(reqs)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		var n int
		out, _, n, _ = rs.feed(&ss, reqs, out[:0], &p)
		sinkInt += n
	}
}
