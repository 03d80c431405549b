package pipeline

import (
	"testing"
	"time"

	"github.com/barrage-load/barrage/proto"
)

func plan(t *testing.T) (*proto.Plan, Options) {
	t.Helper()
	p := &proto.Plan{TargetURL: "http://127.0.0.1:1/", Rate: 300, Duration: proto.Duration(4 * time.Second)}
	p.Normalize()
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	ends := []time.Duration{time.Second, 2 * time.Second, 3 * time.Second, 4 * time.Second}
	return p, Options{Plan: p, Schedule: p.Schedule(), Ends: ends, Window: 2}
}

// snap is agent a's interval seq: n requests answered in lat µs.
func snap(seq int, n uint64, lat int64) *proto.Stats {
	s := proto.NewStats(true)
	s.Seq = seq
	s.Start, s.End = time.Duration(seq)*time.Second, time.Duration(seq+1)*time.Second
	s.Sent, s.Responses, s.Scheduled = n, n, n
	s.Status[200] = n
	for i := uint64(0); i < n; i++ {
		_ = s.Latency.RecordValue(lat)
		_ = s.Service.RecordValue(lat)
		_ = s.Lateness.RecordValue(1)
	}
	return s
}

func TestFoldInOrderAndLate(t *testing.T) {
	_, o := plan(t)
	p := New(o)
	for _, id := range []string{"a", "b"} {
		p.AddAgent(id, id, "h")
	}
	var got []int
	p.OnInterval(func(iv *proto.Stats, agents, of int) {
		got = append(got, int(iv.Responses))
		if iv.Latency.TotalCount() != int64(iv.Responses) {
			t.Errorf("interval %d: %d latencies for %d responses", iv.Seq, iv.Latency.TotalCount(), iv.Responses)
		}
	})
	alive := []string{"a", "b"}
	// a reports 0 and 1; b only 1: nothing closes (0 waits for b).
	for _, c := range []struct {
		agent string
		seq   int
		want  Outcome
	}{{"a", 0, Folded}, {"a", 1, Folded}, {"b", 1, Folded}, {"b", 1, Duplicate}, {"x", 0, Unknown}} {
		if o := p.Add(c.agent, snap(c.seq, 100, 50)); o != c.want {
			t.Fatalf("%s/%d: outcome %d, want %d", c.agent, c.seq, o, c.want)
		}
	}
	if n := p.Close(alive, false); n != 0 {
		t.Fatalf("closed %d with b's interval 0 missing", n)
	}
	// a runs ahead by the window: interval 0 closes without b.
	p.Add("a", snap(2, 100, 50))
	if n := p.Close(alive, false); n != 2 || got[0] != 100 || got[1] != 200 {
		t.Fatalf("window: closed %d, points %v", n, got)
	}
	// b's interval 0 arrives late: in the totals, not the timeline.
	if o := p.Add("b", snap(0, 100, 50)); o != Late {
		t.Fatalf("late snapshot: outcome %d", o)
	}
	p.Add("b", snap(2, 100, 50))
	p.Close(alive, false)
	p.Add("a", snap(3, 100, 50))
	p.Add("b", snap(3, 100, 50))
	p.Close(alive, true)
	if len(got) != 4 || got[1] != 200 || got[3] != 200 {
		t.Fatalf("points %v", got)
	}
	if tot := p.Total(); tot.Responses != 800 || tot.Latency.TotalCount() != 800 {
		t.Fatalf("total %d responses, %d latencies", tot.Responses, tot.Latency.TotalCount())
	}
	for _, a := range p.Agents() {
		if a.Responses != 400 || a.Received.Len() != 4 {
			t.Fatalf("agent %s: %d responses, %d intervals", a.ID, a.Responses, a.Received.Len())
		}
	}
	rep := p.Report(4 * time.Second)
	if rep.Requests != 800 {
		t.Fatalf("report: %d requests", rep.Requests)
	}
}

