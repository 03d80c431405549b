package report

import (
	"strings"
	"testing"
	"time"

	"github.com/barrage-load/barrage/proto"
)

// stepStats is a step of 1000 requests due, every one sent and answered
// in 1 ms, with the loops busy as given and the lateness p99 given.
func stepStats(busy float64, late time.Duration) *proto.Stats {
	s := proto.NewStats(true)
	s.Scheduled, s.Sent, s.Responses = 1000, 1000, 1000
	s.Status[200] = 1000
	_ = s.Latency.RecordValues(1000, 1000)
	_ = s.Service.RecordValues(900, 1000)
	_ = s.Lateness.RecordValues(late.Microseconds(), 1000)
	s.LoopCapacity = 2 * time.Second
	s.LoopCPU = time.Duration(busy * float64(s.LoopCapacity))
	s.ConnsOpen, s.ConnsWanted = 16, 16
	return s
}

func TestJudgeStep(t *testing.T) {
	for _, tc := range []struct {
		name     string
		s        func() *proto.Stats
		asked    float64
		agents   map[string]*proto.Stats
		valid    bool
		reason   string
		lateness bool
	}{
		{"kept its promises", func() *proto.Stats { return stepStats(0.3, 20*time.Microsecond) }, 1000, nil, true, "", false},
		// Rule 1.
		{"no answers", func() *proto.Stats {
			s := stepStats(0.3, 0)
			s.Responses, s.Status[200] = 0, 0
			return s
		}, 1000, nil, false, "answered nothing", false},
		// Rule 3: loops busy and requests waiting for a connection.
		{"saturated", func() *proto.Stats {
			s := stepStats(0.97, 20*time.Microsecond)
			s.Backlogged = 100
			return s
		}, 1000, nil, false, "generator saturated", false},
		// Rule 3 per agent: one busy agent among idle ones.
		{"agent saturated", func() *proto.Stats { return stepStats(0.5, 20*time.Microsecond) }, 1000,
			map[string]*proto.Stats{"a": {Scheduled: 500, Backlogged: 50, LoopCPU: 990 * time.Millisecond, LoopCapacity: time.Second},
				"b": {Scheduled: 500, LoopCPU: 10 * time.Millisecond, LoopCapacity: time.Second}}, false, "agent a saturated", false},
		// Rule 4: late sends from outside idle loops: valid, and said.
		{"late from outside", func() *proto.Stats { return stepStats(0.2, 500*time.Microsecond) }, 1000, nil, true, "", true},
		// ... and with the loops' busyness unknown: not valid.
		{"late, busyness unknown", func() *proto.Stats {
			s := stepStats(0.2, 500*time.Microsecond)
			s.LoopCPU, s.LoopCapacity = 0, 0
			return s
		}, 1000, nil, false, "fell behind its schedule", false},
		// Rule 5: 20% short, nothing waited for a connection.
		{"short", func() *proto.Stats { return stepStats(0.3, 20*time.Microsecond) }, 1250, nil, false, "sent 1000 of 1250", false},
		// ... the target's fault when the requests due waited.
		{"short, the target's", func() *proto.Stats {
			s := stepStats(0.3, 20*time.Microsecond)
			s.Scheduled = 1250
			return s
		}, 1250, nil, true, "", false},
		// Rule 6.
		{"connections", func() *proto.Stats {
			s := stepStats(0.3, 20*time.Microsecond)
			s.ConnsOpen = 12
			return s
		}, 1000, nil, false, "held 75.0% of the connections", false},
	} {
		v := JudgeStep(tc.s(), tc.asked, tc.agents)
		if v.Valid != tc.valid || (tc.reason != "" && (len(v.Reasons) == 0 || !strings.Contains(v.Reasons[0], tc.reason))) || (v.Lateness != "") != tc.lateness {
			t.Errorf("%s: %+v", tc.name, v)
		}
	}
}
