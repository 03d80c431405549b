package engine

import (
	"math"
	"testing"
	"time"

	"github.com/barrage-load/barrage/proto"
)

// fakeLoop builds loop idx of an engine of nloops loops that never runs:
// no gnet, no socket, no clock. Its conns slots are marked open; the
// requests pump and fill write go into the slots' buffers, which flush
// drops (a slot without a gnet connection). The schedule starts at the
// engine's epoch, so a fake `now` is also the time since the start.
func fakeLoop(t testing.TB, o Options, nloops, idx, conns int) *loop {
	t.Helper()
	o.Addr = "127.0.0.1:1"
	o.Request = []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	o.CPUs = make([]int, nloops)
	for i := range o.Schedule {
		o.Schedule[i].Connections = max(o.Schedule[i].Connections, nloops)
	}
	e, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	e.nloops = nloops
	e.collect = make(chan part, 64)
	l := e.newLoop(idx)
	e.loops = []*loop{l}
	l.wantN.Store(int64(conns))
	for i := 0; i < conns; i++ {
		c := l.newConn()
		c.open = true
		l.openN++
	}
	e.running.Store(true)
	e.started = true
	l.started = true
	for _, c := range l.conns {
		l.enqueue(c)
	}
	return l
}

// answer completes the n oldest requests on every connection at now, as
// responses arriving would.
func (l *loop) answer(n int, now int64) {
	for _, c := range l.conns {
		for i := 0; i < n && c.n > 0; i++ {
			l.complete(c, now)
		}
		l.enqueue(c)
	}
}

// checkIdentity asserts the open model's token accounting: every token
// that came due was sent, shed, or is still waiting.
func checkIdentity(t *testing.T, name string, st *proto.Stats, p *pacing) {
	t.Helper()
	if st.Scheduled != st.Sent+st.TotalShed()+p.waiting() {
		t.Errorf("%s: scheduled %d != sent %d + shed %v + waiting %d", name, st.Scheduled, st.Sent, st.Shed, p.waiting())
	}
	if p.seen < p.next {
		t.Errorf("%s: cursors crossed: seen %d < next %d", name, p.seen, p.next)
	}
}

const never = time.Duration(1 << 62)

// pumpStep is one wake-up of the loop in a pump table row.
type pumpStep struct {
	at time.Duration // the fake clock, since the start
	// answer is how many responses each connection gets just before.
	answer int
	// lease, when set, is the lease window (from, until) in force from
	// this step on.
	lease *[2]time.Duration
}

func lease2(from, until time.Duration) *[2]time.Duration { return &[2]time.Duration{from, until} }

func steps(ats ...time.Duration) []pumpStep {
	out := make([]pumpStep, len(ats))
	for i, at := range ats {
		out[i] = pumpStep{at: at}
	}
	return out
}

func constantRate(rate float64, d time.Duration) []proto.Segment {
	return []proto.Segment{{Duration: d, From: rate, To: rate, Connections: 1}}
}

