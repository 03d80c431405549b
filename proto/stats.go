package proto

import (
	"strconv"
	"strings"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram bounds: every latency is recorded in microseconds from 1 µs to
// 60 s with 3 significant digits. Values above the top are clamped to it and
// counted in Stats.Clamped, so a stuck request is never lost from the count.
const (
	HistMin    = 1
	HistMax    = int64(60 * time.Second / time.Microsecond)
	HistDigits = 3
)

// NewHistogram returns an empty histogram with the project's bounds.
func NewHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(HistMin, HistMax, HistDigits)
}

// ErrKind classifies a failed request.
type ErrKind int

// Error kinds.
const (
	// ErrConnect occurs when a connection cannot be opened (refused, timed
	// out, unreachable). It counts connection attempts, not requests.
	ErrConnect ErrKind = iota
	// ErrTLS occurs when a TLS handshake fails (Stats.TLS says why), or
	// TLS breaks an open connection (a bad record, an alert). Like
	// ErrConnect it counts connections, not requests: a failed handshake
	// sent no request, and the requests in flight on a connection TLS
	// broke count as ErrReset. It sits before ErrTimeout so that every
	// count of failed requests (ErrTimeout up to NumErrKinds) leaves it
	// out.
	ErrTLS
	// ErrTimeout occurs when a response does not complete within the
	// request timeout; the connection is closed and reopened.
	ErrTimeout
	// ErrReset occurs when the peer closes or resets the connection while
	// requests are in flight.
	ErrReset
	// ErrProtocol occurs when the response bytes are not valid HTTP/1.1.
	ErrProtocol
	NumErrKinds
)

var errKindNames = [NumErrKinds]string{"connect", "tls", "timeout", "reset", "protocol"}

// String names the kind as the report and the JSON show it.
func (k ErrKind) String() string {
	if k < 0 || k >= NumErrKinds {
		return "unknown"
	}
	return errKindNames[k]
}

// TLSReason says why a TLS handshake failed, or why TLS broke an open
// connection (Stats.TLS, which adds up to Errors[ErrTLS]).
type TLSReason int

// TLS failure reasons.
const (
	// TLSUnknownAuthority occurs when the server's certificate is not
	// signed by an authority the generator trusts (a self-signed target
	// without --cacert or --insecure).
	TLSUnknownAuthority TLSReason = iota
	// TLSBadCertificate occurs when a certificate is refused for another
	// reason: the server's is expired, not yet valid or not for server
	// authentication, or the server refused the generator's own (mTLS).
	TLSBadCertificate
	// TLSHostName occurs when the server's certificate does not name the
	// host the generator asked for (the URL's host, or a Host header's).
	TLSHostName
	// TLSProtocolVersion occurs when client and server share no protocol version
	// (--tls-min 1.3 against a server that offers only TLS 1.2).
	TLSProtocolVersion
	// TLSHandshakeTimeout occurs when a handshake does not end within the connect
	// timeout.
	TLSHandshakeTimeout
	// TLSOther is every other failure: no cipher suite in common, a
	// server that does not speak TLS, a bad record, an alert.
	TLSOther
	NumTLSReasons
)

var tlsReasonNames = [NumTLSReasons]string{"unknown_authority", "bad_certificate", "host_name", "protocol_version", "handshake_timeout", "other"}

// String names the reason as the report and the JSON show it.
func (r TLSReason) String() string {
	if r < 0 || r >= NumTLSReasons {
		return "unknown"
	}
	return tlsReasonNames[r]
}

// ShedKind says why a request that came due in the open model was never
// sent. Shed requests are counted, never silently dropped, and never
// counted as the target's latency.
type ShedKind int

// Shed kinds.
const (
	// ShedBacklog occurs when a request due waited for a free connection
	// longer than the generator may hold it (the request timeout), or past
	// the backlog's bound: the generator drops it rather than send it late.
	ShedBacklog ShedKind = iota
	// ShedFenced occurs when an agent lost touch with ZooKeeper for its
	// session timeout (its lease lapsed): it may not send on a budget it
	// cannot confirm, so what came due meanwhile is dropped.
	ShedFenced
	// ShedCircuit occurs when the generator's circuit breaker is open
	// (or half-open with its probes spent): the target is failing, and
	// what comes due is dropped rather than sent into the failure.
	ShedCircuit
	NumShedKinds
)

