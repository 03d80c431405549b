package engine

import (
	"time"

	"github.com/barrage-load/barrage/proto"
)

// Sending, on the hot path: due requests written into a connection's output
// buffer, flushed once per wake, and the queue of free connections.

// send appends one request to c's batch: the one fixed request, or the
// mix's next pick rendered in place (no allocation once c.wbuf has room).
func (l *loop) send(c *conn, intended, now int64) {
	if time.Duration(now-l.e.startNS) >= l.nextMixAt {
		l.takeMix()
	}
	req := 0
	start := len(c.wbuf)
	if l.fixed != nil {
		c.wbuf = append(c.wbuf, l.fixed...)
	} else {
		c.wbuf, req = l.rend.Append(c.wbuf, l.mix, l.e.unixNS+now)
	}
	if c.sentB != nil {
		l.keep(c, start)
	}
	if l.perName {
		l.st.Requests[req].Sent++
	}
	c.push(intended, now, req)
	l.st.Sent++
	if !c.dirty {
		c.dirty = true
		l.dirty = append(l.dirty, c)
	}
	if l.firstSend == 0 {
		l.firstSend = now
	}
}

// fill tops c up to its pipeline depth (closed model). While the lease
// has lapsed it sends nothing: the requests in flight complete, no new
// one goes (one atomic load per call).
func (l *loop) fill(c *conn, now int64) {
	if !c.open || c.draining || now > l.e.lease.Load().until {
		return
	}
	if l.rt != nil {
		l.fillGuarded(c, now)
		return
	}
	for c.n < len(c.ring) {
		l.send(c, now, now)
	}
}

// flush writes every batch built since the last flush, one write per
// connection (over TLS, the batch encrypted: one record, one write).
func (l *loop) flush() {
	for i, c := range l.dirty {
		l.dirty[i] = nil
		c.dirty = false
		if c.gc != nil {
			if c.tls != nil {
				l.flushTLS(c)
			} else if len(c.wbuf) > 0 {
				n := len(c.wbuf)
				if _, err := c.gc.Write(c.wbuf); err != nil {
					c.setFail(proto.ErrReset)
				} else {
					l.st.BytesOut += uint64(n)
				}
			}
		}
		c.wbuf = c.wbuf[:0]
	}
	l.dirty = l.dirty[:0]
}

// enqueue puts c in the free queue if it can take a request.
func (l *loop) enqueue(c *conn) {
	if c.queued || !c.open || c.draining || c.n >= len(c.ring) {
		return
	}
	c.queued = true
	// Hazard: the queue is a slice eaten from the front; unless the dead
	// front is reclaimed it grows for as long as the queue never empties
	// (a leak of 8 bytes per request at high connection counts).
	if l.freeHead > 0 && (l.freeHead == len(l.freeQ) || l.freeHead >= 64 && 2*l.freeHead >= len(l.freeQ)) {
		n := copy(l.freeQ, l.freeQ[l.freeHead:])
		clear(l.freeQ[n:])
		l.freeQ, l.freeHead = l.freeQ[:n], 0
	}
	l.freeQ = append(l.freeQ, c)
}

// takeFree returns a connection that can take one request, or nil. The
// connection goes to the back of the queue if it can take more, so tokens
// spread over the connections.
func (l *loop) takeFree() *conn {
	for l.freeHead < len(l.freeQ) {
		c := l.freeQ[l.freeHead]
		l.freeQ[l.freeHead] = nil
		l.freeHead++
		c.queued = false
		if c.open && !c.draining && c.n < len(c.ring) {
			if c.n+1 < len(c.ring) {
				l.enqueue(c)
			}
			return c
		}
	}
	// Compact so the queue's memory is reused rather than grown.
	l.freeQ, l.freeHead = l.freeQ[:0], 0
	return nil
}
