package proto

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"testing"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	"go.yaml.in/yaml/v3"
)

// The fuzz targets check properties, not just "no panic": what decodes
// encodes back to the same thing, decoding is a function of its input, and
// what is refused is refused with the package's sentinel. `make fuzz` runs
// each for FUZZTIME; `make test` runs each for a few seconds; plain `go
// test` runs their seeds.

// histSeeds are real encodings (of the shapes a run produces) and the
// hostile ones of TestDecodeHistogramHostile.
func histSeeds(f *testing.F) {
	for i, n := range []int{0, 1, 100, 1000, 200000} {
		b, err := EncodeHistogram(nil, sampleHist(n, uint64(i)))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	edges := NewHistogram()
	_ = edges.RecordValues(HistMin, 3)
	_ = edges.RecordValues(HistMax, 1<<40)
	_ = edges.RecordValue(HistMax / 2)
	b, _ := EncodeHistogram(nil, edges)
	f.Add(b)
	f.Add(v2Wrap(v2Payload(nil, math.MinInt64)))
	f.Add(v2Wrap(v2Payload(nil, 5, -3, 7, math.MaxInt64)))
	f.Add(v2Wrap(v2Payload(nil, -int64(countsLen()-1), 1)))
	f.Add([]byte{})
}

// checkHistRoundTrip asserts that h encodes canonically: decode(encode(h))
// equals h in count, percentiles and every bucket, and encoding that again
// gives the same bytes, which hdrhistogram-go's own decoder also reads.
func checkHistRoundTrip(t *testing.T, h *hdrhistogram.Histogram) {
	t.Helper()
	b, err := EncodeHistogram(nil, h)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	h2, err := DecodeHistogram(b)
	if err != nil {
		t.Fatalf("decode of our own encoding: %v", err)
	}
	if h2.TotalCount() != h.TotalCount() || h2.ValueAtQuantile(99) != h.ValueAtQuantile(99) ||
		h2.ValueAtQuantile(50) != h.ValueAtQuantile(50) || h2.Max() != h.Max() || !h2.Equals(h) {
		t.Fatalf("round trip changed the histogram: count %d→%d, p99 %d→%d",
			h.TotalCount(), h2.TotalCount(), h.ValueAtQuantile(99), h2.ValueAtQuantile(99))
	}
	b2, err := EncodeHistogram(nil, h2)
	if err != nil || !bytes.Equal(b, b2) {
		t.Fatalf("encoding is not canonical (%v)", err)
	}
	lib, err := hdrhistogram.Decode([]byte(base64.StdEncoding.EncodeToString(b)))
	if err != nil {
		t.Fatalf("hdrhistogram.Decode of our encoding: %v", err)
	}
	if lib.TotalCount() != h.TotalCount() || lib.ValueAtQuantile(99) != h.ValueAtQuantile(99) {
		t.Fatalf("hdrhistogram-go reads count %d p99 %d, we wrote %d, %d",
			lib.TotalCount(), lib.ValueAtQuantile(99), h.TotalCount(), h.ValueAtQuantile(99))
	}
}

func FuzzDecodeHistogram(f *testing.F) {
	histSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := DecodeHistogram(data)
		h2, err2 := DecodeHistogram(data)
		if (err == nil) != (err2 == nil) || (err == nil && !h.Equals(h2)) {
			t.Fatalf("two decodes of the same bytes disagree: %v / %v", err, err2)
		}
		if err != nil {
			if !errors.Is(err, ErrBadHistogram) {
				t.Fatalf("refused without ErrBadHistogram: %v", err)
			}
			return
		}
		if n := h.TotalCount(); n < 0 || n > MaxHistogramCount {
			t.Fatalf("decoded a total count of %d", n)
		}
		checkHistRoundTrip(t, h)
	})
}

// FuzzHistogramRoundTrip records values taken from the input (each 4
// bytes: a value and, in its top byte, a repeat count) and checks the
// encoding keeps them.
func FuzzHistogramRoundTrip(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 1, 0, 0, 3, 232, 5, 0, 39, 16})
	f.Add(bytes.Repeat([]byte{0xff, 0xff, 0xff, 0xff}, 9))
	f.Fuzz(func(t *testing.T, data []byte) {
		h := NewHistogram()
		for len(data) >= 4 {
			w := binary.BigEndian.Uint32(data)
			data = data[4:]
			v := int64(w&0xffffff) * 4 // up to ~67 s: past HistMax too
			n := int64(w>>24) + 1
			if err := h.RecordValues(min(max(v, HistMin), HistMax), n*n*n); err != nil {
				t.Fatal(err)
			}
		}
		checkHistRoundTrip(t, h)
	})
}