var shedKindNames = [NumShedKinds]string{"backlog", "fenced", "circuit"}

// String names the kind as the report and the JSON show it.
func (k ShedKind) String() string {
	if k < 0 || k >= NumShedKinds {
		return "unknown"
	}
	return shedKindNames[k]
}

// MaxStatus bounds the status codes counted one by one; any other code is
// counted in Status[0].
const MaxStatus = 600

// Stats are the counters and histograms of one interval (or, merged, of a
// whole run) of one loop, agent or test. The engine's loops update it in
// place on their hot path, so it holds plain counters and no maps.
type Stats struct {
	// Step is the schedule step the interval belongs to; Seq numbers the
	// interval from 0 at the start of the test.
	Step int
	Seq  int
	// Start and End bound the interval, measured from the test's start.
	Start, End time.Duration

	// Sent counts requests written; Responses, complete final responses;
	// Unfinished, requests still in flight when the test stopped. Errors
	// other than ErrConnect count requests that failed. At the end of a
	// run Sent == Responses + failed requests + Unfinished.
	Sent, Responses, Unfinished uint64
	Status                      [MaxStatus]uint64
	Errors                      [NumErrKinds]uint64
	// TLS counts the TLS failures by reason; it adds up to
	// Errors[ErrTLS].
	TLS               [NumTLSReasons]uint64
	BytesIn, BytesOut uint64
	// Scheduled counts the open model's tokens that came due; Backlogged,
	// those that found no connection free (the target was slower than the
	// rate) and waited for one; Clamped, latencies over HistMax.
	Scheduled, Backlogged, Clamped uint64
	// Shed counts the open model's requests that came due and were never
	// sent, by why (see ShedKind).
	Shed [NumShedKinds]uint64
	// ServerCloses counts connections the server closed after a complete
	// response (Connection: close, HTTP/1.0): the slot reconnects at once,
	// so a connection count sampled meanwhile is short by the server's
	// policy, not by the generator's failure.
	ServerCloses uint64
	// ClientCloses counts connections the generator closed after their
	// one request (no keep-alive): each slot reconnects at once, so a
	// connection count sampled meanwhile is short by the plan's policy.
	ClientCloses uint64
	// Censored counts latencies recorded as lower bounds: requests that
	// never got an answer (in flight at the end or when their connection
	// died, or due and still waiting for a connection at the end). Each
	// is in Latency with the wait it had so far.
	Censored uint64

	// ConnsOpen and ConnsWanted sample the connections held and asked for
	// at the interval's end (summed over loops and agents).
	ConnsOpen, ConnsWanted int

	// LoopCPU is the CPU time (user + sys, as the OS charged it) the
	// generator's event loops used in the interval; LoopCapacity is what
	// they could have used, one core per loop for the interval's length
	// (zero where the OS does not say). Both add up over loops, agents and
	// intervals; LoopCPU / LoopCapacity is how busy the loops were.
	LoopCPU, LoopCapacity time.Duration

	// Latency is what the report leads with: in the open model from each
	// request's intended send time (coordinated omission corrected), in the
	// closed model from its actual send time. Service is the open model's
	// time from the actual send. Corrected is the closed model's latency
	// back-filled for coordinated omission at the expected interval.
	// Lateness is the open model's actual minus intended send time of the
	// requests the generator could send at once: its own delay.
	Latency, Service, Corrected, Lateness *hdrhistogram.Histogram
	// Connect is the time each connection took to open (TCP connect);
	// Handshake, the TLS handshake of each that opened over TLS. Both
	// are nil until the first value: NewStats does not make them, the
	// engine does when it records one, and a merge makes them only when
	// the other side has values.
	Connect, Handshake *hdrhistogram.Histogram

	// Retries (plan.Retry; see retry.go). Sent counts every attempt;
	// Retries the attempts that were retries, by the cause of the
	// failure they retried, so Logical() = Sent - TotalRetries() is the
	// requests sent for the first time. Requeued counts the failures
	// that called for a retry; each was later retried or dropped
	// (RetryDropped, by why): at a run's end Requeued ==
	// TotalRetries() + TotalRetryDropped(). RetriedOK counts requests
	// answered with a success only after a retry; Exhausted, requests
	// whose last allowed attempt failed with a listed kind. EndToEnd is
	// each request's latency over all its attempts and backoffs, from
	// its intended send (open model) or its first send (closed), one
	// value per request when it ends (a lower bound for one that ended
	// without an answer); nil without retries.
	Retries      [NumRetryCauses]uint64
	Requeued     uint64
	RetryDropped [NumRetryDrops]uint64
	RetriedOK    uint64
	Exhausted    uint64
	EndToEnd     *hdrhistogram.Histogram
	// Breaker lists the circuit breaker's transitions in the interval,
	// in time order (several agents' merged: by agent, then time).
	Breaker []BreakerEvent

	// Requests are the figures of each request of a named mix
	// (Plan.Named), by the request's index in the plan; nil otherwise.
	// They add up to the totals above, except that Latency here holds no
	// token that was never sent (a request is picked when it is sent).
	Requests []RequestStats
}

