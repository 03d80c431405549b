package proto

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// snapshotMagic starts every encoded snapshot (and versions the format).
var snapshotMagic = []byte("BRS2")

// maxSnapshotParts bounds the histograms one snapshot may carry.
const maxSnapshotParts = 1024

// ErrBadSnapshot occurs when snapshot bytes cannot be decoded.
var ErrBadSnapshot = errors.New("proto: bad snapshot")

// snapshotMeta is the JSON part of a snapshot: every counter, by name.
type snapshotMeta struct {
	Agent       string            `json:"agent,omitempty"`
	Seq         int               `json:"seq"`
	Step        int               `json:"step"`
	StartNS     int64             `json:"start_ns"`
	EndNS       int64             `json:"end_ns"`
	Sent        uint64            `json:"sent"`
	Responses   uint64            `json:"responses"`
	Unfinished  uint64            `json:"unfinished,omitempty"`
	Scheduled   uint64            `json:"scheduled,omitempty"`
	Backlogged  uint64            `json:"backlogged,omitempty"`
	Clamped     uint64            `json:"clamped,omitempty"`
	Shed        map[string]uint64 `json:"shed,omitempty"`
	Censored    uint64            `json:"censored,omitempty"`
	ServerClose uint64            `json:"server_closes,omitempty"`
	BytesIn     uint64            `json:"bytes_in"`
	BytesOut    uint64            `json:"bytes_out"`
	Status      map[string]uint64 `json:"status,omitempty"`
	Errors      map[string]uint64 `json:"errors,omitempty"`
	TLS         map[string]uint64 `json:"tls,omitempty"`
	ClientClose uint64            `json:"client_closes,omitempty"`
	ConnsOpen   int               `json:"conns_open"`
	ConnsWanted int               `json:"conns_wanted"`
	LoopCPU     int64             `json:"loop_cpu_ns,omitempty"`
	LoopCap     int64             `json:"loop_capacity_ns,omitempty"`
	Open        bool              `json:"open"`
	Final       bool              `json:"final,omitempty"`
	FirstSend   int64             `json:"first_send_unix_ns,omitempty"`
	Requests    []reqMeta         `json:"requests,omitempty"`
	// Retries and the breaker (retry.go).
	Retries      map[string]uint64 `json:"retries,omitempty"`
	Requeued     uint64            `json:"requeued,omitempty"`
	RetryDropped map[string]uint64 `json:"retry_dropped,omitempty"`
	RetriedOK    uint64            `json:"retried_ok,omitempty"`
	Exhausted    uint64            `json:"exhausted,omitempty"`
	Breaker      []BreakerEvent    `json:"breaker,omitempty"`
}

// reqMeta is one request's counters in a snapshot.
type reqMeta struct {
	Sent       uint64            `json:"sent"`
	Responses  uint64            `json:"responses"`
	Unfinished uint64            `json:"unfinished,omitempty"`
	Status     map[string]uint64 `json:"status,omitempty"`
	Errors     map[string]uint64 `json:"errors,omitempty"`
}

func statusMeta(st *[MaxStatus]uint64) map[string]uint64 {
	var m map[string]uint64
	for code, n := range st {
		if n > 0 {
			if m == nil {
				m = map[string]uint64{}
			}
			m[strconv.Itoa(code)] = n
		}
	}
	return m
}

func errorsMeta(e *[NumErrKinds]uint64) map[string]uint64 {
	var m map[string]uint64
	for k := ErrKind(0); k < NumErrKinds; k++ {
		if e[k] > 0 {
			if m == nil {
				m = map[string]uint64{}
			}
			m[k.String()] = e[k]
		}
	}
	return m
}

// readStatus fills st from a snapshot's status map: only
// MarshalSnapshot's spelling ("0200" or "+200" beside "200" would add two
// counts into one code, wrapping uint64 if crafted).
func readStatus(m map[string]uint64, st *[MaxStatus]uint64) error {
	for k, n := range m {
		code, err := strconv.Atoi(k)
		if err != nil || code < 0 || code >= MaxStatus || strconv.Itoa(code) != k {
			return fmt.Errorf("%w: status code %q", ErrBadSnapshot, k)
		}
		st[code] = n
	}
	return nil
}

