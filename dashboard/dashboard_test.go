package dashboard

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/barrage-load/barrage/live"
	"github.com/barrage-load/barrage/pipeline"
	"github.com/barrage-load/barrage/proto"
	"github.com/barrage-load/barrage/report"
)

// interval makes a merged interval seq (1 s long) with n responses, a
// few errors and latencies from 100 µs up.
func interval(open bool, seq int, n int) *proto.Stats {
	s := proto.NewStats(open)
	s.Seq, s.Start, s.End = seq, time.Duration(seq)*time.Second, time.Duration(seq+1)*time.Second
	s.Sent, s.Responses = uint64(n+2), uint64(n)
	s.Status[200] = uint64(n - 1)
	s.Status[503] = 1
	s.Errors[proto.ErrTimeout] = 2
	s.ConnsOpen, s.ConnsWanted = 8, 8
	s.LoopCPU, s.LoopCapacity = 250*time.Millisecond, time.Second
	if open {
		s.Scheduled = uint64(n + 2)
	}
	for i := 0; i < n; i++ {
		v := int64(100 + i*10)
		_ = s.Latency.RecordValue(v)
		if open {
			_ = s.Service.RecordValue(v / 2)
			_ = s.Lateness.RecordValue(5)
		} else {
			_ = s.Corrected.RecordValue(v)
		}
	}
	return s
}

func plan(t *testing.T, open bool) *proto.Plan {
	t.Helper()
	args := "target_url: http://127.0.0.1:1/\nconnections: 8\nduration: 10s\n"
	if open {
		args += "rate: 1000\n"
	}
	p, err := proto.ParsePlan([]byte(args))
	if err != nil {
		t.Fatal(err)
	}
	p.Normalize()
	return p
}

// fakeControl records what the controls asked.
type fakeControl struct {
	mu      sync.Mutex
	changes []live.Change
	stops   []string
	err     error
}

func (f *fakeControl) Change(ctx context.Context, c live.Change) (time.Duration, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return 0, f.err
	}
	f.changes = append(f.changes, c)
	return 3 * time.Second, nil
}

func (f *fakeControl) Stop(reason string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stops = append(f.stops, reason)
}

func start(t *testing.T, o Options) *Server {
	t.Helper()
	o.Addr = "127.0.0.1:0"
	s, err := Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(time.Second) })
	return s
}

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	r, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	if v != nil {
		if err := json.NewDecoder(r.Body).Decode(v); err != nil {
			t.Fatalf("%s: %v", url, err)
		}
	}
	return r.StatusCode
}

func post(t *testing.T, url, token, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	var m map[string]any
	b, _ := io.ReadAll(r.Body)
	_ = json.Unmarshal(b, &m)
	return r.StatusCode, m
}

