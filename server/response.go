package server

import "strconv"

// kind is which of the prepared responses a request gets (see policy.go).
type kind uint8

const (
	// kindOK is the configured response: Options.Status and the body.
	kindOK kind = iota
	// kindFail is a failure: Options.FailStatus, empty body (FailRate,
	// outage windows).
	kindFail
	// kindLimited is a rate-limited request's 429 (RateLimit).
	kindLimited
	numKinds
)

// responses are every response the server sends, built once by Start.
type responses struct {
	// resp[kind][connMode][HEAD] are the final responses. In Close mode
	// every one is an HTTP/1.0 response whose body ends with the
	// connection (no Content-Length), whatever the mode.
	resp [numKinds][numConnModes][2][]byte
	// closeEach: Close mode; every response closes its connection.
	closeEach bool

	badRequest     []byte // 400, then close
	headTooLarge   []byte // 431, then close
	notImplemented []byte // 501 (Transfer-Encoding), then close
	continue100    []byte // interim response to Expect: 100-continue
}

// newResponses builds the responses of o, which is normalized.
func newResponses(o *Options) *responses {
	body := make([]byte, o.BodySize)
	for i := range body {
		body[i] = 'x'
	}
	copy(body, "ok")
	rs := &responses{closeEach: o.Close}
	for m := range numConnModes {
		for head := range 2 {
			headOnly := head == 1
			rs.resp[kindOK][m][head] = buildResponse(o.Status, nil, body, m, headOnly, o.Close)
			rs.resp[kindFail][m][head] = buildResponse(o.FailStatus, nil, nil, m, headOnly, o.Close)
			// Retry-After, as rate limiters send it: a client that
			// honours it waits a second.
			rs.resp[kindLimited][m][head] = buildResponse(429, []string{"Retry-After: 1"}, nil, m, headOnly, o.Close)
		}
	}
	errorResponse := func(status int) []byte {
		return []byte("HTTP/1.1 " + strconv.Itoa(status) + " " + statusText(status) +
			"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
	}
	rs.badRequest = errorResponse(400)
	rs.headTooLarge = errorResponse(431)
	rs.notImplemented = errorResponse(501)
	rs.continue100 = []byte("HTTP/1.1 100 Continue\r\n\r\n")
	return rs
}

// buildResponse is one response's bytes. A HEAD response has the
// headers the GET one would have, and no body. closeDelimited makes an
// HTTP/1.0 response with no Content-Length, whose body the client reads
// until the server closes (RFC 9112 6.3, rule 8).
func buildResponse(status int, extra []string, body []byte, m connMode, headOnly, closeDelimited bool) []byte {
	// RFC 9110: 204 and 304 responses have neither body nor Content-Length.
	bodiless := status == 204 || status == 304
	version := "HTTP/1.1 "
	if closeDelimited {
		version = "HTTP/1.0 "
	}
	b := append([]byte(version), strconv.Itoa(status)...)
	b = append(b, ' ')
	b = append(b, statusText(status)...)
	b = append(b, "\r\nContent-Type: text/plain\r\n"...)
	for _, h := range extra {
		b = append(b, h...)
		b = append(b, "\r\n"...)
	}
	switch {
	case closeDelimited:
		b = append(b, "Connection: close\r\n"...)
	default:
		if !bodiless {
			b = append(b, "Content-Length: "...)
			b = strconv.AppendInt(b, int64(len(body)), 10)
			b = append(b, "\r\n"...)
		}
		switch m {
		case keepAliveAsked:
			b = append(b, "Connection: keep-alive\r\n"...)
		case closeAfter:
			b = append(b, "Connection: close\r\n"...)
		}
	}
	b = append(b, "\r\n"...)
	if !headOnly && !bodiless {
		b = append(b, body...)
	}
	return b
}

// appendResponse appends the response of kind k to r.
func (rs *responses) appendResponse(out []byte, r *request, k kind) []byte {
	head := 0
	if r.head {
		head = 1
	}
	return append(out, rs.resp[k][r.conn][head]...)
}

// statusText is the reason phrase of the codes a test is likely to ask
// for; other codes get an empty one, which HTTP/1.1 allows.
func statusText(code int) string {
	switch code {
	case 200:
		return "OK"
	case 201:
		return "Created"
	case 202:
		return "Accepted"
	case 204:
		return "No Content"
	case 301:
		return "Moved Permanently"
	case 302:
		return "Found"
	case 304:
		return "Not Modified"
	case 400:
		return "Bad Request"
	case 401:
		return "Unauthorized"
	case 403:
		return "Forbidden"
	case 404:
		return "Not Found"
	case 408:
		return "Request Timeout"
	case 429:
		return "Too Many Requests"
	case 431:
		return "Request Header Fields Too Large"
	case 500:
		return "Internal Server Error"
	case 501:
		return "Not Implemented"
	case 502:
		return "Bad Gateway"
	case 503:
		return "Service Unavailable"
	case 504:
		return "Gateway Timeout"
	}
	return ""
}
