package proto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"

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

// maxCounts bounds a decoded histogram's counts so hostile bytes cannot
// make us allocate without limit (our own geometry needs ~17 k).
const maxCounts = 1 << 22

// DecodeHistogram reads a histogram written by EncodeHistogram (or any
// HdrHistogram V2 compressed encoding).
func DecodeHistogram(b []byte) (*hdrhistogram.Histogram, error) {
	if len(b) < 8 || int32(binary.BigEndian.Uint32(b)) != v2CompressedCookie {
		return nil, fmt.Errorf("%w: not a V2 compressed histogram", ErrBadHistogram)
	}
	n := binary.BigEndian.Uint32(b[4:])
	if int(n) != len(b)-8 {
		return nil, fmt.Errorf("%w: length %d, have %d bytes", ErrBadHistogram, n, len(b)-8)
	}
	zr, err := zlib.NewReader(bytes.NewReader(b[8:]))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadHistogram, err)
	}
	payload, err := io.ReadAll(io.LimitReader(zr, v2HeaderLen+maxCounts*10))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadHistogram, err)
	}
	if len(payload) < v2HeaderLen || int32(binary.BigEndian.Uint32(payload)) != v2Cookie {
		return nil, fmt.Errorf("%w: bad V2 payload header", ErrBadHistogram)
	}
	plen := int(binary.BigEndian.Uint32(payload[4:]))
	if plen != len(payload)-v2HeaderLen {
		return nil, fmt.Errorf("%w: payload length %d, have %d", ErrBadHistogram, plen, len(payload)-v2HeaderLen)
	}
	sig := int64(binary.BigEndian.Uint32(payload[12:]))
	lo := int64(binary.BigEndian.Uint64(payload[16:]))
	hi := int64(binary.BigEndian.Uint64(payload[24:]))
	ratio := math.Float64frombits(binary.BigEndian.Uint64(payload[32:]))
	if lo != HistMin || hi != HistMax || sig != HistDigits {
		return nil, fmt.Errorf("%w: geometry %d..%d/%d, want %d..%d/%d", ErrBadHistogram, lo, hi, sig, HistMin, HistMax, HistDigits)
	}
	counts := make([]int64, 0, 1<<12)
	for p := payload[v2HeaderLen:]; len(p) > 0; {
		v, k := binary.Varint(p)
		if k <= 0 {
			return nil, fmt.Errorf("%w: bad count varint", ErrBadHistogram)
		}
		p = p[k:]
		if v < 0 {
			if -v > maxCounts || len(counts)+int(-v) > maxCounts {
				return nil, fmt.Errorf("%w: zero run too long", ErrBadHistogram)
			}
			counts = append(counts, make([]int64, -v)...)
			continue
		}
		if len(counts) >= maxCounts {
			return nil, fmt.Errorf("%w: too many counts", ErrBadHistogram)
		}
		counts = append(counts, v)
	}
	if len(counts) > countsLen() {
		return nil, fmt.Errorf("%w: %d counts for a geometry of %d", ErrBadHistogram, len(counts), countsLen())
	}
	return hdrhistogram.Import(&hdrhistogram.Snapshot{
		LowestTrackableValue: lo, HighestTrackableValue: hi, SignificantFigures: sig,
		Counts: counts, IntegerToDoubleConversionRatio: ratio,
	}), nil
}

var countsLenCache = len(NewHistogram().Export().Counts)

func countsLen() int { return countsLenCache }
