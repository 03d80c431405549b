package http1

import "bytes"

// MaxHeaderBytes bounds a response's status line and headers, and a chunked
// body's trailers.
const MaxHeaderBytes = 64 << 10

// maxChunkLine bounds a chunk-size line, as net/http does.
const maxChunkLine = 4096

// Parser states.
const (
	stHead uint8 = iota
	stFixed
	stChunkSize
	stChunkData
	stChunkCRLF
	stTrailer
	stClose
	stDone
)

// Framing says how a response's body is delimited.
type Framing uint8

// Framings.
const (
	FramingNone    Framing = iota // no body (HEAD, 1xx, 204, 304, Content-Length: 0)
	FramingLength                 // Content-Length
	FramingChunked                // Transfer-Encoding: chunked
	FramingClose                  // read until the connection closes
)

// Parser parses one response at a time; reuse it (Reset) for every response
// on a connection. The zero value is ready for a non-HEAD response.
type Parser struct {
	head      bool
	state     uint8
	started   bool
	status    int
	keepAlive bool
	framing   Framing
	remaining uint64 // body bytes left (Content-Length) or of the chunk
	bodyLen   int64
	excess    int64 // chunk overhead beyond what the data justifies
}

// Reset prepares for the next response; head tells that the request was a
// HEAD, whose response has no body whatever its headers say.
func (p *Parser) Reset(head bool) { *p = Parser{head: head} }

// Status is the status code of the response parsed.
func (p *Parser) Status() int { return p.status }

// KeepAlive is false when the connection must close after this response
// (Connection: close, HTTP/1.0 without keep-alive, a close-delimited body).
func (p *Parser) KeepAlive() bool { return p.keepAlive }

// BodyLen is the body's length (decoded, for chunked).
func (p *Parser) BodyLen() int64 { return p.bodyLen }

// Framing tells how the body was delimited.
func (p *Parser) Framing() Framing { return p.framing }

// Started reports whether any byte of the current response was presented.
func (p *Parser) Started() bool { return p.started }

// Done reports whether the current response is complete.
func (p *Parser) Done() bool { return p.state == stDone }

// Informational reports a complete 1xx response other than 101: the final
// response for the same request follows it.
func (p *Parser) Informational() bool {
	return p.state == stDone && p.status >= 100 && p.status < 200 && p.status != 101
}

// Feed consumes bytes of the current response from buf.
//
//   - err == nil: the response is complete after n bytes; the rest of buf
//     belongs to the next response.
//   - err == ErrNeedMore: n bytes were consumed, and the parser needs more.
//     n may be less than len(buf) when buf ends inside the head, a
//     chunk-size line or the trailers: the caller keeps buf[n:] and presents
//     it again followed by the bytes read next.
//   - any other error: a protocol error; the connection is unusable.
func (p *Parser) Feed(buf []byte) (n int, err error) {
	if len(buf) > 0 {
		p.started = true
	}
	for {
		switch p.state {
		case stHead:
			k, err := p.parseHead(buf[n:])
			if err != nil {
				return n, err
			}
			n += k
		case stFixed:
			k := uint64(len(buf) - n)
			if k > p.remaining {
				k = p.remaining
			}
			n += int(k)
			p.remaining -= k
			p.bodyLen += int64(k)
			if p.remaining > 0 {
				return n, ErrNeedMore
			}
			p.state = stDone
		case stChunkSize:
			k, err := p.parseChunkSize(buf[n:])
			if err != nil {
				return n, err
			}
			n += k
		case stChunkData:
			k := uint64(len(buf) - n)
			if k > p.remaining {
				k = p.remaining
			}
			n += int(k)
			p.remaining -= k
			p.bodyLen += int64(k)
			if p.remaining > 0 {
				return n, ErrNeedMore
			}
			p.state = stChunkCRLF
		case stChunkCRLF:
			rest := buf[n:]
			if len(rest) < 2 {
				if len(rest) == 1 && rest[0] != '\r' {
					return n, ErrBadChunk
				}
				return n, ErrNeedMore
			}
			if rest[0] != '\r' || rest[1] != '\n' {
				return n, ErrBadChunk
			}
			n += 2
			p.state = stChunkSize
		case stTrailer:
			k, err := p.parseTrailer(buf[n:])
			if err != nil {
				return n, err
			}
			n += k
		case stClose:
			k := len(buf) - n
			n += k
			p.bodyLen += int64(k)
			return n, ErrNeedMore
		case stDone:
			return n, nil
		}
	}
}

// EOF tells the parser that the peer closed the connection. It returns nil
// when that completes a close-delimited response, ErrNoResponse when no
// byte of a response had arrived, and ErrUnexpectedEOF otherwise.
func (p *Parser) EOF() error {
	switch {
	case p.state == stClose:
		p.state = stDone
		return nil
	case p.state == stDone:
		return nil
	case !p.started:
		return ErrNoResponse
	}
	return ErrUnexpectedEOF
}

