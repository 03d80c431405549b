package server

import (
	"bufio"
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestParseRequest(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		rest int // bytes left after the head
		want request
		err  error
	}{
		// The common case: HTTP/1.1 keeps the connection open.
		{"get", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 0, request{}, nil},
		// Only the head is consumed: the next request stays in the buffer.
		{"pipelined", "GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n", 18, request{}, nil},
		// A bare LF ends lines too (RFC 9112 2.2 lets a server accept it).
		{"bare LF", "GET / HTTP/1.1\nHost: x\n\n", 0, request{}, nil},
		{"head", "HEAD /x HTTP/1.1\r\n\r\n", 0, request{head: true}, nil},
		// Methods are case-sensitive: "head" is some other method.
		{"lower head", "head /x HTTP/1.1\r\n\r\n", 0, request{}, nil},
		{"close", "GET / HTTP/1.1\r\nconnection: Close\r\n\r\n", 0, request{conn: closeAfter}, nil},
		// Connection is a list; close wins.
		{"close in a list", "GET / HTTP/1.1\r\nConnection: keep-alive, close\r\n\r\n", 0, request{conn: closeAfter}, nil},
		{"http/1.0", "GET / HTTP/1.0\r\n\r\n", 0, request{conn: closeAfter}, nil},
		// HTTP/1.0 keep-alive must be confirmed in the response.
		{"http/1.0 keep-alive", "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", 0, request{conn: keepAliveAsked}, nil},
		// Keep-alive means nothing new to HTTP/1.1.
		{"1.1 keep-alive", "GET / HTTP/1.1\r\nConnection: keep-alive\r\n\r\n", 0, request{}, nil},
		{"content-length", "POST / HTTP/1.1\r\nCONTENT-LENGTH:  12 \r\n\r\n", 0, request{bodyLen: 12}, nil},
		// Repeated and equal is allowed (RFC 9110 8.6); different is not.
		{"same length twice", "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", 0, request{bodyLen: 3}, nil},
		{"different lengths", "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", 0, request{}, errBadRequest},
		{"negative length", "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 0, request{}, errBadRequest},
		{"huge length", "POST / HTTP/1.1\r\nContent-Length: 9999999999999999999\r\n\r\n", 0, request{}, errBadRequest},
		{"expect", "POST / HTTP/1.1\r\nContent-Length: 1\r\nExpect: 100-Continue\r\n\r\n", 0, request{bodyLen: 1, expectContinue: true}, nil},
		{"chunked", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 0, request{}, errTransferEncoding},
		// Headers that merely look like the ones we read.
		{"lookalike", "GET / HTTP/1.1\r\nContent-Lengths: x\r\nX-Connection: close\r\n\r\n", 0, request{}, nil},
		{"garbage", "garbage\r\n\r\n", 0, request{}, errBadRequest},
		// A bad request line is rejected before the head is complete.
		{"early garbage", "hello there\r\n", 0, request{}, errBadRequest},
		{"no target", "GET  HTTP/1.1\r\n\r\n", 0, request{}, errBadRequest},
		{"two spaces", "GET /  HTTP/1.1\r\n\r\n", 0, request{}, errBadRequest},
		{"http/2", "GET / HTTP/2.0\r\n\r\n", 0, request{}, errBadRequest},
		{"bad method", "G(T / HTTP/1.1\r\n\r\n", 0, request{}, errBadRequest},
		{"no colon", "GET / HTTP/1.1\r\nHost x\r\n\r\n", 0, request{}, errBadRequest},
		{"space before colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n", 0, request{}, errBadRequest},
		{"folded", "GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n", 0, request{}, errBadRequest},
		{"incomplete", "GET / HTTP/1.1\r\nHost: x\r\n", 0, request{}, errNeedMore},
		{"too large", "GET / HTTP/1.1\r\nX: " + strings.Repeat("a", MaxHeaderBytes) + "\r\n\r\n", 0, request{}, errHeadTooLarge},
		{"too large, incomplete", "GET / HTTP/1.1\r\nX: " + strings.Repeat("a", MaxHeaderBytes), 0, request{}, errHeadTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r request
			n, err := parseRequest([]byte(tc.in), 0, &r)
			if err != tc.err {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
			if err == nil && (n != len(tc.in)-tc.rest || r != tc.want) {
				t.Fatalf("got %d %+v, want %d %+v", n, r, len(tc.in)-tc.rest, tc.want)
			}
		})
	}
}

// TestParseRequestResumes grows a head byte by byte, resuming each search
// where the previous one stopped, as feed does.
func TestParseRequestResumes(t *testing.T) {
	for _, in := range []string{
		"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		"GET / HTTP/1.1\nA: b\n\n",
		"GET / HTTP/1.1\r\n\r\n",
	} {
		scan := 0
		for i := 1; i <= len(in); i++ {
			var r request
			n, err := parseRequest([]byte(in[:i]), scan, &r)
			if i < len(in) {
				if err != errNeedMore {
					t.Fatalf("%q at %d: %v", in, i, err)
				}
				scan = n
				continue
			}
			if err != nil || n != len(in) {
				t.Fatalf("%q: %d %v", in, n, err)
			}
		}
	}
}

// feedAll runs feed over the chunks as a connection would and returns
// what it wrote, the responses counted and whether it closed.
func feedAll(rs *responses, chunks ...string) (string, int, bool) {
	var ss session
	var pending, out []byte
	total := 0
	for _, c := range chunks {
		pending = append(pending, c...)
		var off, n int
		var closeConn bool
		out, off, n, closeConn = rs.feed(&ss, pending, out, &policy{})
		pending = pending[off:]
		total += n
		if closeConn {
			return string(out), total, true
		}
	}
	return string(out), total, false
}

func TestFeed(t *testing.T) {
	rs := testResponses(200, 2)
	ok := string(rs.resp[kindOK][keepAlive][0])
	okHead := string(rs.resp[kindOK][keepAlive][1])
	okClose := string(rs.resp[kindOK][closeAfter][0])
	const get = "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
	for _, tc := range []struct {
		name   string
		chunks []string
		want   string
		n      int
		close  bool
	}{
		{"one", []string{get}, ok, 1, false},
		{"pipelined", []string{strings.Repeat(get, 3)}, ok + ok + ok, 3, false},
		// A request split anywhere waits for its end.
		{"split", []string{get[:5], get[5:20], get[20:]}, ok, 1, false},
		{"split at CR LF", []string{get[:len(get)-1], get[len(get)-1:]}, ok, 1, false},
		// The body is dropped as it comes; the response waits for its end.
		{"body", []string{"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab", "c", "de" + get}, ok + ok, 2, false},
		{"body pending", []string{"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab"}, "", 0, false},
		{"expect", []string{"POST / HTTP/1.1\r\nContent-Length: 1\r\nExpect: 100-continue\r\n\r\n", "x"},
			"HTTP/1.1 100 Continue\r\n\r\n" + ok, 1, false},
		// Empty lines between requests are ignored.
		{"crlf between", []string{get + "\r\n" + get}, ok + ok, 2, false},
		{"head", []string{"HEAD / HTTP/1.1\r\n\r\n" + get}, okHead + ok, 2, false},
		// Nothing after a closing request is answered.
		{"close", []string{"GET / HTTP/1.1\r\nConnection: close\r\n\r\n" + get}, okClose, 1, true},
		{"close after body", []string{"POST / HTTP/1.0\r\nContent-Length: 1\r\n\r\n", "x" + get}, okClose, 1, true},
		// Responses already earned go out before the error.
		{"garbage", []string{get + "garbage\r\n\r\n"}, ok + string(rs.badRequest), 2, true},
		{"chunked", []string{"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"}, string(rs.notImplemented), 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, n, closeConn := feedAll(rs, tc.chunks...)
			if out != tc.want || n != tc.n || closeConn != tc.close {
				t.Fatalf("got %q %d %v\nwant %q %d %v", out, n, closeConn, tc.want, tc.n, tc.close)
			}
		})
	}
}

