package http1

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

type want struct {
	status    int
	bodyLen   int64
	keepAlive bool
	framing   Framing
}

// parseAll feeds data in pieces of the given sizes (0 = all at once) the way
// the engine does: it keeps unconsumed bytes and presents them again with
// the next piece. It returns each response and the final error.
func parseAll(t *testing.T, data string, head bool, piece int, eof bool) ([]want, error) {
	t.Helper()
	var p Parser
	p.Reset(head)
	var out []want
	var pending []byte
	in := []byte(data)
	for len(in) > 0 || len(pending) > 0 {
		k := len(in)
		if piece > 0 && piece < k {
			k = piece
		}
		pending = append(pending, in[:k]...)
		in = in[k:]
		for len(pending) > 0 {
			n, err := p.Feed(pending)
			pending = pending[n:]
			if err == ErrNeedMore {
				break
			}
			if err != nil {
				return out, err
			}
			out = append(out, want{p.Status(), p.BodyLen(), p.KeepAlive(), p.Framing()})
			p.Reset(head)
		}
		if len(in) == 0 {
			break
		}
	}
	if eof {
		err := p.EOF()
		if err == nil && p.Done() {
			out = append(out, want{p.Status(), p.BodyLen(), p.KeepAlive(), p.Framing()})
			return out, nil
		}
		if errors.Is(err, ErrNoResponse) {
			return out, nil
		}
		return out, err
	}
	if len(pending) > 0 || p.Started() {
		return out, ErrNeedMore
	}
	return out, nil
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		head bool
		eof  bool
		want []want
		err  error
	}{
		{"content-length", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false, false,
			[]want{{200, 2, true, FramingLength}}, nil},
		{"case-insensitive header", "HTTP/1.1 200 OK\r\ncOnTeNt-LeNgTh: 3\r\n\r\nabc", false, false,
			[]want{{200, 3, true, FramingLength}}, nil},
		{"pipelined three", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\nHTTP/1.1 500 x\r\nContent-Length: 2\r\n\r\nzz", false, false,
			[]want{{200, 1, true, FramingLength}, {404, 0, true, FramingNone}, {500, 2, true, FramingLength}}, nil},
		{"chunked with extensions and trailers", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\nabcd\r\nA \r\n0123456789\r\n0\r\nX-Trailer: v\r\n\r\n", false, false,
			[]want{{200, 14, true, FramingChunked}}, nil},
		{"chunked wins over content-length", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n", false, false,
			[]want{{200, 1, true, FramingChunked}}, nil},
		{"head has no body", "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true, false,
			[]want{{200, 0, true, FramingNone}, {200, 0, true, FramingNone}}, nil},
		{"204 and 304", "HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\nHTTP/1.1 304 Not Modified\r\n\r\n", false, false,
			[]want{{204, 0, true, FramingNone}, {304, 0, true, FramingNone}}, nil},
		{"1xx then 200", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx", false, false,
			[]want{{100, 0, true, FramingNone}, {200, 1, true, FramingLength}}, nil},
		{"http/1.0 closes by default", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", false, false,
			[]want{{200, 2, false, FramingLength}}, nil},
		{"http/1.0 keep-alive", "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nok", false, false,
			[]want{{200, 2, true, FramingLength}}, nil},
		{"connection close list", "HTTP/1.1 200 OK\r\nConnection: foo, CLOSE\r\nContent-Length: 0\r\n\r\n", false, false,
			[]want{{200, 0, false, FramingNone}}, nil},
		{"close-delimited", "HTTP/1.1 200 OK\r\n\r\nhello world", false, true,
			[]want{{200, 11, false, FramingClose}}, nil},
		{"bare LF lines", "HTTP/1.1 200 OK\nContent-Length: 2\n\nok", false, false,
			[]want{{200, 2, true, FramingLength}}, nil},
		{"same content-length twice", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok", false, false,
			[]want{{200, 2, true, FramingLength}}, nil},
		{"different content-lengths", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok", false, false, nil, ErrBadContentLength},
		{"negative content-length", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", false, false, nil, ErrBadContentLength},
		{"unparsable content-length", "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n", false, false, nil, ErrBadContentLength},
		{"overflowing content-length", "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n", false, false, nil, ErrBadContentLength},
		{"bad chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", false, false, nil, ErrBadChunk},
		{"chunk data without CRLF", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nxy\r\n", false, false, nil, ErrBadChunk},
		{"gzip transfer-encoding", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", false, false, nil, ErrBadTransferEncoding},
		{"bad status line", "HTTP/1.1 2000 OK\r\n\r\n", false, false, nil, ErrBadStatusLine},
		{"not http", "SSH-2.0-OpenSSH\r\n\r\n", false, false, nil, ErrBadStatusLine},
		{"header without colon", "HTTP/1.1 200 OK\r\nfoo\r\n\r\n", false, false, nil, ErrBadHeader},
		{"space before colon is another header", "HTTP/1.1 200 OK\r\nContent-Length : 1\r\n\r\nabc", false, true,
			[]want{{200, 3, false, FramingClose}}, nil},
		{"eof mid-body", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", false, true, nil, ErrUnexpectedEOF},
		{"eof mid-head", "HTTP/1.1 200 OK\r\nContent-Le", false, true, nil, ErrUnexpectedEOF},
		{"eof between responses", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false, true,
			[]want{{200, 0, true, FramingNone}}, nil},
	} {
		for _, piece := range []int{0, 1, 2, 3, 7} {
			got, err := parseAll(t, tc.in, tc.head, piece, tc.eof)
			if tc.err != nil {
				if !errors.Is(err, tc.err) || !errors.Is(err, ErrProtocol) {
					t.Errorf("%s (pieces of %d): error %v, want %v", tc.name, piece, err, tc.err)
				}
				continue
			}
			if err != nil {
				t.Errorf("%s (pieces of %d): %v", tc.name, piece, err)
				continue
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("%s (pieces of %d): got %v, want %v", tc.name, piece, got, tc.want)
			}
		}
	}
}

func TestEverySplit(t *testing.T) {
	// Every 2-way split of a pipelined buffer gives the same responses.
	in := "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" +
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x\r\nabc\r\n0\r\nT: 1\r\n\r\n" +
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"
	whole, err := parseAll(t, in, false, 0, false)
	if err != nil || len(whole) != 4 {
		t.Fatalf("whole: %v %v", whole, err)
	}
	for cut := 1; cut < len(in); cut++ {
		var p Parser
		var got []want
		pending := []byte(in[:cut])
		rest := []byte(in[cut:])
		for round := 0; round < 2; round++ {
			for len(pending) > 0 {
				n, err := p.Feed(pending)
				pending = pending[n:]
				if err == ErrNeedMore {
					break
				}
				if err != nil {
					t.Fatalf("cut %d: %v", cut, err)
				}
				got = append(got, want{p.Status(), p.BodyLen(), p.KeepAlive(), p.Framing()})
				p.Reset(false)
			}
			pending = append(pending, rest...)
			rest = nil
		}
		if fmt.Sprint(got) != fmt.Sprint(whole) {
			t.Fatalf("cut %d: %v, want %v", cut, got, whole)
		}
	}
}

func TestHeaderLimit(t *testing.T) {
	big := "HTTP/1.1 200 OK\r\nX: " + strings.Repeat("a", MaxHeaderBytes) + "\r\n\r\n"
	if _, err := parseAll(t, big, false, 0, false); !errors.Is(err, ErrHeaderTooLarge) {
		t.Fatalf("complete oversized head: %v", err)
	}
	var p Parser
	if _, err := p.Feed([]byte("HTTP/1.1 200 OK\r\nX: " + strings.Repeat("a", MaxHeaderBytes))); !errors.Is(err, ErrHeaderTooLarge) {
		t.Fatalf("unterminated oversized head: %v", err)
	}
}

func TestRequest(t *testing.T) {
	r := &Request{Method: "POST", Host: "example.com:8080", Path: "/a?b=1",
		Headers: []Header{{"X-A", "1"}, {"Host", "other"}}, Body: []byte("hi")}
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	got := string(AppendRequest([]byte("prefix"), r))
	want := "prefixPOST /a?b=1 HTTP/1.1\r\nHost: other\r\nUser-Agent: barrage\r\nX-A: 1\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nhi"
	if got != want {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	for _, bad := range []*Request{
		{Method: "GE T"}, {Path: "/a b"}, {Path: "/\r\n"}, {Headers: []Header{{"Content-Length", "5"}}},
		{Headers: []Header{{"X", "a\r\nb"}}}, {Headers: []Header{{"X Y", "a"}}}, {Path: "noslash"},
	} {
		if err := bad.Validate(); !errors.Is(err, ErrBadRequest) {
			t.Errorf("%+v: Validate = %v", bad, err)
		}
	}
}
