package http1

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
)

func TestScanHelpers(t *testing.T) {
	for _, tc := range []struct {
		in    string
		token bool
	}{
		{"GET", true},
		{"X-Forwarded-For", true},
		{"!#$%&'*+-.^_`|~09azAZ", true},
		{"", false},
		{"a b", false},
		{"a:b", false},
		{"caf\xc3\xa9", false}, // non-ASCII is never a token
		{"a\x7f", false},
	} {
		if got := IsToken([]byte(tc.in)); got != tc.token {
			t.Errorf("IsToken(%q) = %v", tc.in, got)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{" \t a b \t ", "a b"},
		{"", ""},
		{"\t", ""},
		{"x", "x"},
		// Only SP and HTAB: a CR is not white space here.
		{" x\r", "x\r"},
	} {
		if got := string(TrimOWS([]byte(tc.in))); got != tc.want {
			t.Errorf("TrimOWS(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{"a\r", "a"},
		{"a\r\r", "a\r"},
		{"a", "a"},
		{"", ""},
	} {
		if got := string(TrimCR([]byte(tc.in))); got != tc.want {
			t.Errorf("TrimCR(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	for _, tc := range []struct {
		b, lower string
		want     bool
	}{
		{"Content-Length", "content-length", true},
		{"CONTENT-LENGTH", "content-length", true},
		{"content-length", "content-length", true},
		{"Content-Lengths", "content-length", false},
		{"Content_Length", "content-length", false},
		// Folding is ASCII only: the Kelvin sign is not "k".
		{"\xe2\x84\xaaeep-alive", "keep-alive", false},
		// Only b is folded: '[' is 'Z'+1, so it must not fold to '{'.
		{"[", "{", false},
	} {
		if got := EqualFold([]byte(tc.b), tc.lower); got != tc.want {
			t.Errorf("EqualFold(%q, %q) = %v", tc.b, tc.lower, got)
		}
	}
	for _, tc := range []struct {
		in string
		n  uint64
		ok bool
	}{
		{"0", 0, true},
		{"12", 12, true},
		{"9223372036854775807", 1<<63 - 1, true},
		{"9223372036854775808", 0, false},
		{"99999999999999999999", 0, false},
		{"", 0, false},
		{"+1", 0, false},
		{"-1", 0, false},
		{"1 ", 0, false},
		{"0x10", 0, false},
	} {
		n, ok := ParseContentLength([]byte(tc.in))
		if n != tc.n || ok != tc.ok {
			t.Errorf("ParseContentLength(%q) = %d %v", tc.in, n, ok)
		}
	}
}

func TestNextLine(t *testing.T) {
	b := []byte("a\r\nbb\n\r\nc")
	var got []string
	next := 0
	for {
		l, after, ok := NextLine(b, next)
		if !ok {
			break
		}
		got = append(got, string(l))
		next = after
	}
	// The last line has no LF yet: not complete.
	if strings.Join(got, "|") != "a|bb|" || next != 8 {
		t.Fatalf("lines %q, next %d", got, next)
	}
}

func TestConnectionOptions(t *testing.T) {
	for _, tc := range []struct {
		in               string
		close, keepAlive bool
	}{
		{"close", true, false},
		{"Keep-Alive", false, true},
		{"keep-alive, CLOSE", true, true},
		{" upgrade ,, close ,", true, false},
		{"closed, keep-alive-x", false, false},
		{"", false, false},
		{",", false, false},
	} {
		c, k := ConnectionOptions([]byte(tc.in))
		if c != tc.close || k != tc.keepAlive {
			t.Errorf("ConnectionOptions(%q) = %v %v", tc.in, c, k)
		}
		c, k = ListContains([]byte(tc.in), "close"), ListContains([]byte(tc.in), "keep-alive")
		if c != tc.close || k != tc.keepAlive {
			t.Errorf("ListContains(%q, close / keep-alive) = %v %v", tc.in, c, k)
		}
	}
}

// FuzzScanHelpers checks the helpers against the standard library's
// equivalents on the same bytes.
func FuzzScanHelpers(f *testing.F) {
	for _, s := range []string{"Content-Length", " \t x \t", "12345", "a,b, c", "\xff\x00\r"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := TrimOWS(b), bytes.Trim(b, " \t"); !bytes.Equal(got, want) {
			t.Fatalf("TrimOWS(%q) = %q, want %q", b, got, want)
		}
		lower := strings.ToLower(string(b))
		ascii := true
		for _, c := range b {
			ascii = ascii && c < 0x80
		}
		if ascii {
			if !EqualFold(b, lower) {
				t.Fatalf("EqualFold(%q, %q) = false", b, lower)
			}
		}
		n, ok := ParseContentLength(b)
		// strconv takes a sign; a Content-Length does not.
		v, err := strconv.ParseUint(string(b), 10, 63)
		wantOK := err == nil && len(b) > 0 && b[0] != '+' && b[0] != '-' && !bytes.ContainsRune(b, '_')
		if ok != wantOK || (ok && n != v) {
			t.Fatalf("ParseContentLength(%q) = %d %v; strconv %d %v", b, n, ok, v, err)
		}
		// ConnectionOptions and ListContains find an option exactly when
		// splitting at commas and trimming finds it.
		var wantClose, wantKeepAlive bool
		for _, e := range bytes.Split(b, []byte(",")) {
			e = bytes.Trim(e, " \t")
			// ASCII folding only: strings.EqualFold would take the
			// Kelvin sign for a "k".
			l := strings.Map(func(r rune) rune {
				if 'A' <= r && r <= 'Z' {
					return r + 'a' - 'A'
				}
				return r
			}, string(e))
			wantClose = wantClose || l == "close"
			wantKeepAlive = wantKeepAlive || l == "keep-alive"
		}
		if c, k := ConnectionOptions(b); c != wantClose || k != wantKeepAlive {
			t.Fatalf("ConnectionOptions(%q) = %v %v, want %v %v", b, c, k, wantClose, wantKeepAlive)
		}
		if c, k := ListContains(b, "close"), ListContains(b, "keep-alive"); c != wantClose || k != wantKeepAlive {
			t.Fatalf("ListContains(%q) = %v %v, want %v %v", b, c, k, wantClose, wantKeepAlive)
		}
	})
}
