package engine

import (
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/barrage-load/barrage/proto"
	"github.com/barrage-load/barrage/proto/http1"
)

// inflight is one request on the wire: when it was meant to go (open model)
// and when it went, both in ns since the engine's epoch, and which request
// of the mix it is. With retries (retry.go): attempt counts the attempts
// made before this one (0: the first), and probe marks a breaker probe
// (its half-open's generation; 0: none). It stays 24 bytes.
type inflight struct {
	intended, sent int64
	req            int32
	attempt        uint8
	probe          uint8
}

// conn is one connection slot of a loop. It outlives the TCP connections
// that fill it: when one closes, the slot dials again. Every field is owned
// by the loop, except the dialer's below, which only the dialer touches
// while the slot is dialing.
type conn struct {
	l    *loop
	gc   gnet.Conn // nil while not open
	pos  int       // index in l.conns; -1 once removed
	dpos int       // index in l.drained; -1 when not there

	// ring holds the requests in flight, oldest at head; its length is the
	// pipeline depth.
	ring    []inflight
	head, n int
	parser  http1.Parser
	wbuf    []byte // requests batched for one write

	open     bool
	dialing  bool
	draining bool // excess after a connection-count cut: close when idle
	queued   bool // in the loop's free queue
	dirty    bool // in the loop's dirty list (wbuf holds bytes)
	// bell marks the loop's doorbell: a loopback connection the pacer
	// writes a byte to when a token comes due, never a target connection.
	bell bool
	// fail is the error kind that the close now under way is counted as.
	fail    proto.ErrKind
	failSet bool
	// srvClose: the server ended the connection after a complete response
	// (counted in Stats.ServerCloses once).
	srvClose bool

	// abandon tells the dialer to drop the slot (the loop drained it while
	// it was dialing); the loop sets it, the dialer reads it.
	abandon atomic.Bool
	// The dialer's: the wait before the next connect after a failure, and
	// whether the first dial's outcome is still to be reported.
	backoff time.Duration
	first   bool
	// connectNS and handshakeNS are how long the connection now opening
	// took to connect and to shake hands (TLS): the dialer sets them
	// before it enrolls the connection, OnOpen records them.
	connectNS, handshakeNS int64

	// tls is the slot's TLS state (nil for plain HTTP): the dialer's
	// while the slot dials, the loop's once it is open.
	tls *tlsState
	// ownClose: the generator closed the connection after its one
	// request was answered (no keep-alive): the slot reconnects at once,
	// and the close is not the server's.
	ownClose bool

	// With retries (retry.go), beside each ring slot: the bytes its
	// request sent (sentB: in own, or the loop's fixed request), the
	// slot's own buffer, and the request's first intended time (origin,
	// for a retry). Nil without retries.
	sentB, own [][]byte
	origin     []int64
}

func (c *conn) free() int { return len(c.ring) - c.n }

// push records request req of the mix, sent now.
func (c *conn) push(intended, sent int64, req int) {
	i := c.head + c.n
	if i >= len(c.ring) {
		i -= len(c.ring)
	}
	c.ring[i] = inflight{intended: intended, sent: sent, req: int32(req)}
	c.n++
}

// pushAttempt is push for a retry (attempt > 0) or a probe.
func (c *conn) pushAttempt(intended, sent int64, req int32, attempt, probe uint8) {
	c.ring[c.tail()] = inflight{intended: intended, sent: sent, req: req, attempt: attempt, probe: probe}
	c.n++
}

// tail is the ring slot the next push fills.
func (c *conn) tail() int { return c.slot(c.n) }

// slot is the ring slot of the j-th oldest request in flight.
func (c *conn) slot(j int) int {
	i := c.head + j
	if i >= len(c.ring) {
		i -= len(c.ring)
	}
	return i
}

// markProbe marks the request just pushed a breaker probe.
func (c *conn) markProbe(probe uint8) { c.ring[c.slot(c.n-1)].probe = probe }

// pop removes the oldest request in flight and returns it.
func (c *conn) pop() inflight {
	f := c.ring[c.head]
	c.head++
	if c.head == len(c.ring) {
		c.head = 0
	}
	c.n--
	return f
}

func (c *conn) reset() {
	c.head, c.n = 0, 0
	c.wbuf = c.wbuf[:0]
	c.failSet = false
	c.srvClose = false
	c.dirty = false
	c.ownClose = false
	if c.tls != nil {
		c.tls.pending = c.tls.pending[:0]
		c.tls.pipe.out = c.tls.pipe.out[:0]
	}
}

// at returns the i-th oldest request in flight.
func (c *conn) at(i int) inflight {
	i += c.head
	if i >= len(c.ring) {
		i -= len(c.ring)
	}
	return c.ring[i]
}

// setFail records why the connection is being closed; the first reason wins.
func (c *conn) setFail(k proto.ErrKind) {
	if !c.failSet {
		c.fail, c.failSet = k, true
	}
}
