package pipeline

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/barrage-load/barrage/proto"
)

// mixSnap is an agent's interval of a named mix of two requests: n0 and
// n1 answered in lat0 and lat1 µs, request 1 with one 503 and one timeout.
func mixSnap(seq int, n0, n1 uint64, lat0, lat1 int64) *proto.Stats {
	s := snap(seq, n0+n1, lat0)
	s.Latency.Reset()
	s.SetRequests(2)
	r0, r1 := &s.Requests[0], &s.Requests[1]
	r0.Sent, r0.Responses, r0.Status[200] = n0, n0, n0
	r1.Sent, r1.Responses, r1.Status[200], r1.Status[503] = n1+1, n1, n1-1, 1
	r1.Errors[proto.ErrTimeout] = 1
	s.Sent++
	s.Errors[proto.ErrTimeout]++
	s.Status[200]--
	s.Status[503]++
	for i := uint64(0); i < n0; i++ {
		_ = r0.Latency.RecordValue(lat0)
		_ = s.Latency.RecordValue(lat0)
	}
	for i := uint64(0); i < n1; i++ {
		_ = r1.Latency.RecordValue(lat1)
		_ = s.Latency.RecordValue(lat1)
	}
	return s
}

// Two agents' snapshots of a named mix, one through the coordinator's
// path (parsed, merged from the count streams) and one decoded: the
// report's rows per request add up to its totals, and each request's
// percentiles are its own, merged exactly across agents.
func TestRequestRows(t *testing.T) {
	p, o := plan(t)
	p.Requests = []proto.Request{{Name: "buy", Weight: 1, Method: "POST", Path: "/buy", Headers: map[string]string{"Authorization": "Bearer s3cr3t"}},
		{Name: "browse", Weight: 3, Method: "GET", Path: "/p"}}
	p.Seed = 77
	pl := New(o)
	pl.AddAgent("a", "a", "h")
	pl.AddAgent("b", "b", "h")
	for seq := 0; seq < 4; seq++ {
		enc, err := proto.MarshalSnapshot(&proto.Snapshot{Agent: "a", Stats: mixSnap(seq, 100, 300, 1000, 50000)})
		if err != nil {
			t.Fatal(err)
		}
		ps, err := proto.ParseSnapshot(enc)
		if err != nil {
			t.Fatal(err)
		}
		pl.AddParsed("a", ps)
		pl.Add("b", mixSnap(seq, 100, 300, 2000, 60000))
		pl.Close([]string{"a", "b"}, false)
	}
	pl.Close([]string{"a", "b"}, true)
	rep := pl.Report(4 * time.Second)
	if len(rep.ByRequest) != 2 || rep.Seed != 77 {
		t.Fatalf("rows %d, seed %d", len(rep.ByRequest), rep.Seed)
	}
	var sent, resp, failed, errs uint64
	status := map[string]uint64{}
	for _, r := range rep.ByRequest {
		sent += r.Sent
		resp += r.Requests
		failed += r.Failed
		errs += r.Errors
		for k, n := range r.Status {
			status[k] += n
		}
	}
	if sent != rep.Sent || resp != rep.Requests || failed != rep.Failed || errs != rep.Errors {
		t.Fatalf("rows: sent %d resp %d failed %d errors %d; totals %d %d %d %d", sent, resp, failed, errs, rep.Sent, rep.Requests, rep.Failed, rep.Errors)
	}
	for k, n := range rep.Status {
		if status[k] != n {
			t.Fatalf("status %s: rows %d, total %d", k, status[k], n)
		}
	}
	buy, browse := rep.ByRequest[0], rep.ByRequest[1]
	// buy's latencies are 1 ms (agent a) and 2 ms (b), half each;
	// browse's 50 and 60 ms: each row's percentiles are its own.
	if buy.Latency.Count != 800 || buy.Latency.P50 != 1000 || buy.Latency.Max < 2000 || buy.Latency.Max > 2002 ||
		browse.Latency.P50 != 50015 && browse.Latency.P50 != 49983 && browse.Latency.P50 != 50047 || browse.Latency.P99 < 59900 {
		t.Fatalf("latencies: buy %+v, browse %+v", buy.Latency, browse.Latency)
	}
	if buy.Share != 0.25 || browse.ErrorKinds["http_5xx"] != 8 || browse.ErrorKinds["timeout"] != 8 {
		t.Fatalf("buy share %g, browse kinds %v", buy.Share, browse.ErrorKinds)
	}
	var text strings.Builder
	_ = rep.WriteText(&text)
	js, _ := json.Marshal(rep)
	for _, out := range []string{text.String(), string(js)} {
		if strings.Contains(out, "s3cr3t") || !strings.Contains(out, "browse") {
			t.Fatalf("the report shows the secret or not the rows:\n%s", out)
		}
	}
	if !strings.Contains(text.String(), "Requests by name") || !strings.Contains(string(js), `"Authorization":"[redacted]"`) {
		t.Fatalf("rows missing:\n%s\n%s", text.String(), js)
	}
	t.Log("\n" + text.String())
}

// A checkpoint keeps the per-request figures (the merged intervals are
// snapshots).
func TestRequestsSurviveRestore(t *testing.T) {
	p, o := plan(t)
	p.Requests = []proto.Request{{Name: "x", Weight: 1, Method: "GET", Path: "/"}, {Name: "y", Weight: 1, Method: "GET", Path: "/"}}
	pl := New(o)
	pl.AddAgent("a", "a", "h")
	var merged []*proto.Stats
	pl.OnInterval(func(iv *proto.Stats, _, _ int) {
		b, _ := proto.MarshalSnapshot(&proto.Snapshot{Stats: iv})
		sn, _ := proto.UnmarshalSnapshot(b)
		merged = append(merged, sn.Stats)
	})
	for seq := 0; seq < 2; seq++ {
		pl.Add("a", mixSnap(seq, 10, 30, 100, 200))
		pl.Close([]string{"a"}, false)
	}
	st, err := pl.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	q, err := Restore(o, st, merged)
	if err != nil {
		t.Fatal(err)
	}
	rows := q.Report(2 * time.Second).ByRequest
	if len(rows) != 2 || rows[0].Sent != 20 || rows[1].Sent != 62 || rows[1].Latency.Count != 60 {
		t.Fatalf("restored rows %+v", rows)
	}
}
