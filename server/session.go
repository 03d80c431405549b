package server

// session is one connection's request-parsing state between reads.
type session struct {
	scan int     // where the search for the pending head's end resumes
	skip int     // body bytes of the current request still to drop
	owed request // the request whose body is being dropped: its response is owed
}

// feed consumes the complete requests at the start of buf, and as much of
// a request body as has arrived, and appends a response per complete
// request to out: every response of one read goes out in one write.
//
// It returns the grown out, how many bytes of buf were consumed, how many
// final responses were appended (not counting "100 Continue"), and
// whether the connection must close once out is written; then all of buf
// counts as consumed, since nothing after that request will be answered.
//
// Request bodies are dropped as they arrive rather than buffered, so a
// large upload costs no memory. The response is owed until the last body
// byte has arrived: answering earlier would confuse clients that send the
// body before reading.
//
// p picks each final response (the configured one, a failure or a 429)
// and, when p.recordEnds is set, gets where each counted response ends
// in out appended to p.ends (the capacity queue releases them one by
// one).
//
// This is the per-request path: it must not allocate once out (and
// p.ends) have grown to their working size (see the allocation test).
func (rs *responses) feed(ss *session, buf, out []byte, p *policy) (_ []byte, consumed, n int, close bool) {
	off := 0
	// Fast path: nothing misbehaves, the configured response every time.
	// Checked once per read; the slow path is a call of its own.
	plain := !p.on && !p.recordEnds && !rs.closeEach
	for {
		if ss.skip > 0 {
			k := min(ss.skip, len(buf)-off)
			off += k
			ss.skip -= k
			if ss.skip > 0 {
				return out, off, n, false
			}
			if plain {
				out = rs.appendResponse(out, &ss.owed, kindOK)
			} else {
				out = rs.appendPicked(out, &ss.owed, p)
			}
			n++
			if ss.owed.conn == closeAfter {
				return out, len(buf), n, true
			}
		}
		if ss.scan == 0 {
			// RFC 9112 2.2: ignore empty lines before a request line
			// (some clients send CRLF after a POST body).
			for off < len(buf) && (buf[off] == '\r' || buf[off] == '\n') {
				off++
			}
		}
		if off == len(buf) {
			return out, off, n, false
		}
		k, err := parseRequest(buf[off:], ss.scan, &ss.owed)
		switch err {
		case nil:
		case errNeedMore:
			ss.scan = k
			return out, off, n, false
		case errHeadTooLarge:
			out = append(out, rs.headTooLarge...)
			p.ended(len(out))
			return out, len(buf), n + 1, true
		case errTransferEncoding:
			out = append(out, rs.notImplemented...)
			p.ended(len(out))
			return out, len(buf), n + 1, true
		default:
			out = append(out, rs.badRequest...)
			p.ended(len(out))
			return out, len(buf), n + 1, true
		}
		ss.scan = 0
		off += k
		if ss.owed.bodyLen > 0 {
			if ss.owed.expectContinue {
				out = append(out, rs.continue100...)
			}
			ss.skip = ss.owed.bodyLen
			continue
		}
		if plain {
			out = rs.appendResponse(out, &ss.owed, kindOK)
		} else {
			out = rs.appendPicked(out, &ss.owed, p)
		}
		n++
		if ss.owed.conn == closeAfter {
			return out, len(buf), n, true
		}
	}
}

// appendPicked is feed's slow path: the response p picks, where it ends
// noted for the capacity queue, and in Close mode the connection marked
// to close after it.
func (rs *responses) appendPicked(out []byte, r *request, p *policy) []byte {
	if rs.closeEach {
		r.conn = closeAfter
	}
	out = rs.appendResponse(out, r, p.kind())
	p.ended(len(out))
	return out
}
