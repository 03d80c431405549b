package proto

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const mixPlan = `
target_url: http://127.0.0.1:8080/api
method: post
headers: {Content-Type: application/json, Authorization: "Bearer {{users.token}}"}
seed: 42
secret_headers: [X-Session]
data:
  users: {file: users.csv}
  words: {file: words.txt, order: random, shared: true}
requests:
  - name: buy
    weight: 3
    path: /buy?sku={{randInt 1 9}}
    body: '{"q": {{randInt 1 5}}}'
  - weight: 7
    method: get
    path: http://127.0.0.1:8080/browse
    headers: {X-Session: s3cr3t}
`

func TestParseMix(t *testing.T) {
	p, err := ParsePlan([]byte(mixPlan))
	if err != nil {
		t.Fatal(err)
	}
	if !p.Named() || len(p.Mix()) != 2 || p.Seed != 42 {
		t.Fatalf("plan %+v", p)
	}
	buy, browse := p.Requests[0], p.Requests[1]
	if buy.Method != "POST" || buy.Weight != 3 || browse.Method != "GET" || browse.Path != "/browse" || browse.Name != "GET /browse" {
		t.Fatalf("normalized requests: %+v %+v", buy, browse)
	}
	if d := p.Data["users"]; d.Format != FormatCSV || d.Order != OrderSeq || d.Shared {
		t.Fatalf("users %+v", d)
	}
	if d := p.Data["words"]; d.Format != FormatLines || d.Order != OrderRandom || !d.Shared {
		t.Fatalf("words %+v", d)
	}
	if h := p.RequestHeaders(&browse); h["X-Session"] != "s3cr3t" || h["Content-Type"] != "application/json" {
		t.Fatalf("headers of browse %v", h)
	}
	// The bearer token comes from a data file: the plan carries no secret
	// in it; X-Session is marked secret and carried.
	if s := p.SecretHeaders(); len(s) != 1 || s[0] != "X-Session" {
		t.Fatalf("secret headers %v", s)
	}
	r := p.RedactedCopy()
	if r.Requests[1].Headers["X-Session"] != "[redacted]" || p.Requests[1].Headers["X-Session"] != "s3cr3t" {
		t.Fatalf("redacted copy %v / original %v", r.Requests[1].Headers, p.Requests[1].Headers)
	}
	// JSON carries the mix unchanged.
	js, _ := json.Marshal(p)
	var q Plan
	if err := json.Unmarshal(js, &q); err != nil || q.Requests[1].Headers["X-Session"] != "s3cr3t" || q.Seed != 42 {
		t.Fatalf("json round trip %v %+v", err, q)
	}
}

func TestMixErrors(t *testing.T) {
	for _, tc := range []struct{ plan, want string }{
		{"requests: [{name: a}, {name: a}]", "both named"},
		{"requests: [{weight: -1}]", "weight must be above 0"},
		{"requests: [{path: nope}]", "must start with /"},
		{"requests: [{path: 'http://other:1/x'}]", "not on the target's origin"},
		{"requests: [{method: HEAD}, {method: GET}]", "cannot mix HEAD"},
		{"body: x\nrequests: [{name: a}]", "give each request its own body"},
		{"requests: [{name: a, bogus: 1}]", "field bogus not found in a request"},
		{"data: {users: {}}", "file is missing"},
		{"data: {9x: {file: f}}", "a name is letters"},
		{"data: {u: {file: f, order: shuffled}}", "not sequential or random"},
		{"data: {u: {file: f, format: xml}}", "not csv or lines"},
		{"secret_headers: ['a b']", "not a header name"},
		{"requests: [{headers: {Content-Length: '1'}}]", "set by barrage itself"},
	} {
		_, err := ParsePlan([]byte("target_url: http://h:8080/\n" + tc.plan))
		if !errors.Is(err, ErrBadPlan) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.plan, err, tc.want)
		}
	}
	many := "target_url: http://h/\nrequests:\n"
	for i := 0; i <= MaxRequests; i++ {
		many += "  - {name: r" + strconv.Itoa(i) + "}\n"
	}
	if _, err := ParsePlan([]byte(many)); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("too many requests: %v", err)
	}
}

