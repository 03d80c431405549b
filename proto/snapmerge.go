package proto

import (
	"encoding/binary"
	"fmt"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
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
	// zeros as negatives), by tag.
	streams []part
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

// ParseSnapshot decodes a snapshot's counters and checks its histograms
// as DecodeHistogram does (same geometry, same bounds), without building
// them.
func ParseSnapshot(b []byte) (*ParsedSnapshot, error) {
	sn, open, parts, err := splitSnapshot(b)
	if err != nil {
		return nil, err
	}
	p := &ParsedSnapshot{Snapshot: sn, Open: open}
	var hasLatency, hasLateness bool
	for _, pt := range parts {
		stream, err := inflateCounts(pt.b)
		if err != nil {
			return nil, err
		}
		p.streams = append(p.streams, part{pt.tag, stream})
		hasLatency = hasLatency || pt.tag == "latency"
		hasLateness = hasLateness || pt.tag == "lateness"
	}
	if open != hasLateness || !hasLatency {
		return nil, fmt.Errorf("%w: histograms do not match the model", ErrBadSnapshot)
	}
	return p, nil
}

// inflateCounts checks an encoded histogram as DecodeHistogram does and
// returns its count stream.
func inflateCounts(b []byte) ([]byte, error) {
	stream, ratio, err := inflateHistogram(b)
	if err != nil {
		return nil, err
	}
	if ratio != 1 {
		return nil, badHist("conversion ratio %g (barrage writes 1)", ratio)
	}
	// Check the stream: every index within the geometry, no negative
	// count, a total within MaxHistogramCount.
	idx, n := 0, countsLen()
	var total int64
	for p := stream; len(p) > 0; {
		v, k := binary.Varint(p)
		if k <= 0 {
			return nil, badHist("bad count varint")
		}
		p = p[k:]
		if v < 0 {
			if v < -int64(n-idx) {
				return nil, badHist("zero run past the geometry's %d counts", n)
			}
			idx += int(-v)
			continue
		}
		if idx >= n {
			return nil, badHist("more counts than the geometry's %d", n)
		}
		if v > MaxHistogramCount-total {
			return nil, badHist("more than %d values", int64(MaxHistogramCount))
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
	dropped += dst.Merge(p.Stats) // its histograms are nil: counters only
	for _, st := range p.streams {
		h := dst.histogramFor(st.tag)
		if *h == nil {
			*h = NewHistogram()
		}
		dropped += mergeStream(*h, st.b)
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
