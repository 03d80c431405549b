package proto

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// withRetries fills s's retry and breaker fields as an engine would.
func withRetries(s *Stats) {
	s.Retries[Retry5xx], s.Retries[RetryTimeout], s.Retries[Retry429] = 40, 3, 2
	s.Requeued = 50
	s.RetryDropped[RetryDropCircuit], s.RetryDropped[RetryDropEnd] = 4, 1
	s.RetriedOK, s.Exhausted = 41, 2
	s.Shed[ShedCircuit] = 17
	if s.EndToEnd == nil {
		s.EndToEnd = NewHistogram()
	}
	for i := int64(1); i < 500; i++ {
		_ = s.EndToEnd.RecordValue(i * 31)
	}
	s.Breaker = []BreakerEvent{
		{At: 1500 * time.Millisecond, State: BreakerOpen, Calls: 40, Failed: 30},
		{At: 2 * time.Second, State: BreakerHalfOpen},
		{At: 2100 * time.Millisecond, State: BreakerClosed, Calls: 5},
	}
}

func TestRetryValidation(t *testing.T) {
	for _, tc := range []struct {
		name, plan, want string // want: "" accepted, else a part of the error
	}{
		{"defaults", "retry: {max: 3}", ""},
		{"the issue's example", "retry: {max: 3, backoff: exponential, base: 50ms, max_delay: 2s, jitter: true, on: [connect, timeout, reset, 5xx, 429]}", ""},
		{"constant, equal jitter, codes as numbers", "retry: {max: 2, backoff: CONSTANT, jitter: equal, on: [503, 502, protocol, 4xx]}", ""},
		{"jitter false", "retry: {max: 2, jitter: false}", ""},
		{"max zero", "retry: {max: 0}", "retry.max must be between 2 and 10 attempts in all (the first included), got 0"},
		{"max one: no retry", "retry: {max: 1}", "retry.max must be between 2 and 10 attempts in all (the first included), got 1"},
		{"max left out", "retry: {base: 10ms}", "retry.max must be between 2 and 10 attempts in all (the first included), got 0"},
		{"max too big", "retry: {max: 11}", "retry.max must be between 2 and 10 attempts in all (the first included), got 11"},
		{"max negative", "retry: {max: -1}", "retry.max must be between 2 and 10 attempts in all"},
		{"negative base", "retry: {max: 2, base: -5ms}", "retry.base must be positive"},
		{"base too long", "retry: {max: 2, base: 2h}", "retry.base 2h0m0s is longer than 1h0m0s"},
		{"max_delay below base", "retry: {max: 2, base: 1s, max_delay: 100ms}", "retry.max_delay 100ms is shorter than retry.base 1s"},
		{"unknown backoff", "retry: {max: 2, backoff: linear}", `retry.backoff "linear" is not one of exponential, constant`},
		{"unknown jitter", "retry: {max: 2, jitter: some}", `retry.jitter "some" is not one of`},
		{"unknown on kind", "retry: {max: 2, on: [timeout, teapot]}", `"teapot" is not one of connect, timeout`},
		{"code out of range", "retry: {max: 2, on: [600]}", `"600" is not one of`},
		{"kind twice", "retry: {max: 2, on: [5xx, 5XX]}", "is listed twice"},
		{"on not a list", "retry: {max: 2, on: 5xx}", "list"},
		{"unknown field", "retry: {max: 2, tries: 3}", "tries"},
		{"breaker defaults", "breaker: {}", ""},
		{"breaker full", "breaker: {window: 2s, min_calls: 5, error_rate: 0.2, open_for: 1s, half_open_probes: 2}", ""},
		{"breaker rate above 100%", "breaker: {error_rate: 150%}", "breaker.error_rate 150% is not a share"},
		{"breaker rate negative", "breaker: {error_rate: -0.1}", "breaker.error_rate -10% is not a share"},
		{"breaker rate not a number", "breaker: {error_rate: half}", "error_rate"},
		{"breaker window short", "breaker: {window: 50ms}", "breaker.window 50ms is shorter than 100ms"},
		{"breaker negative open_for", "breaker: {open_for: -1s}", "breaker.open_for must be positive"},
		{"breaker probes", "breaker: {half_open_probes: 1001}", "breaker.half_open_probes must be between 1 and 1000"},
		{"breaker min_calls negative", "breaker: {min_calls: -3}", "breaker.min_calls must be between 1"},
	} {
		_, err := ParsePlan([]byte("target_url: http://h/\n" + tc.plan + "\n"))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: refused: %v", tc.name, err)
		case tc.want != "" && err == nil:
			t.Errorf("%s: accepted", tc.name)
		case tc.want != "" && (!errors.Is(err, ErrBadPlan) || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n")):
			t.Errorf("%s: error %q, want one line with %q", tc.name, err, tc.want)
		}
	}
}

