package engine

import (
	"math"
	"time"

	"github.com/barrage-load/barrage/proto"
	"github.com/barrage-load/barrage/schedule"
)

// phaseChange is one instant from which the engine's hits take another
// phase (Options.Phase, Engine.Apply); ns since the schedule's start.
type phaseChange struct {
	at    int64
	phase float64
}

// phaseRule times the tokens from `from` on: token j is due when the rate
// integral reaches its hit number plus phase, and never before at. The
// tokens before from were due before at under the rule before.
type phaseRule struct {
	at    int64
	from  uint64
	phase float64
}

// pacing is one loop's share of the open model's schedule: which of its
// tokens are due when, and how far it got. It is pure arithmetic on the
// loop's own fields (no clock, no socket, no lock), so tests drive it with
// made-up times.
//
// The loop's tokens are every stride-th hit of the engine, from idx: token
// j is the engine's hit j*stride+idx, so the loops of one engine
// interleave. The engine's hit k is due when the schedule's integral
// reaches k+phase, so engines given phases i/N of N interleave too.
//
// Three cursors split the tokens: those below next were sent or shed;
// those below seen were counted as due (Stats.Scheduled); those below
// offered were offered to the connections by a pump (a token a pump found
// due and could not send was backlogged; one sent in the pump that first
// offered it measures the generator's lateness). seen >= next always; the
// tokens between them are due and wait. A cut counts the tokens due by its
// boundary (seen) without offering them, so each interval counts the
// tokens due in it, however late the loop looks.
type pacing struct {
	sched  schedule.Schedule
	stride uint64
	idx    uint64
	rules  []phaseRule
	// last is rules' last, the one nearly every token follows: at looks
	// there first.
	last phaseRule

	next    uint64
	nextAt  int64 // token next's intended time, ns since the start
	nextOK  bool  // false: the schedule asks for no more tokens
	nextSeg int   // schedule cursor for nextAt
	seen    uint64
	seenAt  int64
	seenOK  bool
	seenSeg int
	offered uint64
}

// setSchedule makes s and the phase changes (in time order, the first
// from the start) the rule from now on, keeping the cursors: a change
// never re-sends or skips a token.
func (p *pacing) setSchedule(s schedule.Schedule, phases []phaseChange) {
	p.sched = s
	p.rules = p.rules[:0]
	p.rules = append(p.rules, phaseRule{at: math.MinInt64, phase: phases[0].phase})
	p.last = p.rules[0]
	for _, c := range phases[1:] {
		// Tokens due before the change keep their times; the new phase
		// times the rest. Hazard: this count must use the rules so far,
		// which is why rules are added one at a time.
		from := p.count(c.at - 1)
		p.rules = append(p.rules, phaseRule{at: c.at, from: from, phase: c.phase})
		p.last = p.rules[len(p.rules)-1]
	}
	p.last = p.rules[len(p.rules)-1]
	p.nextAt, p.nextSeg, p.nextOK = p.at(p.next, 0)
	p.seenAt, p.seenSeg, p.seenOK = p.at(p.seen, 0)
}

// at returns token j's intended time (ns since the start), its schedule
// segment, and false when the schedule ends before it. It is on the
// per-request path: the last rule is looked at first, without a loop.
func (p *pacing) at(j uint64, hint int) (int64, int, bool) {
	if j >= p.last.from {
		at, seg, ok := p.sched.At(float64(j*p.stride+p.idx)+p.last.phase, hint)
		return max(at, p.last.at), seg, ok
	}
	return p.atRule(j, hint)
}

// atRule is at for a token before the last phase change.
func (p *pacing) atRule(j uint64, hint int) (int64, int, bool) {
	ri := len(p.rules) - 1
	for ri > 0 && j < p.rules[ri].from {
		ri--
	}
	r := &p.rules[ri]
	at, seg, ok := p.sched.At(float64(j*p.stride+p.idx)+r.phase, hint)
	if ok && at < r.at {
		at = r.at
	}
	return at, seg, ok
}

