package server

import (
	"math"
	"sync/atomic"
	"time"

	"golang.org/x/sys/cpu"
)

// Misbehaviour on purpose: which response each request gets (FailRate,
// outage windows, RateLimit) and the capacity queue's due times.
//
// The decisions are per loop (or per TLS connection) and cost nothing
// when no such option is set: pick is one branch. The clock is read once
// per read (OnTraffic), not per request.
//
// RateLimit and Capacity are over the whole server, so they are shared
// by the loops: each is one atomic word (a GCRA "theoretical arrival
// time", or the queue's end), moved with a compare-and-swap: no lock,
// no channel. Per-loop buckets with N/loops each would need no shared
// word, but would make the limit depend on how the client's connections
// fall on the loops: one connection, or connections spread unevenly,
// would see N/loops, and a test expecting "429 above N req/s" would
// measure the balancer instead. One shared word keeps the limit exact,
// and an uncontended CAS costs about as much as the clock read.

// policy decides each response's kind; one per loop, or per TLS
// connection. Only its owner touches it.
type policy struct {
	// Set once.
	on         bool    // FailRate, outage windows or RateLimit
	failAt     uint64  // a draw below this fails (FailRate * 2^64)
	failAll    bool    // FailRate 1
	limiter    *gcra   // RateLimit, shared; nil when off
	recordEnds bool    // Capacity: feed records where responses end
	s          *Server // for the outage windows

	// Per read, set by begin.
	now    time.Duration // since the server started
	outage bool          // now is inside an outage window

	rng  uint64 // splitmix64 state
	ends []int  // recordEnds: where each counted response ends in out
}

// newPolicy makes the policy of the stream (loop or TLS connection)
// numbered id: its generator is seeded from Options.Seed and id, so a
// given seed gives each loop the same sequence of draws every run.
func (s *Server) newPolicy(id uint64) policy {
	o := &s.o
	p := policy{
		on:         o.FailRate > 0 || o.FailFor > 0 || o.RateLimit > 0,
		limiter:    s.limiter,
		recordEnds: o.Capacity > 0,
		s:          s,
		rng:        mix64(o.Seed ^ mix64(id+1)),
	}
	switch {
	case o.FailRate >= 1:
		p.failAll = true
	case o.FailRate > 0:
		p.failAt = uint64(math.Ldexp(o.FailRate, 64))
	}
	return p
}

// begin prepares p for the requests of one read, made at now.
func (p *policy) begin(now time.Duration) {
	p.now = now
	p.ends = p.ends[:0]
	if every, length := p.s.o.FailEvery, p.s.o.FailFor; length > 0 {
		p.outage = inWindow(now, every, length)
	}
}

// kind is the kind of the next response.
func (p *policy) kind() kind {
	if !p.on {
		return kindOK
	}
	return p.pick()
}

// pick is the kind of the next response when p.on. A rate limiter stands in front
// of the service, so it answers first (and an outage does not refill
// it); then the outage; then the random failures.
func (p *policy) pick() kind {
	if p.limiter != nil && !p.limiter.allow(p.now) {
		return kindLimited
	}
	if p.outage || p.failAll {
		return kindFail
	}
	if p.failAt > 0 && p.draw() < p.failAt {
		return kindFail
	}
	return kindOK
}

// ended notes that a counted response ends at offset end of out.
func (p *policy) ended(end int) {
	if p.recordEnds {
		p.ends = append(p.ends, end)
	}
}

// draw is the next number of p's generator (splitmix64: fast, and good
// enough for choosing a share of responses).
func (p *policy) draw() uint64 {
	p.rng += 0x9e3779b97f4a7c15
	return mix64(p.rng)
}

func mix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// inWindow reports whether t falls in a window that starts at every
// multiple of every after the start (not at the start) and lasts length.
func inWindow(t, every, length time.Duration) bool {
	k := t / every
	return k >= 1 && t-k*every < length
}

// Rates are kept in picoseconds per event, so that a rate of up to 10^9
// per second keeps three significant digits in an int64 and a second of
// credit is exact for rates that divide 10^12. Times since the server
// started, in picoseconds, overflow an int64 after 106 days.
const psPerSecond = 1e12

func ps(d time.Duration) int64 { return int64(d) * 1000 }

// gcra is a token bucket shared by every loop, kept as one number: the
// generic cell rate algorithm's theoretical arrival time (TAT). A
// request is allowed when TAT - tau <= now, and then moves TAT to
// max(TAT, now) + T. It allows `burst` requests at once and rate per
// second after that; a refused request changes nothing.
type gcra struct {
	_   cpu.CacheLinePad
	tat atomic.Int64 // picoseconds since the server started
	_   cpu.CacheLinePad
	t   int64 // picoseconds per request
	tau int64 // (burst - 1) * t
}

// newGCRA allows rate requests per second after a burst of
// max(1, rate/10): a tenth of a second's worth, so that a client that
// keeps to the rate is never refused while one that sends a little too
// fast is refused within a tenth of a second.
func newGCRA(rate float64) *gcra {
	t := int64(psPerSecond / rate)
	burst := max(1, math.Ceil(rate/10))
	return &gcra{t: t, tau: int64(burst-1) * t}
}

func (g *gcra) allow(now time.Duration) bool {
	n := ps(now)
	for {
		tat := g.tat.Load()
		if tat-g.tau > n {
			return false
		}
		if g.tat.CompareAndSwap(tat, max(tat, n)+g.t) {
			return true
		}
	}
}

// queue is the Capacity mode's server: one queue served at rate
// responses per second, in the order reserved. Its state is when the
// last reserved response will have been served.
type queue struct {
	_   cpu.CacheLinePad
	end atomic.Int64 // picoseconds since the server started
	_   cpu.CacheLinePad
	t   int64 // picoseconds per response
}

func newQueue(rate float64) *queue { return &queue{t: int64(psPerSecond / rate)} }

// reserve queues n responses to requests read at now and returns when
// the first will have been served, in picoseconds since the start: the
// i-th (from 0) is served i*T later (see at). A response arriving at an
// idle queue is served T after now: the queue is a single server with a
// fixed service time (M/D/1), so latency starts at 1/rate and climbs
// without bound past the capacity.
func (q *queue) reserve(now time.Duration, n int) (first int64) {
	at := ps(now)
	for {
		end := q.end.Load()
		start := max(end, at)
		if q.end.CompareAndSwap(end, start+int64(n)*q.t) {
			return start + q.t
		}
	}
}

// at is when the i-th response of the reservation that returned first is
// served, rounded up to the nanosecond so that it is never early.
func (q *queue) at(first int64, i int) time.Duration {
	p := first + int64(i)*q.t
	return time.Duration((p + 999) / 1000)
}