// RequestStats are one request's figures in a mix: what was sent, how it
// was answered or failed, and its latency (the same measure as
// Stats.Latency: from the intended send in the open model, from the
// actual send in the closed one).
type RequestStats struct {
	Sent, Responses, Unfinished uint64
	Status                      [MaxStatus]uint64
	// Errors counts the request's failures by kind (never ErrConnect: a
	// connect fails before any request is picked).
	Errors  [NumErrKinds]uint64
	Latency *hdrhistogram.Histogram
}

// Failed counts the request's failures.
func (r *RequestStats) Failed() uint64 {
	var n uint64
	for _, x := range r.Errors {
		n += x
	}
	return n
}

// SetRequests makes room for n requests' figures, each with its latency
// histogram (a loop's stats are sized once, before it sends).
func (s *Stats) SetRequests(n int) {
	s.growRequests(n)
	for i := range s.Requests {
		if s.Requests[i].Latency == nil {
			s.Requests[i].Latency = NewHistogram()
		}
	}
}

func (s *Stats) growRequests(n int) {
	if n <= len(s.Requests) {
		return
	}
	if n <= cap(s.Requests) {
		s.Requests = s.Requests[:n]
		return
	}
	rs := make([]RequestStats, n)
	copy(rs, s.Requests)
	s.Requests = rs
}

// NewStats returns empty stats with the histograms that model uses.
func NewStats(open bool) *Stats {
	s := &Stats{Latency: NewHistogram()}
	if open {
		s.Service = NewHistogram()
		s.Lateness = NewHistogram()
	} else {
		s.Corrected = NewHistogram()
	}
	return s
}

// Open reports whether s holds open-model stats.
func (s *Stats) Open() bool { return s.Lateness != nil }

// Reset zeroes s and keeps its histograms' memory.
func (s *Stats) Reset() {
	l, sv, c, la, cn, hs, rs := s.Latency, s.Service, s.Corrected, s.Lateness, s.Connect, s.Handshake, s.Requests
	e2e, bk := s.EndToEnd, s.Breaker
	*s = Stats{Latency: l, Service: sv, Corrected: c, Lateness: la, Connect: cn, Handshake: hs, Requests: rs,
		EndToEnd: e2e, Breaker: bk[:0]}
	for _, h := range []*hdrhistogram.Histogram{l, sv, c, la, cn, hs, e2e} {
		if h != nil {
			h.Reset()
		}
	}
	for i := range rs {
		h := rs[i].Latency
		rs[i] = RequestStats{Latency: h}
		if h != nil {
			h.Reset()
		}
	}
}

// LoopBusy is the fraction of their cores the event loops used (0 when
// unknown).
func (s *Stats) LoopBusy() float64 {
	if s.LoopCapacity <= 0 {
		return 0
	}
	return float64(s.LoopCPU) / float64(s.LoopCapacity)
}