func TestRetryDefaults(t *testing.T) {
	p, err := ParsePlan([]byte("target_url: http://h/\nretry: {max: 3}\nbreaker: {min_calls: 7}\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := Retry{Max: 3, Backoff: BackoffExponential, Base: Duration(DefaultRetryBase), MaxDelay: Duration(DefaultRetryMaxDelay),
		Jitter: JitterFull, On: FailOn(DefaultFailOn)}
	if !reflect.DeepEqual(*p.Retry, want) {
		t.Fatalf("retry %+v, want %+v", *p.Retry, want)
	}
	wantB := Breaker{Window: Duration(DefaultBreakerWindow), MinCalls: 7, ErrorRate: DefaultBreakerRate,
		OpenFor: Duration(DefaultBreakerOpenFor), HalfOpenProbes: DefaultBreakerProbes}
	if *p.Breaker != wantB {
		t.Fatalf("breaker %+v, want %+v", *p.Breaker, wantB)
	}
	// A base above the default max_delay raises the max_delay with it.
	p, err = ParsePlan([]byte("target_url: http://h/\nretry: {max: 2, base: 5s}\n"))
	if err != nil || p.Retry.MaxDelay.D() != 5*time.Second {
		t.Fatalf("base 5s: %v, %+v", err, p.Retry)
	}
}

// TestRetryPlanRoundTrip: a plan with retry and breaker sections written
// as JSON and as YAML parses back to the same plan.
func TestRetryPlanRoundTrip(t *testing.T) {
	src := "target_url: http://h/\nrate: 100\nretry: {max: 3, backoff: constant, base: 20ms, max_delay: 1s, jitter: equal, on: [503, timeout, Reset]}\nbreaker: {window: 3s, min_calls: 9, error_rate: 12.5%, open_for: 700ms, half_open_probes: 4}\n"
	p, err := ParsePlan([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if p.Retry.On[2] != "reset" || p.Breaker.ErrorRate != 0.125 {
		t.Fatalf("parsed %+v %+v", *p.Retry, *p.Breaker)
	}
	js, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	ys, err := yaml.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"json": js, "yaml": ys} {
		q, err := ParsePlan(b)
		if err != nil {
			t.Fatalf("%s: %v\n%s", name, err, b)
		}
		if !reflect.DeepEqual(p.Retry, q.Retry) || !reflect.DeepEqual(p.Breaker, q.Breaker) {
			t.Fatalf("%s round trip: %+v %+v, want %+v %+v\n%s", name, *q.Retry, *q.Breaker, *p.Retry, *p.Breaker, b)
		}
	}
	if !strings.Contains(string(js), `"error_rate":"12.5%"`) {
		t.Fatalf("error_rate not written as a share: %s", js)
	}
}

func TestParseFailOn(t *testing.T) {
	fs, err := ParseFailOn([]string{"connect", "timeout", "5xx", "429"})
	if err != nil {
		t.Fatal(err)
	}
	if !fs.Connect || !fs.Kinds[ErrTimeout] || fs.Kinds[ErrReset] || !fs.Status[500] || !fs.Status[599] ||
		!fs.Status[429] || fs.Status[428] || fs.Status[200] {
		t.Fatalf("compiled %+v", fs.Kinds)
	}
	for _, bad := range [][]string{nil, {"x"}, {"99"}, {"600"}, {"5xx", "5xx"}} {
		if _, err := ParseFailOn(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	for code, want := range map[int]RetryCause{429: Retry429, 404: Retry4xx, 503: Retry5xx, 302: RetryStatusOther} {
		if got := StatusCause(code); got != want {
			t.Errorf("StatusCause(%d) = %s, want %s", code, got, want)
		}
	}
}

func TestParseBreaker(t *testing.T) {
	b, err := ParseBreaker("on")
	if err != nil || *b != (Breaker{}) {
		t.Fatalf("on: %v %+v", err, b)
	}
	b, err = ParseBreaker("error_rate=25%, min_calls=3,window=2s,open_for=1s,probes=2")
	want := Breaker{Window: Duration(2 * time.Second), MinCalls: 3, ErrorRate: 0.25, OpenFor: Duration(time.Second), HalfOpenProbes: 2}
	if err != nil || *b != want {
		t.Fatalf("got %v %+v, want %+v", err, b, want)
	}
	for _, bad := range []string{"x=1", "window", "window=soon", "min_calls=0", "min_calls=-2", "error_rate=0%", "open_for=0s", "probes=two"} {
		if _, err := ParseBreaker(bad); err == nil || !errors.Is(err, ErrBadPlan) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

// TestRetrySnapshotRoundTrip: the retry counters, the end-to-end
// histogram and the breaker's transitions travel in a snapshot and merge
// exactly (counters add up, events are kept).
func TestRetrySnapshotRoundTrip(t *testing.T) {
	for _, open := range []bool{true, false} {
		s := NewStats(open)
		s.Sent, s.Responses = 1000, 1000
		_ = s.Latency.RecordValue(100)
		withRetries(s)
		b, err := MarshalSnapshot(&Snapshot{Agent: "a", Stats: s})
		if err != nil {
			t.Fatal(err)
		}
		sn, err := UnmarshalSnapshot(b)
		if err != nil {
			t.Fatal(err)
		}
		g := sn.Stats
		if g.Retries != s.Retries || g.Requeued != s.Requeued || g.RetryDropped != s.RetryDropped || g.RetriedOK != s.RetriedOK ||
			g.Exhausted != s.Exhausted || g.Shed != s.Shed || !reflect.DeepEqual(g.Breaker, s.Breaker) || !g.EndToEnd.Equals(s.EndToEnd) {
			t.Fatalf("open %v: round trip changed the retries:\n%+v\n%+v", open, g, s)
		}
		// Two agents' snapshots merge exactly, through either path.
		m := NewStats(open)
		m.Merge(g)
		m.Merge(g)
		ps, err := ParseSnapshot(b)
		if err != nil {
			t.Fatal(err)
		}
		m2 := NewStats(open)
		ps.MergeInto(m2)
		ps.MergeInto(m2)
		for _, x := range []*Stats{m, m2} {
			if x.TotalRetries() != 2*45 || x.Requeued != 100 || x.TotalRetryDropped() != 10 || x.RetriedOK != 82 ||
				x.Exhausted != 4 || len(x.Breaker) != 6 || x.EndToEnd.TotalCount() != 2*499 || x.Shed[ShedCircuit] != 34 {
				t.Fatalf("merged: retries %d requeued %d dropped %d ok %d exhausted %d events %d e2e %d",
					x.TotalRetries(), x.Requeued, x.TotalRetryDropped(), x.RetriedOK, x.Exhausted, len(x.Breaker), x.EndToEnd.TotalCount())
			}
		}
	}
}

// TestRetrySnapshotRefused: crafted retry fields are refused, not
// silently dropped.
func TestRetrySnapshotRefused(t *testing.T) {
	s := NewStats(false)
	_ = s.Latency.RecordValue(1)
	b, err := MarshalSnapshot(&Snapshot{Agent: "a", Stats: s})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, field string }{
		{"unknown cause", `"retries":{"teapot":1},`},
		{"unknown drop", `"retry_dropped":{"why":1},`},
		{"unknown state", `"breaker":[{"at_ns":1,"state":"ajar"}],`},
		{"negative time", `"breaker":[{"at_ns":-1,"state":"open"}],`},
	} {
		bad := craftMeta(t, b, tc.field)
		if _, err := UnmarshalSnapshot(bad); !errors.Is(err, ErrBadSnapshot) {
			t.Errorf("%s: %v", tc.name, err)
		}
		if _, err := ParseSnapshot(bad); !errors.Is(err, ErrBadSnapshot) {
			t.Errorf("%s (parse): %v", tc.name, err)
		}
	}
}

// craftMeta inserts field at the start of a snapshot's JSON metadata.
func craftMeta(t *testing.T, b []byte, field string) []byte {
	t.Helper()
	rest := b[len(snapshotMagic):]
	n, k := binary.Uvarint(rest)
	js := rest[k : k+int(n)]
	if js[0] != '{' {
		t.Fatalf("metadata %q", js)
	}
	js2 := append([]byte("{"+field), js[1:]...)
	out := append([]byte(nil), snapshotMagic...)
	out = binary.AppendUvarint(out, uint64(len(js2)))
	out = append(out, js2...)
	return append(out, rest[k+int(n):]...)
}

func TestRetryAccounting(t *testing.T) {
	s := NewStats(false)
	s.EndToEnd = NewHistogram()
	s.Sent, s.Retries[Retry5xx], s.Requeued, s.RetryDropped[RetryDropEnd] = 10, 3, 4, 1
	for i := 0; i < 7; i++ {
		_ = s.EndToEnd.RecordValue(10)
	}
	if msg := s.RetryAccounting(); msg != "" {
		t.Fatal(msg)
	}
	if s.Logical() != 7 {
		t.Fatalf("logical %d", s.Logical())
	}
	s.Requeued++
	if msg := s.RetryAccounting(); !strings.Contains(msg, "retries called for 5") {
		t.Fatalf("broken identity not seen: %q", msg)
	}
}
