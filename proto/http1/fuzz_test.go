package http1

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"testing"
)

// netHTTPParse runs net/http on data for one response: ok false when it
// rejects the head or fails reading the body.
func netHTTPParse(data []byte, method string) (status int, bodyLen int64, framing Framing, ok bool) {
	br := bufio.NewReader(bytes.NewReader(data))
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		return 0, 0, 0, false
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		return 0, 0, 0, false
	}
	switch {
	case len(resp.TransferEncoding) > 0 && resp.Body != http.NoBody:
		framing = FramingChunked
	case resp.Body == http.NoBody || n == 0 && resp.ContentLength == 0:
		framing = FramingNone
	case resp.ContentLength >= 0 && method != "HEAD":
		framing = FramingLength
	default:
		framing = FramingClose
	}
	return resp.StatusCode, n, framing, true
}

// ourParse parses the first response of data, with the stream ending after
// data (EOF).
func ourParse(data []byte, head bool) (status int, bodyLen int64, framing Framing, ok bool) {
	var p Parser
	p.Reset(head)
	n, err := p.Feed(data)
	if err == ErrNeedMore {
		if n < len(data) {
			// Bytes that could not be consumed at the end of the stream:
			// a head or chunk line that never completes.
			return 0, 0, 0, false
		}
		if p.EOF() != nil {
			return 0, 0, 0, false
		}
	} else if err != nil {
		return 0, 0, 0, false
	}
	return p.Status(), p.BodyLen(), p.Framing(), true
}

// knownDivergence lists the inputs on which barrage is deliberately
// stricter than net/http; each is a reason, kept short.
func knownDivergence(data []byte) bool {
	head := data
	if i := bytes.Index(data, []byte("\n\r\n")); i >= 0 {
		head = data[:i]
	} else if i := bytes.Index(data, []byte("\n\n")); i >= 0 {
		head = data[:i]
	}
	// 1. A header that frames the body (Content-Length, Transfer-Encoding,
	//    Connection, Trailer) folded over lines: net/http joins the lines,
	//    barrage refuses to guess. Obsolete since RFC 7230.
	if bytes.Contains(head, []byte("\n ")) || bytes.Contains(head, []byte("\n\t")) {
		return true
	}
	// 2. Heads over MaxHeaderBytes: net/http has no limit of its own here.
	return len(head) > MaxHeaderBytes
}

func FuzzParseVsNetHTTP(f *testing.F) {
	for _, s := range seedResponses {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, head bool) {
		method := "GET"
		if head {
			method = "HEAD"
		}
		ws, wl, wf, wok := netHTTPParse(data, method)
		gs, gl, gf, gok := ourParse(data, head)
		if wok != gok {
			if knownDivergence(data) {
				return
			}
			t.Fatalf("net/http ok=%v (status %d len %d), barrage ok=%v (status %d len %d) on %q",
				wok, ws, wl, gok, gs, gl, data)
		}
		if !wok {
			return
		}
		if ws != gs || wl != gl {
			t.Fatalf("net/http status %d len %d, barrage status %d len %d on %q", ws, wl, gs, gl, data)
		}
		if wf != gf && !(wl == 0 && (wf == FramingNone || gf == FramingNone)) {
			t.Fatalf("net/http framing %d, barrage %d on %q", wf, gf, data)
		}
	})
}

// seedResponses are typical responses (nginx 1.22's, Go net/http's
// chunked with trailers, pipelined, HTTP/1.0, close-delimited, 1xx, 204,
// 304). The raw bytes captured from nginx 1.22 and from barrage's target
// over real sockets are the corpus files testdata/fuzz/.../captured-*.
var seedResponses = []string{
	"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Tue, 24 Nov 2026 22:44:26 GMT\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok",
	"HTTP/1.1 404 Not Found\r\nServer: nginx/1.22.1\r\nDate: Tue, 24 Nov 2026 22:44:26 GMT\r\nContent-Type: text/html\r\nContent-Length: 153\r\nConnection: keep-alive\r\n\r\n<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n<center><h1>404 Not Found</h1></center>\r\n<hr><center>nginx/1.22.1</center>\r\n</body>\r\n</html>\r\n",
	"HTTP/1.1 200 OK\r\nDate: Tue, 24 Nov 2026 22:50:00 GMT\r\nContent-Type: text/plain; charset=utf-8\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 11\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.0 200 OK\r\nServer: nginx/1.22.1\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nbody until close",
	"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n",
	"HTTP/1.1 204 No Content\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;a=b\r\nx\r\n0\r\n\r\n",
}