// Failed counts the requests that failed (every error kind but connect
// and tls, which count connections).
func (s *Stats) Failed() uint64 {
	var n uint64
	for k := ErrTimeout; k < NumErrKinds; k++ {
		n += s.Errors[k]
	}
	return n
}

// TotalShed counts the requests shed for every reason.
func (s *Stats) TotalShed() uint64 {
	var n uint64
	for _, x := range s.Shed {
		n += x
	}
	return n
}

// TotalErrors counts every error, connection and TLS errors included.
func (s *Stats) TotalErrors() uint64 { return s.Failed() + s.Errors[ErrConnect] + s.Errors[ErrTLS] }

func mergeHist(dst **hdrhistogram.Histogram, src *hdrhistogram.Histogram) int64 {
	if src == nil {
		return 0
	}
	if *dst == nil {
		*dst = NewHistogram()
	}
	return (*dst).Merge(src)
}

// mergeOptional is mergeHist for a histogram made only when it gets a
// value (Connect, Handshake): an empty source makes none (a plain-HTTP
// run has no handshake histogram, in its report or its snapshots).
func mergeOptional(dst **hdrhistogram.Histogram, src *hdrhistogram.Histogram) int64 {
	if src == nil || *dst == nil && src.TotalCount() == 0 {
		return 0
	}
	return mergeHist(dst, src)
}

// Merge adds o into s. Histograms merge exactly; it returns how many
// recorded values could not be merged, which the caller must show.
// The interval bounds widen to cover both; connection samples add up.
func (s *Stats) Merge(o *Stats) (dropped int64) {
	if o.Start < s.Start || (s.Start == 0 && s.End == 0) {
		s.Start = o.Start
	}
	if o.End > s.End {
		s.End = o.End
	}
	s.Sent += o.Sent
	s.Responses += o.Responses
	s.Unfinished += o.Unfinished
	for i := range o.Status {
		s.Status[i] += o.Status[i]
	}
	for i := range o.Errors {
		s.Errors[i] += o.Errors[i]
	}
	for i := range o.TLS {
		s.TLS[i] += o.TLS[i]
	}
	s.BytesIn += o.BytesIn
	s.BytesOut += o.BytesOut
	s.Scheduled += o.Scheduled
	s.Backlogged += o.Backlogged
	s.Clamped += o.Clamped
	for i := range o.Shed {
		s.Shed[i] += o.Shed[i]
	}
	s.Censored += o.Censored
	s.ServerCloses += o.ServerCloses
	s.ClientCloses += o.ClientCloses
	s.ConnsOpen += o.ConnsOpen
	s.ConnsWanted += o.ConnsWanted
	s.LoopCPU += o.LoopCPU
	s.LoopCapacity += o.LoopCapacity
	for i := range o.Retries {
		s.Retries[i] += o.Retries[i]
	}
	for i := range o.RetryDropped {
		s.RetryDropped[i] += o.RetryDropped[i]
	}
	s.Requeued += o.Requeued
	s.RetriedOK += o.RetriedOK
	s.Exhausted += o.Exhausted
	s.Breaker = append(s.Breaker, o.Breaker...)
	dropped += mergeOptional(&s.EndToEnd, o.EndToEnd)
	dropped += mergeHist(&s.Latency, o.Latency)
	dropped += mergeHist(&s.Service, o.Service)
	dropped += mergeHist(&s.Corrected, o.Corrected)
	dropped += mergeHist(&s.Lateness, o.Lateness)
	dropped += mergeOptional(&s.Connect, o.Connect)
	dropped += mergeOptional(&s.Handshake, o.Handshake)
	s.growRequests(len(o.Requests))
	for i := range o.Requests {
		r, x := &s.Requests[i], &o.Requests[i]
		r.Sent += x.Sent
		r.Responses += x.Responses
		r.Unfinished += x.Unfinished
		for j := range x.Status {
			r.Status[j] += x.Status[j]
		}
		for j := range x.Errors {
			r.Errors[j] += x.Errors[j]
		}
		dropped += mergeHist(&r.Latency, x.Latency)
	}
	return dropped
}

