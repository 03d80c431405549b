package proto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	"github.com/klauspost/compress/zlib"
)

// HdrHistogram V2 cookies (the format every HdrHistogram implementation
// reads): a V2 payload, and a zlib-compressed V2 payload.
const (
	v2Cookie           int32 = 0x1c849303 | 0x10
	v2CompressedCookie int32 = 0x1c849304 | 0x10
	v2HeaderLen              = 40
)

// ErrBadHistogram occurs when encoded histogram bytes cannot be decoded.
var ErrBadHistogram = errors.New("proto: bad histogram encoding")

// EncodeHistogram appends h in the HdrHistogram V2 compressed format (zlib,
// here klauspost's faster implementation) to dst. The result decodes with
// any HdrHistogram library (base64 it first for hdrhistogram-go's Decode).
func EncodeHistogram(dst []byte, h *hdrhistogram.Histogram) ([]byte, error) {
	s := h.Export()
	var payload []byte
	payload = binary.BigEndian.AppendUint32(payload, uint32(v2Cookie))
	payload = binary.BigEndian.AppendUint32(payload, 0) // payload length, below
	payload = binary.BigEndian.AppendUint32(payload, 0) // normalizing index offset
	payload = binary.BigEndian.AppendUint32(payload, uint32(s.SignificantFigures))
	payload = binary.BigEndian.AppendUint64(payload, uint64(s.LowestTrackableValue))
	payload = binary.BigEndian.AppendUint64(payload, uint64(s.HighestTrackableValue))
	ratio := s.IntegerToDoubleConversionRatio
	if ratio == 0 {
		ratio = 1
	}
	payload = binary.BigEndian.AppendUint64(payload, math.Float64bits(ratio))
	// Counts: ZigZag LEB128; a run of n zeros is written as -n. Trailing
	// zeros are left out.
	last := len(s.Counts) - 1
	for last >= 0 && s.Counts[last] == 0 {
		last--
	}
	for i := 0; i <= last; {
		if s.Counts[i] == 0 {
			j := i
			for j <= last && s.Counts[j] == 0 {
				j++
			}
			payload = binary.AppendVarint(payload, -int64(j-i))
			i = j
			continue
		}
		payload = binary.AppendVarint(payload, s.Counts[i])
		i++
	}
	binary.BigEndian.PutUint32(payload[4:], uint32(len(payload)-v2HeaderLen))

	var z bytes.Buffer
	zw, err := zlib.NewWriterLevel(&z, zlib.BestSpeed)
	if err != nil {
		return dst, err
	}
	if _, err := zw.Write(payload); err != nil {
		return dst, err
	}
	if err := zw.Close(); err != nil {
		return dst, err
	}
	dst = binary.BigEndian.AppendUint32(dst, uint32(v2CompressedCookie))
	dst = binary.BigEndian.AppendUint32(dst, uint32(z.Len()))
	return append(dst, z.Bytes()...), nil
}

// MaxHistogramCount bounds the values one decoded histogram may hold:
// 2^53, the largest count a float64 holds exactly (percentile queries
// compute ranks in float64). That is 1e8 requests a second for 2.8 years,
// so no honest interval comes near it, and a crafted one cannot make the
// total overflow into a negative count.
const MaxHistogramCount = 1 << 53

// maxPayload is the largest V2 payload a histogram of our geometry can
// have: the header and one varint of at most 10 bytes per count. Hostile
// bytes that inflate to more are refused after reading this much, so a
// few kilobytes of zlib can never make the decoder allocate megabytes.
func maxPayload() int { return v2HeaderLen + countsLen()*binary.MaxVarintLen64 }

func badHist(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrBadHistogram, fmt.Sprintf(format, a...))
}