// checkNames refuses a counter map with a name that is none of the n
// names name gives (a misspelt or crafted key would be dropped silently).
func checkNames(m map[string]uint64, n int, name func(int) string) error {
	for k := range m {
		known := false
		for i := 0; i < n && !known; i++ {
			known = name(i) == k
		}
		if !known {
			return fmt.Errorf("%w: unknown counter %q", ErrBadSnapshot, k)
		}
	}
	return nil
}

// Snapshot is one agent's interval as it travels: the Stats plus who sent
// it and whether it is the agent's last.
type Snapshot struct {
	Agent string
	Stats *Stats
	// Final marks the snapshot that ends the agent's run.
	Final bool
	// FirstSend is when the agent sent its first request (for start skew).
	FirstSend time.Time
}

// MarshalSnapshot encodes a snapshot: magic, the counters as JSON, then the
// histograms it has (by tag) in the V2 compressed encoding, each
// length-prefixed.
func MarshalSnapshot(sn *Snapshot) ([]byte, error) {
	s := sn.Stats
	m := snapshotMeta{
		Agent: sn.Agent, Seq: s.Seq, Step: s.Step, StartNS: int64(s.Start), EndNS: int64(s.End),
		Sent: s.Sent, Responses: s.Responses, Unfinished: s.Unfinished, Scheduled: s.Scheduled,
		Backlogged: s.Backlogged, Clamped: s.Clamped, BytesIn: s.BytesIn, BytesOut: s.BytesOut,
		ConnsOpen: s.ConnsOpen, ConnsWanted: s.ConnsWanted, Open: s.Open(), Final: sn.Final,
		LoopCPU: int64(s.LoopCPU), LoopCap: int64(s.LoopCapacity),
		Status: map[string]uint64{}, Errors: map[string]uint64{}, Shed: map[string]uint64{},
		Censored: s.Censored, ServerClose: s.ServerCloses, ClientClose: s.ClientCloses,
	}
	if !sn.FirstSend.IsZero() {
		m.FirstSend = sn.FirstSend.UnixNano()
	}
	for code, n := range s.Status {
		if n > 0 {
			m.Status[strconv.Itoa(code)] = n
		}
	}
	for k := ErrKind(0); k < NumErrKinds; k++ {
		if s.Errors[k] > 0 {
			m.Errors[k.String()] = s.Errors[k]
		}
	}
	for k := ShedKind(0); k < NumShedKinds; k++ {
		if s.Shed[k] > 0 {
			m.Shed[k.String()] = s.Shed[k]
		}
	}
	for i := range s.Requests {
		r := &s.Requests[i]
		m.Requests = append(m.Requests, reqMeta{Sent: r.Sent, Responses: r.Responses, Unfinished: r.Unfinished,
			Status: statusMeta(&r.Status), Errors: errorsMeta(&r.Errors)})
	}
	m.Requeued, m.RetriedOK, m.Exhausted, m.Breaker = s.Requeued, s.RetriedOK, s.Exhausted, s.Breaker
	for c := RetryCause(0); c < NumRetryCauses; c++ {
		if s.Retries[c] > 0 {
			if m.Retries == nil {
				m.Retries = map[string]uint64{}
			}
			m.Retries[c.String()] = s.Retries[c]
		}
	}
	for d := RetryDrop(0); d < NumRetryDrops; d++ {
		if s.RetryDropped[d] > 0 {
			if m.RetryDropped == nil {
				m.RetryDropped = map[string]uint64{}
			}
			m.RetryDropped[d.String()] = s.RetryDropped[d]
		}
	}
	for r := TLSReason(0); r < NumTLSReasons; r++ {
		if s.TLS[r] > 0 {
			if m.TLS == nil {
				m.TLS = map[string]uint64{}
			}
			m.TLS[r.String()] = s.TLS[r]
		}
	}
	js, err := json.Marshal(&m)
	if err != nil {
		return nil, err
	}
	out := append([]byte(nil), snapshotMagic...)
	out = binary.AppendUvarint(out, uint64(len(js)))
	out = append(out, js...)
	hs := s.histograms()
	out = binary.AppendUvarint(out, uint64(len(hs)))
	for _, th := range hs {
		enc, err := EncodeHistogram(nil, th.h)
		if err != nil {
			return nil, err
		}
		out = binary.AppendUvarint(out, uint64(len(th.tag)))
		out = append(out, th.tag...)
		out = binary.AppendUvarint(out, uint64(len(enc)))
		out = append(out, enc...)
	}
	return out, nil
}

