package dashboard

import (
	"io"
	"net/http/httptest"
	"testing"

	"github.com/barrage-load/barrage/metrics"
	"github.com/barrage-load/barrage/proto"
	"github.com/barrage-load/barrage/report"
)

// benchInterval is an open-model interval of 20000 responses spread
// from 20 µs to 200 ms: the histograms a busy run hands over each second.
func benchInterval(seq int) *proto.Stats {
	s := interval(true, seq, 0)
	s.Responses, s.Sent, s.Scheduled = 20000, 20000, 20000
	s.Status[200] = 20000
	for i := 0; i < 20000; i++ {
		v := int64(20 + (i*i)%200000)
		_ = s.Latency.RecordValue(v)
		_ = s.Service.RecordValue(v / 2)
		_ = s.Lateness.RecordValue(int64(i % 50))
	}
	return s
}

// BenchmarkRecorderInterval: what the dashboard costs the pipeline's
// goroutine per merged interval (once a second): the sample's
// percentiles, the merge into its totals, the spectrum.
func BenchmarkRecorderInterval(b *testing.B) {
	p, err := proto.ParsePlan([]byte("target_url: http://127.0.0.1:1/\nconnections: 8\nrate: 1000\nduration: 10s\n"))
	if err != nil {
		b.Fatal(err)
	}
	p.Normalize()
	rec := NewRecorder(p, false)
	iv := benchInterval(0)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		iv.Seq = i
		rec.Interval(iv, 1, 1)
	}
}

// BenchmarkScrape: one /metrics scrape (Prometheus asks every 15-60 s).
func BenchmarkScrape(b *testing.B) {
	p, _ := proto.ParsePlan([]byte("target_url: http://127.0.0.1:1/\nconnections: 8\nrate: 1000\nduration: 10s\n"))
	p.Normalize()
	rec := NewRecorder(p, false)
	for i := 0; i < 10; i++ {
		rec.Interval(benchInterval(i), 1, 1)
	}
	h := metrics.Handler(rec)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
		_, _ = io.Copy(io.Discard, w.Body)
	}
}

var sinkTick Tick

// BenchmarkTick: what one page's stream costs per interval (a tick).
func BenchmarkTick(b *testing.B) {
	p, _ := proto.ParsePlan([]byte("target_url: http://127.0.0.1:1/\nconnections: 8\nrate: 1000\nduration: 10s\n"))
	p.Normalize()
	rec := NewRecorder(p, false)
	rec.Interval(benchInterval(0), 1, 1)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t, _, _, _ := rec.Since(Cursor{Samples: 0, Events: 0}, false)
		sinkTick = t
	}
	_ = report.Sample{}
}