// TestCheckpointRestore: a pipeline restored from a checkpoint and the
// merged intervals it covers, then fed the snapshots it did not cover,
// ends exactly where the original does.
func TestCheckpointRestore(t *testing.T) {
	_, o := plan(t)
	orig := New(o)
	var merged []*proto.Stats
	orig.OnInterval(func(iv *proto.Stats, _, _ int) { merged = append(merged, iv.Clone()) })
	alive := []string{"a", "b"}
	for _, id := range alive {
		orig.AddAgent(id, id, "h")
	}
	feed := func(p *Pipeline, seqs ...int) {
		for _, seq := range seqs {
			for i, id := range alive {
				p.Add(id, snap(seq, uint64(100+10*i+seq), int64(40+seq)))
			}
		}
	}
	feed(orig, 0, 1)
	orig.Close(alive, false)
	orig.Add("a", snap(2, 7, 70)) // pending: not covered
	st, err := orig.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	if st.Next != 2 {
		t.Fatalf("checkpoint next %d", st.Next)
	}
	restored, err := Restore(o, st, merged[:st.Next])
	if err != nil {
		t.Fatal(err)
	}
	restored.Add("a", snap(2, 7, 70))
	for _, p := range []*Pipeline{orig, restored} {
		p.Add("b", snap(2, 9, 90))
		feed(p, 3)
		p.Close(alive, true)
	}
	a, b := orig.Total(), restored.Total()
	if a.Responses != b.Responses || a.Latency.TotalCount() != b.Latency.TotalCount() ||
		a.Latency.ValueAtQuantile(99) != b.Latency.ValueAtQuantile(99) {
		t.Fatalf("restored total %d/%d/%d, original %d/%d/%d", b.Responses, b.Latency.TotalCount(), b.Latency.ValueAtQuantile(99),
			a.Responses, a.Latency.TotalCount(), a.Latency.ValueAtQuantile(99))
	}
	for _, id := range alive {
		x, y := orig.Agent(id), restored.Agent(id)
		if x.Responses != y.Responses || x.Received.Len() != y.Received.Len() {
			t.Fatalf("agent %s: restored %+v, original %+v", id, y.Counters, x.Counters)
		}
	}
}

func TestRanges(t *testing.T) {
	var r Ranges
	for _, s := range []int{5, 3, 4, 9, 0, 1, 2, 7, 8, 6} {
		if !r.Add(s) {
			t.Fatalf("%d refused", s)
		}
	}
	if len(r) != 1 || r.Len() != 10 || r.Add(4) || !r.Has(9) || r.Has(10) {
		t.Fatalf("ranges %v", r)
	}
}

// TestAddParsedMatchesAdd: the coordinator's path (parsed snapshots merged
// from their count streams) gives the same totals as decoded snapshots,
// late ones included.
func TestAddParsedMatchesAdd(t *testing.T) {
	_, o := plan(t)
	a, b := New(o), New(o)
	for _, p := range []*Pipeline{a, b} {
		p.AddAgent("x", "x", "h")
		p.AddAgent("y", "y", "h")
	}
	feed := []struct {
		agent string
		seq   int
	}{{"x", 0}, {"x", 1}, {"x", 2}, {"x", 3}, {"y", 3}, {"y", 0}, {"y", 1}, {"y", 2}}
	for i, f := range feed {
		s := snap(f.seq, uint64(10+i), int64(100*(i+1)))
		enc, err := proto.MarshalSnapshot(&proto.Snapshot{Agent: f.agent, Stats: s})
		if err != nil {
			t.Fatal(err)
		}
		ps, err := proto.ParseSnapshot(enc)
		if err != nil {
			t.Fatal(err)
		}
		if oa, ob := a.Add(f.agent, s), b.AddParsed(f.agent, ps); oa != ob {
			t.Fatalf("%v: outcome %d vs %d", f, oa, ob)
		}
		a.Close([]string{"x", "y"}, false)
		b.Close([]string{"x", "y"}, false)
	}
	a.Close([]string{"x", "y"}, true)
	b.Close([]string{"x", "y"}, true)
	ta, tb := a.Total(), b.Total()
	if !ta.Latency.Equals(tb.Latency) || !ta.Service.Equals(tb.Service) || ta.Responses != tb.Responses {
		t.Fatalf("totals differ: %d/%d vs %d/%d", ta.Responses, ta.Latency.TotalCount(), tb.Responses, tb.Latency.TotalCount())
	}
}