// head collects what the headers say about framing while they are parsed.
type head struct {
	clSeen, clBad bool
	cl            []byte // first Content-Length value, trimmed
	teCount       int
	teChunked     bool
	connClose     bool
	connKeepAlive bool
	trailerBad    bool
	lastRelevant  bool // the previous header line frames the body
}

// parseHead parses the status line and headers once they are complete in
// b. It returns the bytes consumed (0 and ErrNeedMore until complete).
func (p *Parser) parseHead(b []byte) (int, error) {
	status, next, ok := NextLine(b, 0)
	if !ok {
		if len(b) > MaxHeaderBytes {
			return 0, ErrHeaderTooLarge
		}
		return 0, ErrNeedMore
	}
	major, minor, code, err := parseStatusLine(status)
	if err != nil {
		return 0, err
	}
	var h head
	first := true
	for {
		if next > MaxHeaderBytes {
			return 0, ErrHeaderTooLarge
		}
		l, after, ok := NextLine(b, next)
		if !ok {
			if len(b) > MaxHeaderBytes {
				return 0, ErrHeaderTooLarge
			}
			return 0, ErrNeedMore
		}
		if after > MaxHeaderBytes {
			return 0, ErrHeaderTooLarge
		}
		next = after
		if len(l) == 0 {
			break
		}
		if err := h.header(l, first); err != nil {
			return 0, err
		}
		first = false
	}
	if err := p.frame(&h, major, minor, code); err != nil {
		return 0, err
	}
	return next, nil
}

// parseStatusLine reads "HTTP/x.y NNN reason" the way net/http does.
func parseStatusLine(l []byte) (major, minor, code int, err error) {
	sp := bytes.IndexByte(l, ' ')
	if sp < 0 {
		return 0, 0, 0, ErrBadStatusLine
	}
	v := l[:sp]
	if len(v) != 8 || string(v[:5]) != "HTTP/" || v[6] != '.' || !isDigit(v[5]) || !isDigit(v[7]) {
		return 0, 0, 0, ErrBadStatusLine
	}
	major, minor = int(v[5]-'0'), int(v[7]-'0')
	rest := l[sp+1:]
	for len(rest) > 0 && rest[0] == ' ' {
		rest = rest[1:]
	}
	if i := bytes.IndexByte(rest, ' '); i >= 0 {
		rest = rest[:i]
	}
	if len(rest) != 3 {
		return 0, 0, 0, ErrBadStatusLine
	}
	// strconv.Atoi, which net/http uses, takes a sign: "+12" is 12, and
	// "-00" is 0, which it does not refuse as negative.
	d := rest
	neg := false
	if d[0] == '+' || d[0] == '-' {
		neg = d[0] == '-'
		d = d[1:]
	}
	for _, c := range d {
		if !isDigit(c) {
			return 0, 0, 0, ErrBadStatusLine
		}
		code = code*10 + int(c-'0')
	}
	if neg && code != 0 {
		return 0, 0, 0, ErrBadStatusLine
	}
	return major, minor, code, nil
}

// header checks one header line and notes what it says about framing.
func (h *head) header(l []byte, first bool) error {
	if l[0] == ' ' || l[0] == '\t' {
		// An obsolete line fold. Harmless on a header we ignore; on one
		// that frames the body we refuse to guess.
		if first || h.lastRelevant {
			return ErrBadHeader
		}
		for _, c := range l {
			if !valueTable[c] {
				return ErrBadHeader
			}
		}
		return nil
	}
	l = TrimOWS(l)
	colon := bytes.IndexByte(l, ':')
	if colon <= 0 {
		return ErrBadHeader
	}
	name, value := l[:colon], l[colon+1:]
	spaced := false
	for _, c := range name {
		if c == ' ' {
			// net/http takes a name with a space ("Content-Length : 5",
			// go.dev/issue/34540) as some other header; so do we.
			spaced = true
			continue
		}
		if !tokenTable[c] {
			return ErrBadHeader
		}
	}
	for _, c := range value {
		if !valueTable[c] {
			return ErrBadHeader
		}
	}
	value = TrimOWS(value)
	h.lastRelevant = !spaced
	switch {
	case spaced:
	case EqualFold(name, "content-length"):
		if !h.clSeen {
			h.clSeen, h.cl = true, value
		} else if !bytes.Equal(h.cl, value) {
			h.clBad = true
		}
	case EqualFold(name, "transfer-encoding"):
		h.teCount++
		h.teChunked = EqualFold(value, "chunked")
	case EqualFold(name, "connection"):
		c, k := ConnectionOptions(value)
		h.connClose = h.connClose || c
		h.connKeepAlive = h.connKeepAlive || k
	case EqualFold(name, "trailer"):
		forEachToken(value, func(t []byte) {
			for _, c := range t {
				if !tokenTable[c] {
					return
				}
			}
			if EqualFold(t, "content-length") || EqualFold(t, "transfer-encoding") || EqualFold(t, "trailer") {
				h.trailerBad = true
			}
		})
	default:
		h.lastRelevant = false
	}
	return nil
}

