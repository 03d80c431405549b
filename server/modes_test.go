package server

import (
	"bufio"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// statuses sends count pipelined GETs on one connection and returns the
// statuses of the responses, in order.
func statuses(t *testing.T, s *Server, count int) []int {
	t.Helper()
	c := dial(t, s)
	c.send(strings.Repeat(get, count))
	got := make([]int, count)
	for i := range got {
		resp, err := http.ReadResponse(c.br, &http.Request{Method: "GET"})
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		got[i] = resp.StatusCode
	}
	return got
}

func countOf(s []int, v int) int {
	n := 0
	for _, x := range s {
		if x == v {
			n++
		}
	}
	return n
}

// TestFailRate checks the share of failures and that a seed replays the
// same draws: the generator is per loop and deterministic.
func TestFailRate(t *testing.T) {
	const n = 2000
	a := statuses(t, start(t, Options{FailRate: 0.3, Seed: 7}), n)
	b := statuses(t, start(t, Options{FailRate: 0.3, Seed: 7}), n)
	c := statuses(t, start(t, Options{FailRate: 0.3, Seed: 8, FailStatus: 500}), n)
	if !slices.Equal(a, b) {
		t.Fatal("the same seed gave different failures")
	}
	// 2000 draws at p = 0.3: the standard deviation is 20.5; 5 of them
	// either side is a bound a correct generator never crosses.
	if f := countOf(a, 503); f < 500 || f > 700 || f+countOf(a, 200) != n {
		t.Fatalf("%d failures of %d at fail rate 0.3", f, n)
	}
	if f := countOf(c, 500); f < 500 || f > 700 || f+countOf(c, 200) != n {
		t.Fatalf("seed 8: %d failures (500) of %d", f, n)
	}
	cFails := make([]int, n)
	for i, v := range c {
		cFails[i] = map[int]int{500: 503, 200: 200}[v]
	}
	if slices.Equal(a, cFails) {
		t.Fatal("seeds 7 and 8 failed the same responses")
	}
	if all := statuses(t, start(t, Options{FailRate: 1}), 50); countOf(all, 503) != 50 {
		t.Fatalf("fail rate 1: %v", all)
	}
}

func TestInWindow(t *testing.T) {
	const ms = time.Millisecond
	for _, tc := range []struct {
		t    time.Duration
		want bool
	}{
		{0, false},          // the first window is one period after the start
		{99 * ms, false},    // just before it
		{100 * ms, true},    // its first instant
		{119 * ms, true},    // inside
		{120 * ms, false},   // its end is outside
		{305 * ms, true},    // the third window
		{1000*ms + 1, true}, // the tenth
	} {
		if got := inWindow(tc.t, 100*ms, 20*ms); got != tc.want {
			t.Errorf("inWindow(%s) = %v", tc.t, got)
		}
	}
}

// TestOutage asks between outages and inside one: the server's clock
// decides, with a quarter of a second either side of each instant.
func TestOutage(t *testing.T) {
	const every, length = time.Second, 500 * time.Millisecond
	s := start(t, Options{FailEvery: every, FailFor: length, FailStatus: 502})
	c := dial(t, s)
	at := func(d time.Duration, want int) {
		t.Helper()
		time.Sleep(time.Until(s.start.Add(d)))
		c.send(get)
		resp, err := http.ReadResponse(c.br, &http.Request{Method: "GET"})
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != want {
			t.Fatalf("at %s: status %d, want %d", d, resp.StatusCode, want)
		}
	}
	at(250*time.Millisecond, 200)
	at(1250*time.Millisecond, 502)
	at(1750*time.Millisecond, 200)
	served(t, s, 3)
}

// TestGCRA drives the shared token bucket with a clock of its own.
func TestGCRA(t *testing.T) {
	const ms = time.Millisecond
	g := newGCRA(100) // 10 ms a token, a burst of 10
	allowed := func(now time.Duration, k int) int {
		n := 0
		for range k {
			if g.allow(now) {
				n++
			}
		}
		return n
	}
	// A full bucket: the burst, then nothing at the same instant.
	if n := allowed(0, 50); n != 10 {
		t.Fatalf("burst: %d allowed, want 10", n)
	}
	// 10 ms later, one more token.
	if n := allowed(10*ms, 5); n != 1 {
		t.Fatalf("after 10ms: %d allowed, want 1", n)
	}
	// A client at the rate is never refused: one request every 10 ms.
	for i := range 100 {
		if !g.allow(time.Duration(20+10*i) * ms) {
			t.Fatalf("request %d at the rate refused", i)
		}
	}
	// An idle second refills the burst, not more.
	if n := allowed(2*time.Second, 50); n != 10 {
		t.Fatalf("after idling: %d allowed, want 10", n)
	}
	// A rate that is no whole number of picoseconds (30/s: 33.3 ms,
	// a burst of 3) over 100 s of requests every millisecond: the burst
	// plus 30 a second, give or take the last one.
	g = newGCRA(30)
	n := 0
	for i := range 100000 {
		if g.allow(time.Duration(i) * ms) {
			n++
		}
	}
	if n < 3001 || n > 3003 {
		t.Fatalf("30/s over 100 s: %d allowed, want 3000 + a burst of 3", n)
	}
}

// TestRateLimit: 100 req/s with a burst of 10, and 60 requests at once.
func TestRateLimit(t *testing.T) {
	s := start(t, Options{RateLimit: 100})
	got := statuses(t, s, 60)
	ok := countOf(got, 200)
	// The requests may come in more than one read, a few milliseconds
	// apart; each 10 ms earns one more.
	if ok < 10 || ok > 13 || ok+countOf(got, 429) != 60 {
		t.Fatalf("%d of 60 allowed at 100/s with a burst of 10: %v", ok, got)
	}
	if !slices.Equal(got[:10], slices.Repeat([]int{200}, 10)) {
		t.Fatalf("the burst did not come first: %v", got)
	}
	served(t, s, 60)
}

// TestRateLimitAcrossLoops: the limit is the server's, not each loop's.
func TestRateLimitAcrossLoops(t *testing.T) {
	s := start(t, Options{RateLimit: 40, Loops: 4}) // a burst of 4
	var mu sync.Mutex
	var all []int
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			got := statuses(t, s, 5)
			mu.Lock()
			all = append(all, got...)
			mu.Unlock()
		})
	}
	wg.Wait()
	// 40 requests within a few ms: the burst of 4 and maybe one more
	// token per 25 ms; per-loop buckets would have let 4 loops x 1 + ...
	if ok := countOf(all, 200); ok < 4 || ok > 6 {
		t.Fatalf("%d of 40 allowed over 4 loops at 40/s with a burst of 4", ok)
	}
}

