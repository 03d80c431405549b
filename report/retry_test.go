package report

import (
	"strings"
	"testing"
	"time"

	"github.com/barrage-load/barrage/proto"
)

// TestRetriesShown: the open model's retries are extra load on top of the
// schedule, said so in the text and the JSON; the schedule is judged on
// first sends, and requests the circuit breaker shed are explained, not
// a generator's shortfall.
func TestRetriesShown(t *testing.T) {
	s := openIV(0, 0, 1000, 10, 0.1)
	// 1000 due: 800 first sends + 150 retries = 950 attempts, 200 shed
	// with the circuit open.
	s.Sent, s.Responses, s.Status[200], s.Status[503] = 950, 950, 800, 150
	s.Shed[proto.ShedCircuit] = 200
	s.Retries[proto.Retry5xx], s.Requeued, s.RetryDropped[proto.RetryDropCircuit] = 150, 170, 20
	s.RetriedOK, s.Exhausted = 120, 7
	s.EndToEnd = proto.NewHistogram()
	rec(s.EndToEnd, 900, 800)
	rec(s.Latency, 100, 950)
	s.Breaker = []proto.BreakerEvent{{At: 300 * time.Millisecond, State: proto.BreakerOpen, Calls: 40, Failed: 30},
		{At: 500 * time.Millisecond, State: proto.BreakerHalfOpen}, {At: 520 * time.Millisecond, State: proto.BreakerClosed, Calls: 5}}
	a := New(Options{Target: "http://x/", Schedule: constant(1000, time.Second, 10), Open: true})
	a.Add(s)
	r := a.Report(time.Second)
	r.Events = BreakerEvents(s)
	x := r.Retries
	if x == nil || x.Attempts != 950 || x.Logical != 800 || x.Retries != 150 || x.ByCause["5xx"] != 150 ||
		x.SucceededAfterRetry != 120 || x.Exhausted != 7 || x.Dropped["circuit"] != 20 || x.EndToEnd.Count != 800 {
		t.Fatalf("retries %+v", x)
	}
	if r.NeverSent != 0 {
		t.Fatalf("never sent %d: the retries were taken for first sends", r.NeverSent)
	}
	if !r.Valid {
		t.Fatalf("not valid: %v", r.InvalidReasons)
	}
	out := text(t, r)
	for _, want := range []string{
		"Due         1000: 800 sent (+ 150 retries on top: 950 attempts), 200 shed (backlog 0, fenced 0, circuit 200), 0 never sent at the end\n",
		"Load        1000 scheduled + 150 retries\n",
		"Retries     950 attempts = 800 requests + 150 retries (5xx 150); 120 succeeded only after a retry, 7 exhausted, 20 retries not sent (circuit 20)\n",
		"Circuit     200 shed (circuit open); 0.30s circuit open (30 of 40 calls failed); 0.50s circuit half-open (probing); 0.52s circuit closed (5 probes succeeded)\n",
		"end to end (retries)",
		"200 requests due were shed while the circuit breaker was open",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("text lacks %q:\n%s", want, out)
		}
	}
	m := jsonOf(t, r)
	rs := m["retries"].(map[string]any)
	if rs["logical"] != 800.0 || rs["attempts"] != 950.0 || rs["end_to_end_us"].(map[string]any)["count"] != 800.0 {
		t.Fatalf("json retries %v", rs)
	}
	if tl := m["timeline"].([]any); len(tl[0].(map[string]any)["breaker"].([]any)) != 3 {
		t.Fatalf("timeline point lacks the transitions: %v", tl)
	}
	evs := m["events"].([]any)
	if len(evs) != 3 || evs[0].(map[string]any)["kind"] != EventBreaker {
		t.Fatalf("json events %v", evs)
	}
	// Without retries there is no section.
	s2 := openIV(0, 0, 1000, 10, 0.1)
	rec(s2.Latency, 100, 1000)
	b := New(Options{Target: "http://x/", Schedule: constant(1000, time.Second, 10), Open: true})
	b.Add(s2)
	if r2 := b.Report(time.Second); r2.Retries != nil || strings.Contains(text(t, r2), "Retries") {
		t.Fatalf("retries shown without any: %+v", r2.Retries)
	}
}

// TestBreakerEventsAgent: in a fleet each transition names its agent.
func TestBreakerEventsAgent(t *testing.T) {
	s := proto.NewStats(false)
	s.Breaker = []proto.BreakerEvent{{At: 2 * time.Second, State: proto.BreakerOpen, Calls: 9, Failed: 9, Agent: "a1"}}
	evs := BreakerEvents(s)
	if len(evs) != 1 || evs[0].Text != "a1: circuit open (9 of 9 calls failed)" || evs[0].At != 2 || evs[0].Kind != EventBreaker {
		t.Fatalf("events %+v", evs)
	}
}

// TestProgressRetries: the progress line counts the interval's retries.
func TestProgressRetries(t *testing.T) {
	s := openIV(0, 0, 1000, 10, 0.1)
	s.Retries[proto.Retry5xx], s.Retries[proto.RetryTimeout] = 30, 2
	var b strings.Builder
	if err := ProgressLine(&b, s, nil, ProgressOptions{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "  retries 32  conns 10/10") {
		t.Fatalf("progress %q", b.String())
	}
}
