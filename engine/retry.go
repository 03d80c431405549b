package engine

import (
	"math/bits"

	"github.com/barrage-load/barrage/proto"
)

// Retries (Options.Retry): a request whose attempt fails with a listed
// kind is sent again, the same bytes, after a backoff, on whichever of
// the loop's connections is free when the backoff is over.
//
// What a retry resends. Each in-flight slot of a connection keeps what
// its request sent: the loop's fixed request (a slice header, no copy;
// those bytes never change) or a copy of the rendered bytes in a buffer
// the slot owns. A failure moves that buffer to a queue entry and gives
// the slot the entry's spare buffer in exchange; a resend moves it back
// into the slot it goes out on. Buffers change hands, they are never
// made per retry: a loop holds as many as its slots plus the most
// retries that ever waited at once (made while that high-water mark
// rises, then reused). Copying costs one memcpy of the request per send
// with retries on (measured in BENCHMARKS.md against rendering again
// from a saved renderer state, which would cost a whole render per
// retry: ~800 instructions for the flash-sale mix against ~40 for the
// copy).
//
// The queue is a binary min-heap of entry indices by due time (jitter
// makes due times unordered), in slices that grow to the high-water mark
// and stay there: no allocation per retry in the steady state.

// MaxRetryQueue bounds the retries one loop holds waiting at once; a
// failure that finds the queue full is not retried
// (proto.RetryDropFull, counted).
const MaxRetryQueue = 1 << 18

// Jitter kinds, compiled.
const (
	jitterNone = iota
	jitterFull
	jitterEqual
)

// retryEntry is one retry waiting for its backoff to end.
type retryEntry struct {
	// due is when it may go (ns since the epoch): its attempt's intended
	// time. origin is the request's first attempt's intended time (open
	// model) or send time (closed): end-to-end latency counts from it.
	due, origin int64
	// bytes is what to send again: in own, or the loop's fixed request.
	// own is the entry's buffer (a spare when bytes is elsewhere).
	bytes, own []byte
	req        int32
	// attempt is the attempts made so far (1 after the first failed).
	attempt uint8
	cause   proto.RetryCause
}

// retrier is one loop's retry queue and its share of the breaker's
// counting. Only its loop touches it.
type retrier struct {
	// on: retries are made (else only the breaker counts).
	on   bool
	max  uint8
	exp  bool
	base int64
	cap  int64 // max_delay
	jit  uint8
	rng  uint64
	fail *proto.FailSet
	// ok is the success set (RetriedOK).
	ok *[proto.MaxStatus]bool

	ents []retryEntry
	free []int32
	heap []int32

	// The breaker's counting: calls ended and those that failed with a
	// listed kind, since the start; published to the breaker's slot of
	// this loop at most every breaker tick / 2 (see loop.publish).
	calls, fails uint64
}

func newRetrier(o *Options, idx int) *retrier {
	rt := &retrier{fail: &o.fail, ok: &o.okStatus}
	rt.rng = splitmix64(o.Seed ^ splitmix64(uint64(idx)+0x5eed))
	if r := o.Retry; r != nil {
		rt.on = true
		rt.max = uint8(r.Max - 1) // retries: the first attempt is not one
		rt.exp = r.Backoff != proto.BackoffConstant
		rt.base, rt.cap = int64(r.Base), int64(r.MaxDelay)
		switch r.Jitter {
		case proto.JitterFull:
			rt.jit = jitterFull
		case proto.JitterEqual:
			rt.jit = jitterEqual
		}
	}
	return rt
}

func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// below returns a uniform integer in [0, n] from the loop's stream.
func (rt *retrier) below(n int64) int64 {
	rt.rng += 0x9e3779b97f4a7c15
	hi, _ := bits.Mul64(splitmix64(rt.rng), uint64(n)+1)
	return int64(hi)
}

// delay is the backoff before retry number k (1 for the first): base,
// doubled per retry (exponential), capped at max_delay, then jittered.
func (rt *retrier) delay(k int) int64 {
	d := rt.base
	if rt.exp && k > 1 {
		if s := k - 1; s >= 62 || d > rt.cap>>s {
			d = rt.cap
		} else {
			d <<= s
		}
	}
	d = min(d, rt.cap)
	switch rt.jit {
	case jitterFull:
		d = rt.below(d)
	case jitterEqual:
		d = d/2 + rt.below(d-d/2)
	}
	return d
}

// pending reports whether a retry waits.
func (rt *retrier) pending() bool { return len(rt.heap) > 0 }

