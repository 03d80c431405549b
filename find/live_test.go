package find

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/barrage-load/barrage/live"
	"github.com/barrage-load/barrage/pipeline"
	"github.com/barrage-load/barrage/proto"
	"github.com/barrage-load/barrage/report"
	"github.com/barrage-load/barrage/schedule"
)

// fakeCtl records changes; each takes effect at at.
type fakeCtl struct {
	mu      sync.Mutex
	at      time.Duration
	next    []time.Duration // taken in order before at
	changes []live.Change
}

func (f *fakeCtl) Change(_ context.Context, c live.Change) (time.Duration, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.changes = append(f.changes, c)
	if len(f.next) > 0 {
		at := f.next[0]
		f.next = f.next[1:]
		return at, nil
	}
	return f.at, nil
}

func (f *fakeCtl) Stop(string) {}

// agentIv is one agent's snapshot of one second: n responses of lat,
// its loops busy, backlogged of the n due.
func agentIv(seq int, n uint64, lat time.Duration, busy float64, backlogged uint64) *proto.Stats {
	return agentIvLate(seq, n, lat, busy, backlogged, 10*time.Microsecond)
}

func agentIvLate(seq int, n uint64, lat time.Duration, busy float64, backlogged uint64, late time.Duration) *proto.Stats {
	s := proto.NewStats(true)
	s.Seq = seq
	s.Start, s.End = time.Duration(seq)*time.Second, time.Duration(seq+1)*time.Second
	s.Sent, s.Responses, s.Scheduled, s.Backlogged = n, n, n, backlogged
	s.Status[200] = n
	_ = s.Latency.RecordValues(lat.Microseconds(), int64(n))
	_ = s.Service.RecordValues(lat.Microseconds(), int64(n))
	_ = s.Lateness.RecordValues(late.Microseconds(), int64(n))
	s.LoopCapacity = time.Second
	s.LoopCPU = time.Duration(busy * float64(time.Second))
	s.ConnsOpen, s.ConnsWanted = 8, 8
	return s
}