// inflateHistogram checks an encoded histogram's framing and header and
// returns its count stream (ZigZag varints) and conversion ratio.
func inflateHistogram(b []byte) ([]byte, float64, error) {
	if len(b) < 8 || int32(binary.BigEndian.Uint32(b)) != v2CompressedCookie {
		return nil, 0, badHist("not a V2 compressed histogram")
	}
	if n := binary.BigEndian.Uint32(b[4:]); uint64(n) != uint64(len(b)-8) {
		return nil, 0, badHist("length %d, have %d bytes", n, len(b)-8)
	}
	// A bytes.Reader is an io.ByteReader: the inflater reads no further
	// than the zlib stream's end, so what is left over is trailing bytes.
	br := bytes.NewReader(b[8:])
	zr, err := newInflater(br)
	if err != nil {
		return nil, 0, badHist("%v", err)
	}
	defer inflaters.Put(zr)
	var hdr [v2HeaderLen]byte
	if _, err := io.ReadFull(zr, hdr[:]); err != nil {
		return nil, 0, badHist("V2 payload header: %v", err)
	}
	if int32(binary.BigEndian.Uint32(hdr[:])) != v2Cookie {
		return nil, 0, badHist("bad V2 payload cookie")
	}
	// Size the buffer from the declared length only once it is known to be
	// one our geometry can need.
	plen := binary.BigEndian.Uint32(hdr[4:])
	if uint64(plen) > uint64(maxPayload()-v2HeaderLen) {
		return nil, 0, badHist("payload length %d, more than %d counts can need", plen, countsLen())
	}
	if off := binary.BigEndian.Uint32(hdr[8:]); off != 0 {
		return nil, 0, badHist("normalizing index offset %d (not supported)", off)
	}
	sig := int64(binary.BigEndian.Uint32(hdr[12:]))
	lo := int64(binary.BigEndian.Uint64(hdr[16:]))
	hi := int64(binary.BigEndian.Uint64(hdr[24:]))
	if lo != HistMin || hi != HistMax || sig != HistDigits {
		return nil, 0, badHist("geometry %d..%d/%d, want %d..%d/%d", lo, hi, sig, HistMin, HistMax, HistDigits)
	}
	ratio := math.Float64frombits(binary.BigEndian.Uint64(hdr[32:]))
	if !(ratio > 0) || math.IsInf(ratio, 1) {
		return nil, 0, badHist("conversion ratio %g", ratio)
	}
	payload := make([]byte, plen)
	if _, err := io.ReadFull(zr, payload); err != nil {
		return nil, 0, badHist("payload shorter than its length %d: %v", plen, err)
	}
	// The stream must end here: this read also checks the zlib checksum.
	var one [1]byte
	if n, err := zr.Read(one[:]); n != 0 || err != io.EOF {
		if n != 0 {
			return nil, 0, badHist("payload longer than its length %d", plen)
		}
		return nil, 0, badHist("%v", err)
	}
	if br.Len() != 0 {
		return nil, 0, badHist("%d bytes after the compressed payload", br.Len())
	}
	return payload, ratio, nil
}

// inflaters recycles zlib readers (each holds ~40 KB of state): the
// coordinator inflates three histograms per snapshot.
var inflaters sync.Pool

func newInflater(r io.Reader) (io.ReadCloser, error) {
	if zr, ok := inflaters.Get().(io.ReadCloser); ok {
		if err := zr.(zlib.Resetter).Reset(r, nil); err != nil {
			return nil, err
		}
		return zr, nil
	}
	return zlib.NewReader(r)
}

// DecodeHistogram reads a histogram written by EncodeHistogram (or any
// HdrHistogram V2 compressed encoding of the project's geometry: HistMin,
// HistMax, HistDigits, no normalizing offset).
//
// The bytes may be hostile (anyone who can write a znode can hand them to
// the coordinator), so every length is checked before it is used: it never
// panics, allocates at most about 0.5 MB whatever it is given, and accepts
// only what EncodeHistogram can write back to an equal histogram.
func DecodeHistogram(b []byte) (*hdrhistogram.Histogram, error) {
	payload, ratio, err := inflateHistogram(b)
	if err != nil {
		return nil, err
	}
	counts := make([]int64, countsLen())
	i := 0
	var total int64
	for p := payload; len(p) > 0; {
		v, k := binary.Varint(p)
		if k <= 0 {
			return nil, badHist("bad count varint")
		}
		p = p[k:]
		if v < 0 {
			// A run of -v zero counts. Compare before negating:
			// -math.MinInt64 overflows back to itself.
			if v < -int64(len(counts)-i) {
				return nil, badHist("zero run of %d past the geometry's %d counts", uint64(-(v+1))+1, len(counts))
			}
			i += int(-v)
			continue
		}
		if i >= len(counts) {
			return nil, badHist("more counts than the geometry's %d", len(counts))
		}
		if v > MaxHistogramCount-total {
			return nil, badHist("more than %d values", int64(MaxHistogramCount))
		}
		counts[i] = v
		total += v
		i++
	}
	return hdrhistogram.Import(&hdrhistogram.Snapshot{
		LowestTrackableValue: HistMin, HighestTrackableValue: HistMax, SignificantFigures: HistDigits,
		Counts: counts, IntegerToDoubleConversionRatio: ratio,
	}), nil
}

var countsLenCache = len(NewHistogram().Export().Counts)

func countsLen() int { return countsLenCache }
