package proto

import (
	"math"
	"math/rand"
	"testing"
	"time"
)

func randomStats(rng *rand.Rand, open bool, n int) *Stats {
	s := NewStats(open)
	s.Seq, s.Step, s.Start, s.End = 3, 1, time.Second, 2*time.Second
	s.Sent, s.Responses = uint64(n), uint64(n)
	s.Status[200] = uint64(n)
	for i := 0; i < n; i++ {
		v := int64(math.Exp(rng.Float64() * 17)) // 1 µs .. ~24 s
		_ = s.Latency.RecordValue(v)
		if open {
			_ = s.Service.RecordValue(v / 2)
			_ = s.Lateness.RecordValue(v % 1000)
		} else {
			_ = s.Corrected.RecordValue(v)
		}
	}
	return s
}

// TestValueAtIndex: the inverse of the histogram's index holds for every
// index of the project's geometry.
func TestValueAtIndex(t *testing.T) {
	for idx := 0; idx < countsLen(); idx++ {
		v := valueAtIndex(idx)
		if v > HistMax {
			break
		}
		h := NewHistogram()
		if err := h.RecordValue(v); err != nil {
			t.Fatalf("index %d: value %d: %v", idx, v, err)
		}
		if c := h.Export().Counts; c[idx] != 1 {
			t.Fatalf("index %d maps to value %d, which lands elsewhere", idx, v)
		}
	}
}

// TestParsedMergeMatchesDecode: merging a parsed snapshot gives exactly
// what decoding it and merging the histograms gives.
func TestParsedMergeMatchesDecode(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	for _, open := range []bool{true, false} {
		a, b := NewStats(open), NewStats(open)
		for i := 0; i < 20; i++ {
			enc, err := MarshalSnapshot(&Snapshot{Agent: "x", Stats: randomStats(rng, open, 1+rng.Intn(3000))})
			if err != nil {
				t.Fatal(err)
			}
			sn, err := UnmarshalSnapshot(enc)
			if err != nil {
				t.Fatal(err)
			}
			a.Merge(sn.Stats)
			ps, err := ParseSnapshot(enc)
			if err != nil {
				t.Fatal(err)
			}
			if d := ps.MergeInto(b); d != 0 {
				t.Fatalf("%d dropped", d)
			}
		}
		if !a.Latency.Equals(b.Latency) || a.Sent != b.Sent {
			t.Fatalf("open %v: merged differ: %d/%d vs %d/%d", open, a.Latency.TotalCount(), a.Sent, b.Latency.TotalCount(), b.Sent)
		}
		if open && (!a.Service.Equals(b.Service) || !a.Lateness.Equals(b.Lateness)) {
			t.Fatal("service or lateness differ")
		}
		if !open && !a.Corrected.Equals(b.Corrected) {
			t.Fatal("corrected differs")
		}
	}
}

// FuzzParseSnapshot: ParseSnapshot accepts what UnmarshalSnapshot accepts
// (and no more), never panics, and merges to the same histograms.
func FuzzParseSnapshot(f *testing.F) {
	rng := rand.New(rand.NewSource(1))
	for _, open := range []bool{true, false} {
		enc, _ := MarshalSnapshot(&Snapshot{Agent: "x", Stats: randomStats(rng, open, 500)})
		f.Add(enc)
		// With retries and a circuit breaker.
		s := randomStats(rng, open, 500)
		withRetries(s)
		enc, _ = MarshalSnapshot(&Snapshot{Agent: "x", Stats: s})
		f.Add(enc)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ps, perr := ParseSnapshot(b)
		sn, uerr := UnmarshalSnapshot(b)
		if perr == nil && uerr != nil {
			t.Fatalf("parse accepts what unmarshal refuses: %v", uerr)
		}
		if perr != nil || uerr != nil {
			return
		}
		dst := NewStats(ps.Open)
		ps.MergeInto(dst)
		if dst.Latency.TotalCount() != sn.Stats.Latency.TotalCount() {
			t.Fatalf("parsed latency count %d, decoded %d", dst.Latency.TotalCount(), sn.Stats.Latency.TotalCount())
		}
	})
}

func BenchmarkParseAndMerge(b *testing.B) {
	rng := rand.New(rand.NewSource(1))
	enc, _ := MarshalSnapshot(&Snapshot{Agent: "x", Stats: randomStats(rng, true, 100)})
	dst := NewStats(true)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		ps, err := ParseSnapshot(enc)
		if err != nil {
			b.Fatal(err)
		}
		ps.MergeInto(dst)
	}
}

func BenchmarkUnmarshalAndMerge(b *testing.B) {
	rng := rand.New(rand.NewSource(1))
	enc, _ := MarshalSnapshot(&Snapshot{Agent: "x", Stats: randomStats(rng, true, 100)})
	dst := NewStats(true)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		sn, err := UnmarshalSnapshot(enc)
		if err != nil {
			b.Fatal(err)
		}
		dst.Merge(sn.Stats)
	}
}
