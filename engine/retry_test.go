package engine

import (
	"bytes"
	"sort"
	"testing"
	"time"

	"github.com/barrage-load/barrage/proto"
)

// Retries and the breaker without sockets or timing: the backoff maths,
// the retry queue, a retry's bytes changing hands, and the breaker's
// state machine driven by an injected clock (step's now).

func retryOpts(r proto.Retry) *Options {
	o := &Options{Retry: &r, Seed: 42}
	fs, err := proto.ParseFailOn(proto.DefaultFailOn)
	if err != nil {
		panic(err)
	}
	o.fail = fs
	for c := 200; c < 400; c++ {
		o.okStatus[c] = true
	}
	return o
}

func TestBackoff(t *testing.T) {
	ms := int64(time.Millisecond)
	for _, tc := range []struct {
		name    string
		backoff string
		k       int
		want    int64
	}{
		{"first retry waits base", proto.BackoffExponential, 1, 50 * ms},
		{"second doubles", proto.BackoffExponential, 2, 100 * ms},
		{"fifth is base*16", proto.BackoffExponential, 5, 800 * ms},
		{"sixth would be 1.6s: under the cap", proto.BackoffExponential, 6, 1600 * ms},
		{"seventh would be 3.2s: capped at max_delay", proto.BackoffExponential, 7, 2000 * ms},
		{"a huge k neither overflows nor passes the cap", proto.BackoffExponential, 200, 2000 * ms},
		{"constant stays at base", proto.BackoffConstant, 9, 50 * ms},
	} {
		rt := newRetrier(retryOpts(proto.Retry{Max: 11, Backoff: tc.backoff, Base: proto.Duration(50 * time.Millisecond),
			MaxDelay: proto.Duration(2 * time.Second), Jitter: proto.JitterNone}), 0)
		if got := rt.delay(tc.k); got != tc.want {
			t.Errorf("%s: delay(%d) = %v, want %v", tc.name, tc.k, time.Duration(got), time.Duration(tc.want))
		}
	}
}

func TestJitter(t *testing.T) {
	const n = 200000
	d := int64(100 * time.Millisecond)
	for _, tc := range []struct {
		jitter string
		lo, hi int64   // every delay in [lo, hi]
		mean   float64 // expected mean
	}{
		{proto.JitterFull, 0, d, float64(d) / 2},
		{proto.JitterEqual, d / 2, d, float64(d) * 3 / 4},
		{proto.JitterNone, d, d, float64(d)},
	} {
		o := retryOpts(proto.Retry{Max: 3, Backoff: proto.BackoffConstant, Base: proto.Duration(d), MaxDelay: proto.Duration(d), Jitter: proto.Jitter(tc.jitter)})
		rt := newRetrier(o, 0)
		var sum float64
		var seen [10]int // deciles of [lo, hi]
		for i := 0; i < n; i++ {
			x := rt.delay(1)
			if x < tc.lo || x > tc.hi {
				t.Fatalf("%s: delay %v outside [%v, %v]", tc.jitter, time.Duration(x), time.Duration(tc.lo), time.Duration(tc.hi))
			}
			sum += float64(x)
			if tc.hi > tc.lo {
				seen[min(9, int(10*(x-tc.lo)/(tc.hi-tc.lo)))]++
			}
		}
		// The stream is deterministic (seeded): these are exact
		// properties of one draw sequence, not flaky statistics.
		if m := sum / n; m < 0.99*tc.mean || m > 1.01*tc.mean {
			t.Errorf("%s: mean %v, want %v", tc.jitter, time.Duration(m), time.Duration(tc.mean))
		}
		for i, c := range seen {
			if tc.hi > tc.lo && (c < n/10*95/100 || c > n/10*105/100) {
				t.Errorf("%s: decile %d has %d of %d draws: not uniform", tc.jitter, i, c, n)
			}
		}
		// The same seed and loop draw the same delays; another loop
		// draws others.
		a, b, c := newRetrier(o, 3), newRetrier(o, 3), newRetrier(o, 4)
		same, differ := true, false
		for i := 0; i < 100; i++ {
			x, y, z := a.delay(1), b.delay(1), c.delay(1)
			same = same && x == y
			differ = differ || x != z
		}
		if !same || tc.jitter != proto.JitterNone && !differ {
			t.Errorf("%s: same seed same draws %v, other loop other draws %v", tc.jitter, same, differ)
		}
	}
}

