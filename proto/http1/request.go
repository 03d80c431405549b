package http1

import (
	"fmt"
	"strconv"
)

// Header is one request header field.
type Header struct{ Name, Value string }

// Request is a request template. Its bytes are built once by AppendRequest
// and sent as they are for every request.
type Request struct {
	Method  string   // "" means GET
	Host    string   // the Host header's value (host[:port])
	Path    string   // path and "?query"; "" means "/"
	Headers []Header // sent in order; a "Host" header overrides Host
	Body    []byte   // sent with Content-Length
	Close   bool     // "Connection: close" instead of keep-alive
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !IsTokenChar(s[i]) {
			return false
		}
	}
	return true
}

func hasCTL(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return true
		}
	}
	return false
}

func eqFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lower(a[i]) != lower(b[i]) {
			return false
		}
	}
	return true
}

// Validate rejects a template that would put a request smuggling hazard or
// a malformed line on the wire: framing headers are barrage's to write.
func (r *Request) Validate() error {
	m := r.Method
	if m == "" {
		m = "GET"
	}
	if !isToken(m) {
		return fmt.Errorf("%w: method %q is not a token", ErrBadRequest, m)
	}
	if hasCTL(r.Path) || hasCTL(r.Host) || containsByte(r.Path, ' ') {
		return fmt.Errorf("%w: control characters or spaces in path or host", ErrBadRequest)
	}
	if r.Path != "" && r.Path[0] != '/' && r.Path != "*" {
		return fmt.Errorf("%w: path %q must start with /", ErrBadRequest, r.Path)
	}
	for _, h := range r.Headers {
		if !isToken(h.Name) {
			return fmt.Errorf("%w: header name %q is not a token", ErrBadRequest, h.Name)
		}
		if hasCTL(h.Value) {
			return fmt.Errorf("%w: header %q has control characters in its value", ErrBadRequest, h.Name)
		}
		for _, f := range []string{"Content-Length", "Transfer-Encoding", "Connection"} {
			if eqFold(h.Name, f) {
				return fmt.Errorf("%w: header %q is set by barrage itself", ErrBadRequest, h.Name)
			}
		}
	}
	return nil
}

func containsByte(s string, c byte) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return true
		}
	}
	return false
}

// AppendRequest appends the wire bytes of r to dst and returns the result.
func AppendRequest(dst []byte, r *Request) []byte {
	m := r.Method
	if m == "" {
		m = "GET"
	}
	p := r.Path
	if p == "" {
		p = "/"
	}
	dst = append(dst, m...)
	dst = append(dst, ' ')
	dst = append(dst, p...)
	dst = append(dst, " HTTP/1.1\r\n"...)
	host, ua := r.Host, true
	for _, h := range r.Headers {
		if eqFold(h.Name, "Host") {
			host = h.Value
		}
		if eqFold(h.Name, "User-Agent") {
			ua = false
		}
	}
	dst = append(dst, "Host: "...)
	dst = append(dst, host...)
	dst = append(dst, "\r\n"...)
	if ua {
		dst = append(dst, "User-Agent: barrage\r\n"...)
	}
	for _, h := range r.Headers {
		if eqFold(h.Name, "Host") {
			continue
		}
		dst = append(dst, h.Name...)
		dst = append(dst, ": "...)
		dst = append(dst, h.Value...)
		dst = append(dst, "\r\n"...)
	}
	if len(r.Body) > 0 || m == "POST" || m == "PUT" || m == "PATCH" {
		dst = append(dst, "Content-Length: "...)
		dst = strconv.AppendInt(dst, int64(len(r.Body)), 10)
		dst = append(dst, "\r\n"...)
	}
	if r.Close {
		dst = append(dst, "Connection: close\r\n\r\n"...)
	} else {
		dst = append(dst, "Connection: keep-alive\r\n\r\n"...)
	}
	return append(dst, r.Body...)
}
