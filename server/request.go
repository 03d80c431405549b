package server

import (
	"bytes"
	"errors"
	"math"

	"github.com/barrage-load/barrage/proto/http1"
)

// MaxHeaderBytes bounds a request's head (request line, headers and the
// blank line ending them). A longer head gets a 431 and the connection is
// closed.
const MaxHeaderBytes = 64 << 10

// Request parse outcomes other than success. They never leave the package:
// each becomes an error response.
var (
	// errNeedMore occurs when the buffer ends before the head's blank line.
	errNeedMore = errors.New("server: incomplete request head")
	// errBadRequest occurs when the request line or a header line is
	// malformed, or Content-Length is not a number (400).
	errBadRequest = errors.New("server: malformed request")
	// errHeadTooLarge occurs when the head is longer than MaxHeaderBytes (431).
	errHeadTooLarge = errors.New("server: request head too large")
	// errTransferEncoding occurs when a request has a Transfer-Encoding
	// header: chunked request bodies are not supported (501).
	errTransferEncoding = errors.New("server: request with Transfer-Encoding")
)

// connMode says what happens to the connection after a response.
type connMode uint8

const (
	// keepAlive: HTTP/1.1's default; the response says nothing.
	keepAlive connMode = iota
	// keepAliveAsked: an HTTP/1.0 request asked for keep-alive; the
	// response must confirm it, or the client closes.
	keepAliveAsked
	// closeAfter: Connection: close, or HTTP/1.0 without keep-alive.
	closeAfter
	numConnModes
)

// request is all the server needs to know about a request head.
type request struct {
	bodyLen        int      // Content-Length, 0 when absent
	conn           connMode // what to do with the connection after the response
	head           bool     // HEAD: the response has headers only
	expectContinue bool     // Expect: 100-continue
}

// parseRequest parses the request head at the start of b into r and
// returns its length, blank line included. The head must start with the
// request line (leading empty lines are the caller's to skip).
//
// With errNeedMore, n is where the next call on the same head (grown by
// later reads) may resume its search for the blank line: pass it as scan.
// It is 0 for the first call. Resuming keeps a head that arrives byte by
// byte from being rescanned from its start on every read.
//
// The parser is deliberately lenient where it does not matter to a
// benchmark target (header values are not checked for control
// characters, Host is not required) and strict where framing depends on
// it (request line, header names, Content-Length, Transfer-Encoding).
// Tokens, white space, lists, case and lengths are read by proto/http1's
// helpers, the same as the response parser's.
func parseRequest(b []byte, scan int, r *request) (n int, err error) {
	end, resume := headEnd(b, scan)
	if end < 0 {
		if len(b) > MaxHeaderBytes {
			return 0, errHeadTooLarge
		}
		// Reject a bad request line at once rather than waiting for a
		// blank line that garbage may never send.
		if nl := bytes.IndexByte(b, '\n'); nl >= 0 {
			var probe request
			if _, err := parseRequestLine(http1.TrimCR(b[:nl]), &probe); err != nil {
				return 0, err
			}
		}
		return resume, errNeedMore
	}
	if end > MaxHeaderBytes {
		return 0, errHeadTooLarge
	}
	*r = request{}
	nl := bytes.IndexByte(b, '\n') // there is a line: end > 0
	http10, err := parseRequestLine(http1.TrimCR(b[:nl]), r)
	if err != nil {
		return 0, err
	}
	if http10 {
		r.conn = closeAfter
	}
	seenLength := false
	lines := b[nl+1 : end]
	for {
		// Not http1.NextLine: it does not inline, and its call costs
		// about 50 instructions a line, a tenth of the whole
		// request's (callgrind, BenchmarkFeed); IndexByte and TrimCR
		// inline.
		i := bytes.IndexByte(lines, '\n')
		if i < 0 {
			break // what is left is the blank line
		}
		line := http1.TrimCR(lines[:i])
		lines = lines[i+1:]
		if len(line) == 0 {
			break // the blank line
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !http1.IsToken(line[:colon]) {
			// Also catches obsolete line folding (a line starting with
			// white space), which RFC 9112 lets a server reject.
			return 0, errBadRequest
		}
		name, value := line[:colon], http1.TrimOWS(line[colon+1:])
		switch len(name) {
		case len("content-length"):
			if !http1.EqualFold(name, "content-length") {
				continue
			}
			v, ok := http1.ParseContentLength(value)
			if !ok || v > math.MaxInt || (seenLength && int(v) != r.bodyLen) {
				return 0, errBadRequest
			}
			r.bodyLen, seenLength = int(v), true
		case len("transfer-encoding"):
			if http1.EqualFold(name, "transfer-encoding") {
				return 0, errTransferEncoding
			}
		case len("connection"):
			if http1.EqualFold(name, "connection") {
				r.conn = connectionMode(value, http10, r.conn)
			}
		case len("expect"):
			if http1.EqualFold(name, "expect") && http1.EqualFold(value, "100-continue") {
				r.expectContinue = !http10
			}
		}
	}
	return end, nil
}

// headEnd returns the length of the head at the start of b up to and
// including its blank line ("\r\n" or a bare "\n"), or -1 and where to
// resume the search once more bytes have arrived. from must be 0 or a
// value it returned for a shorter prefix of the same head: always the
// start of a line.
func headEnd(b []byte, from int) (end, resume int) {
	i := from
	for {
		// i is the start of a line; line 0 is the request line, which
		// is never blank here.
		if i > 0 && i < len(b) {
			if b[i] == '\n' {
				return i + 1, 0
			}
			if b[i] == '\r' && i+1 < len(b) && b[i+1] == '\n' {
				return i + 2, 0
			}
		}
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return -1, i
		}
		i += j + 1
	}
}

// parseRequestLine checks "METHOD SP TARGET SP HTTP/1.x" and notes HEAD
// in r. It reports whether the version is HTTP/1.0.
func parseRequestLine(line []byte, r *request) (http10 bool, err error) {
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 || !http1.IsToken(line[:sp]) {
		return false, errBadRequest
	}
	r.head = sp == 4 && string(line[:4]) == "HEAD"
	rest := line[sp+1:]
	sp = bytes.IndexByte(rest, ' ')
	if sp <= 0 {
		return false, errBadRequest
	}
	for _, c := range rest[:sp] {
		if c <= ' ' || c == 0x7f {
			return false, errBadRequest
		}
	}
	v := rest[sp+1:]
	if len(v) != len("HTTP/1.1") || string(v[:7]) != "HTTP/1." || v[7] < '0' || v[7] > '9' {
		return false, errBadRequest
	}
	return v[7] == '0', nil
}

// connectionMode applies a Connection header's options to the mode so far.
func connectionMode(value []byte, http10 bool, m connMode) connMode {
	switch {
	case http1.ListContains(value, "close"):
		return closeAfter // close wins over anything else
	case http10 && http1.ListContains(value, "keep-alive"):
		return keepAliveAsked
	}
	return m
}
