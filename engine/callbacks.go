package engine

import (
	"github.com/panjf2000/gnet/v2"

	"github.com/barrage-load/barrage/proto"
	"github.com/barrage-load/barrage/proto/http1"
)

// gnet's callbacks for a loop's connections: open, traffic (responses parsed and
// completed), close and redial. They run on the loop.

func (l *loop) OnOpen(gc gnet.Conn) ([]byte, gnet.Action) {
	c, _ := gc.Context().(*conn)
	if c == nil {
		return nil, gnet.Close
	}
	if !l.pinned {
		l.pinned = true
		el := gc.EventLoop()
		l.el.Store(&el)
		// Pinning failures (a CPU taken away) leave the loop unpinned but
		// working; the affinity mask was read at start, so it is rare.
		if !l.e.float {
			_ = pinThread(l.cpu)
		}
	}
	if c.bell {
		return nil, gnet.None
	}
	if c.dialing {
		c.dialing = false
		l.dialingN--
	}
	c.gc = gc
	c.open = true
	c.reset()
	c.parser.Reset(l.e.opts.Head)
	l.openN++
	l.setRefill()
	l.recordOpen(c)
	if l.stopped || c.draining {
		return nil, gnet.Close
	}
	if !l.started {
		// A loop whose first connection opened after the run started
		// starts now (its start task found no event loop to run on).
		if l.e.running.Load() {
			l.start()
		}
		return nil, gnet.None
	}
	now := l.now()
	l.maybeCut(now)
	if l.open {
		l.enqueue(c)
		l.pump(now)
	} else {
		l.fill(c, now)
	}
	l.flush()
	if l.active < l.want && l.dialingN < dialingPerLoop {
		// Slots are made as connections open (see dialingPerLoop).
		l.adjust()
	}
	return nil, gnet.None
}

func (l *loop) OnTraffic(gc gnet.Conn) gnet.Action {
	c, _ := gc.Context().(*conn)
	buf, _ := gc.Peek(-1)
	if c != nil && c.bell {
		if len(buf) > 0 {
			_, _ = gc.Discard(len(buf))
		}
		l.maybeCut(l.now())
		l.runPump()
		return gnet.None
	}
	if c == nil || l.stopped {
		_, _ = gc.Discard(len(buf))
		return gnet.None
	}
	now := l.now()
	l.maybeCut(now)
	var action gnet.Action
	if c.tls != nil && c.tls.fast {
		var off int
		off, action = l.readRecords(c, buf, now)
		if off > 0 {
			_, _ = gc.Discard(off)
		}
	} else if c.tls != nil {
		// crypto/tls takes every byte (a partial record waits in its
		// buffer), so all of them go.
		action = l.readTLS(c, buf, now)
		if len(buf) > 0 {
			_, _ = gc.Discard(len(buf))
		}
	} else {
		var off int
		off, action = l.consume(c, buf, now)
		if action == gnet.Close {
			off = len(buf)
		}
		if off > 0 {
			// Hazard: gnet's Discard(n) with n <= 0 discards everything,
			// the partial response we must keep included.
			_, _ = gc.Discard(off)
		}
		l.st.BytesIn += uint64(off)
	}
	if action == gnet.Close {
		return action
	}
	if c.draining {
		if c.n == 0 {
			return gnet.Close
		}
		return gnet.None
	}
	if l.started {
		if l.open {
			l.enqueue(c)
			l.pump(now)
		} else if c.free() >= l.refillAt {
			l.fill(c, now)
		}
		l.flush()
	}
	return gnet.None
}