// TestCapacity: 100 responses a second over the whole server, in order
// on each connection, whatever the loops.
func TestCapacity(t *testing.T) {
	s := start(t, Options{Capacity: 100, Loops: 2})
	t0 := time.Now()
	var wg sync.WaitGroup
	for range 4 {
		c := dial(t, s)
		wg.Go(func() {
			// HEADs between GETs: an answer out of order would not parse
			// or would mismatch.
			c.send(strings.Repeat(get+"HEAD / HTTP/1.1\r\n\r\n", 5))
			for range 5 {
				c.read("GET", 200, "ok", false)
				c.read("HEAD", 200, "", false)
			}
		})
	}
	wg.Wait()
	// 40 responses at 100/s: the last is served 400 ms after the first
	// request arrived, at the earliest.
	if d := time.Since(t0); d < 390*time.Millisecond {
		t.Fatalf("40 responses at a capacity of 100/s took %s", d)
	}
	served(t, s, 40)
}

func TestQueueReserve(t *testing.T) {
	const ms = time.Millisecond
	q := newQueue(1000) // 1 ms each
	// An idle queue: served one service time after arrival.
	f := q.reserve(10*ms, 3)
	if got := []time.Duration{q.at(f, 0), q.at(f, 1), q.at(f, 2)}; !slices.Equal(got, []time.Duration{11 * ms, 12 * ms, 13 * ms}) {
		t.Fatalf("idle queue: %v", got)
	}
	// Arrivals while it is busy wait for the ones before.
	if got := q.at(q.reserve(11*ms, 1), 0); got != 14*ms {
		t.Fatalf("busy queue: %s", got)
	}
	// After it has drained, back to one service time.
	if got := q.at(q.reserve(50*ms, 1), 0); got != 51*ms {
		t.Fatalf("drained queue: %s", got)
	}
}

