package report

import (
	"strings"
	"testing"
	"time"

	"github.com/barrage-load/barrage/proto"
)

func TestProgressLine(t *testing.T) {
	// An open-model interval with 500s, a reset and requests shed.
	iv := openIV(2, 0, 5000, 64, 0.3)
	iv.Responses, iv.Status[200], iv.Status[500] = 4998, 4986, 12
	iv.Errors[proto.ErrReset] = 2
	iv.Shed[proto.ShedBacklog], iv.Shed[proto.ShedFenced] = 3, 1
	rec(iv.Latency, 3060, 4998)
	total := iv.Clone()
	total.Status[500] += 24
	// The closed model, nothing answered yet, no totals.
	quiet := proto.NewStats(false)
	quiet.Start, quiet.End = 0, time.Second
	quiet.ConnsOpen, quiet.ConnsWanted = 1, 1
	// A half-second interval (the last one, cut at the stop).
	half := openIV(9, 0, 100, 4, 0.1)
	half.Start = 9500 * time.Millisecond
	for _, tc := range []struct {
		name      string
		iv, total *proto.Stats
		o         ProgressOptions
		want      string
	}{
		{"open", iv, total, ProgressOptions{TargetRate: 5000},
			"[   3.0s]      4998 req/s (target 5000)  p99 3.06ms    errors 14 (reset 2, http_5xx 12), 38 in all  shed 4 (backlog 3, fenced 1)  conns 64/64\n"},
		{"coord", iv, total, ProgressOptions{TargetRate: 0.5, Agents: 2, AgentsTotal: 3},
			"[   3.0s]      4998 req/s (target 0.5)  p99 3.06ms    errors 14 (reset 2, http_5xx 12), 38 in all  shed 4 (backlog 3, fenced 1)  conns 64/64  agents 2/3\n"},
		{"500 expected", iv, total, ProgressOptions{Expect: NewExpect([]int{200, 500})},
			"[   3.0s]      4998 req/s  p99 3.06ms    errors 2 (reset 2), 2 in all  shed 4 (backlog 3, fenced 1)  conns 64/64\n"},
		{"closed, quiet", quiet, nil, ProgressOptions{},
			"[   1.0s]         0 req/s  p99 -         errors 0  conns 1/1\n"},
		{"half interval", half, half, ProgressOptions{},
			"[  10.0s]       200 req/s  p99 -         errors 0  conns 4/4\n"},
	} {
		var b strings.Builder
		if err := ProgressLine(&b, tc.iv, tc.total, tc.o); err != nil {
			t.Fatal(err)
		}
		if b.String() != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, b.String(), tc.want)
		}
	}
}

// TestAggregatorProgress: run's line takes the target rate from the
// schedule over the interval, the success set and the totals from the
// aggregator.
func TestAggregatorProgress(t *testing.T) {
	sched := []proto.Segment{
		{Duration: 2 * time.Second, From: 1000, To: 1000, Connections: 4},
		{Start: 2 * time.Second, Duration: 2 * time.Second, From: 3000, To: 3000, Connections: 4, Step: 1},
	}
	a := New(Options{Target: "http://x/", Schedule: sched, Open: true, ExpectStatus: []int{200}})
	var b strings.Builder
	for seq := 0; seq < 3; seq++ {
		s := openIV(seq, seq/2, uint64(sched[seq/2].From), 4, 0.1)
		s.Status[200]--
		s.Status[302]++
		a.Add(s)
		if err := a.Progress(&b, s); err != nil {
			t.Fatal(err)
		}
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], "(target 1000)") || !strings.Contains(lines[2], "(target 3000)") ||
		!strings.Contains(lines[2], "errors 1 (http_other 1), 3 in all") {
		t.Fatalf("lines:\n%s", b.String())
	}
}