// consume parses the response bytes in buf for c's requests in flight
// and completes each response it ends; it returns how many bytes it
// consumed (the rest is a partial head, presented again with the next
// bytes) and gnet.Close when the connection must close.
func (l *loop) consume(c *conn, buf []byte, now int64) (int, gnet.Action) {
	st := l.st
	off := 0
	for off < len(buf) {
		if c.n == 0 {
			// Bytes nobody asked for: the stream is out of step.
			c.setFail(proto.ErrProtocol)
			return off, gnet.Close
		}
		n, err := c.parser.Feed(buf[off:])
		off += n
		if err == http1.ErrNeedMore {
			break
		}
		if err != nil {
			c.setFail(proto.ErrProtocol)
			return off, gnet.Close
		}
		if c.parser.Informational() {
			c.parser.Reset(l.e.opts.Head)
			continue
		}
		l.complete(c, now)
		if l.e.opts.NoKeepAlive {
			// Its one request is answered: the generator closes (and
			// the slot reconnects at once), whatever the server said.
			c.ownClose = true
			st.ClientCloses++
			c.parser.Reset(l.e.opts.Head)
			return off, gnet.Close
		}
		if !c.parser.KeepAlive() {
			// The server closes after this response (Connection: close,
			// HTTP/1.0): the rest of the pipeline will never be answered
			// and counts as reset when the close comes. The parser starts
			// afresh so the close completes nothing more.
			c.srvClose = true
			st.ServerCloses++
			c.parser.Reset(l.e.opts.Head)
			return off, gnet.Close
		}
		c.parser.Reset(l.e.opts.Head)
	}
	return off, gnet.None
}

// recordOpen records how long the connection just opened on slot c took
// to connect and, over TLS, to shake hands. The histograms are made on
// their first value (a run that opens no connection in an interval
// carries none).
func (l *loop) recordOpen(c *conn) {
	st := l.st
	if st.Connect == nil {
		st.Connect = proto.NewHistogram()
	}
	l.record(st.Connect, c.connectNS)
	if c.tls != nil {
		if st.Handshake == nil {
			st.Handshake = proto.NewHistogram()
		}
		l.record(st.Handshake, c.handshakeNS)
	}
}

func (l *loop) OnClose(gc gnet.Conn, err error) gnet.Action {
	c, _ := gc.Context().(*conn)
	if c == nil || c.bell {
		return gnet.None
	}
	if c.open {
		l.openN--
		l.setRefill()
	}
	c.open = false
	c.gc = nil
	if c.tls != nil {
		// The next connection gets a tls.Conn of its own; this one's
		// buffers go to the GC now rather than wait for it.
		c.tls.tc = nil
		c.tls.pipe.in = nil
		c.tls.rl.forget()
		c.tls.fast = false
	}
	if l.stopped {
		// Counted as unfinished by the final hand-off.
		c.n = 0
		return gnet.None
	}
	now := l.now()
	l.maybeCut(now)
	st := l.st
	// A close of ours (a timeout, a protocol error) cuts a response
	// short; one of the server's may complete it.
	ours := c.failSet && c.fail != proto.ErrReset
	if c.n > 0 && !ours && c.parser.Started() && c.parser.EOF() == nil {
		// A close-delimited body ends here: the close completes it.
		l.complete(c, now)
		if !c.srvClose {
			c.srvClose = true
			st.ServerCloses++
		}
	}
	if c.n > 0 {
		kind := proto.ErrReset
		if c.failSet {
			kind = c.fail
		}
		st.Errors[kind] += uint64(c.n)
		l.failReqs(st, c, kind)
		l.censor(st, c, now)
		if l.rt != nil {
			l.failedAll(c, kind, now)
		}
		c.n = 0
	} else if !c.failSet && !c.srvClose && !c.ownClose && !c.draining {
		// The server closed a connection with nothing in flight (its
		// keep-alive timeout or request limit).
		c.srvClose = true
		st.ServerCloses++
	}
	_ = err
	if c.draining {
		l.removeConn(c)
		return gnet.None
	}
	// After a server's close, or the generator's own after the one
	// request of a connection, the slot reconnects at once; after a
	// failure, with backoff.
	l.redial(c, !c.srvClose && !c.ownClose)
	return gnet.None
}

// redial hands slot c to the dialer.
func (l *loop) redial(c *conn, wait bool) {
	if l.e.dialer == nil {
		return
	}
	c.dialing = true
	l.dialingN++
	l.e.dialer.add(l, c, wait)
}
