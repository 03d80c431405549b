package request

import (
	"testing"

	"github.com/barrage-load/barrage/proto"
)

var sinkBuf []byte

func benchAppend(b *testing.B, m *Mix) {
	r := m.NewRenderer(0, 1)
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for i := 0; i < b.N; i++ {
		buf, _ = r.Append(buf[:0], m, 1700000000000000000)
		n += len(buf)
	}
	b.SetBytes(int64(n / max(b.N, 1)))
	sinkBuf = buf
}

// BenchmarkAppendStatic is today's request: one fixed request, copied.
func BenchmarkAppendStatic(b *testing.B) {
	p, _ := proto.ParsePlan([]byte("target_url: http://127.0.0.1:8080/buy\nmethod: POST\nheaders: {Content-Type: application/json, Authorization: Bearer t1}\nbody: '{\"product\":1234,\"quantity\":2,\"user\":\"u1\"}'\n"))
	m, err := Build(p, Options{})
	if err != nil {
		b.Fatal(err)
	}
	benchAppend(b, m)
}

// BenchmarkAppendFlashSale is the templated mix: two requests picked by
// weight, a body with three variables, a bearer token from a data file.
func BenchmarkAppendFlashSale(b *testing.B) {
	m, err := Build(flashPlan(b, b.TempDir(), 1000), Options{})
	if err != nil {
		b.Fatal(err)
	}
	benchAppend(b, m)
}
