package proto

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"sync"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	"github.com/klauspost/compress/zlib"
)

// ParsedSnapshot is a snapshot whose counters are decoded and whose
// histograms are checked and inflated but not built: MergeInto adds them
// to another histogram straight from their count streams. This is the
// coordinator's path: a decoded histogram is a 139 KB array made for each
// snapshot and thrown away after one merge, a thousand times a second with
// a thousand agents; a merge from the stream allocates nothing.
type ParsedSnapshot struct {
	*Snapshot
	// Open is the snapshot's model (its histograms are not built, so
	// Stats.Open cannot tell).
	Open bool
	// streams are the histograms' count streams (ZigZag varints, runs of
	// zeros as negatives), nil when absent: Latency, Service, Corrected,
	// Lateness.
	streams [4][]byte
}

// histogram geometry, for mapping a count's index back to its value (the
// inverse of hdrhistogram's countsIndex for HistMin..HistMax at
// HistDigits: unit magnitude 0, half sub-bucket count 1024).
const (
	subHalfMag   = 10
	subHalfCount = 1 << subHalfMag
)

func valueAtIndex(idx int) int64 {
	bucket := (idx >> subHalfMag) - 1
	sub := (idx & (subHalfCount - 1)) + subHalfCount
	if bucket < 0 {
		sub -= subHalfCount
		bucket = 0
	}
	return int64(sub) << uint(bucket)
}

var inflaters sync.Pool // io.ReadCloser implementing zlib.Resetter

// ParseSnapshot decodes a snapshot's counters and checks its histograms
// as DecodeHistogram does (same geometry, same bounds), without building
// them.
func ParseSnapshot(b []byte) (*ParsedSnapshot, error) {
	sn, open, parts, err := splitSnapshot(b)
	if err != nil {
		return nil, err
	}
	p := &ParsedSnapshot{Snapshot: sn, Open: open}
	for i, part := range parts {
		if len(part) == 0 {
			continue
		}
		stream, err := inflateCounts(part)
		if err != nil {
			return nil, err
		}
		p.streams[i] = stream
	}
	if open != (p.streams[3] != nil) || (p.streams[0] == nil) {
		return nil, fmt.Errorf("%w: histograms do not match the model", ErrBadSnapshot)
	}
	return p, nil
}

// inflateCounts checks an encoded histogram and returns its count stream.
func inflateCounts(b []byte) ([]byte, error) {
	if len(b) < 8 || int32(binary.BigEndian.Uint32(b)) != v2CompressedCookie {
		return nil, fmt.Errorf("%w: not a V2 compressed histogram", ErrBadHistogram)
	}
	if n := binary.BigEndian.Uint32(b[4:]); int(n) != len(b)-8 {
		return nil, fmt.Errorf("%w: length %d, have %d bytes", ErrBadHistogram, n, len(b)-8)
	}
	var zr io.ReadCloser
	if r, ok := inflaters.Get().(io.ReadCloser); ok {
		if err := r.(zlib.Resetter).Reset(bytes.NewReader(b[8:]), nil); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadHistogram, err)
		}
		zr = r
	} else {
		r, err := zlib.NewReader(bytes.NewReader(b[8:]))
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadHistogram, err)
		}
		zr = r
	}
	payload, err := io.ReadAll(io.LimitReader(zr, v2HeaderLen+int64(countsLen())*10+1))
	inflaters.Put(zr)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadHistogram, err)
	}
	if len(payload) < v2HeaderLen || int32(binary.BigEndian.Uint32(payload)) != v2Cookie {
		return nil, fmt.Errorf("%w: bad V2 payload header", ErrBadHistogram)
	}
	if plen := int(binary.BigEndian.Uint32(payload[4:])); plen != len(payload)-v2HeaderLen {
		return nil, fmt.Errorf("%w: payload length %d, have %d", ErrBadHistogram, plen, len(payload)-v2HeaderLen)
	}
	sig := int64(binary.BigEndian.Uint32(payload[12:]))
	lo := int64(binary.BigEndian.Uint64(payload[16:]))
	hi := int64(binary.BigEndian.Uint64(payload[24:]))
	ratio := math.Float64frombits(binary.BigEndian.Uint64(payload[32:]))
	if lo != HistMin || hi != HistMax || sig != HistDigits || ratio != 1 {
		return nil, fmt.Errorf("%w: geometry %d..%d/%d, want %d..%d/%d", ErrBadHistogram, lo, hi, sig, HistMin, HistMax, HistDigits)
	}
	stream := payload[v2HeaderLen:]
	// Check the stream: every index within the geometry, no negative
	// count, a total that cannot overflow.
	idx, n := 0, countsLen()
	var total int64
	for p := stream; len(p) > 0; {
		v, k := binary.Varint(p)
		if k <= 0 {
			return nil, fmt.Errorf("%w: bad count varint", ErrBadHistogram)
		}
		p = p[k:]
		if v < 0 {
			if v < -int64(n) || idx-int(v) > n {
				return nil, fmt.Errorf("%w: zero run past the geometry", ErrBadHistogram)
			}
			idx -= int(v)
			continue
		}
		if idx >= n {
			return nil, fmt.Errorf("%w: %d counts for a geometry of %d", ErrBadHistogram, idx+1, n)
		}
		if v > math.MaxInt64-total {
			return nil, fmt.Errorf("%w: total count overflows", ErrBadHistogram)
		}
		total += v
		idx++
	}
	return stream, nil
}

// MergeInto adds the snapshot to dst: counters, and each histogram into
// dst's (made when missing). It returns how many recorded values dst
// could not take (none, for dst of the project's geometry), which the
// caller must show.
func (p *ParsedSnapshot) MergeInto(dst *Stats) (dropped int64) {
	src := *p.Stats
	src.Latency, src.Service, src.Corrected, src.Lateness = nil, nil, nil, nil
	dropped += dst.Merge(&src)
	for i, h := range []**hdrhistogram.Histogram{&dst.Latency, &dst.Service, &dst.Corrected, &dst.Lateness} {
		if p.streams[i] == nil {
			continue
		}
		if *h == nil {
			*h = NewHistogram()
		}
		dropped += mergeStream(*h, p.streams[i])
	}
	return dropped
}

// mergeStream records a checked count stream's values into h.
func mergeStream(h *hdrhistogram.Histogram, stream []byte) (dropped int64) {
	idx := 0
	for len(stream) > 0 {
		v, k := binary.Varint(stream)
		stream = stream[k:]
		if v < 0 {
			idx -= int(v)
			continue
		}
		if v > 0 && h.RecordValues(valueAtIndex(idx), v) != nil {
			dropped += v
		}
		idx++
	}
	return dropped
}
