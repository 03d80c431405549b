package proto

import (
	"encoding/base64"
	"math/rand/v2"
	"testing"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

func sampleHist(n int, seed uint64) *hdrhistogram.Histogram {
	h := NewHistogram()
	r := rand.New(rand.NewPCG(seed, 1))
	for i := 0; i < n; i++ {
		// Log-normal around 1 ms with a long tail.
		v := int64(1000 * r.ExpFloat64() * r.ExpFloat64())
		_ = h.RecordValue(min(v, HistMax))
	}
	return h
}

func TestHistogramRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 1000, 200000} {
		h := sampleHist(n, uint64(n))
		b, err := EncodeHistogram(nil, h)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeHistogram(b)
		if err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		if !got.Equals(h) {
			t.Fatalf("n=%d: decoded histogram differs: count %d vs %d, p99 %d vs %d", n,
				got.TotalCount(), h.TotalCount(), got.ValueAtQuantile(99), h.ValueAtQuantile(99))
		}
		// The bytes are standard V2: hdrhistogram-go's own decoder reads them.
		lib, err := hdrhistogram.Decode([]byte(base64.StdEncoding.EncodeToString(b)))
		if err != nil {
			t.Fatalf("n=%d: hdrhistogram.Decode: %v", n, err)
		}
		if lib.TotalCount() != h.TotalCount() || lib.ValueAtQuantile(99.9) != h.ValueAtQuantile(99.9) {
			t.Fatalf("n=%d: library decode differs", n)
		}
		t.Logf("n=%d: %d bytes", n, len(b))
	}
}

func TestMergeIsExact(t *testing.T) {
	// The same values recorded in one histogram, and split over three that
	// are encoded, decoded and merged, give identical percentiles.
	whole := NewHistogram()
	parts := []*hdrhistogram.Histogram{NewHistogram(), NewHistogram(), NewHistogram()}
	r := rand.New(rand.NewPCG(7, 7))
	for i := 0; i < 300000; i++ {
		v := int64(50 + r.IntN(2_000_000))
		_ = whole.RecordValue(v)
		_ = parts[i%3].RecordValue(v)
	}
	merged := NewHistogram()
	for _, p := range parts {
		b, err := EncodeHistogram(nil, p)
		if err != nil {
			t.Fatal(err)
		}
		d, err := DecodeHistogram(b)
		if err != nil {
			t.Fatal(err)
		}
		if dropped := merged.Merge(d); dropped != 0 {
			t.Fatalf("merge dropped %d", dropped)
		}
	}
	for _, q := range []float64{50, 90, 99, 99.9, 99.99, 100} {
		if a, b := whole.ValueAtQuantile(q), merged.ValueAtQuantile(q); a != b {
			t.Fatalf("p%g: whole %d, merged %d", q, a, b)
		}
	}
	if !whole.Equals(merged) {
		t.Fatal("merged histogram differs from the whole")
	}
}

func TestDecodeRejectsGarbage(t *testing.T) {
	h := sampleHist(100, 1)
	b, _ := EncodeHistogram(nil, h)
	for _, bad := range [][]byte{nil, {1, 2, 3}, b[:len(b)-3], append(append([]byte(nil), b[:8]...), make([]byte, len(b)-8)...)} {
		if _, err := DecodeHistogram(bad); err == nil {
			t.Errorf("decoded %d bytes of garbage", len(bad))
		}
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	s := NewStats(true)
	s.Seq, s.Step, s.Sent, s.Responses = 3, 1, 1000, 990
	s.Status[200] = 980
	s.Status[503] = 10
	s.Errors[ErrTimeout] = 4
	s.Unfinished = 6
	s.ConnsOpen, s.ConnsWanted = 63, 64
	s.LoopCPU, s.LoopCapacity = 900*time.Millisecond, time.Second
	for i := int64(1); i < 1000; i++ {
		_ = s.Latency.RecordValue(i)
		_ = s.Lateness.RecordValue(i % 7)
	}
	b, err := MarshalSnapshot(&Snapshot{Agent: "a1", Stats: s, Final: true})
	if err != nil {
		t.Fatal(err)
	}
	got, err := UnmarshalSnapshot(b)
	if err != nil {
		t.Fatal(err)
	}
	g := got.Stats
	if got.Agent != "a1" || !got.Final || g.Seq != 3 || g.Step != 1 || g.Sent != 1000 || g.Responses != 990 ||
		g.Status[200] != 980 || g.Status[503] != 10 || g.Errors[ErrTimeout] != 4 || g.Unfinished != 6 ||
		g.ConnsOpen != 63 || g.LoopCPU != 900*time.Millisecond || g.LoopCapacity != time.Second || !g.Latency.Equals(s.Latency) || !g.Lateness.Equals(s.Lateness) || g.Corrected != nil {
		t.Fatalf("round trip lost something: %+v", got)
	}
	t.Logf("snapshot: %d bytes", len(b))
	if _, err := UnmarshalSnapshot(b[:len(b)-1]); err == nil {
		t.Fatal("truncated snapshot decoded")
	}
}