func TestLiveMeasure(t *testing.T) {
	plan := &proto.Plan{TargetURL: "http://h/", Rate: 1000, Duration: proto.Duration(time.Minute)}
	plan.Normalize()
	segs := plan.Schedule()
	sch := schedule.New(segs)
	p := pipeline.New(pipeline.Options{Plan: plan, Schedule: segs, Ends: schedule.IntervalEnds(&sch, time.Second)})
	p.AddAgent("a", "a", "")
	p.AddAgent("b", "b", "")
	ts, err := report.ParseThresholds([]string{"p99 < 50ms"}, &proto.Plan{Rate: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctl := &fakeCtl{}
	o := Options{Min: 1000, Warmup: 2 * time.Second, Settle: time.Second, Step: 2 * time.Second, Drain: 5 * time.Second}
	o.Normalize()
	l := NewLive(ctl, ts, report.Expect{}, o)
	l.Attach(p)
	feed := func(seq int, lat time.Duration, busyB float64, backB uint64) {
		p.Add("a", agentIv(seq, 500, lat, 0.1, 0))
		p.Add("b", agentIv(seq, 500, lat, busyB, backB))
		p.Close([]string{"a", "b"}, false)
	}
	type out struct {
		ms  Measurement
		err error
	}
	measure := func(rate float64) chan out {
		ch := make(chan out, 1)
		go func() {
			ms, err := l.Measure(context.Background(), rate)
			ch <- out{ms, err}
		}()
		return ch
	}
	wait := func(ch chan out) out {
		select {
		case r := <-ch:
			return r
		case <-time.After(5 * time.Second):
			t.Fatal("Measure did not return")
		}
		return out{}
	}

	// First step at the warm-up's rate: no change; judged over 3 s–5 s
	// (the warm-up ends at 2 s, then a second of settling).
	ch := measure(1000)
	// A slow warm-up and settling second: not judged.
	for seq := 0; seq < 3; seq++ {
		feed(seq, time.Second, 0.1, 0)
	}
	select {
	case r := <-ch:
		t.Fatalf("measured before its intervals: %+v", r)
	case <-time.After(20 * time.Millisecond):
	}
	feed(3, 10*time.Millisecond, 0.1, 0)
	feed(4, 10*time.Millisecond, 0.1, 0)
	r := wait(ch)
	ms := r.ms
	if r.err != nil || len(ctl.changes) != 0 || ms.From != 3 || ms.To != 5 || ms.Achieved != 1000 || ms.Sent != 1000 ||
		ms.P99 < 9900 || ms.P99 > 10100 || !ms.Valid || !ms.SLO || !ms.Counts() {
		t.Fatalf("first step: %v %+v, changes %+v", r.err, ms, ctl.changes)
	}

	// Second step: a change to 2000 taking effect at 6 s; judged 7 s–9 s.
	// Agent b's loops are saturated while its requests wait: the step is
	// not valid although the fleet as a whole was half idle.
	ctl.at = 6 * time.Second
	ch = measure(2000)
	for seq := 5; seq < 9; seq++ {
		feed(seq, 100*time.Millisecond, 0.99, 100)
	}
	r = wait(ch)
	ms = r.ms
	if r.err != nil || len(ctl.changes) != 1 || ctl.changes[0].Rate != 2000 || ctl.changes[0].Reason != "find" || ms.From != 7 || ms.To != 9 {
		t.Fatalf("second step: %v %+v, changes %+v", r.err, ms, ctl.changes)
	}
	if ms.Valid || ms.Counts() || ms.SLO || len(ms.Invalid) != 1 || !strings.Contains(ms.Invalid[0], "agent b saturated") ||
		len(ms.Failed) != 1 || !strings.Contains(ms.Failed[0], "p99 < 50ms (100.") {
		t.Fatalf("second step: %+v", ms)
	}
	// Agent b is named, not the whole generator.
	for _, why := range ms.Invalid {
		if strings.Contains(why, "generator sent") || strings.HasPrefix(why, "generator saturated") {
			t.Fatalf("blamed the whole generator: %q", ms.Invalid)
		}
	}

	// The broken step left a backlog: the next step first pauses (rate
	// 0) until an interval in which nothing was sent, then changes the
	// rate. Its sends were late from outside idle loops: a p99 of 100ms
	// with sends up to 80ms late could be 20ms without them, under the
	// SLO: not held against the target. Up to 20ms late, it is at least
	// 80ms: the target's.
	seq := 9
	for i, tc := range []struct {
		late   time.Duration
		counts bool
	}{{80 * time.Millisecond, false}, {20 * time.Millisecond, true}} {
		pause := time.Duration(seq+1) * time.Second
		ctl.next = []time.Duration{pause, pause + 3*time.Second}
		before := len(ctl.changes)
		ch = measure(float64(1000 + i))
		// Still sending the backlog in the pause's first interval; nothing
		// in its second.
		for ; seq <= int(pause/time.Second); seq++ {
			feed(seq, time.Second, 0.1, 0)
		}
		feed0 := func(seq int) {
			p.Add("a", agentIvLate(seq, 0, 0, 0.1, 0, 0))
			p.Add("b", agentIvLate(seq, 0, 0, 0.1, 0, 0))
			p.Close([]string{"a", "b"}, false)
		}
		feed0(seq)
		seq++
		for ; seq < int(pause/time.Second)+6; seq++ {
			p.Add("a", agentIvLate(seq, 500, 100*time.Millisecond, 0.1, 0, tc.late))
			p.Add("b", agentIvLate(seq, 500, 100*time.Millisecond, 0.1, 0, tc.late))
			p.Close([]string{"a", "b"}, false)
		}
		ms := wait(ch).ms
		ctl.mu.Lock()
		got := append([]live.Change(nil), ctl.changes[before:]...)
		ctl.mu.Unlock()
		if len(got) != 2 || got[0].Rate != 0 || got[0].Reason != "find: drain" || got[1].Rate != float64(1000+i) {
			t.Fatalf("late %s: changes %+v", tc.late, got)
		}
		if ms.From != (pause + 4*time.Second).Seconds() {
			t.Fatalf("late %s: judged from %v", tc.late, ms.From)
		}
		if !ms.Valid || ms.SLO || ms.Counts() != tc.counts || (ms.Lateness != "") == tc.counts {
			t.Fatalf("late %s: %+v", tc.late, ms)
		}
		if !tc.counts && !strings.Contains(ms.Lateness, "p99 < 50ms could be as low as 19.9") {
			t.Fatalf("late %s: %q", tc.late, ms.Lateness)
		}
	}

	// The test ends while a step waits (here, for its pause): ErrEnded.
	ctl.next = []time.Duration{time.Duration(seq+1) * time.Second}
	ch = measure(4000)
	feed(seq, time.Millisecond, 0.1, 0)
	l.End()
	if r := wait(ch); !errors.Is(r.err, ErrEnded) {
		t.Fatalf("ended: %v", r.err)
	}
	// Only the intervals of the step waited for are held.
	l.mu.Lock()
	n, na := len(l.ivs), len(l.agents)
	l.mu.Unlock()
	if n > 1 || na > 1 {
		t.Fatalf("%d intervals and %d agent parts held", n, na)
	}
}