func TestFeedByteByByte(t *testing.T) {
	rs := testResponses(200, 2)
	in := "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcHEAD / HTTP/1.1\r\n\r\n"
	chunks := make([]string, len(in))
	for i := range in {
		chunks[i] = in[i : i+1]
	}
	out, n, closeConn := feedAll(rs, chunks...)
	if want := string(rs.resp[kindOK][keepAlive][0]) + string(rs.resp[kindOK][keepAlive][1]); out != want || n != 2 || closeConn {
		t.Fatalf("got %q %d %v", out, n, closeConn)
	}
}

func TestResponses(t *testing.T) {
	for _, tc := range []struct {
		status, size int
		head         bool
		mode         connMode
		wantBody     string
		wantLength   int64
	}{
		{200, 2, false, keepAlive, "ok", 2},
		{200, 5, false, keepAliveAsked, "okxxx", 5},
		{200, 1, false, closeAfter, "o", 1},
		{200, 0, false, keepAlive, "", 0},
		{503, 2, false, keepAlive, "ok", 2},
		// HEAD: the length of the body it would have had, and no body.
		{200, 5, true, keepAlive, "", 5},
		// 204: no body and no Content-Length (net/http says -1... or 0).
		{204, 2, false, keepAlive, "", 0},
		{299, 2, false, keepAlive, "ok", 2},
	} {
		rs := testResponses(tc.status, tc.size)
		h := 0
		method := "GET"
		if tc.head {
			h, method = 1, "HEAD"
		}
		raw := rs.resp[kindOK][tc.mode][h]
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(raw)), &http.Request{Method: method})
		if err != nil {
			t.Fatalf("%+v: %v", tc, err)
		}
		var body bytes.Buffer
		_, _ = body.ReadFrom(resp.Body)
		if resp.StatusCode != tc.status || body.String() != tc.wantBody ||
			(resp.ContentLength != tc.wantLength && tc.status != 204) ||
			resp.Close != (tc.mode == closeAfter) || resp.Header.Get("Content-Type") != "text/plain" {
			t.Fatalf("%+v: %q -> %d %q len %d close %v", tc, raw, resp.StatusCode, body.String(), resp.ContentLength, resp.Close)
		}
		if tc.mode == keepAliveAsked && resp.Header.Get("Connection") != "keep-alive" {
			t.Fatalf("%+v: %q", tc, raw)
		}
	}
}