// TestPump drives the loop's production pump with a fake clock and fake
// connection slots. Each row says what it shows. The first rows are the
// cases the old Schedule.Pace table checked, now on the code that runs.
func TestPump(t *testing.T) {
	ramp := []proto.Segment{{Duration: 10 * time.Second, From: 0, To: 100, Connections: 1}}
	paused := []proto.Segment{
		{Duration: time.Second, From: 10, To: 10, Connections: 1},
		{Start: time.Second, Duration: time.Second, Connections: 1, Step: 1},
		{Start: 2 * time.Second, Duration: time.Second, From: 100, To: 100, Connections: 1, Step: 2},
	}
	drop := []proto.Segment{
		{Duration: time.Second, From: 1e9, To: 1e9, Connections: 1},
		{Start: time.Second, Duration: time.Second, From: 3000, To: 3000, Connections: 1, Step: 1},
	}
	ms := time.Millisecond
	for _, tc := range []struct {
		name            string
		segs            []proto.Segment
		loops, idx      int
		conns, pipeline int
		timeout         time.Duration
		phase           float64
		steps           []pumpStep
		// Expected totals after the last step, and when the pacer is to
		// wake the loop next (since the start; never: nothing more due).
		sent, scheduled, backlogged uint64
		shedBacklog, shedFenced     uint64
		waiting                     uint64
		lateness                    int64 // values in the Lateness histogram
		wake                        time.Duration
	}{
		// The first hit of a constant rate goes at once; the next is
		// 100ms later at 10/s.
		{name: "first hit at 0", segs: constantRate(10, time.Second), conns: 1, steps: steps(0),
			sent: 1, scheduled: 1, lateness: 1, wake: 100 * ms},
		// Woken early (at 40ms), nothing goes: the next hit still waits
		// for 100ms.
		{name: "second hit waits", segs: constantRate(10, time.Second), conns: 1, steps: []pumpStep{{at: 0}, {at: 40 * ms, answer: 1}},
			sent: 1, scheduled: 1, lateness: 1, wake: 100 * ms},
		// Behind schedule with connections free: every overdue hit goes
		// at once (0, 100, ..., 500ms), each stamped with its own time.
		{name: "overdue hits go at once", segs: constantRate(10, time.Second), conns: 8, steps: steps(550 * ms),
			sent: 6, scheduled: 6, lateness: 6, wake: 600 * ms},
		// 10/s for 1s asks for 10 hits (0..9): the 11th never comes.
		{name: "schedule exhausted", segs: constantRate(10, time.Second), conns: 1, pipeline: 16, steps: steps(950*ms, 2*time.Second),
			sent: 10, scheduled: 10, lateness: 10, wake: never},
		// Ramp 0 to 100/s over 10s: hits(t) = 5t², so hit 5 is due at
		// 1s: at 999ms five have gone.
		{name: "ramp quadratic", segs: ramp, conns: 1, pipeline: 16, steps: steps(999 * ms),
			sent: 5, scheduled: 5, lateness: 5, wake: time.Second},
		// Ramp: at 3.9s, 5*3.9² = 76.05 hits are due (0..76); hit 77 at
		// sqrt(77/5)s.
		{name: "ramp middle", segs: ramp, conns: 1, pipeline: 1024, steps: steps(3900 * ms),
			sent: 77, scheduled: 77, lateness: 77, wake: time.Duration(math.Sqrt(77.0/5) * 1e9)},
		// Ramp: hit 125 is due at sqrt(125/5) = 5s.
		{name: "ramp hit 125 at 5s", segs: ramp, conns: 1, pipeline: 1024, steps: steps(4999*ms, 5001*ms),
			sent: 126, scheduled: 126, lateness: 126, wake: time.Duration(math.Sqrt(126.0/5) * 1e9)},
		// Steps: 10 hits in step 1, none in the pause, and the next at 2s.
		{name: "pause skipped", segs: paused, conns: 1, pipeline: 16, steps: steps(1500 * ms),
			sent: 10, scheduled: 10, lateness: 10, wake: 2 * time.Second},
		// Steps: hit 11 is 10ms into the 100/s step.
		{name: "after pause", segs: paused, conns: 1, pipeline: 16, steps: steps(1500*ms, 2*time.Second),
			sent: 11, scheduled: 11, lateness: 11, wake: 2010 * ms},
		// A zero rate asks for nothing: the pacer need not wake until the
		// rate comes back.
		{name: "zero rate", segs: []proto.Segment{{Duration: time.Second, Connections: 1}, {Start: time.Second, Duration: time.Second, From: 10, To: 10, Connections: 1}},
			conns: 1, steps: steps(0, 500*ms), wake: time.Second},
		// No free connection: the hits that come due wait (backlogged),
		// and the pacer looks again MaxPacerTick later.
		{name: "backlog waits for a connection", segs: constantRate(10, time.Second), conns: 1, steps: steps(0, 250*ms),
			sent: 1, scheduled: 3, backlogged: 2, waiting: 2, lateness: 1, wake: 250*ms + MaxPacerTick},
		// A response frees the connection: the oldest waiting hit goes,
		// and it is not the generator's lateness (it waited for the
		// target).
		{name: "backlog drains on a response", segs: constantRate(10, time.Second), conns: 1,
			steps: []pumpStep{{at: 0}, {at: 250 * ms}, {at: 260 * ms, answer: 1}},
			sent:  2, scheduled: 3, backlogged: 2, waiting: 1, lateness: 1, wake: 260*ms + MaxPacerTick},
		// A token that waited longer than the timeout is shed, never
		// sent: at 1000.5ms with a 100ms timeout, hits 1..900 (1..900ms)
		// are dropped, 901..1000 still wait.
		{name: "stale backlog is shed", segs: constantRate(1000, 2*time.Second), conns: 1, timeout: 100 * ms, steps: steps(0, 1000500*time.Microsecond),
			sent: 1, scheduled: 1001, backlogged: 1000, shedBacklog: 900, waiting: 100, lateness: 1, wake: 1000500*time.Microsecond + MaxPacerTick},
		// The backlog owed under 1e9/s is not carried into a 3000/s step:
		// at 500ms the hits older than the 10ms timeout are shed and hit
		// 4.9e8 goes; 10.5ms into the 3000/s step every hit of the 1e9/s
		// one is shed, and of the 32 hits since (one every 333µs) those
		// older than 10ms too: what waits is bounded by the timeout.
		{name: "rate drop does not carry the backlog", segs: drop, conns: 1, timeout: 10 * ms,
			steps: []pumpStep{{at: 500 * ms}, {at: 1010500 * time.Microsecond, answer: 1}},
			sent:  2, scheduled: 1e9 + 32, backlogged: 1e9 + 30, shedBacklog: 1e9 + 1, waiting: 29, lateness: 2, wake: 1010500*time.Microsecond + MaxPacerTick},
		// An absurd rate: a second of 1e12/s is counted in O(1), not one
		// token at a time (that would not end).
		{name: "1e12/s counted in O(1)", segs: constantRate(1e12, 10*time.Second), conns: 1, steps: steps(0, time.Second),
			sent: 1, scheduled: 1e12 + 1, backlogged: 1e12, waiting: 1e12, lateness: 1, wake: time.Second + MaxPacerTick},
		// One pump sends at most MaxPumpSends, then asks to be woken at
		// once for the rest.
		{name: "one pump is bounded", segs: constantRate(1e7, time.Second), conns: 8, pipeline: 1024, steps: steps(time.Second - 1),
			sent: MaxPumpSends, scheduled: 1e7, backlogged: 1e7 - MaxPumpSends, waiting: 1e7 - MaxPumpSends, lateness: MaxPumpSends, wake: time.Second - 1},
		// Phase 0.5 shifts every hit by half a gap: at 10/s the first is
		// due at 50ms, not at once.
		{name: "phase shifts the first hit", segs: constantRate(10, time.Second), conns: 1, phase: 0.5, steps: steps(0),
			wake: 50 * ms},
		{name: "phase: hits at 50, 150ms", segs: constantRate(10, time.Second), conns: 4, phase: 0.5, steps: steps(0, 160*ms),
			sent: 2, scheduled: 2, lateness: 2, wake: 250 * ms},
		// Loop 1 of 2 sends the engine's odd hits: 100ms, 300ms, ...
		{name: "loops interleave", segs: constantRate(10, time.Second), loops: 2, idx: 1, conns: 1, pipeline: 8, steps: steps(0, 350*ms),
			sent: 2, scheduled: 2, lateness: 2, wake: 500 * ms},
		// With the lease lapsed nothing goes: what comes due is shed as
		// fenced, not backlogged.
		{name: "lapsed lease sheds", segs: constantRate(100, time.Second), conns: 4,
			steps:     []pumpStep{{at: 0, lease: lease2(-time.Hour, -1)}, {at: 505 * ms}},
			scheduled: 51, shedFenced: 51, wake: 510 * ms},
		// Sent while the lease held (0..200ms); shed after (210..500ms).
		{name: "lease lapses mid-run", segs: constantRate(100, time.Second), conns: 100,
			steps: []pumpStep{{at: 0, lease: lease2(-time.Hour, 205*ms)}, {at: 201 * ms}, {at: 505 * ms}},
			sent:  21, scheduled: 51, shedFenced: 30, lateness: 21, wake: 510 * ms},
		// Regained at 700ms after a lapse: what came due before then is
		// shed, never sent late in a burst; from 700ms on it goes.
		{name: "lease regained: no burst", segs: constantRate(100, time.Second), conns: 100,
			steps: []pumpStep{{at: 0, lease: lease2(-time.Hour, -1)}, {at: 305 * ms}, {at: 755 * ms, lease: lease2(700*ms, 2*time.Second)}},
			sent:  6, scheduled: 76, shedFenced: 70, lateness: 6, wake: 760 * ms},
		// Lapsed at 100ms, seen lapsed at 105ms (hits 1..10 shed), then
		// regained at 900ms before the loop next looked, at 955ms (a
		// process stopped and continued): the hits due before the lease
		// came back (11..89) are shed all the same; 90..95 go.
		{name: "lease regained before the loop woke", segs: constantRate(100, time.Second), conns: 100,
			steps: []pumpStep{{at: 0, lease: lease2(-time.Hour, 100*ms)}, {at: 105 * ms}, {at: 955 * ms, lease: lease2(900*ms, 2*time.Second)}},
			sent:  1 + 6, scheduled: 96, shedFenced: 10 + 79, lateness: 7, wake: 960 * ms},
	} {
		o := Options{Schedule: tc.segs, Pipeline: tc.pipeline, Timeout: tc.timeout, Phase: tc.phase}
		loops := max(tc.loops, 1)
		l := fakeLoop(t, o, loops, tc.idx, tc.conns)
		for _, s := range tc.steps {
			if s.lease != nil {
				l.e.lease.Store(&lease{from: int64(s.lease[0]), until: int64(s.lease[1])})
			}
			if s.answer > 0 {
				l.answer(s.answer, int64(s.at))
			}
			l.pump(int64(s.at))
			l.flush()
			checkIdentity(t, tc.name, l.st, &l.pc)
		}
		st := l.st
		got := []uint64{st.Sent, st.Scheduled, st.Backlogged, st.Shed[proto.ShedBacklog], st.Shed[proto.ShedFenced], l.pc.waiting()}
		want := []uint64{tc.sent, tc.scheduled, tc.backlogged, tc.shedBacklog, tc.shedFenced, tc.waiting}
		if got != nil && (got[0] != want[0] || got[1] != want[1] || got[2] != want[2] || got[3] != want[3] || got[4] != want[4] || got[5] != want[5]) {
			t.Errorf("%s: sent, scheduled, backlogged, shed backlog, shed fenced, waiting = %v, want %v", tc.name, got, want)
		}
		if n := st.Lateness.TotalCount(); n != tc.lateness {
			t.Errorf("%s: %d lateness values, want %d", tc.name, n, tc.lateness)
		}
		// One nanosecond either way: a hit's time is the integral's
		// inverse rounded up, and 1/rate is rarely exact in binary.
		if wake := time.Duration(l.nextDue.Load()); wake < tc.wake-1 || wake > tc.wake+1 {
			t.Errorf("%s: the pacer wakes at %v, want %v", tc.name, wake, tc.wake)
		}
	}
}