// forEachToken calls fn with each comma-separated element of v, trimmed,
// skipping empty ones. fn must not keep t.
func forEachToken(v []byte, fn func(t []byte)) {
	for len(v) > 0 {
		i := bytes.IndexByte(v, ',')
		var t []byte
		if i < 0 {
			t, v = v, nil
		} else {
			t, v = v[:i], v[i+1:]
		}
		if t = TrimOWS(t); len(t) > 0 {
			fn(t)
		}
	}
}

// frame decides how the body is delimited, in net/http's order of checks.
func (p *Parser) frame(h *head, major, minor, code int) error {
	p.status = code
	chunked := false
	// Transfer-Encoding means nothing before HTTP/1.1; net/http takes
	// "HTTP/0.0" for 1.1 here (and only here).
	teMajor, teMinor := major, minor
	if major == 0 && minor == 0 {
		teMajor, teMinor = 1, 1
	}
	if h.teCount > 0 && (teMajor > 1 || teMajor == 1 && teMinor >= 1) {
		if h.teCount != 1 || !h.teChunked {
			return ErrBadTransferEncoding
		}
		chunked = true
	}
	var length uint64
	if h.clSeen {
		if h.clBad {
			return ErrBadContentLength
		}
		n, ok := ParseContentLength(h.cl)
		if !ok {
			return ErrBadContentLength
		}
		length = n
	}
	if chunked && h.trailerBad {
		return ErrBadTransferEncoding
	}
	switch {
	case major < 1:
		p.keepAlive = false
	case major == 1 && minor == 0:
		p.keepAlive = !h.connClose && h.connKeepAlive
	default:
		p.keepAlive = !h.connClose
	}
	noBody := p.head || (code >= 100 && code < 200) || code == 204 || code == 304
	switch {
	case noBody:
		p.framing = FramingNone
		p.state = stDone
	case chunked:
		p.framing = FramingChunked
		p.state = stChunkSize
	case h.clSeen:
		p.framing = FramingLength
		p.remaining = length
		p.state = stFixed
		if length == 0 {
			p.framing = FramingNone
			p.state = stDone
		}
	default:
		p.framing = FramingClose
		p.keepAlive = false
		p.state = stClose
	}
	return nil
}

// parseChunkSize reads one chunk-size line: hex digits, optional
// whitespace and extensions, CRLF (a bare LF or a stray CR is refused).
func (p *Parser) parseChunkSize(b []byte) (int, error) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		if len(b) >= maxChunkLine {
			return 0, ErrBadChunk
		}
		return 0, ErrNeedMore
	}
	if i+1 > maxChunkLine {
		return 0, ErrBadChunk
	}
	l := b[:i+1]
	if cr := bytes.IndexByte(l, '\r'); cr < 0 || cr != len(l)-2 {
		return 0, ErrBadChunk
	}
	l = l[:len(l)-2]
	p.excess += int64(len(l)) + 2
	for len(l) > 0 && (l[len(l)-1] == ' ' || l[len(l)-1] == '\t') {
		l = l[:len(l)-1]
	}
	if semi := bytes.IndexByte(l, ';'); semi >= 0 {
		l = l[:semi]
	}
	if len(l) == 0 || len(l) > 16 {
		return 0, ErrBadChunk
	}
	var n uint64
	for _, c := range l {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, ErrBadChunk
		}
		n = n<<4 | uint64(d)
	}
	// Allow 16 bytes of overhead per chunk plus twice its data, as
	// net/http does, so extensions cannot bury the data.
	p.excess -= 16 + 2*int64(n)
	if p.excess < 0 || n > 1<<62 {
		p.excess = 0
	}
	if p.excess > 16*1024 {
		return 0, ErrBadChunk
	}
	if n == 0 {
		p.state = stTrailer
	} else {
		p.remaining = n
		p.state = stChunkData
	}
	return i + 1, nil
}

// parseTrailer reads the end of a chunked body: CRLF, or trailer header
// lines ending in an empty line (the block must end with CRLF CRLF).
func (p *Parser) parseTrailer(b []byte) (int, error) {
	if len(b) < 2 {
		return 0, ErrNeedMore
	}
	if b[0] == '\r' && b[1] == '\n' {
		p.state = stDone
		return 2, nil
	}
	end := bytes.Index(b, []byte("\r\n\r\n"))
	if end < 0 {
		if len(b) > MaxHeaderBytes {
			return 0, ErrHeaderTooLarge
		}
		return 0, ErrNeedMore
	}
	block := b[:end+4]
	var h head
	next := 0
	first := true
	for {
		l, after, ok := NextLine(block, next)
		if !ok {
			return 0, ErrBadHeader
		}
		next = after
		if len(l) == 0 {
			break
		}
		if err := h.header(l, first); err != nil {
			return 0, err
		}
		h.lastRelevant = false // framing headers in trailers are ignored
		first = false
	}
	// An LF-only empty line may end the trailers before the CRLF CRLF
	// that had to be in sight: net/http stops there too.
	p.state = stDone
	return next, nil
}
