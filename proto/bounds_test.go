package proto

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// wantBad asserts err is one ErrBadPlan line containing want, with no
// stacked prefix.
func wantBad(t *testing.T, what string, err error, want string) {
	t.Helper()
	switch {
	case err == nil:
		t.Errorf("%s: accepted, want an error containing %q", what, want)
	case !errors.Is(err, ErrBadPlan):
		t.Errorf("%s: error %v does not match ErrBadPlan", what, err)
	case !strings.Contains(err.Error(), want):
		t.Errorf("%s: error %q, want one containing %q", what, err, want)
	case strings.Contains(err.Error(), "proto:") || strings.Contains(err.Error(), "\n"):
		t.Errorf("%s: error %q has a stacked prefix or several lines", what, err)
	}
}

const h = "target_url: http://h/\n"

// TestPlanBounds: every number of a plan is finite and bounded, wherever
// it sits (issue 8: NaN ran the closed model, Inf sent nothing, 1e12 hung
// the tool, a negative step rate was taken for the closed model).
func TestPlanBounds(t *testing.T) {
	for _, tc := range []struct{ plan, want string }{
		{h + "rate: .nan", "rate NaN is not a number"},
		{h + "rate: .inf", "rate +Inf is not a number"},
		{h + "rate: -.inf", "rate -Inf is not a number"},
		{h + "rate: 1e12", "above the ceiling of 1e+08"},
		{h + "rate: -5", "rate must be >= 0"},
		{h + "pattern: {type: ramp, from: .nan, to: 5}", "ramp from NaN"},
		{h + "pattern: {type: ramp, from: 1, to: .inf}", "ramp to +Inf"},
		{h + "pattern: {type: ramp, from: 1, to: 2e8}", "ramp to 2e+08 req/s is above the ceiling"},
		{h + "pattern: {type: ramp, from: -1, to: 5}", "ramp from must be >= 0"},
		{h + "rate: 5\npattern: {type: spike, spike_rate: .nan, at: 1s, for: 1s}", "spike_rate NaN"},
		{h + "rate: 5\npattern: {type: spike, spike_rate: .inf, at: 1s, for: 1s}", "spike_rate +Inf"},
		{h + "rate: 5\npattern: {type: spike, spike_rate: 10, at: 1s, for: 2562047h}", "must fit inside"},
		{h + "pattern: {type: steps, steps: [{duration: 1s, rate: .nan}]}", "step 1: rate NaN"},
		{h + "pattern: {type: steps, steps: [{duration: 1s, rate: 1}, {duration: 1s, rate: -1}]}", "step 2: rate must be >= 0"},
		{h + "pattern: {type: steps, steps: [{duration: 1s, rate: 1e9}]}", "step 1: rate 1e+09 req/s is above the ceiling"},
		{h + "pattern: {type: steps, steps: [{duration: 0s, rate: 1}]}", "step 1: duration must be positive"},
		{h + "pattern: {type: steps, steps: [{duration: 100h, rate: 1}, {duration: 100h, rate: 1}]}", "steps last more than 168h"},
		{h + "pattern: {type: steps, steps: [{duration: 2000000h, rate: 1}, {duration: 2000000h, rate: 1}, {duration: 2000000h, rate: 1}]}", "step 1: duration 2000000h0m0s is longer than 168h"},
		{h + "pattern: {type: steps, steps: [{duration: 1s, rate: 1, connections: 2000000}]}", "step 1: connections must be between 1 and"},
		{h + "duration: 200h", "duration 200h0m0s is longer than 168h"},
		{h + "duration: -1s", "duration must be positive"},
		{h + "duration: .nan", "bad duration"},
		{h + "duration: 1e300", "out of range"},
		{h + "timeout: 2h", "timeout 2h0m0s is longer than 1h"},
		{h + "connect_timeout: -1s", "connect_timeout must be positive"},
		{h + "connections: 2000000", "connections 2000000 is above the ceiling of 1048576"},
		{h + "connections: -3", "connections must be at least 1"},
		{h + "pipeline: 5000", "pipeline must be between 1 and 1024"},
		{h + "expect_status: [200, 200]", "expect_status lists 200 twice"},
		{h + "expect_status: [99]", "expect_status 99 is not an HTTP status code"},
		{h + "expect_status: [1000]", "expect_status 1000 is not an HTTP status code"},
		{h + "headers: {\"Bad Name\": x}", "is not a token"},
		{h + "headers: {X-A: \"a\\r\\nInjected: 1\"}", "control character"},
		{h + "headers: {Content-Length: \"5\"}", "set by barrage itself"},
		{h + "rate: 10\npattern: {type: steps, steps: [{duration: 1s, rate: 1}]}", "rate does not apply to a steps pattern"},
		{h + "pattern: {steps: [{duration: 1s, rate: 1}]}", "did you mean type: steps"},
		{h + "rate: 10\npattern: {type: ramp, from: 1, to: 2}", "rate does not apply to a ramp pattern"},
		{h + "pattern: {type: spike, spike_rate: 5, at: 1s, for: 1s}", "spike needs rate"},
	} {
		_, err := ParsePlan([]byte(tc.plan))
		wantBad(t, tc.plan, err, tc.want)
	}
}

