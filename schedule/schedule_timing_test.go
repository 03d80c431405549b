package schedule

import (
	"testing"
	"time"

	"github.com/barrage-load/barrage/proto"
)

var sinkI64 int64

// benchAt walks the tokens of a one-segment schedule from `from` to `to`
// requests per second with the segment cursor, as a loop does.
func benchAt(b *testing.B, from, to float64) {
	s := New([]proto.Segment{{Duration: time.Hour, From: from, To: to, Connections: 1}})
	seg := 0
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		at, sg, _ := s.At(float64(i), seg)
		seg = sg
		sinkI64 += at
	}
}

// BenchmarkScheduleAt is the pacer's per-request cost: the intended time
// of the next token at a constant rate.
func BenchmarkScheduleAt(b *testing.B) { benchAt(b, 1e6, 1e6) }

// BenchmarkScheduleAtRamp is the same on a ramp (a square root per token).
func BenchmarkScheduleAtRamp(b *testing.B) { benchAt(b, 1, 1e7) }