func snapshotSeeds(f *testing.F) {
	for _, open := range []bool{true, false} {
		s := NewStats(open)
		s.Seq, s.Step, s.Sent, s.Responses, s.Unfinished = 4, 1, 1000, 990, 6
		s.Start, s.End = 3*time.Second, 4*time.Second
		s.Status[200], s.Status[503], s.Status[0] = 970, 10, 10
		s.Errors[ErrTimeout], s.Shed[ShedBacklog] = 4, 2
		s.ConnsOpen, s.ConnsWanted = 63, 64
		s.LoopCPU, s.LoopCapacity = 900*time.Millisecond, time.Second
		for i := int64(1); i < 2000; i++ {
			_ = s.Latency.RecordValue(i * 7)
			if open {
				_ = s.Service.RecordValue(i)
				_ = s.Lateness.RecordValue(i % 13)
			} else {
				_ = s.Corrected.RecordValue(i * 9)
			}
		}
		if open {
			// A mix of two requests: per-request counters and histograms.
			s.SetRequests(2)
			s.Requests[0].Sent, s.Requests[0].Responses, s.Requests[0].Status[200] = 600, 595, 595
			s.Requests[1].Sent, s.Requests[1].Responses, s.Requests[1].Status[503] = 400, 395, 10
			s.Requests[1].Errors[ErrTimeout] = 4
			for i := int64(1); i < 200; i++ {
				_ = s.Requests[0].Latency.RecordValue(i * 7)
				_ = s.Requests[1].Latency.RecordValue(i * 11)
			}
		}
		b, err := MarshalSnapshot(&Snapshot{Agent: "box1", Stats: s, Final: open, FirstSend: time.Unix(1700000000, 5)})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		// The same with retries and a circuit breaker.
		withRetries(s)
		if b, err = MarshalSnapshot(&Snapshot{Agent: "box1", Stats: s}); err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(hostileSnapshot())
	f.Add([]byte("BRS1"))
	f.Add([]byte("BRS1\x02{}\x00\x00\x00\x00"))
}

// hostileSnapshot is a well-framed snapshot whose latency histogram holds
// a zero run of MinInt64: before DecodeHistogram was fixed, writing it to
// a test's snapshot znode panicked the coordinator.
func hostileSnapshot() []byte {
	js := []byte(`{"agent":"box1","seq":0,"step":0,"start_ns":0,"end_ns":1000000000,"sent":1,"responses":1,"bytes_in":0,"bytes_out":0,"conns_open":1,"conns_wanted":1,"open":false}`)
	h := v2Wrap(v2Payload(nil, math.MinInt64))
	b := append([]byte(nil), snapshotMagic...)
	b = binary.AppendUvarint(b, uint64(len(js)))
	b = append(b, js...)
	b = binary.AppendUvarint(b, 1)
	b = binary.AppendUvarint(b, uint64(len("latency")))
	b = append(b, "latency"...)
	b = binary.AppendUvarint(b, uint64(len(h)))
	return append(b, h...)
}

// TestHostileSnapshot: the znode that killed the coordinator is refused.
func TestHostileSnapshot(t *testing.T) {
	var err error
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("UnmarshalSnapshot panicked: %v", r)
			}
		}()
		_, err = UnmarshalSnapshot(hostileSnapshot())
	}()
	if !errors.Is(err, ErrBadHistogram) {
		t.Fatalf("error %v, want ErrBadHistogram", err)
	}
}

func histSame(a, b *hdrhistogram.Histogram) bool {
	if a == nil || b == nil {
		return (a == nil || a.TotalCount() == 0) && (b == nil || b.TotalCount() == 0)
	}
	return a.TotalCount() == b.TotalCount() && a.ValueAtQuantile(99) == b.ValueAtQuantile(99) && a.Equals(b)
}

