package http1

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
)

var (
	sinkInt  int
	sinkResp *http.Response
)

var small = []byte(seedResponses[0])
var pipelined16 = []byte(strings.Repeat(seedResponses[0], 16))

func benchParse(b *testing.B, data []byte) {
	var p Parser
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d := data
		for len(d) > 0 {
			n, err := p.Feed(d)
			if err != nil {
				b.Fatal(err)
			}
			d = d[n:]
			sinkInt += p.Status()
			p.Reset(false)
		}
	}
}

func benchNetHTTP(b *testing.B, data []byte) {
	req := &http.Request{Method: "GET"}
	r := bytes.NewReader(data)
	br := bufio.NewReader(r)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r.Reset(data)
		br.Reset(r)
		for br.Buffered() > 0 || r.Len() > 0 {
			resp, err := http.ReadResponse(br, req)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			sinkResp = resp
		}
	}
}

func BenchmarkParse(b *testing.B)               { benchParse(b, small) }
func BenchmarkParseNetHTTP(b *testing.B)        { benchNetHTTP(b, small) }
func BenchmarkParse16(b *testing.B)             { benchParse(b, pipelined16) }
func BenchmarkParse16NetHTTP(b *testing.B)      { benchNetHTTP(b, pipelined16) }
func BenchmarkParseChunked(b *testing.B)        { benchParse(b, []byte(seedResponses[2])) }
func BenchmarkParseChunkedNetHTTP(b *testing.B) { benchNetHTTP(b, []byte(seedResponses[2])) }

func BenchmarkAppendRequest(b *testing.B) {
	req := &Request{Method: "GET", Host: "127.0.0.1:8080", Path: "/x", Headers: []Header{{"X-A", "b"}}}
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		buf = AppendRequest(buf[:0], req)
	}
	sinkInt += len(buf)
}
