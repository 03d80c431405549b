package server

import "strconv"

// responses are every response the server sends, built once by Start.
type responses struct {
	ok [numConnModes][2][]byte // [connMode][HEAD]: the configured response

	badRequest     []byte // 400, then close
	headTooLarge   []byte // 431, then close
	notImplemented []byte // 501 (Transfer-Encoding), then close
	continue100    []byte // interim response to Expect: 100-continue
}

func newResponses(status, bodySize int) *responses {
	body := make([]byte, bodySize)
	for i := range body {
		body[i] = 'x'
	}
	copy(body, "ok")
	// RFC 9110: 204 and 304 responses have neither body nor Content-Length.
	bodiless := status == 204 || status == 304
	rs := &responses{}
	for m := range numConnModes {
		for head := range 2 {
			b := append([]byte("HTTP/1.1 "), strconv.Itoa(status)...)
			b = append(b, ' ')
			b = append(b, statusText(status)...)
			b = append(b, "\r\nContent-Type: text/plain\r\n"...)
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
			b = append(b, "\r\n"...)
			if head == 0 && !bodiless {
				b = append(b, body...)
			}
			rs.ok[m][head] = b
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

// appendResponse appends the response to r.
func (rs *responses) appendResponse(out []byte, r *request) []byte {
	head := 0
	if r.head {
		head = 1
	}
	return append(out, rs.ok[r.conn][head]...)
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