func TestParseAddr(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{"8080", "127.0.0.1:8080", ""},       // a bare port is loopback
		{":8080", "127.0.0.1:8080", ""},      // so is :PORT (not every interface)
		{"0", "127.0.0.1:0", ""},             // the OS picks the port
		{"0.0.0.0:9090", "0.0.0.0:9090", ""}, // every interface only when asked
		{"[::1]:9090", "[::1]:9090", ""},     // IPv6 loopback
		{"localhost:80", "localhost:80", ""}, // a host name as given
		{"70000", "", "not in 0..65535"},     // out of range
		{"host", "", "want a port"},          // no port
		{"1.2.3.4:x", "", "bad port"},        // non-numeric port
		{"-1", "", "want a port"},            // a sign is not a port
		{"1.2.3.4:99999", "", "bad port"},    // out of range after a host
	} {
		got, err := ParseAddr(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrBadAddr) {
				t.Errorf("ParseAddr(%q) = %q, %v; want an error with %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseAddr(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestRecorderFromPipeline(t *testing.T) {
	// The recorder hangs on a real pipeline and sees what its consumers
	// see: the merged intervals, in order, and the events.
	p := plan(t, true)
	segs := p.Schedule()
	ends := []time.Duration{time.Second, 2 * time.Second, 3 * time.Second}
	pipe := pipeline.New(pipeline.Options{Plan: p, Schedule: segs, Ends: ends, Window: 1})
	pipe.AddAgent("a", "a", "")
	pipe.AddAgent("b", "b", "")
	rec := NewRecorder(p, true)
	rec.Attach(pipe)
	for seq := 0; seq < 3; seq++ {
		pipe.Add("a", interval(true, seq, 100))
		pipe.Add("b", interval(true, seq, 50))
		pipe.Close([]string{"a", "b"}, false)
	}
	pipe.Emit(report.Event{At: 2.5, Kind: report.EventChange, Text: "dashboard at 2.5s: rate 2000 req/s"})
	cur := rec.Current()
	if cur.Seq != 2 || cur.Last == nil || cur.Last.Responses != 150 || cur.Last.Agents != 2 || cur.Last.Of != 2 {
		t.Fatalf("current: %+v", cur)
	}
	tot := pipe.Total()
	if cur.Totals.Responses != tot.Responses || cur.Totals.Sent != tot.Sent || cur.Events != 1 {
		t.Fatalf("totals %+v, pipeline's: %d responses %d sent", cur.Totals, tot.Responses, tot.Sent)
	}
	// Errors as the report counts them: 2 timeouts and 1 http_5xx per
	// agent and interval.
	if cur.Totals.Errors != 18 || cur.Totals.ErrorKinds[proto.ErrTimeout] != 12 || cur.Totals.ErrorKinds[report.NumErrorKinds-2] != 6 {
		t.Fatalf("errors %d %v", cur.Totals.Errors, cur.Totals.ErrorKinds)
	}
	if cur.Totals.Classes[1] != 3*148 || cur.Totals.Classes[4] != 6 {
		t.Fatalf("classes %v", cur.Totals.Classes)
	}
	// The live report agrees with the pipeline's on what both counted.
	live := rec.Report()
	want := pipe.Report(3 * time.Second)
	if live.Requests != want.Requests || live.Sent != want.Sent || live.Errors != want.Errors || live.Latency.P99 != want.Latency.P99 || live.Outcome != "running" {
		t.Fatalf("live report %d/%d/%d p99 %d (%s); pipeline's %d/%d/%d p99 %d", live.Requests, live.Sent, live.Errors, live.Latency.P99, live.Outcome,
			want.Requests, want.Sent, want.Errors, want.Latency.P99)
	}
	// Timeline: the last 1.5 s are the last two intervals (ends 2 and 3)
	// and the event at 2.5 s.
	samples, events := rec.Timeline(1.5)
	if len(samples) != 2 || samples[0].Seq != 1 || len(events) != 1 {
		t.Fatalf("timeline(1.5): %d samples from %v, %d events", len(samples), samples, len(events))
	}
	if all, _ := rec.Timeline(0); len(all) != 3 {
		t.Fatalf("timeline(0): %d samples", len(all))
	}
	// The spectrum of the whole run: percentiles rising, values rising,
	// the last one the maximum.
	sp := rec.Charts(want).Spectrum
	if sp == nil || sp.Count != int64(tot.Latency.TotalCount()) || sp.Latency[len(sp.Latency)-1] != tot.Latency.Max() {
		t.Fatalf("spectrum %+v", sp)
	}
	for i := 1; i < len(sp.Percentiles); i++ {
		if sp.Percentiles[i] <= sp.Percentiles[i-1] || sp.Latency[i] < sp.Latency[i-1] {
			t.Fatalf("spectrum not monotonic at %d: %v %v", i, sp.Percentiles, sp.Latency)
		}
	}
	// Finish: the final report wins everywhere.
	want.Outcome = report.OutcomeCompleted
	rec.Finish(want)
	if got := rec.Report(); got != want {
		t.Fatal("Report after Finish is not the final report")
	}
	if st := rec.Status(); st.State != StateFinished {
		t.Fatalf("state %q", st.State)
	}
}

// sse reads a Server-Sent Events stream.
type sse struct {
	r    *bufio.Reader
	body io.Closer
}

func openStream(t *testing.T, url string) *sse {
	t.Helper()
	r, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	if ct := r.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	t.Cleanup(func() { r.Body.Close() })
	return &sse{r: bufio.NewReader(r.Body), body: r.Body}
}

// next returns the next event's name and data, or an error at the end.
func (s *sse) next() (string, []byte, error) {
	var name string
	var data []byte
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			return "", nil, err
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "":
			if name != "" {
				return name, data, nil
			}
		case strings.HasPrefix(line, "event: "):
			name = line[7:]
		case strings.HasPrefix(line, "data: "):
			data = append(data, line[6:]...)
		}
	}
}