func TestSetHeader(t *testing.T) {
	p, err := ParsePlan([]byte(mixPlan))
	if err != nil {
		t.Fatal(err)
	}
	orig := p.Clone()
	q := p.Clone()
	q.SetHeader("x-session", "new")
	if q.Headers["x-session"] != "new" || q.Requests[1].Headers != nil {
		t.Fatalf("after SetHeader: %v / %v", q.Headers, q.Requests[1].Headers)
	}
	if h := q.RequestHeaders(&q.Requests[1]); h["x-session"] != "new" {
		t.Fatalf("browse sends %v", h)
	}
	if p.Requests[1].Headers["X-Session"] != "s3cr3t" || orig.Requests[1].Headers["X-Session"] != "s3cr3t" {
		t.Fatal("SetHeader on a clone changed the original")
	}
}

func TestLoadPlanFiles(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "b.json"), []byte(`{"x": {{seq}}}`), 0o644)
	path := filepath.Join(dir, "plan.yaml")
	os.WriteFile(path, []byte("target_url: http://h/\ndata: {u: {file: users.csv}}\nrequests:\n  - name: a\n    body_file: b.json\n  - name: b\n    body: |\n      line one\n      {{oops}} two\n"), 0o644)
	p, src, err := LoadPlanSource(path)
	if err != nil {
		t.Fatal(err)
	}
	if p.Requests[0].Body != `{"x": {{seq}}}` || p.Requests[0].BodyFile != "" {
		t.Fatalf("body_file not read: %+v", p.Requests[0])
	}
	if f := p.Data["u"].File; f != filepath.Join(dir, "users.csv") {
		t.Fatalf("data path %q", f)
	}
	// {{oops}} is at line 2, column 1 of the block, which is line 9
	// column 7 of the file.
	if l, c, ok := src.Position("requests[1].body", 2, 1); !ok || l != 9 || c != 7 {
		t.Fatalf("position %d:%d %v", l, c, ok)
	}
	os.WriteFile(path, []byte("target_url: http://h/\nrequests:\n  - {name: a, body_file: missing.json}\n"), 0o644)
	if _, err := LoadPlan(path); err == nil || !strings.Contains(err.Error(), "missing.json") {
		t.Fatalf("missing body file: %v", err)
	}
}

func TestSourcePositions(t *testing.T) {
	src := newSource("p.yaml", []byte("target_url: http://h/\nheaders:\n  X-A: 'v {{bad}}'\nbody: a {{bad}}\n"))
	if l, c, ok := src.Position("headers.X-A", 1, 3); !ok || l != 3 || c != 11 {
		t.Fatalf("quoted header: %d:%d %v", l, c, ok)
	}
	if l, c, ok := src.Position("body", 1, 3); !ok || l != 4 || c != 9 {
		t.Fatalf("plain body: %d:%d %v", l, c, ok)
	}
	if _, _, ok := src.Position("requests[0].body", 1, 1); ok {
		t.Fatal("a field not in the file located")
	}
}

func TestSlice(t *testing.T) {
	// Consecutive slices meet exactly and cover every row.
	for _, n := range []int{0, 1, 7, 100, 1001} {
		cuts := []float64{0, 0.3, 1.0 / 3, 0.5, 0.999, 1}
		next := 0
		for i := 0; i+1 < len(cuts); i++ {
			lo, hi := Slice{cuts[i], cuts[i+1]}.Rows(n)
			if lo != next || hi < lo {
				t.Fatalf("n=%d slice %d: [%d,%d) after %d", n, i, lo, hi, next)
			}
			next = hi
		}
		if next != n {
			t.Fatalf("n=%d: slices end at %d", n, next)
		}
	}
}

func reqStats(rng *rand.Rand, s *Stats, n int) {
	s.SetRequests(n)
	for i := range s.Requests {
		r := &s.Requests[i]
		k := uint64(1 + rng.Intn(500))
		r.Sent, r.Responses = k+3, k
		r.Status[200], r.Status[503] = k-1, 1
		r.Errors[ErrTimeout], r.Unfinished = 2, 1
		for j := uint64(0); j < k; j++ {
			_ = r.Latency.RecordValue(int64(1 + rng.Intn(100000)))
		}
	}
}