// top is the retry due first.
func (rt *retrier) top() *retryEntry { return &rt.ents[rt.heap[0]] }

// alloc returns a free entry's index, or -1 when the queue is full.
func (rt *retrier) alloc() int32 {
	if n := len(rt.free); n > 0 {
		k := rt.free[n-1]
		rt.free = rt.free[:n-1]
		return k
	}
	if len(rt.ents) >= MaxRetryQueue {
		return -1
	}
	rt.ents = append(rt.ents, retryEntry{})
	return int32(len(rt.ents) - 1)
}

// push puts entry k in the heap.
func (rt *retrier) push(k int32) {
	h := append(rt.heap, k)
	i := len(h) - 1
	due := rt.ents[k].due
	for i > 0 {
		p := (i - 1) / 2
		if rt.ents[h[p]].due <= due {
			break
		}
		h[i] = h[p]
		i = p
	}
	h[i] = k
	rt.heap = h
}

// pop takes the top entry out of the heap and returns its index; the
// caller frees it (release) once done with it.
func (rt *retrier) pop() int32 {
	h := rt.heap
	k := h[0]
	n := len(h) - 1
	last := h[n]
	h = h[:n]
	if n > 0 {
		due := rt.ents[last].due
		i := 0
		for {
			c := 2*i + 1
			if c >= n {
				break
			}
			if c+1 < n && rt.ents[h[c+1]].due < rt.ents[h[c]].due {
				c++
			}
			if rt.ents[h[c]].due >= due {
				break
			}
			h[i] = h[c]
			i = c
		}
		h[i] = last
	}
	rt.heap = h
	return k
}

// release frees entry k (its own buffer stays with it, a spare).
func (rt *retrier) release(k int32) {
	rt.ents[k].bytes = nil
	rt.free = append(rt.free, k)
}

// ---- the loop's side (on the loop) ----

// keep records what the request about to be pushed on c sent (its bytes
// from start in c.wbuf), for a retry to send again.
func (l *loop) keep(c *conn, start int) {
	i := c.tail()
	if l.fixed != nil {
		c.sentB[i] = l.fixed
		return
	}
	c.own[i] = append(c.own[i][:0], c.wbuf[start:]...)
	c.sentB[i] = c.own[i]
}

// origin is when the request of attempt f (in slot i of c) was first
// meant to go: end-to-end latency counts from it.
func (c *conn) originOf(i int, f inflight) int64 {
	if f.attempt == 0 {
		return f.intended
	}
	return c.origin[i]
}

// answered is the retry and breaker side of a response to the attempt f
// that was in slot i of c: count it for the breaker; retry it if its
// status is listed and attempts are left; else end the request.
func (l *loop) answered(c *conn, i int, f inflight, code int, now int64) {
	rt := l.rt
	failed := rt.fail.Status[code]
	rt.calls++
	if failed {
		rt.fails++
	}
	if f.probe != 0 {
		l.e.bk.probed(f.probe, failed)
	}
	if !rt.on {
		return
	}
	st := l.st
	if failed && int(f.attempt) < int(rt.max) {
		l.requeue(c, i, f, proto.StatusCause(code), now)
		return
	}
	l.record(st.EndToEnd, now-c.originOf(i, f))
	if f.attempt > 0 && rt.ok[code] {
		st.RetriedOK++
	}
	if failed {
		st.Exhausted++
	}
}

// failedAll is the retry and breaker side of the connection c closing
// with its requests in flight failed as kind: count each for the
// breaker; retry those with attempts left when kind is listed; end the
// others.
func (l *loop) failedAll(c *conn, kind proto.ErrKind, now int64) {
	rt := l.rt
	failed := rt.fail.Kinds[kind]
	rt.calls += uint64(c.n)
	if failed {
		rt.fails += uint64(c.n)
	}
	st := l.st
	for j := 0; j < c.n; j++ {
		i := c.slot(j)
		f := c.ring[i]
		if f.probe != 0 {
			l.e.bk.probed(f.probe, failed)
		}
		if !rt.on {
			continue
		}
		if failed && int(f.attempt) < int(rt.max) {
			l.requeue(c, i, f, proto.KindCause(kind), now)
			continue
		}
		l.record(st.EndToEnd, now-c.originOf(i, f))
		if failed {
			st.Exhausted++
		}
	}
}

