// Package http1 is barrage's HTTP/1.1 wire: a request encoder that builds a
// request's bytes once, and an incremental response parser that works on
// the connection's read buffer in place, pipelined responses included, with
// no allocation per response.
package http1

import "errors"

// ErrNeedMore is not a failure: Feed consumed what it could and needs more
// bytes to go on.
var ErrNeedMore = errors.New("http1: need more data")

// ErrProtocol is matched (errors.Is) by every protocol error below: the
// bytes are not an HTTP/1.x response and the connection cannot be used.
var ErrProtocol = errors.New("http1: protocol error")

// Error is a protocol error. The sentinels below are its only values, so
// reporting one never allocates.
type Error struct{ msg string }

func (e *Error) Error() string { return e.msg }

// Is makes every Error match ErrProtocol.
func (e *Error) Is(target error) bool { return target == ErrProtocol }

// Protocol errors.
var (
	// ErrHeaderTooLarge occurs when the status line and headers (or a
	// chunked body's trailers) exceed MaxHeaderBytes without ending.
	ErrHeaderTooLarge error = &Error{"http1: response header too large"}
	// ErrBadStatusLine occurs when the first line is not "HTTP/x.y NNN ...".
	ErrBadStatusLine error = &Error{"http1: malformed status line"}
	// ErrBadHeader occurs when a header line is not "name: value" with a
	// token name and printable value, or a header that frames the body is
	// folded over lines.
	ErrBadHeader error = &Error{"http1: malformed header line"}
	// ErrBadContentLength occurs when Content-Length is empty, not a
	// decimal number, too large, or repeated with different values.
	ErrBadContentLength error = &Error{"http1: bad Content-Length"}
	// ErrBadTransferEncoding occurs when Transfer-Encoding is anything but
	// one "chunked", or a chunked message's Trailer header names a framing
	// header.
	ErrBadTransferEncoding error = &Error{"http1: unsupported Transfer-Encoding"}
	// ErrBadChunk occurs when a chunk-size line is not hex ending in CRLF,
	// chunk data is not followed by CRLF, or chunk overhead is abusive.
	ErrBadChunk error = &Error{"http1: malformed chunked encoding"}
	// ErrUnexpectedEOF occurs when the connection closes in the middle of
	// a response that was not delimited by the close.
	ErrUnexpectedEOF error = &Error{"http1: connection closed mid-response"}
)

// ErrNoResponse occurs when the connection closes before any byte of the
// response arrived. It is not a protocol error: the peer just closed.
var ErrNoResponse = errors.New("http1: connection closed before a response")

// ErrBadRequest occurs when a request template cannot be encoded safely.
var ErrBadRequest = errors.New("http1: bad request template")
