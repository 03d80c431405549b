package report

import (
	"strings"
	"testing"
	"time"

	"github.com/barrage-load/barrage/proto"
)

func TestExpectSuccess(t *testing.T) {
	for _, tc := range []struct {
		codes []int
		code  int
		ok    bool
	}{
		{nil, 200, true},  // default: below 400
		{nil, 101, true},  // a final 1xx is answered, and below 400
		{nil, 399, true},  //
		{nil, 400, false}, //
		{nil, 500, false}, //
		{nil, 0, false},   // a code the engine could not count one by one
		{nil, 99, false},  // not a status code
		{[]int{200, 404}, 404, true},
		{[]int{200, 404}, 302, false},        // listed codes only
		{[]int{200, 404}, 0, false},          //
		{[]int{200, 700}, 0, true},           // 700 is counted in Status[0]
		{[]int{200}, proto.MaxStatus, false}, // out of the table: same as Status[0]
	} {
		if got := NewExpect(tc.codes).Success(tc.code); got != tc.ok {
			t.Errorf("expect %v: Success(%d) = %v, want %v", tc.codes, tc.code, got, tc.ok)
		}
	}
}

// statusStats answers with a mix of codes and has a few transport errors.
func statusStats() *proto.Stats {
	s := proto.NewStats(false)
	s.Start, s.End = 0, time.Second
	s.Status[200], s.Status[302], s.Status[404], s.Status[429], s.Status[500], s.Status[503], s.Status[0] = 80, 5, 3, 1, 4, 2, 1
	s.Responses = 96
	s.Errors[proto.ErrTimeout], s.Errors[proto.ErrConnect] = 2, 1
	s.Sent = 98
	rec(s.Latency, 100, 96)
	rec(s.Corrected, 100, 96)
	return s
}

func TestCountErrors(t *testing.T) {
	s := statusStats()
	for _, tc := range []struct {
		codes                 []int
		c4, c5, other, totalE uint64
	}{
		{nil, 4, 6, 1, 14},             // 302 is a success by default
		{[]int{200, 404}, 1, 6, 6, 16}, // 302 and Status[0] are other; 404 expected
		{[]int{200, 302, 500, 503}, 4, 0, 1, 8},
	} {
		e := CountErrors(s, NewExpect(tc.codes))
		if e.HTTP4xx != tc.c4 || e.HTTP5xx != tc.c5 || e.HTTPOther != tc.other || e.Total() != tc.totalE || e.HTTP() != tc.c4+tc.c5+tc.other {
			t.Errorf("expect %v: %+v total %d", tc.codes, e, e.Total())
		}
		k := e.Kinds()
		if len(k) != int(proto.NumErrKinds)+3 || k["timeout"] != 2 || k["connect"] != 1 || k[KindHTTP5xx] != tc.c5 {
			t.Errorf("expect %v: kinds %v", tc.codes, k)
		}
	}
}

// TestErrorStatusInReport: error responses are answered (requests, not
// failed) and are errors (errors, error_kinds) in the report, its text,
// its JSON, its steps and its timeline.
func TestErrorStatusInReport(t *testing.T) {
	a := New(Options{Target: "http://x/", Schedule: constant(0, time.Second, 4), Pipeline: 1})
	a.Add(statusStats())
	r := a.Report(time.Second)
	if r.Requests != 96 || r.Sent != 98 || r.Failed != 2 || r.Errors != 14 || r.HTTPErrors != 11 || !r.Valid {
		t.Fatalf("requests %d sent %d failed %d errors %d http %d valid %v %q", r.Requests, r.Sent, r.Failed, r.Errors, r.HTTPErrors, r.Valid, r.InvalidReasons)
	}
	if r.ErrorKinds[KindHTTP4xx] != 4 || r.ErrorKinds[KindHTTP5xx] != 6 || r.ErrorKinds[KindHTTPOther] != 1 {
		t.Fatalf("kinds %v", r.ErrorKinds)
	}
	if r.Timeline[0].Errors != 14 || r.Steps[0].Errors != 14 || r.Steps[0].ErrorKinds[KindHTTP5xx] != 6 {
		t.Fatalf("timeline %+v steps %+v", r.Timeline[0], r.Steps[0])
	}
	out := text(t, r)
	for _, want := range []string{
		"Requests    98 sent: 96 answered, 2 failed, 0 unfinished at stop\n",
		"Errors      14: connect 1, timeout 2, http_4xx 4, http_5xx 6, http_other 1\n",
		"Error kinds   connect 1, tls 0, timeout 2, reset 0, protocol 0, http_4xx 4, http_5xx 6, http_other 1\n",
		"Status codes  200: 80, 302: 5, 404: 3, 429: 1, 500: 4, 503: 2, other: 1\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("text lacks %q:\n%s", want, out)
		}
	}
	m := jsonOf(t, r)
	kinds := m["error_kinds"].(map[string]any)
	if m["errors"].(float64) != 14 || kinds["http_5xx"].(float64) != 6 || kinds["http_4xx"].(float64) != 4 || m["failed"].(float64) != 2 {
		t.Fatalf("json errors %v kinds %v", m["errors"], kinds)
	}
	// The plan's success set changes what counts.
	a = New(Options{Target: "http://x/", Schedule: constant(0, time.Second, 4), ExpectStatus: []int{200, 302, 404, 429, 500, 503}})
	a.Add(statusStats())
	if r := a.Report(time.Second); r.Errors != 4 || r.HTTPErrors != 1 {
		t.Fatalf("with expect_status: errors %d http %d", r.Errors, r.HTTPErrors)
	}
	a = NewAggregator("http://x/", constant(0, time.Second, 4), 1, false)
	a.SetExpectStatus([]int{200})
	a.Add(statusStats())
	if r := a.Report(time.Second); r.HTTPErrors != 16 || a.Expect().Success(302) {
		t.Fatalf("SetExpectStatus: http %d", r.HTTPErrors)
	}
}