func TestStream(t *testing.T) {
	p := plan(t, false)
	rec := NewRecorder(p, false)
	srv := start(t, Options{Recorder: rec})
	rec.Interval(interval(false, 0, 10), 1, 1)
	st := openStream(t, srv.URL()+"api/stream")
	name, data, err := st.next()
	if err != nil || name != "hello" {
		t.Fatalf("first event %q %v", name, err)
	}
	var hello Tick
	if err := json.Unmarshal(data, &hello); err != nil {
		t.Fatal(err)
	}
	if hello.Meta == nil || hello.Meta.Model != "closed" || hello.Meta.Control || len(hello.Samples) != 1 || hello.State != StateRunning {
		t.Fatalf("hello: %+v", hello)
	}
	// Nothing new: a heartbeat within a second (and a bit).
	t0 := time.Now()
	name, data, err = st.next()
	if err != nil || name != "status" || time.Since(t0) > HeartbeatEvery+500*time.Millisecond {
		t.Fatalf("second event %q after %s: %v", name, time.Since(t0), err)
	}
	// A new interval and an event arrive as one or two ticks, in order.
	rec.Interval(interval(false, 1, 20), 1, 1)
	rec.Event(report.Event{At: 1.5, Kind: report.EventStop, Text: "x"})
	var got []report.Sample
	var evs []report.Event
	for len(got) < 1 || len(evs) < 1 {
		name, data, err = st.next()
		if err != nil {
			t.Fatal(err)
		}
		if name != "tick" {
			continue
		}
		var tk Tick
		_ = json.Unmarshal(data, &tk)
		got = append(got, tk.Samples...)
		evs = append(evs, tk.Events...)
		if tk.Meta != nil {
			t.Fatal("a tick carries no meta")
		}
	}
	if len(got) != 1 || got[0].Seq != 1 || got[0].Responses != 20 || evs[0].Kind != report.EventStop {
		t.Fatalf("ticks: %+v %+v", got, evs)
	}
	// The final report ends the stream.
	rec.Finish(&report.Report{Requests: 30, Outcome: "completed"})
	for {
		name, data, err = st.next()
		if err != nil {
			t.Fatalf("stream ended before the final report: %v", err)
		}
		if name == "tick" {
			var tk Tick
			_ = json.Unmarshal(data, &tk)
			if tk.Final != nil {
				if tk.Final.Requests != 30 || tk.State != StateFinished {
					t.Fatalf("final %+v", tk)
				}
				break
			}
		}
	}
	if _, _, err := st.next(); err != io.EOF && !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("after the final report: %v, want the end of the stream", err)
	}
}