// TestRetryQueue: the heap gives retries back in due order; entries are
// reused, and a full queue says so.
func TestRetryQueue(t *testing.T) {
	rt := newRetrier(retryOpts(proto.Retry{Max: 3, Base: 1, MaxDelay: 1}), 0)
	var dues []int64
	for i := 0; i < 1000; i++ {
		k := rt.alloc()
		due := int64((i * 7919) % 1009)
		rt.ents[k].due = due
		dues = append(dues, due)
		rt.push(k)
	}
	sort.Slice(dues, func(i, j int) bool { return dues[i] < dues[j] })
	for i, want := range dues {
		if got := rt.top().due; got != want {
			t.Fatalf("pop %d: due %d, want %d", i, got, want)
		}
		rt.release(rt.pop())
	}
	if rt.pending() || len(rt.free) != 1000 {
		t.Fatalf("pending %v, %d free", rt.pending(), len(rt.free))
	}
	// Past the high-water mark nothing is made: a push and a pop cost no
	// allocation.
	if a := testing.AllocsPerRun(1000, func() {
		k := rt.alloc()
		rt.ents[k].due = 5
		rt.push(k)
		rt.release(rt.pop())
	}); a != 0 {
		t.Fatalf("%v allocations per queued retry", a)
	}
	// Full: alloc refuses.
	rt.ents = make([]retryEntry, MaxRetryQueue)
	rt.free = rt.free[:0]
	if rt.alloc() != -1 {
		t.Fatal("a full queue gave an entry")
	}
}

// testLoop is a loop with a retrier and n connection slots of depth 2,
// enough for requeue and resend (no engine running, no sockets).
func testLoop(t *testing.T, fixed []byte) (*loop, []*conn) {
	t.Helper()
	return testLoopB(t, fixed)
}

func testLoopB(t testing.TB, fixed []byte) (*loop, []*conn) {
	o := retryOpts(proto.Retry{Max: 3, Backoff: proto.BackoffConstant, Base: proto.Duration(time.Millisecond),
		MaxDelay: proto.Duration(time.Millisecond), Jitter: proto.JitterNone})
	o.Timeout = time.Second
	e := &Engine{opts: *o}
	l := &loop{e: e, fixed: fixed}
	l.rt = newRetrier(&e.opts, 0)
	l.st = proto.NewStats(false)
	l.st.EndToEnd = proto.NewHistogram()
	var cs []*conn
	for i := 0; i < 2; i++ {
		cs = append(cs, &conn{ring: make([]inflight, 2), sentB: make([][]byte, 2), own: make([][]byte, 2), origin: make([]int64, 2)})
	}
	return l, cs
}

