package pipeline

import (
	"sort"
	"testing"

	"github.com/barrage-load/barrage/proto"
)

// TestOnAgentInterval: when an interval closes, each agent that reported
// it is handed its own counters, before the merged interval goes out; an
// agent that did not report it is not.
func TestOnAgentInterval(t *testing.T) {
	_, o := plan(t)
	p := New(o)
	for _, id := range []string{"a", "b"} {
		p.AddAgent(id, id, "h")
	}
	type part struct {
		seq   int
		agent string
		sent  uint64
	}
	var parts []part
	var order []string
	p.OnAgentInterval(func(iv *proto.Stats, agent string, c *Counters) {
		parts = append(parts, part{iv.Seq, agent, c.Sent})
		order = append(order, "agent")
	})
	p.OnInterval(func(iv *proto.Stats, agents, of int) { order = append(order, "interval") })
	p.Add("a", snap(0, 100, 50))
	p.Add("b", snap(0, 30, 50))
	p.Add("a", snap(1, 70, 50))
	p.Close([]string{"a", "b"}, true) // b never sends interval 1
	sort.Slice(parts, func(i, j int) bool {
		if parts[i].seq != parts[j].seq {
			return parts[i].seq < parts[j].seq
		}
		return parts[i].agent < parts[j].agent
	})
	want := []part{{0, "a", 100}, {0, "b", 30}, {1, "a", 70}}
	if len(parts) != len(want) {
		t.Fatalf("parts %+v", parts)
	}
	for i := range want {
		if parts[i] != want[i] {
			t.Fatalf("parts %+v, want %+v", parts, want)
		}
	}
	if got := len(order); got != 5 || order[2] != "interval" || order[4] != "interval" {
		t.Fatalf("order %v", order)
	}
}