func FuzzUnmarshalSnapshot(f *testing.F) {
	snapshotSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		sn, err := UnmarshalSnapshot(data)
		if err != nil {
			if !errors.Is(err, ErrBadSnapshot) && !errors.Is(err, ErrBadHistogram) {
				t.Fatalf("refused without ErrBadSnapshot or ErrBadHistogram: %v", err)
			}
			return
		}
		// What is accepted encodes and decodes to the same snapshot.
		b, err := MarshalSnapshot(sn)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		sn2, err := UnmarshalSnapshot(b)
		if err != nil {
			t.Fatalf("decode of the re-encoding: %v", err)
		}
		a, c := sn.Stats, sn2.Stats
		if sn.Agent != sn2.Agent || sn.Final != sn2.Final || !sn.FirstSend.Equal(sn2.FirstSend) ||
			a.Seq != c.Seq || a.Step != c.Step || a.Start != c.Start || a.End != c.End ||
			a.Sent != c.Sent || a.Responses != c.Responses || a.Unfinished != c.Unfinished ||
			a.Status != c.Status || a.Errors != c.Errors || a.Shed != c.Shed ||
			a.ConnsOpen != c.ConnsOpen || a.ConnsWanted != c.ConnsWanted || a.LoopCPU != c.LoopCPU ||
			a.Retries != c.Retries || a.Requeued != c.Requeued || a.RetryDropped != c.RetryDropped ||
			a.RetriedOK != c.RetriedOK || a.Exhausted != c.Exhausted || !reflect.DeepEqual(a.Breaker, c.Breaker) {
			t.Fatalf("round trip changed the counters:\n%+v\n%+v", sn, sn2)
		}
		for i, p := range [][2]*hdrhistogram.Histogram{{a.Latency, c.Latency}, {a.Service, c.Service}, {a.Corrected, c.Corrected}, {a.Lateness, c.Lateness}, {a.EndToEnd, c.EndToEnd}} {
			if !histSame(p[0], p[1]) {
				t.Fatalf("round trip changed histogram %d", i)
			}
		}
		if len(a.Requests) != len(c.Requests) {
			t.Fatalf("round trip changed the requests: %d → %d", len(a.Requests), len(c.Requests))
		}
		for i := range a.Requests {
			x, y := &a.Requests[i], &c.Requests[i]
			if x.Sent != y.Sent || x.Responses != y.Responses || x.Unfinished != y.Unfinished || x.Status != y.Status ||
				x.Errors != y.Errors || !histSame(x.Latency, y.Latency) {
				t.Fatalf("round trip changed request %d", i)
			}
		}
	})
}

// planSeeds are plans of every pattern, in YAML and in JSON, and a few
// that must be refused.
var planSeeds = []string{
	"target_url: http://127.0.0.1:8080/x?y=1\nmethod: post\nheaders: {X-A: b}\nbody: hello\nconnections: 10\npattern:\n  type: steps\n  steps:\n    - {duration: 2s, rate: 100}\n    - {duration: 1.5s, rate: 200, connections: 20}\n",
	"target_url: http://h/\nrate: 100\nduration: 10s\npattern: {type: spike, spike_rate: 1000, at: 4s, for: 2s}\n",
	"target_url: http://h/\npattern: {type: ramp, from: 10, to: 20}\ntimeout: 1s\nconnect_timeout: 2s\n",
	"target_url: http://u:pw@h:81/\npipeline: 16\nexpect_status: [200, 429]\n",
	`{"target_url": "http://h/", "rate": 5, "duration": "1s", "connections": 3, "expect_status": [204]}`,
	`{"target_url": "http://h/", "pattern": {"type": "steps", "steps": [{"duration": 1, "rate": 0}, {"duration": "2s", "rate": 7.5}]}}`,
	"target_url: http://h/\nrate: .nan\n",
	"target_url: http://h/\nconnections: 0\n",
	"target_url: http://h/\nbody: !!binary /wD+\n",
	"target_url: http://h:81/a\nseed: 7\nheaders: {Authorization: 'Bearer {{u.t}}'}\ndata: {u: {file: /d/u.csv, order: random}}\nrequests:\n  - {name: buy, weight: 3, method: post, path: '/b?x={{randInt 1 5}}', body: '{{seq}}'}\n  - {path: 'http://h:81/c', headers: {X-A: b}, raw: true}\n",
	`{"target_url": "http://h/", "requests": [{"name": "x", "body_base64": "/wD+"}], "secret_headers": ["X-K"]}`,
	"target_url: http://h/\nrate: 100\nretry: {max: 3, backoff: exponential, base: 50ms, max_delay: 2s, jitter: true, on: [connect, timeout, reset, 5xx, 429]}\nbreaker: {window: 10s, min_calls: 20, error_rate: 50%, open_for: 5s, half_open_probes: 5}\n",
	`{"target_url": "http://h/", "retry": {"max": 2, "backoff": "constant", "jitter": "equal", "on": [503, "timeout"]}, "breaker": {"error_rate": 0.25}}`,
	"target_url: http://h/\nretry: {max: 11}\n",
	"target_url: http://h/\nretry: {max: 2, on: [teapot]}\nbreaker: {error_rate: 2}\n",
	"",
}