// Clone returns a deep copy of s.
func (s *Stats) Clone() *Stats {
	c := *s
	c.Latency, c.Service, c.Corrected, c.Lateness, c.Connect, c.Handshake, c.EndToEnd = nil, nil, nil, nil, nil, nil, nil
	c.Breaker = append([]BreakerEvent(nil), s.Breaker...)
	for _, p := range []struct {
		dst **hdrhistogram.Histogram
		src *hdrhistogram.Histogram
	}{{&c.Latency, s.Latency}, {&c.Service, s.Service}, {&c.Corrected, s.Corrected}, {&c.Lateness, s.Lateness},
		{&c.Connect, s.Connect}, {&c.Handshake, s.Handshake}, {&c.EndToEnd, s.EndToEnd}} {
		if p.src != nil {
			*p.dst = p.src.Clone()
		}
	}
	if s.Requests != nil {
		c.Requests = make([]RequestStats, len(s.Requests))
		copy(c.Requests, s.Requests)
		for i := range c.Requests {
			if h := c.Requests[i].Latency; h != nil {
				c.Requests[i].Latency = h.Clone()
			}
		}
	}
	return &c
}

// taggedHist is one of a Stats' histograms and its tag in a snapshot.
type taggedHist struct {
	tag string
	h   *hdrhistogram.Histogram
}

// histogramFields are the Stats histograms a snapshot carries, by tag: a
// new histogram is one more line here (and in Merge, Reset and Clone).
// Each request of a mix adds its own, tagged "req/<index>/latency" (see
// reqTag), and carried only when it holds values.
var histogramFields = []struct {
	tag string
	get func(*Stats) **hdrhistogram.Histogram
}{
	{"latency", func(s *Stats) **hdrhistogram.Histogram { return &s.Latency }},
	{"service", func(s *Stats) **hdrhistogram.Histogram { return &s.Service }},
	{"corrected", func(s *Stats) **hdrhistogram.Histogram { return &s.Corrected }},
	{"lateness", func(s *Stats) **hdrhistogram.Histogram { return &s.Lateness }},
	{"connect", func(s *Stats) **hdrhistogram.Histogram { return &s.Connect }},
	{"handshake", func(s *Stats) **hdrhistogram.Histogram { return &s.Handshake }},
	{"end_to_end", func(s *Stats) **hdrhistogram.Histogram { return &s.EndToEnd }},
}

// histograms lists s's histograms present, by tag.
func (s *Stats) histograms() []taggedHist {
	var out []taggedHist
	for _, f := range histogramFields {
		if h := *f.get(s); h != nil {
			out = append(out, taggedHist{f.tag, h})
		}
	}
	for i := range s.Requests {
		if h := s.Requests[i].Latency; h != nil && h.TotalCount() > 0 {
			out = append(out, taggedHist{reqTag(i), h})
		}
	}
	return out
}

// reqTag is the snapshot tag of request i's latency histogram.
func reqTag(i int) string { return "req/" + strconv.Itoa(i) + "/latency" }

// parseReqTag reads reqTag's spelling alone (no sign, no leading zero:
// two spellings of one index would merge twice).
func parseReqTag(tag string) (int, bool) {
	rest, ok := strings.CutPrefix(tag, "req/")
	if !ok {
		return 0, false
	}
	num, ok := strings.CutSuffix(rest, "/latency")
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(num)
	if err != nil || i < 0 || i >= MaxRequests || strconv.Itoa(i) != num {
		return 0, false
	}
	return i, true
}

// knowsHistogram reports whether tag names one of s's histograms: a
// field's, or that of a request s has figures for.
func (s *Stats) knowsHistogram(tag string) bool {
	if i, ok := parseReqTag(tag); ok {
		return i < len(s.Requests)
	}
	for _, f := range histogramFields {
		if f.tag == tag {
			return true
		}
	}
	return false
}

// histogramFor is the field tag names (nil when none does); a request's
// tag makes room for that request.
func (s *Stats) histogramFor(tag string) **hdrhistogram.Histogram {
	if i, ok := parseReqTag(tag); ok {
		s.growRequests(i + 1)
		return &s.Requests[i].Latency
	}
	for _, f := range histogramFields {
		if f.tag == tag {
			return f.get(s)
		}
	}
	return nil
}