func TestAPIAndControls(t *testing.T) {
	p := plan(t, true)
	rec := NewRecorder(p, false)
	ctl := &fakeControl{}
	token := NewToken()
	if len(token) != 32 {
		t.Fatalf("token %q", token)
	}
	srv := start(t, Options{Recorder: rec, Control: ctl, Token: token})
	u := srv.URL()
	var cur Current
	if code := getJSON(t, u+"api/metrics", &cur); code != 200 || cur.State != StateWaiting || cur.Last != nil {
		t.Fatalf("before any interval: %d %+v", code, cur)
	}
	for seq := 0; seq < 5; seq++ {
		rec.Interval(interval(true, seq, 100), 1, 1)
	}
	if getJSON(t, u+"api/metrics", &cur); cur.Seq != 4 || cur.Last.TargetRPS != 102 || cur.Last.RPS != 100 || cur.Totals.Responses != 500 {
		t.Fatalf("metrics: %+v", cur)
	}
	var tl struct {
		Samples []report.Sample `json:"samples"`
	}
	if getJSON(t, u+"api/timeline?seconds=2", &tl); len(tl.Samples) != 2 || tl.Samples[1].Seq != 4 {
		t.Fatalf("timeline?seconds=2: %+v", tl.Samples)
	}
	if code := getJSON(t, u+"api/timeline?seconds=-1", nil); code != 400 {
		t.Fatalf("timeline?seconds=-1: %d", code)
	}
	var rep report.Report
	if getJSON(t, u+"api/report", &rep); rep.Requests != 500 || rep.Outcome != "running" || rep.Model != "open" {
		t.Fatalf("report: %d %q %q", rep.Requests, rep.Outcome, rep.Model)
	}
	// The page and its assets are embedded.
	for _, path := range []string{"", "assets/uplot/uPlot.iife.min.js", "assets/charts.js", "assets/dashboard.js", "assets/style.css", "assets/uplot/LICENSE"} {
		r, err := http.Get(u + path)
		if err != nil || r.StatusCode != 200 {
			t.Fatalf("GET /%s: %v %v", path, err, r)
		}
		r.Body.Close()
	}
	// Controls: no token, a wrong one (also one of another length), then
	// the right one.
	if code, _ := post(t, u+"api/control", "", `{"rate": 2000}`); code != 401 {
		t.Fatalf("no token: %d", code)
	}
	for _, bad := range []string{token[:31] + "x", "short", token + "0"} {
		if code, _ := post(t, u+"api/control", bad, `{"rate": 2000}`); code != 403 {
			t.Fatalf("wrong token %q: %d", bad, code)
		}
	}
	if len(ctl.changes) != 0 {
		t.Fatal("a change went through without the token")
	}
	code, m := post(t, u+"api/control", token, `{"rate": 2000, "connections": 16}`)
	if code != 200 || m["at_seconds"] != 3.0 || len(ctl.changes) != 1 || ctl.changes[0].Rate != 2000 || ctl.changes[0].Connections != 16 || ctl.changes[0].Reason != "dashboard" {
		t.Fatalf("change: %d %v %+v", code, m, ctl.changes)
	}
	code, _ = post(t, u+"api/control", token, `{"connections": 4}`)
	if code != 200 || !math.IsNaN(ctl.changes[1].Rate) {
		t.Fatalf("connections only: %d %+v", code, ctl.changes)
	}
	for _, body := range []string{`{}`, `{"rate": "x"}`, `{"bogus": 1}`, `{"connections": -1}`, `nope`} {
		if code, _ := post(t, u+"api/control", token, body); code != 400 {
			t.Errorf("body %s: %d, want 400", body, code)
		}
	}
	ctl.err = live.ErrClosedModel
	if code, m := post(t, u+"api/control", token, `{"rate": 1}`); code != 400 || !strings.Contains(fmt.Sprint(m["error"]), "closed-model") {
		t.Fatalf("closed model: %d %v", code, m)
	}
	if code, _ := post(t, u+"api/stop", token, `{"reason": "enough"}`); code != 202 || len(ctl.stops) != 1 || ctl.stops[0] != "stopped from the dashboard: enough" {
		t.Fatalf("stop: %d %v", code, ctl.stops)
	}
	if code, _ := post(t, u+"api/auth", token, `{}`); code != 204 {
		t.Fatalf("auth: %d", code)
	}
	// A request naming a host that is not loopback is refused (DNS
	// rebinding).
	req, _ := http.NewRequest("GET", u+"api/metrics", nil)
	req.Host = "attacker.example:80"
	if r, err := http.DefaultClient.Do(req); err != nil || r.StatusCode != http.StatusMisdirectedRequest {
		t.Fatalf("foreign Host: %v %v", err, r)
	}
}

func TestReadOnlyAndProbes(t *testing.T) {
	rec := NewRecorder(plan(t, false), false)
	if _, err := Start(Options{Addr: "127.0.0.1:0", Recorder: rec, Control: &fakeControl{}}); err == nil {
		t.Fatal("controls without a token were accepted")
	}
	srv := start(t, Options{Recorder: rec})
	if code, _ := post(t, srv.URL()+"api/stop", "anything", `{}`); code != 404 {
		t.Fatalf("read-only stop: %d", code)
	}
	// An agent's server: probes and nothing else.
	var ready error = errors.New("not registered with ZooKeeper yet")
	var mu sync.Mutex
	ag := start(t, Options{Ready: func() error { mu.Lock(); defer mu.Unlock(); return ready }})
	get := func(path string) (int, string) {
		r, err := http.Get(ag.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		return r.StatusCode, string(b)
	}
	if c, _ := get("healthz"); c != 200 {
		t.Fatalf("healthz %d", c)
	}
	if c, b := get("readyz"); c != 503 || !strings.Contains(b, "not registered") {
		t.Fatalf("readyz %d %q", c, b)
	}
	mu.Lock()
	ready = nil
	mu.Unlock()
	if c, _ := get("readyz"); c != 200 {
		t.Fatalf("readyz after registering: %d", c)
	}
	if c, _ := get("api/metrics"); c != 404 {
		t.Fatalf("an agent's server serves the API: %d", c)
	}
}
