package engine

import (
	"testing"
	"time"

	"github.com/barrage-load/barrage/proto"
)

var sinkI64 int64

// BenchmarkRecord is what a response costs in histograms: the open model
// records latency and service time.
func BenchmarkRecord(b *testing.B) {
	st := proto.NewStats(true)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		v := int64(50 + i&1023)
		_ = st.Latency.RecordValue(v)
		_ = st.Service.RecordValue(v)
	}
	sinkI64 += st.Latency.TotalCount()
}

// benchPump is the open model's per-request path without sockets: a
// response completes the oldest request of one of 64 connections, and the
// pump 1µs later (1e6/s) sends the one token due on it.
func benchPump(b *testing.B, rate float64, step int64) {
	l := fakeLoop(b, Options{Schedule: constantRate(rate, time.Hour)}, 1, 0, 64)
	now := int64(0)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		now += step
		c := l.conns[i&63]
		for c.n > 0 {
			l.complete(c, now)
		}
		l.enqueue(c)
		l.pump(now)
		l.flush()
	}
	sinkI64 += int64(l.st.Sent)
}

// BenchmarkPump: one token per pump, the usual case.
func BenchmarkPump(b *testing.B) { benchPump(b, 1e6, 1000) }

// BenchmarkPumpBacklog: far more due than connections free (1e9/s, one
// free connection per pump): the catch-up must not cost per token due.
func BenchmarkPumpBacklog(b *testing.B) { benchPump(b, 1e9, 1000) }

// BenchmarkFill is the closed model's per-request path without sockets:
// a response completes, the connection is refilled.
func BenchmarkFill(b *testing.B) {
	benchFill(b, Options{Schedule: []proto.Segment{{Duration: time.Hour, Connections: 64}}})
}

// benchFill completes and refills the 64 connections of a loop made with
// o, one per iteration.
func benchFill(b *testing.B, o Options) {
	l := fakeLoop(b, o, 1, 0, 64)
	now := int64(0)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		now += 1000
		c := l.conns[i&63]
		for c.n > 0 {
			l.complete(c, now)
		}
		l.fill(c, now)
		l.flush()
	}
	sinkI64 += int64(l.st.Sent)
}