// Per-request figures travel in snapshots and merge as the totals do:
// the same through UnmarshalSnapshot + Merge and through ParseSnapshot +
// MergeInto (the coordinator's path).
func TestSnapshotRequests(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	a, b := NewStats(true), NewStats(true)
	for i := 0; i < 5; i++ {
		s := randomStats(rng, true, 100)
		reqStats(rng, s, 3)
		s.Requests[1].Latency.Reset() // an empty histogram is not carried
		enc, err := MarshalSnapshot(&Snapshot{Agent: "x", Stats: s})
		if err != nil {
			t.Fatal(err)
		}
		sn, err := UnmarshalSnapshot(enc)
		if err != nil {
			t.Fatal(err)
		}
		got := sn.Stats.Requests
		if len(got) != 3 || got[0].Sent != s.Requests[0].Sent || got[2].Status != s.Requests[2].Status ||
			got[0].Errors != s.Requests[0].Errors || got[0].Unfinished != 1 || got[1].Latency != nil ||
			!got[2].Latency.Equals(s.Requests[2].Latency) {
			t.Fatalf("round trip changed the requests")
		}
		a.Merge(sn.Stats)
		ps, err := ParseSnapshot(enc)
		if err != nil {
			t.Fatal(err)
		}
		ps.MergeInto(b)
	}
	for i := range a.Requests {
		x, y := &a.Requests[i], &b.Requests[i]
		if x.Sent != y.Sent || x.Status != y.Status || !histSame(x.Latency, y.Latency) {
			t.Fatalf("request %d: the two merge paths differ", i)
		}
	}
	c := a.Clone()
	a.Reset()
	if len(a.Requests) != 3 || a.Requests[0].Sent != 0 || a.Requests[0].Latency.TotalCount() != 0 || c.Requests[0].Sent == 0 {
		t.Fatal("Reset or Clone of requests")
	}
}

func TestSnapshotRequestsHostile(t *testing.T) {
	s := NewStats(false)
	reqStats(rand.New(rand.NewSource(1)), s, 2)
	enc, _ := MarshalSnapshot(&Snapshot{Stats: s})
	if _, err := UnmarshalSnapshot(rebuild(t, enc, "", "")); err != nil {
		t.Fatalf("rebuild itself breaks the snapshot: %v", err)
	}
	for _, tc := range []struct{ from, to string }{
		{"req/1/latency", "req/2/latency"},  // a request the counters do not list
		{"req/1/latency", "req/01/latency"}, // another spelling
		{"req/1/latency", "req/0/latency"},  // one request twice
		{"req/1/latency", "req/64/latency"}, // past MaxRequests
		{`"status":{"200"`, `"status":{"0200"`},
		{`"requests":[`, `"requests":[{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},`},
	} {
		if _, err := UnmarshalSnapshot(rebuild(t, enc, tc.from, tc.to)); !errors.Is(err, ErrBadSnapshot) {
			t.Errorf("%s → %s: %v", tc.from, tc.to, err)
		}
	}
}

// rebuild re-encodes a snapshot with from replaced by to in its JSON part
// and its histogram tags, every length prefix recomputed.
func rebuild(t *testing.T, enc []byte, from, to string) []byte {
	t.Helper()
	b := enc[len(snapshotMagic):]
	next := func() []byte {
		n, k := binary.Uvarint(b)
		out := b[k : k+int(n)]
		b = b[k+int(n):]
		return out
	}
	put := func(out, x []byte) []byte {
		out = binary.AppendUvarint(out, uint64(len(x)))
		return append(out, x...)
	}
	repl := func(x []byte) []byte {
		if from == "" {
			return x
		}
		return []byte(strings.Replace(string(x), from, to, 1))
	}
	out := append([]byte(nil), snapshotMagic...)
	out = put(out, repl(next()))
	n, k := binary.Uvarint(b)
	b = b[k:]
	out = binary.AppendUvarint(out, n)
	for i := uint64(0); i < n; i++ {
		out = put(out, repl(next()))
		out = put(out, next())
	}
	return out
}