// requeue queues a retry of the attempt f that failed in slot i of c for
// cause: its bytes move to the entry. It is dropped instead (the request
// ends) while the breaker is open or when the queue is full.
func (l *loop) requeue(c *conn, i int, f inflight, cause proto.RetryCause, now int64) {
	rt, st := l.rt, l.st
	st.Requeued++
	origin := c.originOf(i, f)
	if bk := l.e.bk; bk != nil && bk.state.Load() == stateOpen {
		st.RetryDropped[proto.RetryDropCircuit]++
		l.record(st.EndToEnd, now-origin)
		return
	}
	k := rt.alloc()
	if k < 0 {
		st.RetryDropped[proto.RetryDropFull]++
		l.record(st.EndToEnd, now-origin)
		return
	}
	e := &rt.ents[k]
	e.attempt = f.attempt + 1
	e.due = now + rt.delay(int(e.attempt))
	e.origin, e.req, e.cause = origin, f.req, cause
	e.bytes, c.sentB[i] = c.sentB[i], nil
	e.own, c.own[i] = c.own[i], e.own
	rt.push(k)
}

// resend writes retry k on c (which has a free slot): the entry's bytes
// go into the slot, the slot's spare buffer to the entry. probe marks it
// a breaker probe (0: none).
func (l *loop) resend(c *conn, k int32, now int64, probe uint8) {
	rt, st := l.rt, l.st
	e := &rt.ents[k]
	i := c.tail()
	c.wbuf = append(c.wbuf, e.bytes...)
	c.sentB[i] = e.bytes
	c.own[i], e.own = e.own, c.own[i]
	c.origin[i] = e.origin
	c.pushAttempt(e.due, now, e.req, e.attempt, probe)
	rt.release(k)
	st.Sent++
	st.Retries[e.cause]++
	if l.perName {
		st.Requests[e.req].Sent++
	}
	if !c.dirty {
		c.dirty = true
		l.dirty = append(l.dirty, c)
	}
}

// drop ends retry k unsent, for why, in st.
func (l *loop) drop(st *proto.Stats, k int32, why proto.RetryDrop, now int64) {
	st.RetryDropped[why]++
	recordN(st, st.EndToEnd, now-l.rt.ents[k].origin, 1)
	l.rt.release(k)
}

// dropAll ends every waiting retry unsent, for why (the circuit opened,
// the run ended), in st.
func (l *loop) dropAll(st *proto.Stats, why proto.RetryDrop, now int64) {
	rt := l.rt
	for len(rt.heap) > 0 {
		l.drop(st, rt.pop(), why, now)
	}
}

// sendRetries sends the retries that are due, oldest due first, on free
// connections: from the free queue (open model, c nil) or on c (closed
// model, while it has room). It sends at most budget and returns how
// many it sent. A retry that waited past the timeout for a connection is
// dropped (backlog); in half-open each needs a probe, or is dropped
// (circuit).
func (l *loop) sendRetries(c *conn, now int64, gate uint32, budget int) int {
	rt := l.rt
	limit := int64(l.e.opts.Timeout)
	sent := 0
	for len(rt.heap) > 0 && sent < budget {
		e := rt.top()
		if e.due > now {
			break
		}
		if now-e.due > limit {
			l.drop(l.st, rt.pop(), proto.RetryDropBacklog, now)
			continue
		}
		var probe uint8
		if gate == stateHalfOpen {
			if probe = l.e.bk.permit(); probe == 0 {
				l.drop(l.st, rt.pop(), proto.RetryDropCircuit, now)
				continue
			}
		}
		to := c
		if to == nil {
			to = l.takeFree()
		} else if to.n >= len(to.ring) {
			to = nil
		}
		if to == nil {
			if probe != 0 {
				l.e.bk.unpermit()
			}
			break
		}
		l.resend(to, rt.pop(), now, probe)
		sent++
	}
	return sent
}

// dueRetry is when the first retry waiting is due (ns since the epoch),
// or never.
func (l *loop) dueRetry() int64 {
	if rt := l.rt; rt != nil && len(rt.heap) > 0 {
		return rt.top().due
	}
	return 1 << 62
}

// endRetries closes the run's books at the final hand-off: the requests
// in flight end unanswered (lower bounds of their end-to-end latency) and
// the retries waiting are dropped (proto.RetryDropEnd).
func (l *loop) endRetries(st *proto.Stats, now int64) {
	if !l.rt.on {
		return
	}
	for _, c := range l.conns {
		for j := 0; j < c.n; j++ {
			i := c.slot(j)
			recordN(st, st.EndToEnd, now-c.originOf(i, c.ring[i]), 1)
		}
	}
	l.dropAll(st, proto.RetryDropEnd, now)
}