func TestDue(t *testing.T) {
	const ms = time.Millisecond
	for _, tc := range []struct {
		delay, every, length time.Duration
		now, want            time.Duration
	}{
		// No delay, no stall: due at once.
		{0, 0, 0, 5 * ms, 5 * ms},
		{10 * ms, 0, 0, 5 * ms, 15 * ms},
		// The first stall starts one period after the start, not at it.
		{0, 100 * ms, 20 * ms, 5 * ms, 5 * ms},
		// Inside a stall: due when it ends.
		{0, 100 * ms, 20 * ms, 100 * ms, 120 * ms},
		{0, 100 * ms, 20 * ms, 219 * ms, 220 * ms},
		// The stall's end itself is outside it.
		{0, 100 * ms, 20 * ms, 120 * ms, 120 * ms},
		// The delay can carry a response into a stall.
		{10 * ms, 100 * ms, 20 * ms, 95 * ms, 120 * ms},
		// ... or past it.
		{30 * ms, 100 * ms, 20 * ms, 95 * ms, 125 * ms},
	} {
		s := &Server{o: Options{Delay: tc.delay, StallEvery: tc.every, StallFor: tc.length}}
		if got := s.due(tc.now); got != tc.want {
			t.Errorf("%+v: got %s", tc, got)
		}
	}
}

// FuzzParseRequest checks that the parser never panics, never reports
// more than it was given, and, when net/http also accepts the head,
// agrees with it on the framing: body length, keep-alive, HEAD.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"HEAD / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
		"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nConnection: close\r\n\r\n",
		"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET / HTTP/1.1\nHost: x\n\n",
		"garbage\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var r request
		n, err := parseRequest(b, 0, &r)
		if err != nil {
			return
		}
		if n <= 0 || n > len(b) {
			t.Fatalf("consumed %d of %d", n, len(b))
		}
		req, herr := http.ReadRequest(bufio.NewReader(bytes.NewReader(b[:n])))
		if herr != nil {
			return // net/http is stricter in places (header values, Host)
		}
		if req.ContentLength != int64(r.bodyLen) && !(req.ContentLength == -1 && r.bodyLen == 0) {
			t.Fatalf("%q: body %d, net/http %d", b[:n], r.bodyLen, req.ContentLength)
		}
		if req.Close != (r.conn == closeAfter) {
			t.Fatalf("%q: close %v, net/http %v", b[:n], r.conn == closeAfter, req.Close)
		}
		if (req.Method == "HEAD") != r.head {
			t.Fatalf("%q: head %v", b[:n], r.head)
		}
	})
}

// testResponses are the responses of a server with this status and body
// size, and every other option at its default.
func testResponses(status, bodySize int) *responses {
	o := Options{Status: status, BodySize: bodySize}
	if bodySize == 0 {
		o.BodySize = -1
	}
	if err := o.normalize(); err != nil {
		panic(err)
	}
	return newResponses(&o)
}
