package http1

import "bytes"

// Byte-level helpers for HTTP/1.x heads, shared by the response parser
// here and the built-in server's request parser (package server), so that
// both read tokens, header lines, lists and lengths the same way.
//
// Every helper works on the caller's bytes in place and allocates
// nothing: they are on the per-request path of both parsers. The small
// ones inline across packages; the others (NextLine, ConnectionOptions,
// ListContains) cost a call, so each does a whole line or a whole list
// per call, never an element. Hazard: a helper that stops inlining, or a
// call per element, shows as instructions per request in BenchmarkFeed
// (package server) and BenchmarkParse here; measure with callgrind, as
// the wall clock of a shared machine cannot see 1%.

// IsTokenChar reports whether c may appear in an RFC 9110 token (a
// method, a header name, a Connection option), as net/textproto reads it.
func IsTokenChar(c byte) bool { return tokenTable[c] }

// IsValueChar reports whether c may appear in a header field value: HTAB,
// SP, visible ASCII and obs-text (bytes >= 0x80); not other controls.
func IsValueChar(c byte) bool { return valueTable[c] }

// IsToken reports whether b is a non-empty RFC 9110 token.
func IsToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !tokenTable[c] {
			return false
		}
	}
	return true
}

// TrimOWS trims optional white space (SP and HTAB) on both sides of b.
func TrimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// TrimCR drops one CR at the end of b: what is left of a CRLF line once
// its LF is cut.
func TrimCR(b []byte) []byte {
	if len(b) > 0 && b[len(b)-1] == '\r' {
		return b[:len(b)-1]
	}
	return b
}

// EqualFold reports whether b equals lower, ignoring ASCII case in b.
// lower must be lower-case ASCII (a header name or option as written in
// the RFCs, lower-cased): only b is folded.
func EqualFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// NextLine returns the line of b that starts at from, without its LF and
// without a CR before the LF, and the index just past the LF. ok is false
// when no LF follows from: the line is not complete yet. RFC 9112 2.2
// lets a recipient take a bare LF as a line end; both parsers do.
func NextLine(b []byte, from int) (line []byte, next int, ok bool) {
	i := bytes.IndexByte(b[from:], '\n')
	if i < 0 {
		return nil, 0, false
	}
	return TrimCR(b[from : from+i]), from + i + 1, true
}

// ConnectionOptions reports whether a Connection header's value lists
// the "close" and "keep-alive" options (RFC 9110 7.6.1: a comma-separated
// list, case-insensitive). One call per header, with no call per option:
// both parsers meet a Connection header in nearly every message.
func ConnectionOptions(v []byte) (close, keepAlive bool) {
	for len(v) > 0 {
		var opt []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			opt, v = v[:i], v[i+1:]
		} else {
			opt, v = v, nil
		}
		opt = TrimOWS(opt)
		switch {
		case EqualFold(opt, "close"):
			close = true
		case EqualFold(opt, "keep-alive"):
			keepAlive = true
		}
	}
	return close, keepAlive
}

// ListContains reports whether the comma-separated header value v (RFC
// 9110 5.6.1) has the element lower, ignoring ASCII case and optional
// white space; lower must be lower-case ASCII. It stops at the first
// match: cheaper than ConnectionOptions when one option is all a caller
// needs (the server asks HTTP/1.1 requests for "close" only).
func ListContains(v []byte, lower string) bool {
	for len(v) > 0 {
		var e []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			e, v = v[:i], v[i+1:]
		} else {
			e, v = v, nil
		}
		if EqualFold(TrimOWS(e), lower) {
			return true
		}
	}
	return false
}

// ParseContentLength reads a Content-Length value (already trimmed) as
// net/http does: one or more decimal digits, no sign, at most 2^63-1.
func ParseContentLength(v []byte) (uint64, bool) {
	if len(v) == 0 {
		return 0, false
	}
	var n uint64
	for _, c := range v {
		if !isDigit(c) {
			return 0, false
		}
		if n > (1<<63-1)/10 {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
		if n > 1<<63-1 {
			return 0, false
		}
	}
	return n, true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// Byte classes, as net/textproto defines them.
var tokenTable, valueTable = func() (token, value [256]bool) {
	for c := 0; c < 256; c++ {
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
			token[c] = true
		case c < 128 && bytes.IndexByte([]byte("!#$%&'*+-.^_`|~"), byte(c)) >= 0:
			token[c] = true
		}
		value[c] = c == '\t' || (c >= 0x20 && c != 0x7f)
	}
	return token, value
}()
