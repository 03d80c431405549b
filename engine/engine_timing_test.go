package engine

import (
	"testing"

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
