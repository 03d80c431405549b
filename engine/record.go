package engine

import (
	"math/bits"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/barrage-load/barrage/proto"
)

// Recording, on the hot path: each response or failure into the loop's
// interval statistics, and the censored waits of requests never answered.

// complete records the response that just ended for the oldest request of c.
func (l *loop) complete(c *conn, now int64) {
	st := l.st
	i := c.head
	f := c.pop()
	st.Responses++
	code := c.parser.Status()
	if code <= 0 || code >= proto.MaxStatus {
		code = 0
	}
	st.Status[code]++
	if l.perName {
		l.completeReq(st, f, code, now)
	}
	if l.rt != nil {
		l.answered(c, i, f, code, now)
	}
	if l.open {
		l.record(st.Latency, now-f.intended)
		l.record(st.Service, now-f.sent)
		return
	}
	us := l.clampUS(now - f.sent)
	_ = st.Latency.RecordValue(us)
	_ = st.Corrected.RecordCorrectedValue(us, l.expected)
}

// completeReq records a response in its request's figures: the same
// latency Stats.Latency records (clamped, but counted as clamped once,
// there).
func (l *loop) completeReq(st *proto.Stats, f inflight, code int, now int64) {
	r := &st.Requests[f.req]
	r.Responses++
	r.Status[code]++
	from := f.sent
	if l.open {
		from = f.intended
	}
	_ = r.Latency.RecordValue(min(max((now-from)/1000, 0), proto.HistMax))
}

// failReqs counts the requests in flight on c as failed with kind, in
// their requests' figures (named mixes).
func (l *loop) failReqs(st *proto.Stats, c *conn, kind proto.ErrKind) {
	if !l.perName {
		return
	}
	for i := 0; i < c.n; i++ {
		st.Requests[c.at(i).req].Errors[kind]++
	}
}

func (l *loop) clampUS(ns int64) int64 {
	us := ns / 1000
	if us > proto.HistMax {
		l.st.Clamped++
		return proto.HistMax
	}
	if us < 0 {
		return 0
	}
	return us
}

func (l *loop) record(h *hdrhistogram.Histogram, ns int64) {
	_ = h.RecordValue(l.clampUS(ns))
}

// recordN records n values of ns into h, a histogram of st.
func recordN(st *proto.Stats, h *hdrhistogram.Histogram, ns int64, n uint64) {
	us := max(ns/1000, 0)
	if us > proto.HistMax {
		st.Clamped += n
		us = proto.HistMax
	}
	_ = h.RecordValues(us, int64(n))
}

// censor records the requests in flight on c as lower bounds of their
// latency: they were never answered (the connection died, or the run
// ended), and waited at least until now. The open model measures from
// the intended send time, the closed one from the actual send.
func (l *loop) censor(st *proto.Stats, c *conn, now int64) {
	for i := 0; i < c.n; i++ {
		f := c.at(i)
		from := f.sent
		if l.open {
			from = f.intended
		}
		recordN(st, st.Latency, now-from, 1)
		if l.perName {
			_ = st.Requests[f.req].Latency.RecordValue(min(max((now-from)/1000, 0), proto.HistMax))
		}
	}
	st.Censored += uint64(c.n)
}

// censorWaiting records the tokens still waiting for a connection at the
// end as lower bounds of their latency, from their intended times. Hazard:
// an absurd rate leaves billions: past censorBuckets they go in that many
// batches, each recorded at its middle token's wait.
func (l *loop) censorWaiting(st *proto.Stats, now int64) {
	p := &l.pc
	n := p.waiting()
	if n == 0 {
		return
	}
	start := l.e.startNS
	if n <= censorBuckets {
		seg := p.nextSeg
		for j := p.next; j < p.seen; j++ {
			at, sg, ok := p.at(j, seg)
			seg = sg
			if !ok {
				at = now - start
			}
			recordN(st, st.Latency, now-start-at, 1)
		}
	} else {
		for b := uint64(0); b < censorBuckets; b++ {
			lo, hi := p.next+mulDiv(n, b, censorBuckets), p.next+mulDiv(n, b+1, censorBuckets)
			if hi == lo {
				continue
			}
			at, _, ok := p.at(lo+(hi-lo)/2, 0)
			if !ok {
				at = now - start
			}
			recordN(st, st.Latency, now-start-at, hi-lo)
		}
	}
	st.Censored += n
}

// mulDiv is a*b/c without overflow (b <= c).
func mulDiv(a, b, c uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	q, _ := bits.Div64(hi, lo, c)
	return q
}
