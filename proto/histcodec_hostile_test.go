package proto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"runtime"
	"testing"

	"github.com/klauspost/compress/zlib"
)

// v2Payload builds an uncompressed V2 payload with the project's geometry
// (changed by edit, when given) and the given raw count varints.
func v2Payload(edit func(hdr []byte), counts ...int64) []byte {
	var p []byte
	p = binary.BigEndian.AppendUint32(p, uint32(v2Cookie))
	p = binary.BigEndian.AppendUint32(p, 0)
	p = binary.BigEndian.AppendUint32(p, 0)
	p = binary.BigEndian.AppendUint32(p, HistDigits)
	p = binary.BigEndian.AppendUint64(p, HistMin)
	p = binary.BigEndian.AppendUint64(p, uint64(HistMax))
	p = binary.BigEndian.AppendUint64(p, math.Float64bits(1))
	for _, c := range counts {
		p = binary.AppendVarint(p, c)
	}
	binary.BigEndian.PutUint32(p[4:], uint32(len(p)-v2HeaderLen))
	if edit != nil {
		edit(p[:v2HeaderLen])
	}
	return p
}

// v2Wrap compresses a payload and frames it as DecodeHistogram expects.
func v2Wrap(payload []byte) []byte {
	var z bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&z, zlib.BestCompression)
	_, _ = zw.Write(payload)
	_ = zw.Close()
	var b []byte
	b = binary.BigEndian.AppendUint32(b, uint32(v2CompressedCookie))
	b = binary.BigEndian.AppendUint32(b, uint32(z.Len()))
	return append(b, z.Bytes()...)
}

// decodeNoPanic decodes b and turns a panic into a test failure, so one
// hostile case does not hide the others.
func decodeNoPanic(t *testing.T, name string, b []byte) (err error) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("%s: DecodeHistogram panicked: %v", name, r)
			err = errors.New("panicked")
		}
	}()
	_, err = DecodeHistogram(b)
	return err
}

// TestDecodeHistogramHostile feeds DecodeHistogram byte strings an agent (or
// anyone who can write a znode) could craft. Each must be rejected with
// ErrBadHistogram: no panic, no allocation out of proportion to the input.
func TestDecodeHistogramHostile(t *testing.T) {
	n := int64(countsLen())
	for _, tc := range []struct {
		name    string
		payload []byte
	}{
		// -MinInt64 == MinInt64: the zero run's length stayed negative,
		// passed the bounds checks and reached make() ("makeslice: len out
		// of range"): one znode killed the coordinator.
		{"zero run of MinInt64", v2Payload(nil, math.MinInt64)},
		{"zero run of MinInt64 after counts", v2Payload(nil, 5, 7, math.MinInt64)},
		{"zero run past the geometry", v2Payload(nil, -(n + 1))},
		{"zero runs adding up past the geometry", v2Payload(nil, -(n - 1), -2)},
		{"counts past the geometry", v2Payload(nil, -(n - 1), 1, 1)},
		// Counts whose sum overflows int64 made TotalCount negative.
		{"total count overflows", v2Payload(nil, math.MaxInt64, math.MaxInt64)},
		{"total count beyond exact float64", v2Payload(nil, MaxHistogramCount, 1)},
		{"normalizing index offset", v2Payload(func(h []byte) { binary.BigEndian.PutUint32(h[8:], 3) }, 1)},
		{"NaN conversion ratio", v2Payload(func(h []byte) { binary.BigEndian.PutUint64(h[32:], math.Float64bits(math.NaN())) }, 1)},
		{"negative conversion ratio", v2Payload(func(h []byte) { binary.BigEndian.PutUint64(h[32:], math.Float64bits(-1)) }, 1)},
		{"other geometry", v2Payload(func(h []byte) { binary.BigEndian.PutUint32(h[12:], 2) }, 1)},
		{"payload length lies", v2Payload(func(h []byte) { binary.BigEndian.PutUint32(h[4:], 0xffffffff) }, 1)},
		{"truncated varint", append(v2Payload(nil, 1), 0x80)},
	} {
		p := tc.payload
		if tc.name == "truncated varint" {
			binary.BigEndian.PutUint32(p[4:], uint32(len(p)-v2HeaderLen))
		}
		err := decodeNoPanic(t, tc.name, v2Wrap(p))
		if err == nil || !errors.Is(err, ErrBadHistogram) {
			t.Errorf("%s: error %v, want ErrBadHistogram", tc.name, err)
		}
	}

	// Bytes after the zlib stream: accepting them would make two different
	// byte strings the same histogram and hide a framing bug.
	good, _ := EncodeHistogram(nil, sampleHist(100, 3))
	trailing := append(append([]byte(nil), good...), 0, 0, 0)
	binary.BigEndian.PutUint32(trailing[4:], uint32(len(trailing)-8))
	if err := decodeNoPanic(t, "trailing bytes", trailing); !errors.Is(err, ErrBadHistogram) {
		t.Errorf("trailing bytes after the zlib stream: error %v, want ErrBadHistogram", err)
	}
}

// TestDecodeHistogramBombIsCheap decodes a small input that inflates to a
// large payload: the decoder must stop reading once the payload cannot be
// a histogram of our geometry, not allocate the whole inflated size.
func TestDecodeHistogramBombIsCheap(t *testing.T) {
	// 8 M one-byte varints (count 0): 8 MB of payload, ~8 KB compressed.
	p := v2Payload(nil)
	p = append(p, make([]byte, 8<<20)...)
	binary.BigEndian.PutUint32(p[4:], uint32(len(p)-v2HeaderLen))
	bomb := v2Wrap(p)
	if len(bomb) > 64<<10 {
		t.Fatalf("bomb is %d bytes, want a small input", len(bomb))
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	err := decodeNoPanic(t, "bomb", bomb)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrBadHistogram) {
		t.Fatalf("bomb: error %v, want ErrBadHistogram", err)
	}
	// A real decode needs the payload (≤ 10 bytes per count) and the
	// counts (8 bytes each, twice: ours and the histogram's): ~0.5 MB.
	// The old decoder read up to 40 MB and appended 8 M counts.
	if got := after.TotalAlloc - before.TotalAlloc; got > 2<<20 {
		t.Fatalf("decoding a %d-byte bomb allocated %d bytes, want < 2 MB", len(bomb), got)
	}
}
