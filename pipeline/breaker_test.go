package pipeline

import (
	"testing"
	"time"

	"github.com/barrage-load/barrage/proto"
	"github.com/barrage-load/barrage/report"
)

// TestBreakerEvents: the circuit breakers' transitions in the agents'
// snapshots become the test's events, in time order, each naming its
// agent in a fleet; the retry counters merge across agents.
func TestBreakerEvents(t *testing.T) {
	_, o := plan(t)
	p := New(o)
	p.AddAgent("a", "agent-a", "h")
	p.AddAgent("b", "agent-b", "h")
	var got []report.Event
	p.OnEvent(func(e report.Event) { got = append(got, e) })
	sa, sb := snap(0, 100, 50), snap(0, 100, 50)
	sa.Breaker = []proto.BreakerEvent{{At: 700 * time.Millisecond, State: proto.BreakerOpen, Calls: 30, Failed: 20}}
	sb.Breaker = []proto.BreakerEvent{{At: 400 * time.Millisecond, State: proto.BreakerOpen, Calls: 25, Failed: 25},
		{At: 900 * time.Millisecond, State: proto.BreakerHalfOpen}}
	sa.Retries[proto.Retry5xx], sb.Retries[proto.Retry5xx] = 7, 5
	p.Add("a", sa)
	p.Add("b", sb)
	p.Close([]string{"a", "b"}, false)
	want := []string{"agent-b: circuit open (25 of 25 calls failed)", "agent-a: circuit open (20 of 30 calls failed)", "agent-b: circuit half-open (probing)"}
	if len(got) != len(want) {
		t.Fatalf("events %+v", got)
	}
	for i, w := range want {
		if got[i].Text != w || got[i].Kind != report.EventBreaker {
			t.Fatalf("event %d: %+v, want %q", i, got[i], w)
		}
	}
	if n := p.Total().Retries[proto.Retry5xx]; n != 12 {
		t.Fatalf("merged retries %d", n)
	}
	if evs := p.Report(time.Second).Events; len(evs) != 3 {
		t.Fatalf("report events %+v", evs)
	}
}