// TestRetryBytesChangeHands: a rendered request's bytes are kept by its
// slot, move to the queue when it fails, and are written again, the
// same, on another connection; its end-to-end latency counts from its
// first attempt; buffers are exchanged, never made, in the steady state.
func TestRetryBytesChangeHands(t *testing.T) {
	l, cs := testLoop(t, nil)
	a, b := cs[0], cs[1]
	req := []byte("GET /x?seq=1 HTTP/1.1\r\nHost: h\r\n\r\n")
	cycle := func(now int64) {
		// The request is rendered into a's write buffer and kept.
		start := len(a.wbuf)
		a.wbuf = append(a.wbuf, req...)
		l.keep(a, start)
		a.push(now, now, 0)
		a.wbuf = a.wbuf[:0]
		// It is answered 503: a retry is queued with its bytes.
		i := a.head
		f := a.pop()
		l.answered(a, i, f, 503, now+10)
		if !l.rt.pending() {
			t.Fatal("no retry queued for a 503")
		}
		// It goes again on b, once its backoff is over.
		if n := l.sendRetries(b, now+10+int64(time.Millisecond), stateClosed, 2); n != 1 {
			t.Fatalf("%d retries sent", n)
		}
		if !bytes.Equal(b.wbuf, req) {
			t.Fatalf("retry wrote %q, want %q", b.wbuf, req)
		}
		b.wbuf = b.wbuf[:0]
		// The retry succeeds: one end-to-end latency from the first send.
		j := b.head
		g := b.pop()
		if g.attempt != 1 || b.originOf(j, g) != now {
			t.Fatalf("retry attempt %d origin %d, want 1 and %d", g.attempt, b.originOf(j, g), now)
		}
		l.answered(b, j, g, 200, now+int64(3*time.Millisecond))
	}
	cycle(0)
	if l.st.RetriedOK != 1 || l.st.Retries[proto.Retry5xx] != 1 || l.st.Requeued != 1 || l.st.EndToEnd.TotalCount() != 1 ||
		l.st.EndToEnd.Max() < 2900 || l.st.EndToEnd.Max() > 3100 {
		t.Fatalf("after one cycle: %+v, e2e max %dµs", l.st.Retries, l.st.EndToEnd.Max())
	}
	l.dirty = l.dirty[:0]
	b.dirty = false
	if allocs := testing.AllocsPerRun(1000, func() {
		cycle(0)
		l.dirty = l.dirty[:0]
		b.dirty = false
	}); allocs != 0 {
		t.Fatalf("%v allocations per retried request", allocs)
	}
}

// TestRetryExhausted: the last allowed attempt's failure ends the
// request (exhausted), with its end-to-end latency; a failure of a kind
// not listed is not retried.
func TestRetryExhausted(t *testing.T) {
	l, cs := testLoop(t, []byte("GET / HTTP/1.1\r\n\r\n"))
	c := cs[0]
	c.pushAttempt(0, 0, 0, 2, 0) // the third attempt (max 2 retries)
	i := c.head
	l.answered(c, i, c.pop(), 503, 1000)
	c.push(0, 0, 0)
	i = c.head
	l.answered(c, i, c.pop(), 404, 1000) // 4xx is not in the defaults
	if l.st.Exhausted != 1 || l.st.Requeued != 0 || l.rt.pending() || l.st.EndToEnd.TotalCount() != 2 {
		t.Fatalf("exhausted %d requeued %d pending %v e2e %d", l.st.Exhausted, l.st.Requeued, l.rt.pending(), l.st.EndToEnd.TotalCount())
	}
	// A connection reset with two in flight: both retried (reset is
	// listed), counted as two calls and two failures for the breaker.
	c.push(0, 0, 0)
	c.push(0, 0, 0)
	l.failedAll(c, proto.ErrReset, 500)
	if len(l.rt.heap) != 2 || l.rt.calls != 4 || l.rt.fails != 3 {
		t.Fatalf("after a reset: %d queued, %d calls, %d failures", len(l.rt.heap), l.rt.calls, l.rt.fails)
	}
	// The run ends with them waiting: dropped (end), each a latency.
	l.dropAll(l.st, proto.RetryDropEnd, 900)
	if l.st.RetryDropped[proto.RetryDropEnd] != 2 || l.st.EndToEnd.TotalCount() != 4 {
		t.Fatalf("dropped %v, e2e %d", l.st.RetryDropped, l.st.EndToEnd.TotalCount())
	}
	if l.st.Requeued != l.st.TotalRetries()+l.st.TotalRetryDropped() {
		t.Fatalf("requeued %d != retried %d + dropped %d", l.st.Requeued, l.st.TotalRetries(), l.st.TotalRetryDropped())
	}
}

// bkHarness drives a breaker with an injected clock: calls and failures
// are published as a loop would, step is called at the times given.
type bkHarness struct {
	t  *testing.T
	b  *breaker
	e  *Engine
	cs []uint64 // per loop: calls, failures so far
	fs []uint64
}

func newBkHarness(t *testing.T, cfg proto.Breaker) *bkHarness {
	return &bkHarness{t: t, b: newBreaker(cfg, false, 2), e: &Engine{}, cs: make([]uint64, 2), fs: make([]uint64, 2)}
}

