package server

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// start runs a server on a free port, one loop unless told, stopped when
// the test ends.
func start(t *testing.T, o Options) *Server {
	t.Helper()
	o.Listen = "127.0.0.1:0"
	if o.Loops == 0 {
		o.Loops = 1
	}
	s, err := Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Error(err)
		}
	})
	return s
}

type client struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dial(t *testing.T, s *Server) *client {
	t.Helper()
	c, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return &client{t, c, bufio.NewReader(c)}
}

func (c *client) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.c, s); err != nil {
		c.t.Fatal(err)
	}
}

// read reads one response to a request with the method and checks its
// status, body and whether it announces a close.
func (c *client) read(method string, status int, body string, closes bool) {
	c.t.Helper()
	resp, err := http.ReadResponse(c.br, &http.Request{Method: method})
	if err != nil {
		c.t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	if resp.StatusCode != status || string(b) != body || resp.Close != closes {
		c.t.Fatalf("got %d %q close=%v, want %d %q close=%v", resp.StatusCode, b, resp.Close, status, body, closes)
	}
}

// closed checks that the server closed the connection.
func (c *client) closed() {
	c.t.Helper()
	if b, err := c.br.ReadByte(); err != io.EOF {
		c.t.Fatalf("connection still open: %q %v", b, err)
	}
}

// served waits a little for s.Served() to reach want: the counter moves
// just after the write that the client may already have read.
func served(t *testing.T, s *Server, want uint64) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for s.Served() != want && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := s.Served(); got != want {
		t.Fatalf("served %d, want %d", got, want)
	}
}

const get = "GET / HTTP/1.1\r\nHost: x\r\n\r\n"

func TestSingle(t *testing.T) {
	s := start(t, Options{})
	if !strings.HasPrefix(s.Addr(), "127.0.0.1:") || strings.HasSuffix(s.Addr(), ":0") {
		t.Fatalf("Addr %q", s.Addr())
	}
	c := dial(t, s)
	c.send(get)
	c.read("GET", 200, "ok", false)
	served(t, s, 1)
}

func TestPipelined(t *testing.T) {
	s := start(t, Options{BodySize: 5})
	c := dial(t, s)
	c.send(strings.Repeat(get, 16))
	for range 16 {
		c.read("GET", 200, "okxxx", false)
	}
	served(t, s, 16)
}

// TestPipelinedOneWrite checks that 16 pipelined requests read at once
// get their 16 responses in one write: one read on the client side
// returns them all.
func TestPipelinedOneWrite(t *testing.T) {
	s := start(t, Options{})
	c := dial(t, s)
	c.send(strings.Repeat(get, 16))
	want := 16 * len(s.rs.resp[kindOK][keepAlive][0])
	buf := make([]byte, 2*want)
	n, err := c.c.Read(buf)
	if err != nil || n != want {
		t.Fatalf("first read %d bytes (%v), want %d", n, err, want)
	}
}

func TestByteByByte(t *testing.T) {
	s := start(t, Options{})
	c := dial(t, s)
	req := "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc" + get
	for i := range len(req) {
		c.send(req[i : i+1])
		time.Sleep(200 * time.Microsecond)
	}
	c.read("POST", 200, "ok", false)
	c.read("GET", 200, "ok", false)
	served(t, s, 2)
}

func TestHead(t *testing.T) {
	s := start(t, Options{BodySize: 7})
	c := dial(t, s)
	c.send("HEAD / HTTP/1.1\r\nHost: x\r\n\r\n" + get)
	resp, err := http.ReadResponse(c.br, &http.Request{Method: "HEAD"})
	if err != nil || resp.StatusCode != 200 || resp.ContentLength != 7 {
		t.Fatalf("HEAD: %v %+v", err, resp)
	}
	// The next response starts right after the head: no body in between.
	c.read("GET", 200, "okxxxxx", false)
}

func TestConnectionClose(t *testing.T) {
	s := start(t, Options{Status: 503})
	c := dial(t, s)
	// The second request is never answered.
	c.send("GET / HTTP/1.1\r\nConnection: close\r\n\r\n" + get)
	c.read("GET", 503, "ok", true)
	c.closed()
	served(t, s, 1)
}