// TestExplicitZero: a field written as 0 where 0 makes no sense is an
// error that says what to give, not a silent default (issue 8).
func TestExplicitZero(t *testing.T) {
	for _, tc := range []struct{ plan, want string }{
		{h + "connections: 0", "connections must be at least 1; leave it out for the default 64"},
		{h + "pipeline: 0", "pipeline must be at least 1; leave it out for the default 1"},
		{h + "duration: 0", "duration must be positive; leave it out for the default 10s"},
		{h + "duration: 0s", "duration must be positive; leave it out for the default 10s"},
		{h + "timeout: 0", "timeout must be positive; leave it out for the default 10s"},
		{h + "connect_timeout: 0ms", "connect_timeout must be positive; leave it out for the default 5s"},
		{h + "connections: null", "connections must be at least 1"},
		{h + "duration: 0\npattern: {type: steps, steps: [{duration: 1s, rate: 1}]}", "leave it out to use the steps' sum"},
		{`{"target_url": "http://h/", "connections": 0}`, "connections must be at least 1; leave it out"},
		{`{"target_url": "http://h/", "duration": "0s"}`, "duration must be positive; leave it out"},
	} {
		_, err := ParsePlan([]byte(tc.plan))
		wantBad(t, tc.plan, err, tc.want)
	}
	// Left out, the same fields take their defaults; a rate of 0 is the
	// closed model, and a step's connections: 0 is the plan's.
	p, err := ParsePlan([]byte(h + "rate: 0\npattern: {type: steps, steps: [{duration: 1s, rate: 5, connections: 0}]}"))
	if err != nil {
		t.Fatal(err)
	}
	if p.Connections != DefaultConnections || p.Pipeline != DefaultPipeline || p.Timeout.D() != DefaultTimeout || p.Schedule()[0].Connections != DefaultConnections {
		t.Fatalf("defaults not applied: %+v", p)
	}
}

// TestPlanShape: what the file holds as a whole (issue 9: an empty plan
// said "EOF").
func TestPlanShape(t *testing.T) {
	for _, tc := range []struct{ plan, want string }{
		{"", "the plan is empty"},
		{"\n\n", "the plan is empty"},
		{"# only a comment\n", "the plan is empty"},
		{"---\n", "the plan is empty"},
		{"~", "the plan is empty"},
		{"- a\n- b\n", "must be a mapping of fields"},
		{"hello", "must be a mapping of fields"},
		{h + "---\n" + h, "more than one YAML document"},
		{h + "ratez: 5", "line 2: field ratez not found"},
		{h + "rate: fast", "line 2: cannot unmarshal !!str `fast` into float64"},
		{h + "rate: 1\nrate: 2", "already defined"},
		{"target_url: [", "did not find expected node content"},
		{`{"target_url": "http://h/", "rate": "x"}`, "cannot unmarshal"},
	} {
		_, err := ParsePlan([]byte(tc.plan))
		wantBad(t, tc.plan, err, tc.want)
	}
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.yaml")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadPlan(empty)
	wantBad(t, "empty file", err, empty+": the plan is empty")
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, []byte(h+"body: "+strings.Repeat("x", MaxPlanBytes)), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = LoadPlan(big)
	wantBad(t, "big file", err, "is larger than")
	_, err = LoadPlan(filepath.Join(dir, "nope.yaml"))
	wantBad(t, "missing file", err, "no such file")
}