// Size caps of an encoded snapshot, checked before anything is decoded:
// snapshot bytes come from znodes that anyone who can write them may
// craft. The largest honest snapshot is ~690 KB: five histograms of ~133 KB
// each (every one of the 17 408 buckets counted near 2^53, which does not
// compress; an open-model TLS run carries latency, service, lateness,
// connect and handshake, a closed one corrected instead of the two open
// ones) and a JSON part of ~17 KB (every status code counted at 2^64-1).
// 1 MiB is also ZooKeeper's default limit for one znode.
//
// Hazard: a mix adds a histogram and counters per request (up to
// MaxRequests). An interval's histogram of one request compresses to a
// few KB (its latencies span a few hundred buckets), and its status codes
// are a handful, so real mixes fit; one whose every request's latencies
// fill every bucket, or which sees hundreds of status codes per request in
// one interval, would not, and its snapshot stays on the agent's disk
// (barrage report --state-dir reads it).
const (
	MaxSnapshotBytes = 1 << 20
	MaxSnapshotJSON  = 256 << 10
)

// part is one of a snapshot's histograms, still encoded, and its tag.
type part struct {
	tag string
	b   []byte
}

// splitSnapshot decodes a snapshot's counters and returns its histogram
// parts, still encoded.
func splitSnapshot(b []byte) (*Snapshot, bool, []part, error) {
	var parts []part
	if len(b) > MaxSnapshotBytes {
		return nil, false, parts, fmt.Errorf("%w: %d bytes, more than %d", ErrBadSnapshot, len(b), MaxSnapshotBytes)
	}
	if len(b) < len(snapshotMagic) || string(b[:len(snapshotMagic)]) != string(snapshotMagic) {
		return nil, false, parts, fmt.Errorf("%w: no magic", ErrBadSnapshot)
	}
	b = b[len(snapshotMagic):]
	next := func() ([]byte, error) {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return nil, fmt.Errorf("%w: truncated", ErrBadSnapshot)
		}
		part := b[k : k+int(n)]
		b = b[k+int(n):]
		return part, nil
	}
	js, err := next()
	if err != nil {
		return nil, false, parts, err
	}
	if len(js) > MaxSnapshotJSON {
		return nil, false, parts, fmt.Errorf("%w: JSON part of %d bytes, more than %d", ErrBadSnapshot, len(js), MaxSnapshotJSON)
	}
	var m snapshotMeta
	if err := json.Unmarshal(js, &m); err != nil {
		return nil, false, parts, fmt.Errorf("%w: %v", ErrBadSnapshot, err)
	}
	// An agent name that long is no host name; the bound also keeps a
	// re-encoding (which escapes <, > and & six bytes each) under
	// MaxSnapshotJSON, so what decodes once decodes again.
	if len(m.Agent) > 4096 {
		return nil, false, parts, fmt.Errorf("%w: agent name of %d bytes", ErrBadSnapshot, len(m.Agent))
	}
	if m.Seq < 0 || m.Step < 0 || m.StartNS < 0 || m.EndNS < m.StartNS || m.ConnsOpen < 0 || m.ConnsWanted < 0 || m.LoopCPU < 0 || m.LoopCap < 0 {
		return nil, false, parts, fmt.Errorf("%w: negative counters or times", ErrBadSnapshot)
	}
	s := &Stats{
		Seq: m.Seq, Step: m.Step, Start: time.Duration(m.StartNS), End: time.Duration(m.EndNS),
		Sent: m.Sent, Responses: m.Responses, Unfinished: m.Unfinished, Scheduled: m.Scheduled,
		Backlogged: m.Backlogged, Clamped: m.Clamped, BytesIn: m.BytesIn, BytesOut: m.BytesOut,
		ConnsOpen: m.ConnsOpen, ConnsWanted: m.ConnsWanted,
		LoopCPU: time.Duration(m.LoopCPU), LoopCapacity: time.Duration(m.LoopCap),
		Censored: m.Censored, ServerCloses: m.ServerClose, ClientCloses: m.ClientClose,
	}
	for k := ShedKind(0); k < NumShedKinds; k++ {
		s.Shed[k] = m.Shed[k.String()]
	}
	if err := readStatus(m.Status, &s.Status); err != nil {
		return nil, false, parts, err
	}
	for k := ErrKind(0); k < NumErrKinds; k++ {
		s.Errors[k] = m.Errors[k.String()]
	}
	if len(m.Requests) > MaxRequests {
		return nil, false, parts, fmt.Errorf("%w: %d requests, more than %d", ErrBadSnapshot, len(m.Requests), MaxRequests)
	}
	if len(m.Requests) > 0 {
		s.Requests = make([]RequestStats, len(m.Requests))
		for i, rm := range m.Requests {
			r := &s.Requests[i]
			r.Sent, r.Responses, r.Unfinished = rm.Sent, rm.Responses, rm.Unfinished
			if err := readStatus(rm.Status, &r.Status); err != nil {
				return nil, false, parts, err
			}
			for k := ErrKind(0); k < NumErrKinds; k++ {
				r.Errors[k] = rm.Errors[k.String()]
			}
		}
	}
	for r := TLSReason(0); r < NumTLSReasons; r++ {
		s.TLS[r] = m.TLS[r.String()]
	}
	if err := checkNames(m.Retries, int(NumRetryCauses), func(i int) string { return RetryCause(i).String() }); err != nil {
		return nil, false, parts, err
	}
	if err := checkNames(m.RetryDropped, int(NumRetryDrops), func(i int) string { return RetryDrop(i).String() }); err != nil {
		return nil, false, parts, err
	}
	for c := RetryCause(0); c < NumRetryCauses; c++ {
		s.Retries[c] = m.Retries[c.String()]
	}
	for d := RetryDrop(0); d < NumRetryDrops; d++ {
		s.RetryDropped[d] = m.RetryDropped[d.String()]
	}
	if err := checkBreakerEvents(m.Breaker); err != nil {
		return nil, false, parts, err
	}
	s.Requeued, s.RetriedOK, s.Exhausted, s.Breaker = m.Requeued, m.RetriedOK, m.Exhausted, m.Breaker
	n, k := binary.Uvarint(b)
	if k <= 0 || n > maxSnapshotParts {
		return nil, false, parts, fmt.Errorf("%w: bad histogram count", ErrBadSnapshot)
	}
	b = b[k:]
	seen := map[string]bool{}
	for i := uint64(0); i < n; i++ {
		tag, err := next()
		if err != nil {
			return nil, false, parts, err
		}
		if len(tag) == 0 || len(tag) > 128 || seen[string(tag)] || !s.knowsHistogram(string(tag)) {
			return nil, false, parts, fmt.Errorf("%w: histogram %q unknown or repeated", ErrBadSnapshot, tag)
		}
		seen[string(tag)] = true
		enc, err := next()
		if err != nil {
			return nil, false, parts, err
		}
		parts = append(parts, part{string(tag), enc})
	}
	if len(b) != 0 {
		return nil, false, parts, fmt.Errorf("%w: %d bytes after the histograms", ErrBadSnapshot, len(b))
	}
	sn := &Snapshot{Agent: m.Agent, Stats: s, Final: m.Final}
	if m.FirstSend != 0 {
		sn.FirstSend = time.Unix(0, m.FirstSend)
	}
	return sn, m.Open, parts, nil
}

// UnmarshalSnapshot decodes MarshalSnapshot's bytes.
func UnmarshalSnapshot(b []byte) (*Snapshot, error) {
	sn, _, parts, err := splitSnapshot(b)
	if err != nil {
		return nil, err
	}
	s := sn.Stats
	for _, pt := range parts {
		h, err := DecodeHistogram(pt.b)
		if err != nil {
			return nil, err
		}
		*s.histogramFor(pt.tag) = h
	}
	if s.Latency == nil {
		s.Latency = NewHistogram()
	}
	return sn, nil
}
