package pipeline

import (
	"math"
	"math/rand"
	"testing"
	"time"

	"github.com/barrage-load/barrage/proto"
)

// realistic is an agent's interval: n latencies log-normal around 1 ms.
func realistic(seq int, n int, rng *rand.Rand) *proto.Stats {
	s := proto.NewStats(true)
	s.Seq = seq
	s.Start, s.End = time.Duration(seq)*time.Second, time.Duration(seq+1)*time.Second
	s.Sent, s.Responses, s.Scheduled = uint64(n), uint64(n), uint64(n)
	s.Status[200] = uint64(n)
	for i := 0; i < n; i++ {
		v := int64(1000 * math.Exp(0.5*rng.NormFloat64()))
		_ = s.Latency.RecordValue(v)
		_ = s.Service.RecordValue(v * 9 / 10)
		_ = s.Lateness.RecordValue(int64(20 + rng.Intn(50)))
	}
	return s
}

// BenchmarkFoldSnapshot is the coordinator's cost per agent per interval:
// decode one encoded snapshot and fold it into its interval.
func BenchmarkFoldSnapshot(b *testing.B) {
	rng := rand.New(rand.NewSource(1))
	const agents = 100
	var enc [][]byte
	for i := 0; i < agents; i++ {
		bs, err := proto.MarshalSnapshot(&proto.Snapshot{Agent: "a", Stats: realistic(0, 100, rng)})
		if err != nil {
			b.Fatal(err)
		}
		enc = append(enc, bs)
	}
	p := &proto.Plan{TargetURL: "http://127.0.0.1:1/", Rate: 1000, Duration: proto.Duration(time.Hour)}
	p.Normalize()
	ends := make([]time.Duration, 3600)
	for i := range ends {
		ends[i] = time.Duration(i+1) * time.Second
	}
	ids := make([]string, agents)
	for i := range ids {
		ids[i] = string(rune('A'+i%26)) + string(rune('a'+i/26))
	}
	pipe := New(Options{Plan: p, Schedule: p.Schedule(), Ends: ends})
	for _, id := range ids {
		pipe.AddAgent(id, id, "")
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		sn, err := proto.ParseSnapshot(enc[i%agents])
		if err != nil {
			b.Fatal(err)
		}
		sn.Stats.Seq = (i / agents) % 3600
		sn.Stats.Start, sn.Stats.End = time.Duration(sn.Stats.Seq)*time.Second, time.Duration(sn.Stats.Seq+1)*time.Second
		pipe.AddParsed(ids[i%agents], sn)
		if i%agents == agents-1 {
			pipe.Close(ids, false)
		}
	}
}