func TestCheckRateAndConnections(t *testing.T) {
	for _, r := range []float64{0, 1, 0.5, MaxRate} {
		if err := CheckRate(r); err != nil {
			t.Errorf("CheckRate(%g): %v", r, err)
		}
	}
	for _, tc := range []struct {
		r    float64
		want string
	}{
		{math.NaN(), "rate NaN is not a number"},
		{math.Inf(1), "rate +Inf"},
		{math.Inf(-1), "rate -Inf"},
		{-1, "rate must be >= 0"},
		{math.Copysign(0, -1) - 1e-300, "rate must be >= 0"},
		{1e12, "above the ceiling"},
		{math.Nextafter(MaxRate*(1+2*capSlack), math.Inf(1)), "above the ceiling"},
	} {
		wantBad(t, "CheckRate", CheckRate(tc.r), tc.want)
	}
	for _, n := range []int{1, 64, MaxConnections} {
		if err := CheckConnections(n); err != nil {
			t.Errorf("CheckConnections(%d): %v", n, err)
		}
	}
	wantBad(t, "CheckConnections(0)", CheckConnections(0), "connections must be at least 1")
	wantBad(t, "CheckConnections(-1)", CheckConnections(-1), "connections must be at least 1")
	wantBad(t, "CheckConnections(2000000)", CheckConnections(2000000), "above the ceiling of 1048576")
}

func TestCheckLiveRate(t *testing.T) {
	closed, err := ParsePlan([]byte(h + "connections: 8"))
	if err != nil {
		t.Fatal(err)
	}
	wantBad(t, "closed", closed.CheckLiveRate(100), "closed model")
	open, err := ParsePlan([]byte(h + "rate: 100"))
	if err != nil {
		t.Fatal(err)
	}
	if err := open.CheckLiveRate(500); err != nil {
		t.Fatal(err)
	}
	if err := open.CheckLiveRate(0); err != nil { // a pause is a rate
		t.Fatal(err)
	}
	wantBad(t, "NaN", open.CheckLiveRate(math.NaN()), "not a number")
	wantBad(t, "huge", open.CheckLiveRate(1e9), "above the ceiling")
	ramp, _ := ParsePlan([]byte(h + "pattern: {type: ramp, from: 1, to: 5}"))
	if err := ramp.CheckLiveRate(10); err != nil {
		t.Fatal(err)
	}
}

func seg(start, dur time.Duration, from, to float64, conns, step int) Segment {
	return Segment{Start: start, Duration: dur, From: from, To: to, Connections: conns, Step: step}
}

// TestCheckSegments: what an agent checks on every budget it is given.
func TestCheckSegments(t *testing.T) {
	c := Caps{MaxRate: 1000, MaxConnections: 100}
	s := time.Second
	ok := [][]Segment{
		{seg(0, s, 0, 0, 1, 0)},
		{seg(0, s, 1000, 1000, 100, 0)},
		{seg(0, s, 10, 20, 5, 0), seg(s, s, 20, 20, 5, 1), seg(3*s, s, 0, 0, 5, 1)}, // gap, repeated step
		// A rate exactly at the cap after a trip through hits per ns.
		{seg(0, s, 1000/1e9*1e9, 1000/3.0*3, 1, 0)},
	}
	for i, segs := range ok {
		if err := c.CheckSegments(segs); err != nil {
			t.Errorf("ok %d: %v", i, err)
		}
	}
	for _, tc := range []struct {
		segs []Segment
		want string
	}{
		{nil, "no segments"},
		{make([]Segment, MaxSegments+1), "more than 65536"},
		{[]Segment{seg(0, s, math.NaN(), 1, 1, 0)}, "segment 1: rate NaN"},
		{[]Segment{seg(0, s, 1, math.Inf(1), 1, 0)}, "segment 1: rate +Inf"},
		{[]Segment{seg(0, s, -1, -1, 1, 0)}, "segment 1: rate must be >= 0"},
		{[]Segment{seg(0, s, 1001, 1001, 1, 0)}, "above this box's cap of 1000"},
		{[]Segment{seg(0, s, 1, 1, 0, 0)}, "segment 1: connections must be at least 1"},
		{[]Segment{seg(0, s, 1, 1, 101, 0)}, "connections 101 is above this box's cap of 100"},
		{[]Segment{seg(0, 0, 1, 1, 1, 0)}, "duration must be positive"},
		{[]Segment{seg(0, -s, 1, 1, 1, 0)}, "duration must be positive"},
		{[]Segment{seg(-s, s, 1, 1, 1, 0)}, "before the previous one ends"},
		{[]Segment{seg(0, 2*s, 1, 1, 1, 0), seg(s, s, 1, 1, 1, 1)}, "segment 2: starts at 1s, before the previous one ends (2s)"},
		{[]Segment{seg(0, MaxDuration, 1, 1, 1, 0), seg(MaxDuration, s, 1, 1, 1, 1)}, "ends at 168h0m1s, past 168h"},
		{[]Segment{seg(math.MaxInt64-s, s, 1, 1, 1, 0)}, "past 168h"},
		{[]Segment{seg(0, math.MaxInt64, 1, 1, 1, 0)}, "duration must be positive and at most"},
		{[]Segment{seg(0, s, 1, 1, 1, -1)}, "step -1 out of order"},
		{[]Segment{seg(0, s, 1, 1, 1, 0), seg(s, s, 1, 1, 1, 1), seg(2*s, s, 1, 1, 1, 0)}, "segment 3: step 0 after step 1"},
	} {
		wantBad(t, tc.want, c.CheckSegments(tc.segs), tc.want)
	}
	// Zero caps are the absolute bounds; NaN caps are refused, not obeyed.
	if err := (Caps{}).CheckSegments([]Segment{seg(0, s, MaxRate, MaxRate, MaxConnections, 0)}); err != nil {
		t.Fatal(err)
	}
	wantBad(t, "NaN cap", Caps{MaxRate: math.NaN()}.CheckSegments([]Segment{seg(0, s, 1, 1, 1, 0)}), "rate cap NaN")
}

