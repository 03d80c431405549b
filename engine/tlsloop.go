package engine

import (
	"io"

	"github.com/panjf2000/gnet/v2"

	"github.com/barrage-load/barrage/proto"
)

// tlsPlainBuf is the size of a loop's plaintext buffer: one TLS record's
// plaintext at most (a longer record is read in pieces).
const tlsPlainBuf = 16 << 10

// readTLS hands the ciphertext gnet read (buf, valid until it is
// discarded) to c's tls.Conn and parses the plaintext record by record.
// It returns gnet.Close when the connection must close. Over TLS the
// bytes in and out count what went over the wire (records and their
// overhead).
func (l *loop) readTLS(c *conn, buf []byte, now int64) gnet.Action {
	t := c.tls
	if t.tc == nil {
		// BUG guard: a TLS slot opens only after its handshake.
		return gnet.Close
	}
	t.pipe.in = buf
	l.st.BytesIn += uint64(len(buf))
	action := gnet.None
	for action == gnet.None {
		n, err := t.tc.Read(l.plain)
		if n > 0 {
			action = l.feedTLS(c, l.plain[:n], now)
		}
		if err == nil {
			continue
		}
		if err != errWouldBlock && action == gnet.None {
			action = l.tlsBroken(c, err)
		}
		break
	}
	t.pipe.in = nil
	if len(t.pipe.out) > 0 && !c.dirty {
		// crypto/tls has something to say (an alert, a key update):
		// it goes with the next flush.
		c.dirty = true
		l.dirty = append(l.dirty, c)
	}
	return action
}

// readRecords takes the whole records at the start of buf (gnet's bytes,
// decrypted in place) on the engine's record layer, and parses their
// plaintext. It returns how many bytes it consumed (a partial record
// stays in gnet's buffer for the next read) and gnet.Close when the
// connection must close.
func (l *loop) readRecords(c *conn, buf []byte, now int64) (int, gnet.Action) {
	t := c.tls
	off := 0
	for {
		n, err := t.rl.recordLen(buf[off:])
		if err == nil && n == 0 {
			break
		}
		var typ byte
		var p []byte
		if err == nil {
			typ, p, err = t.rl.open(buf[off : off+n])
			off += n
		}
		if err == nil && typ != recordAppData {
			t.pipe.out, err = t.rl.control(typ, p, t.pipe.out)
			if len(t.pipe.out) > 0 && !c.dirty {
				// A key update's answer: it goes with the next flush.
				c.dirty = true
				l.dirty = append(l.dirty, c)
			}
		}
		if err != nil {
			l.st.BytesIn += uint64(len(buf))
			return len(buf), l.tlsBroken(c, err)
		}
		if typ == recordAppData && len(p) > 0 {
			if a := l.feedTLS(c, p, now); a != gnet.None {
				l.st.BytesIn += uint64(len(buf))
				return len(buf), a
			}
		}
	}
	l.st.BytesIn += uint64(off)
	return off, gnet.None
}

// feedTLS parses one record's plaintext, after what the last one left.
func (l *loop) feedTLS(c *conn, data []byte, now int64) gnet.Action {
	t := c.tls
	if len(t.pending) > 0 {
		t.pending = append(t.pending, data...)
		data = t.pending
	}
	off, action := l.consume(c, data, now)
	if action == gnet.Close || off == len(data) {
		t.pending = t.pending[:0]
		return action
	}
	// A head cut by the record's end: kept for the next record (append
	// moves it down when data is pending itself).
	t.pending = append(t.pending[:0], data[off:]...)
	return gnet.None
}

// tlsBroken ends a connection whose TLS stream ended (the server's
// close_notify: like a TCP close, it may complete a close-delimited
// body) or broke (a bad record, an alert: a TLS error by its reason; the
// requests in flight count as reset). Hazard: in TLS 1.3 the client's
// handshake ends before the server has checked the client's certificate,
// so a refused one (mTLS) shows here, as the server's alert on the first
// read, not in the dialer.
func (l *loop) tlsBroken(c *conn, err error) gnet.Action {
	if err == io.EOF {
		return gnet.Close
	}
	l.st.Errors[proto.ErrTLS]++
	l.st.TLS[tlsReason(err)]++
	c.setFail(proto.ErrReset)
	return gnet.Close
}

// flushTLS encrypts c's batch of requests and writes the records (and
// anything else crypto/tls has to send) in one write.
func (l *loop) flushTLS(c *conn) {
	t := c.tls
	if len(c.wbuf) > 0 && t.fast {
		t.pipe.out = t.rl.seal(t.pipe.out, recordAppData, c.wbuf)
	} else if len(c.wbuf) > 0 && t.tc != nil {
		if _, err := t.tc.Write(c.wbuf); err != nil {
			// Only after the stream broke (crypto/tls keeps the
			// error): close.
			c.setFail(proto.ErrReset)
			if el := l.eventLoop(); el != nil {
				_ = el.Close(c.gc)
			}
			t.pipe.out = t.pipe.out[:0]
			return
		}
	}
	if len(t.pipe.out) == 0 {
		return
	}
	// gnet writes at once, or copies what the socket did not take: the
	// buffer is free again either way.
	n := len(t.pipe.out)
	if _, err := c.gc.Write(t.pipe.out); err != nil {
		c.setFail(proto.ErrReset)
	} else {
		l.st.BytesOut += uint64(n)
	}
	t.pipe.out = t.pipe.out[:0]
}

// takeTLSErrs moves the handshake failures the dialer counted into st.
func (l *loop) takeTLSErrs(st *proto.Stats) {
	for r := range l.tlsErrs {
		if n := l.tlsErrs[r].Swap(0); n > 0 {
			st.TLS[r] += n
			st.Errors[proto.ErrTLS] += n
		}
	}
}
