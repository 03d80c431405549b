package target

import (
	"bytes"
	"time"

	"github.com/panjf2000/gnet/v2"
)

// conn is one client connection's state, owned by its loop.
type conn struct {
	out  []byte    // responses built in this event, written at once
	held []byte    // responses waiting for their due time, in order
	ends []heldEnd // where each waiting batch ends in held, and when it is due
	// closeAfter: close once everything held is written.
	closeAfter bool
}

type heldEnd struct {
	end int           // where the batch ends in held
	due time.Duration // when it may go out, from the server's start
	n   int           // responses in the batch
}

type handler struct {
	gnet.BuiltinEventEngine
	s      *Server
	booted chan struct{}
}

func (h *handler) OnBoot(eng gnet.Engine) gnet.Action {
	h.s.eng = eng
	close(h.booted)
	return gnet.None
}

func (h *handler) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	c.SetContext(&conn{})
	return nil, gnet.None
}

func (h *handler) OnTraffic(c gnet.Conn) gnet.Action {
	s := h.s
	cs, _ := c.Context().(*conn)
	if cs == nil {
		return gnet.Close
	}
	buf, _ := c.Peek(-1)
	off, n, closeAfter := s.serve(cs, buf)
	if off > 0 {
		// Hazard: gnet's Discard(n) with n <= 0 discards everything.
		_, _ = c.Discard(off)
	}
	if !s.timed {
		if len(cs.out) > 0 {
			_, _ = c.Write(cs.out)
			s.served.Add(uint64(n))
			cs.out = cs.out[:0]
		}
		if closeAfter {
			return gnet.Close
		}
		return gnet.None
	}
	now := time.Since(s.start)
	if len(cs.out) > 0 {
		cs.held = append(cs.held, cs.out...)
		due := s.due(now)
		cs.ends = append(cs.ends, heldEnd{end: len(cs.held), due: due, n: n})
		cs.out = cs.out[:0]
		if due > now {
			s.q.push(c, due)
		}
	}
	cs.closeAfter = cs.closeAfter || closeAfter
	return h.release(c, cs, now)
}

// release writes the held responses that are due, in order.
func (h *handler) release(c gnet.Conn, cs *conn, now time.Duration) gnet.Action {
	k := 0
	for k < len(cs.ends) && cs.ends[k].due <= now {
		k++
	}
	if k > 0 {
		end := cs.ends[k-1].end
		_, _ = c.Write(cs.held[:end])
		h.s.served.Add(uint64(cs.count(k)))
		rest := copy(cs.held, cs.held[end:])
		cs.held = cs.held[:rest]
		m := copy(cs.ends, cs.ends[k:])
		cs.ends = cs.ends[:m]
		for i := range cs.ends {
			cs.ends[i].end -= end
		}
	}
	if cs.closeAfter && len(cs.ends) == 0 {
		return gnet.Close
	}
	return gnet.None
}

// count is the number of responses in the first k held batches.
func (cs *conn) count(k int) int {
	n := 0
	for i := 0; i < k; i++ {
		n += cs.ends[i].n
	}
	return n
}

// serve parses every complete request in buf and appends the responses to
// cs.out. It returns the bytes consumed, the responses built, and whether
// the connection must close after them.
func (s *Server) serve(cs *conn, buf []byte) (off, n int, closeAfter bool) {
	for off < len(buf) {
		k, ka, head, bodyLen, status := parseRequest(buf[off:])
		switch status {
		case reqNeedMore:
			if len(buf)-off > MaxHeaderBytes {
				cs.out = append(cs.out, s.bad...)
				return len(buf), n + 1, true
			}
			return off, n, false
		case reqBad:
			cs.out = append(cs.out, s.bad...)
			return len(buf), n + 1, true
		case reqChunked:
			cs.out = append(cs.out, s.te...)
			return len(buf), n + 1, true
		}
		if len(buf)-off-k < bodyLen {
			return off, n, false // the body is still coming
		}
		off += k + bodyLen
		n++
		kai, hi := 0, 0
		if ka {
			kai = 1
		}
		if head {
			hi = 1
		}
		cs.out = append(cs.out, s.resp[kai][hi]...)
		if !ka {
			return len(buf), n, true
		}
	}
	return off, n, false
}

// Request parse outcomes.
const (
	reqOK = iota
	reqNeedMore
	reqBad
	reqChunked
)

func lowerByte(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 32
	}
	return c
}

func eqFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := range b {
		if lowerByte(b[i]) != lower[i] {
			return false
		}
	}
	return true
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// parseRequest reads one request head from b: its length, whether the
// connection stays open, whether it is HEAD, and its body's length.
func parseRequest(b []byte) (headLen int, keepAlive, head bool, bodyLen int, status int) {
	end := bytes.Index(b, []byte("\r\n\r\n"))
	if end < 0 {
		return 0, false, false, 0, reqNeedMore
	}
	headLen = end + 4
	lines := b[:end+2]
	nl := bytes.IndexByte(lines, '\n')
	reqLine := trimSpace(lines[:nl])
	sp1 := bytes.IndexByte(reqLine, ' ')
	sp2 := bytes.LastIndexByte(reqLine, ' ')
	if sp1 <= 0 || sp2 <= sp1 {
		return 0, false, false, 0, reqBad
	}
	method, version := reqLine[:sp1], reqLine[sp2+1:]
	if len(version) != 8 || string(version[:7]) != "HTTP/1." {
		return 0, false, false, 0, reqBad
	}
	http10 := version[7] == '0'
	head = string(method) == "HEAD"
	keepAlive = !http10
	lines = lines[nl+1:]
	for len(lines) > 0 {
		nl := bytes.IndexByte(lines, '\n')
		if nl < 0 {
			break
		}
		l := lines[:nl]
		lines = lines[nl+1:]
		colon := bytes.IndexByte(l, ':')
		if colon <= 0 {
			return 0, false, false, 0, reqBad
		}
		name, value := l[:colon], trimSpace(l[colon+1:])
		switch {
		case eqFold(name, "content-length"):
			n := 0
			if len(value) == 0 || len(value) > 12 {
				return 0, false, false, 0, reqBad
			}
			for _, c := range value {
				if c < '0' || c > '9' {
					return 0, false, false, 0, reqBad
				}
				n = n*10 + int(c-'0')
			}
			bodyLen = n
		case eqFold(name, "transfer-encoding"):
			return 0, false, false, 0, reqChunked
		case eqFold(name, "connection"):
			for len(value) > 0 {
				tok := value
				if i := bytes.IndexByte(value, ','); i >= 0 {
					tok, value = value[:i], value[i+1:]
				} else {
					value = nil
				}
				tok = trimSpace(tok)
				if eqFold(tok, "close") {
					keepAlive = false
				} else if eqFold(tok, "keep-alive") && http10 {
					keepAlive = true
				}
			}
		}
	}
	return headLen, keepAlive, head, bodyLen, reqOK
}