// ended publishes calls ended on loop i, failed of them failures.
func (h *bkHarness) ended(i int, calls, failed uint64) {
	h.cs[i] += calls
	h.fs[i] += failed
	h.b.slots[i].calls.Store(h.cs[i])
	h.b.slots[i].fails.Store(h.fs[i])
}

func (h *bkHarness) at(ms int64, want uint32) {
	h.t.Helper()
	h.b.step(h.e, ms*int64(time.Millisecond))
	if got := h.b.state.Load(); got != want {
		h.t.Fatalf("at %dms: state %d, want %d (events %+v)", ms, got, want, h.b.events)
	}
}

func TestBreakerStateMachine(t *testing.T) {
	cfg := proto.Breaker{Window: proto.Duration(time.Second), MinCalls: 10, ErrorRate: 0.5,
		OpenFor: proto.Duration(500 * time.Millisecond), HalfOpenProbes: 2}
	h := newBkHarness(t, cfg)
	b := h.b
	// 9 failures: under min_calls, stays closed.
	h.ended(0, 9, 9)
	h.at(50, stateClosed)
	// A second of successes later the failures have left the window: one
	// more failure is 1 call, not 10.
	h.at(1300, stateClosed)
	h.ended(1, 1, 1)
	h.at(1350, stateClosed)
	// 20 calls over both loops, 9 failed (45%): closed; 2 more failures
	// make 11 of 22 (50%): open.
	h.ended(0, 10, 4)
	h.ended(1, 9, 4)
	h.at(1400, stateClosed)
	h.ended(1, 2, 2)
	h.at(1450, stateOpen)
	if ev := b.events[0]; ev.State != proto.BreakerOpen || ev.Calls != 22 || ev.Failed != 11 || ev.At != 1450*time.Millisecond {
		t.Fatalf("opening event %+v", ev)
	}
	// Open for 500ms: no probe, then half-open with 2 probes.
	if b.permit() != 0 {
		t.Fatal("a probe while open")
	}
	h.at(1900, stateOpen)
	h.at(1950, stateHalfOpen)
	g1, g2 := b.permit(), b.permit()
	if g1 == 0 || g1 != g2 || b.permit() != 0 {
		t.Fatalf("probes %d %d, a third given", g1, g2)
	}
	b.unpermit() // one taken and not sent goes back
	if b.permit() != g1 {
		t.Fatal("the probe given back was not given again")
	}
	// One probe fails: open again.
	b.probed(g1, false)
	h.at(2000, stateHalfOpen)
	b.probed(g1, true)
	h.at(2050, stateOpen)
	// Next half-open: a late outcome of the last one's probe is ignored;
	// two successes close it.
	h.at(2550, stateHalfOpen)
	g3 := b.permit()
	if g3 == g1 {
		t.Fatal("the half-opens share a generation")
	}
	b.probed(g1, true) // stale
	b.probed(g3, false)
	h.at(2600, stateHalfOpen)
	b.probed(b.permit(), false)
	h.at(2650, stateClosed)
	// Closed with a fresh window: what failed before does not count.
	h.ended(0, 5, 5)
	h.at(2700, stateClosed)
	var states []string
	for _, ev := range b.events {
		states = append(states, ev.State)
	}
	want := []string{"open", "half-open", "open", "half-open", "closed"}
	if len(states) != len(want) {
		t.Fatalf("transitions %v, want %v", states, want)
	}
	for i := range want {
		if states[i] != want[i] {
			t.Fatalf("transitions %v, want %v", states, want)
		}
	}
	// The collector takes the events of an interval; later ones wait.
	st := proto.NewStats(false)
	b.take(st, 2100*time.Millisecond, false)
	if len(st.Breaker) != 3 || len(b.events) != 2 {
		t.Fatalf("took %d, left %d", len(st.Breaker), len(b.events))
	}
	b.take(st, 0, true)
	if len(st.Breaker) != 5 || len(b.events) != 0 {
		t.Fatalf("final take: %d taken, %d left", len(st.Breaker), len(b.events))
	}
}