func FuzzParsePlan(f *testing.F) {
	for _, s := range planSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParsePlan(data)
		p2, err2 := ParsePlan(data)
		if (err == nil) != (err2 == nil) || (err != nil && err.Error() != err2.Error()) || (err == nil && !reflect.DeepEqual(p, p2)) {
			t.Fatalf("two parses of the same bytes disagree: %v / %v", err, err2)
		}
		if err != nil {
			if !errors.Is(err, ErrBadPlan) {
				t.Fatalf("refused without ErrBadPlan: %v", err)
			}
			if bytes.ContainsAny([]byte(err.Error()), "\n\r") {
				t.Fatalf("error is not one line: %q", err)
			}
			return
		}
		// An accepted plan is normalized and valid, and its schedule is
		// one every agent accepts under the fleet-wide bounds.
		q := *p
		q.Normalize()
		if !reflect.DeepEqual(&q, p) {
			t.Fatalf("Normalize is not idempotent:\n%+v\n%+v", p, &q)
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("accepted plan fails Validate: %v", err)
		}
		if err := (Caps{}).CheckSegments(p.Schedule()); err != nil {
			t.Fatalf("accepted plan's schedule fails CheckSegments: %v", err)
		}
		var sum time.Duration
		for _, s := range p.Schedule() {
			sum += s.Duration
		}
		if sum != p.Duration.D() {
			t.Fatalf("schedule lasts %s, plan %s", sum, p.Duration)
		}
		// JSON (the wire to agents) and YAML both carry it unchanged.
		js, err := json.Marshal(p)
		if err != nil {
			t.Fatalf("json: %v", err)
		}
		var fromJSON Plan
		if err := json.Unmarshal(js, &fromJSON); err != nil || !reflect.DeepEqual(&fromJSON, p) {
			t.Fatalf("JSON round trip (%v):\n%+v\n%s", err, p, js)
		}
		ym, err := yaml.Marshal(p)
		if err != nil {
			t.Fatalf("yaml: %v", err)
		}
		for _, enc := range [][]byte{ym} {
			r, err := ParsePlan(enc)
			if err != nil || !reflect.DeepEqual(r, p) {
				t.Fatalf("re-parse of the encoded plan (%v):\n%+v\n%+v\n%s", err, p, r, enc)
			}
		}
	})
}

// TestBinaryBodyOverJSON: a body that is not UTF-8 (a binary body_file)
// reaches the agents byte for byte. encoding/json alone replaced each bad
// byte with U+FFFD.
func TestBinaryBodyOverJSON(t *testing.T) {
	p := Plan{TargetURL: "http://h/", Body: "\xff\x00\xfe\x80abc"}
	p.Normalize()
	js, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var q Plan
	if err := json.Unmarshal(js, &q); err != nil {
		t.Fatal(err)
	}
	if q.Body != p.Body {
		t.Fatalf("body %q arrived as %q (%s)", p.Body, q.Body, js)
	}
	// A text body stays readable in the JSON.
	p.Body = "héllo"
	js, _ = json.Marshal(p)
	if !bytes.Contains(js, []byte(`"body":"héllo"`)) {
		t.Fatalf("text body: %s", js)
	}
	if err := json.Unmarshal([]byte(`{"target_url":"http://h/","body":"a","body_base64":"Yg=="}`), &q); !errors.Is(err, ErrBadPlan) {
		t.Fatalf("body and body_base64: %v", err)
	}
}