func TestCheckCaps(t *testing.T) {
	p, err := ParsePlan([]byte(h + "connections: 8\npattern: {type: steps, steps: [{duration: 1s, rate: 100}, {duration: 1s, rate: 3000, connections: 200}]}"))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.CheckCaps(Caps{MaxRate: 3000, MaxConnections: 200}); err != nil {
		t.Fatal(err)
	}
	wantBad(t, "rate cap", p.CheckCaps(Caps{MaxRate: 2999, MaxConnections: 200}), "peak rate 3000 req/s is above this box's cap of 2999")
	wantBad(t, "conns cap", p.CheckCaps(Caps{MaxRate: 3000, MaxConnections: 199}), "connections 200 is above this box's cap of 199")
	if err := p.CheckCaps(DefaultCaps()); err != nil {
		t.Fatal(err)
	}
	// Every valid plan's schedule passes the fleet-wide segment check:
	// Validate and CheckSegments agree.
	if err := (Caps{}).CheckSegments(p.Schedule()); err != nil {
		t.Fatal(err)
	}
}

// TestCredentials: http://user:pw@host/ sends Basic credentials, as curl
// does, and the URL kept for reports has no password (issue 9).
func TestCredentials(t *testing.T) {
	p, err := ParsePlan([]byte("target_url: http://us%40er:p%3Aw@127.0.0.1:8080/x?y=1"))
	if err != nil {
		t.Fatal(err)
	}
	// base64("us@er:p:w")
	if p.TargetURL != "http://127.0.0.1:8080/x?y=1" || p.Headers["Authorization"] != "Basic dXNAZXI6cDp3" {
		t.Fatalf("got %q, %v", p.TargetURL, p.Headers)
	}
	p, err = ParsePlan([]byte("target_url: http://user@h/"))
	if err != nil || p.Headers["Authorization"] != "Basic dXNlcjo=" || p.TargetURL != "http://h/" {
		t.Fatalf("user only: %v %+v", err, p)
	}
	p, err = ParsePlan([]byte("target_url: http://@h/"))
	if err != nil || p.Headers != nil || p.TargetURL != "http://h/" {
		t.Fatalf("empty userinfo: %v %+v", err, p)
	}
	_, err = ParsePlan([]byte("target_url: http://u:pw@h/\nheaders: {authorization: Bearer x}"))
	wantBad(t, "both", err, "give one of them")
	// No message shows the password, even for a URL that does not parse.
	for _, raw := range []string{"http://u:secretpw@h:99999/", "http://u:secretpw@h:x/", "ftp://u:secretpw@h/", "http://u:secretpw@[::1/"} {
		_, err := ParseTarget(raw)
		if err == nil || strings.Contains(err.Error(), "secretpw") {
			t.Errorf("ParseTarget(%q): %v", raw, err)
		}
	}
}

// TestYAMLMessages: decoding errors are one line in the plan's words.
func TestYAMLMessages(t *testing.T) {
	for _, tc := range []struct{ plan, want string }{
		{h + "pattern: 5", "line 2: cannot unmarshal !!int `5` into a pattern"},
		{h + "pattern: {type: steps, stepz: []}", "line 2: field stepz not found in pattern"},
		{h + "pattern: {type: steps, steps: [{duration: 1s, rat: 1}]}", "field rat not found in a step"},
		{h + "headers: [a]", "into a mapping"},
		{h + "rate: x\nconnections: y", "line 2: cannot unmarshal !!str `x` into float64; line 3: cannot unmarshal !!str `y` into int"},
	} {
		_, err := ParsePlan([]byte(tc.plan))
		wantBad(t, tc.plan, err, tc.want)
		if err != nil && strings.Contains(err.Error(), "proto.") {
			t.Errorf("%s: Go type name in %q", tc.plan, err)
		}
	}
}