func TestWakeHeap(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h wakeHeap
	var want []time.Duration
	for range 1000 {
		d := time.Duration(r.IntN(500))
		h.push(wake{due: d})
		want = append(want, d)
		if r.IntN(3) == 0 {
			// Pop the minimum now and then, as releaseDue does.
			slices.Sort(want)
			if w := h.pop(); w.due != want[0] {
				t.Fatalf("popped %d, want %d", w.due, want[0])
			}
			want = want[1:]
		}
	}
	slices.Sort(want)
	got := h.popDue(250, nil)
	k := 0
	for k < len(want) && want[k] <= 250 {
		k++
	}
	if len(got) != k {
		t.Fatalf("popDue(250): %d wakes, want %d", len(got), k)
	}
	for i, w := range got {
		if w.due != want[i] {
			t.Fatalf("popDue order: %d at %d, want %d", w.due, i, want[i])
		}
	}
}

// TestClose: HTTP/1.0, no Content-Length, the body ends with the
// connection, and nothing after the first request is answered.
func TestClose(t *testing.T) {
	s := start(t, Options{Close: true, BodySize: 7})
	c := dial(t, s)
	c.send(get + get)
	resp, err := http.ReadResponse(c.br, &http.Request{Method: "GET"})
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil || string(body) != "okxxxxx" || resp.ProtoMinor != 0 || resp.ContentLength != -1 || !resp.Close {
		t.Fatalf("%v %q %+v", err, body, resp)
	}
	c.closed()
	served(t, s, 1)

	// A failure is close-delimited too, with an empty body.
	s = start(t, Options{Close: true, FailRate: 1})
	c = dial(t, s)
	c.send("HEAD / HTTP/1.1\r\n\r\n")
	resp, err = http.ReadResponse(c.br, &http.Request{Method: "HEAD"})
	if err != nil || resp.StatusCode != 503 || resp.ProtoMinor != 0 {
		t.Fatalf("%v %+v", err, resp)
	}
	c.closed()
}

// TestCloseLargeBody: a body larger than the socket takes is sent whole
// before the close, with a client that starts reading late; a close
// while gnet still held some would cut it, and with no Content-Length
// the client could not tell.
func TestCloseLargeBody(t *testing.T) {
	const size = 16 << 20
	for _, o := range []Options{{Close: true, BodySize: size}, {BodySize: size}} {
		s := start(t, o)
		c := dial(t, s)
		c.send("GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
		time.Sleep(300 * time.Millisecond)
		resp, err := http.ReadResponse(c.br, &http.Request{Method: "GET"})
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		if err != nil || n != size {
			t.Fatalf("close %v: %d of %d body bytes: %v", o.Close, n, size, err)
		}
		c.closed()
	}
}

// TestSilent: requests are read and never answered, and the connection
// stays open.
func TestSilent(t *testing.T) {
	s := start(t, Options{Silent: true})
	c := dial(t, s)
	c.send(get + get)
	_ = c.c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	b, err := c.br.ReadByte()
	if err == nil || !isTimeout(err) {
		t.Fatalf("silent server: %q %v", b, err)
	}
	_ = c.c.SetDeadline(time.Now().Add(5 * time.Second))
	c.send(get) // still open: the write goes through
	if s.Served() != 0 {
		t.Fatalf("served %d", s.Served())
	}
}

func isTimeout(err error) bool {
	t, ok := err.(interface{ Timeout() bool })
	return ok && t.Timeout()
}

// TestModesWithDelay: the misbehaviours compose with held responses.
func TestModesWithDelay(t *testing.T) {
	s := start(t, Options{Delay: 50 * time.Millisecond, FailRate: 0.5, Close: true})
	c := dial(t, s)
	t0 := time.Now()
	c.send(get)
	resp, err := http.ReadResponse(bufio.NewReader(c.br), &http.Request{Method: "GET"})
	if err != nil || (resp.StatusCode != 200 && resp.StatusCode != 503) {
		t.Fatalf("%v %+v", err, resp)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	if d := time.Since(t0); d < 50*time.Millisecond {
		t.Fatalf("answered after %s", d)
	}
	served(t, s, 1)
}