// dueBy reports whether token j is due by t.
func (p *pacing) dueBy(j uint64, t int64) bool {
	at, _, ok := p.at(j, 0)
	return ok && at <= t
}

// count is the number of tokens due by t (ns since the start), in O(1)
// whatever the rate: from the rate's integral, then made exact against at
// (the two differ by rounding only), so a token counted due is one the
// send loop finds due.
func (p *pacing) count(t int64) uint64 {
	if t < 0 {
		return 0
	}
	ri := len(p.rules) - 1
	for ri > 0 && t < p.rules[ri].at {
		ri--
	}
	r := &p.rules[ri]
	var c uint64
	if x := p.sched.Hits(time.Duration(t)) - float64(p.idx) - r.phase; x >= 0 {
		c = uint64(min(math.Floor(x/float64(p.stride))+1, 1<<62))
	}
	c = max(c, r.from)
	for i := 0; i < 4 && c > 0 && !p.dueBy(c-1, t); i++ {
		c--
	}
	for i := 0; i < 4 && p.dueBy(c, t); i++ {
		c++
	}
	return c
}

// take moves next past the token it sent.
func (p *pacing) take() {
	p.next++
	p.nextAt, p.nextSeg, p.nextOK = p.at(p.next, p.nextSeg)
}

// seeTo counts the tokens up to c as due.
func (p *pacing) seeTo(c uint64, st *proto.Stats) {
	if c <= p.seen {
		return
	}
	st.Scheduled += c - p.seen
	p.seen = c
	p.seenAt, p.seenSeg, p.seenOK = p.at(c, p.seenSeg)
}

// observe counts the tokens that came due by t. A few are walked one by
// one, as cheap as a comparison each; more jump in O(1) (an absurd rate,
// or a loop that could not run for a while).
func (p *pacing) observe(t int64, st *proto.Stats) {
	for i := 0; i < 4; i++ {
		if !p.seenOK || p.seenAt > t {
			return
		}
		p.seeOne(st)
	}
	p.seeTo(p.count(t), st)
}

// seeOne counts token seen as due: seeTo(seen+1), the per-request case.
func (p *pacing) seeOne(st *proto.Stats) {
	st.Scheduled++
	p.seen++
	p.seenAt, p.seenSeg, p.seenOK = p.at(p.seen, p.seenSeg)
}

// offer ends a pump: the tokens due and not sent found no connection
// free, and count as backlogged once.
func (p *pacing) offer(st *proto.Stats) {
	if p.seen <= p.offered {
		return
	}
	if lo := max(p.offered, p.next); p.seen > lo {
		st.Backlogged += p.seen - lo
	}
	p.offered = p.seen
}

// shed drops the tokens below k that were not sent, counting them in
// Shed[kind]. Tokens shed for the backlog were due and waited for a
// connection, so they count as backlogged (once); fenced ones never had
// the chance.
func (p *pacing) shed(k uint64, kind proto.ShedKind, st *proto.Stats) {
	if k <= p.next {
		return
	}
	p.seeTo(k, st)
	if lo := max(p.offered, p.next); kind == proto.ShedBacklog && k > lo {
		st.Backlogged += k - lo
	}
	p.offered = max(p.offered, k)
	st.Shed[kind] += k - p.next
	p.next = k
	p.nextAt, p.nextSeg, p.nextOK = p.at(k, p.nextSeg)
}

// fence sheds every token due by t that was not sent (the lease lapsed):
// counted as due, never as backlogged.
func (p *pacing) fence(t int64, st *proto.Stats) { p.shedDue(t, proto.ShedFenced, st) }

// shedDue sheds every token due by t that was not sent, for kind (the
// lease lapsed, the circuit is open), in O(1).
func (p *pacing) shedDue(t int64, kind proto.ShedKind, st *proto.Stats) {
	c := p.seen
	if p.seenOK && p.seenAt <= t {
		c = p.count(t)
	}
	p.shed(c, kind, st)
}

// waiting is the number of tokens due and not sent.
func (p *pacing) waiting() uint64 { return p.seen - p.next }