func TestHTTP10(t *testing.T) {
	s := start(t, Options{})
	c := dial(t, s)
	c.send("GET / HTTP/1.0\r\n\r\n")
	c.read("GET", 200, "ok", true)
	c.closed()

	// Keep-alive asked: confirmed, and the connection stays open.
	c = dial(t, s)
	c.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
	resp, err := http.ReadResponse(c.br, &http.Request{Method: "GET"})
	if err != nil || resp.Close || resp.Header.Get("Connection") != "keep-alive" {
		t.Fatalf("%v %+v", err, resp)
	}
	_, _ = io.ReadAll(resp.Body)
	c.send("GET / HTTP/1.0\r\n\r\n")
	c.read("GET", 200, "ok", true)
}

func TestRequestBody(t *testing.T) {
	s := start(t, Options{})
	c := dial(t, s)
	// A body larger than gnet's read buffer, sent in pieces.
	body := strings.Repeat("b", 300<<10)
	c.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 307200\r\n\r\n" + body[:1000])
	c.send(body[1000:] + "PUT / HTTP/1.1\r\nContent-Length: 2\r\n\r\nxy" + get)
	c.read("POST", 200, "ok", false)
	c.read("PUT", 200, "ok", false)
	c.read("GET", 200, "ok", false)
}

