package target

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func start(t *testing.T, o Options) *Server {
	t.Helper()
	o.Listen = "127.0.0.1:0"
	o.Loops = 1
	s, err := Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop() })
	return s
}

func dial(t *testing.T, s *Server) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return c, bufio.NewReader(c)
}

func read(t *testing.T, br *bufio.Reader, method string) (*http.Response, string) {
	t.Helper()
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

const get = "GET / HTTP/1.1\r\nHost: x\r\n\r\n"

func TestServes(t *testing.T) {
	s := start(t, Options{BodySize: 5})
	c, br := dial(t, s)
	// Pipelined: 16 requests in one write.
	c.Write([]byte(strings.Repeat(get, 16)))
	for i := 0; i < 16; i++ {
		resp, body := read(t, br, "GET")
		if resp.StatusCode != 200 || body != "okxxx" || resp.Close {
			t.Fatalf("response %d: %d %q close=%v", i, resp.StatusCode, body, resp.Close)
		}
	}
	// One request byte by byte.
	for i := 0; i < len(get); i++ {
		c.Write([]byte{get[i]})
		time.Sleep(time.Millisecond)
	}
	if resp, _ := read(t, br, "GET"); resp.StatusCode != 200 {
		t.Fatal(resp.Status)
	}
	// A body is skipped, HEAD gets no body.
	c.Write([]byte("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nabcdHEAD / HTTP/1.1\r\nHost: x\r\n\r\n"))
	if resp, body := read(t, br, "POST"); resp.StatusCode != 200 || body != "okxxx" {
		t.Fatal(resp.Status, body)
	}
	if resp, body := read(t, br, "HEAD"); resp.StatusCode != 200 || body != "" || resp.ContentLength != 5 {
		t.Fatal(resp.Status, body, resp.ContentLength)
	}
	if got := s.Served(); got != 19 {
		t.Fatalf("served %d, want 19", got)
	}
}

func TestClosesWhenAsked(t *testing.T) {
	s := start(t, Options{Status: 503})
	for _, req := range []string{
		"GET / HTTP/1.1\r\nConnection: close\r\n\r\n",
		"GET / HTTP/1.0\r\n\r\n",
	} {
		c, br := dial(t, s)
		c.Write([]byte(req))
		resp, _ := read(t, br, "GET")
		if resp.StatusCode != 503 || !resp.Close {
			t.Fatalf("%q: %d close=%v", req, resp.StatusCode, resp.Close)
		}
		if _, err := br.ReadByte(); err != io.EOF {
			t.Fatalf("%q: connection not closed: %v", req, err)
		}
	}
	c, br := dial(t, s)
	c.Write([]byte("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"))
	if resp, _ := read(t, br, "GET"); resp.Close {
		t.Fatal("HTTP/1.0 keep-alive closed")
	}
}

func TestBadRequest(t *testing.T) {
	s := start(t, Options{})
	c, br := dial(t, s)
	c.Write([]byte("garbage\r\n\r\n"))
	if resp, _ := read(t, br, "GET"); resp.StatusCode != 400 || !resp.Close {
		t.Fatal(resp.Status)
	}
}

func TestDelayDoesNotBlock(t *testing.T) {
	s := start(t, Options{Delay: 200 * time.Millisecond})
	c1, br1 := dial(t, s)
	c2, br2 := dial(t, s)
	t0 := time.Now()
	c1.Write([]byte(get))
	time.Sleep(50 * time.Millisecond)
	c2.Write([]byte(get))
	read(t, br1, "GET")
	d1 := time.Since(t0)
	read(t, br2, "GET")
	d2 := time.Since(t0)
	// Both are delayed, and the second is not queued behind the first.
	if d1 < 200*time.Millisecond || d2 < 250*time.Millisecond || d2 > 450*time.Millisecond {
		t.Fatalf("delays %s and %s", d1, d2)
	}
}

func TestStall(t *testing.T) {
	s := start(t, Options{StallEvery: 300 * time.Millisecond, StallFor: 150 * time.Millisecond})
	c, br := dial(t, s)
	// Wait for a stall to begin, then ask: the answer comes at its end.
	for time.Since(s.start)%(300*time.Millisecond) > 20*time.Millisecond || time.Since(s.start) < 300*time.Millisecond {
		time.Sleep(time.Millisecond)
	}
	t0 := time.Now()
	c.Write([]byte(get))
	read(t, br, "GET")
	if d := time.Since(t0); d < 100*time.Millisecond {
		t.Fatalf("answered in %s during a 150ms stall", d)
	}
}