func TestBadRequests(t *testing.T) {
	s := start(t, Options{})
	for _, tc := range []struct {
		req    string
		status int
	}{
		{"garbage\r\n\r\n", 400},
		// The request line alone is enough to know.
		{"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n", 400},
		{"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400},
		{"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 501},
		{"GET / HTTP/1.1\r\nX: " + strings.Repeat("a", MaxHeaderBytes+10), 431},
	} {
		c := dial(t, s)
		c.send(get + tc.req)
		c.read("GET", 200, "ok", false)
		c.read("GET", tc.status, "", true)
		c.closed()
	}
}

func TestDelay(t *testing.T) {
	const delay = 200 * time.Millisecond
	s := start(t, Options{Delay: delay})
	// Twenty connections on one loop, each asking at once: if the delay
	// blocked the loop, they would take 20 delays.
	const conns = 20
	t0 := time.Now()
	var wg sync.WaitGroup
	took := make([]time.Duration, conns)
	for i := range conns {
		c := dial(t, s)
		wg.Go(func() {
			t1 := time.Now()
			c.send(get)
			c.read("GET", 200, "ok", false)
			took[i] = time.Since(t1)
		})
	}
	wg.Wait()
	for i, d := range took {
		if d < delay {
			t.Fatalf("connection %d answered after %s, before the %s delay", i, d, delay)
		}
	}
	if d := time.Since(t0); d > 2*delay+300*time.Millisecond {
		t.Fatalf("%d delayed requests took %s in all: the loop was blocked", conns, d)
	}
	served(t, s, conns)
}

// TestDelayOrder sends requests on one connection at different times and
// in different batches: responses keep their order (a HEAD response read
// as a GET one, or the reverse, would fail to parse or mismatch).
func TestDelayOrder(t *testing.T) {
	const delay = 100 * time.Millisecond
	s := start(t, Options{Delay: delay})
	c := dial(t, s)
	t0 := time.Now()
	c.send(get)
	time.Sleep(20 * time.Millisecond)
	c.send("HEAD / HTTP/1.1\r\n\r\n" + get)
	time.Sleep(20 * time.Millisecond)
	c.send("HEAD / HTTP/1.1\r\nConnection: close\r\n\r\n")
	c.read("GET", 200, "ok", false)
	if d := time.Since(t0); d < delay {
		t.Fatalf("first response after %s", d)
	}
	c.read("HEAD", 200, "", false)
	c.read("GET", 200, "ok", false)
	c.read("HEAD", 200, "", true)
	if d := time.Since(t0); d < delay+40*time.Millisecond {
		t.Fatalf("last response after %s", d)
	}
	// Closed once the held responses are out.
	c.closed()
	served(t, s, 4)
}

func TestStall(t *testing.T) {
	const every, length = 500 * time.Millisecond, 200 * time.Millisecond
	s := start(t, Options{StallEvery: every, StallFor: length})
	c := dial(t, s)
	// Between stalls: at once.
	c.send(get)
	c.read("GET", 200, "ok", false)

	// Wait until 30 ms into the first stall, then ask twice.
	time.Sleep(every + 30*time.Millisecond - time.Since(s.start))
	t0 := time.Now()
	c.send(get)
	time.Sleep(10 * time.Millisecond)
	c.send("HEAD / HTTP/1.1\r\n\r\n")
	c.read("GET", 200, "ok", false)
	c.read("HEAD", 200, "", false)
	end := s.start.Add(every + length)
	if now := time.Now(); now.Before(end) || now.Sub(t0) < length-60*time.Millisecond {
		t.Fatalf("answered %s before the stall's end", end.Sub(now))
	}
	if late := time.Since(end); late > 100*time.Millisecond {
		t.Fatalf("answered %s after the stall's end", late)
	}
	served(t, s, 3)
}

func TestLoopsAndServed(t *testing.T) {
	s := start(t, Options{Loops: 4})
	const conns, perConn = 8, 50
	var wg sync.WaitGroup
	for range conns {
		c := dial(t, s)
		wg.Go(func() {
			for range perConn {
				c.send(get)
				c.read("GET", 200, "ok", false)
			}
		})
	}
	wg.Wait()
	served(t, s, conns*perConn)
}

// syncBuffer is a bytes.Buffer safe for the log goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestLogger(t *testing.T) {
	var log syncBuffer
	s := start(t, Options{Logger: &log})
	c := dial(t, s)
	c.send(get + get + get)
	for range 3 {
		c.read("GET", 200, "ok", false)
	}
	deadline := time.Now().Add(3 * time.Second)
	for !strings.Contains(log.String(), "total 3\n") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if first := strings.SplitN(log.String(), "\n", 2)[0]; first != "served 3 req/s total 3" {
		t.Fatalf("log %q", log.String())
	}
}

func TestStartErrors(t *testing.T) {
	s := start(t, Options{})
	for _, tc := range []struct {
		o      Options
		option bool // ErrOption, rather than a listen error
	}{
		{Options{Listen: s.Addr()}, false}, // in use
		{Options{Listen: "127.0.0.1"}, true},
		{Options{Listen: "192.0.2.1:0"}, false}, // not an address of this machine
		{Options{Listen: "127.0.0.1:0", Status: 99}, true},
		{Options{Listen: "127.0.0.1:0", Delay: -1}, true},
		{Options{Listen: "127.0.0.1:0", StallEvery: time.Second}, true},
		{Options{Listen: "127.0.0.1:0", StallEvery: time.Second, StallFor: time.Second}, true},
		{Options{Listen: "127.0.0.1:0", BodySize: MaxBodySize + 1}, true},
		{Options{Listen: "127.0.0.1:0", FailRate: 1.5}, true},
		{Options{Listen: "127.0.0.1:0", FailRate: -0.1}, true},
		{Options{Listen: "127.0.0.1:0", FailRate: math.NaN()}, true},
		{Options{Listen: "127.0.0.1:0", FailStatus: 100}, true},
		{Options{Listen: "127.0.0.1:0", FailEvery: time.Second}, true},
		{Options{Listen: "127.0.0.1:0", FailEvery: time.Second, FailFor: 2 * time.Second}, true},
		{Options{Listen: "127.0.0.1:0", RateLimit: -1}, true},
		{Options{Listen: "127.0.0.1:0", RateLimit: 2e9}, true},
		{Options{Listen: "127.0.0.1:0", Capacity: 1e-9}, true},
	} {
		s, err := Start(tc.o)
		if err == nil {
			s.Stop()
			t.Fatalf("%+v: started", tc.o)
		}
		if !strings.HasPrefix(err.Error(), "server: ") || errors.Is(err, ErrOption) != tc.option {
			t.Fatalf("%+v: %v", tc.o, err)
		}
	}
}

func TestStopTwice(t *testing.T) {
	s, err := Start(Options{Listen: "127.0.0.1:0", Loops: 2, Delay: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, s)
	c.send(get) // held when the server stops
	time.Sleep(20 * time.Millisecond)
	t0 := time.Now()
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d > 500*time.Millisecond {
		t.Fatalf("Stop took %s", d)
	}
	if _, err := net.Dial("tcp", s.Addr()); err == nil {
		t.Fatal("still listening")
	}
}
