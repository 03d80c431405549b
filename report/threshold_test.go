package report

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/barrage-load/barrage/proto"
)

func TestParseThreshold(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want Threshold
	}{
		// The leading latency's percentile, a duration limit in µs.
		{"p99 < 250ms", Threshold{Metric: MetricLatency, Quantile: 99, Op: OpLess, Limit: 250000}},
		// A fractional percentile; spaces are optional.
		{"p99.9<1s", Threshold{Metric: MetricLatency, Quantile: 99.9, Op: OpLess, Limit: 1e6}},
		// The service time, with µ and with us.
		{"service.p50 <= 500µs", Threshold{Metric: MetricLatency, Service: true, Quantile: 50, Op: OpLessEq, Limit: 500}},
		{"service.max < 2.5ms", Threshold{Metric: MetricLatency, Service: true, Quantile: StatMax, Op: OpLess, Limit: 2500}},
		{"mean < 1m", Threshold{Metric: MetricLatency, Quantile: StatMean, Op: OpLess, Limit: 60e6}},
		// Errors: a share, a count, one kind; error_rate is the same measure.
		{"errors < 1%", Threshold{Metric: MetricErrors, Op: OpLess, Limit: 0.01, Share: true}},
		{"errors <= 10", Threshold{Metric: MetricErrors, Op: OpLessEq, Limit: 10}},
		{"error_rate{kind=timeout} < 0.1%", Threshold{Metric: MetricErrors, Kind: "timeout", Op: OpLess, Limit: 0.001, Share: true}},
		// A status code's share of the responses, a class's count.
		{"status_429 > 10%", Threshold{Metric: MetricStatus, Status: 429, Op: OpGreater, Limit: 0.1, Share: true}},
		{"status_5xx < 5", Threshold{Metric: MetricStatus, Status: 5, Class: true, Op: OpLess, Limit: 5}},
		// rps: against the rate asked, with or without "of", or absolute.
		{"rps >= 99% target", Threshold{Metric: MetricRPS, Op: OpGreaterEq, Limit: 0.99, OfTarget: true}},
		{"rps >= 99 % of target", Threshold{Metric: MetricRPS, Op: OpGreaterEq, Limit: 0.99, OfTarget: true}},
		{"rps > 5000", Threshold{Metric: MetricRPS, Op: OpGreater, Limit: 5000}},
		// One step; a step and a kind.
		{"p99{step=2} < 100ms", Threshold{Metric: MetricLatency, Quantile: 99, Step: 2, Op: OpLess, Limit: 100000}},
		{"errors{ kind=http_5xx , step=3 } < 2%", Threshold{Metric: MetricErrors, Kind: "http_5xx", Step: 3, Op: OpLess, Limit: 0.02, Share: true}},
	} {
		got, err := ParseThreshold(tc.expr)
		if err != nil {
			t.Errorf("%q: %v", tc.expr, err)
			continue
		}
		tc.want.Expr = strings.TrimSpace(tc.expr)
		if math.Abs(got.Limit-tc.want.Limit) > 1e-9*math.Abs(tc.want.Limit) {
			t.Errorf("%q: limit %v, want %v", tc.expr, got.Limit, tc.want.Limit)
		}
		got.Limit = tc.want.Limit
		if *got != tc.want {
			t.Errorf("%q:\n got %+v\nwant %+v", tc.expr, *got, tc.want)
		}
		// The canonical form parses back to the same threshold.
		again, err := ParseThreshold(got.String())
		if err != nil {
			t.Errorf("%q: canonical %q: %v", tc.expr, got.String(), err)
			continue
		}
		again.Expr, again.Limit = got.Expr, got.Limit
		if *again != *got {
			t.Errorf("%q: canonical %q parses to %+v", tc.expr, got.String(), *again)
		}
	}
}

func TestParseThresholdErrors(t *testing.T) {
	for _, tc := range []struct {
		expr string
		col  int
		msg  string
	}{
		{"", 1, "empty"},
		{"p99 < 25xs", 9, `unknown unit "xs"`},
		{"p99 < 250", 10, "needs a unit"},
		{"p101 < 1s", 1, "not a percentile"},
		{"p99x < 1s", 1, "not a percentile"},
		{"latency < 1s", 1, `unknown measure "latency"`},
		{"service.errors < 1%", 9, "service. takes a latency"},
		{"p99 = 1s", 5, "want a comparison"},
		{"p99 <", 6, "want a limit"},
		{"p99 < 1s extra", 10, `unexpected "extra"`},
		{"errors < 101%", 10, "more than 100%"},
		{"errors < 1.5", 10, "whole number"},
		{"errors{kind=slow} < 1%", 13, `unknown error kind "slow"`},
		{"p99{kind=timeout} < 1s", 5, "kind= narrows errors only"},
		{"p99{step=0} < 1s", 10, "not a step number"},
		{"p99{step=1,step=2} < 1s", 12, "given twice"},
		{"p99{step=1 < 1s", 12, "want , or }"},
		{"p99{zone=eu} < 1s", 5, `unknown selector "zone"`},
		{`p99{request="checkout} < 300ms`, 13, "not closed"},
		{"service.p99{request=buy} < 1s", 13, "service. does not combine"},
		{"rps{request=buy} >= 90% target", 23, "not split by request"},
		{"status_700 > 1%", 8, "not a status code"},
		{"status_6xx > 1%", 8, "not a status code"},
		{"rps >= 99%", 11, "of the target"},
		{"rps >= 5 krps", 10, `unknown unit "krps"`},
		{"p99 < 2m", 7, "above the longest latency"},
	} {
		_, err := ParseThreshold(tc.expr)
		var te *ThresholdError
		if !errors.As(err, &te) {
			t.Errorf("%q: error %v, want a ThresholdError", tc.expr, err)
			continue
		}
		if te.Col != tc.col || !strings.Contains(te.Msg, tc.msg) {
			t.Errorf("%q: column %d %q, want column %d with %q", tc.expr, te.Col, te.Msg, tc.col, tc.msg)
		}
		if !errors.Is(err, proto.ErrBadPlan) {
			t.Errorf("%q: does not match proto.ErrBadPlan (exit 2)", tc.expr)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: not one line: %q", tc.expr, err)
		}
	}
	// A share of the rate asked needs the open model.
	if _, err := ParseThresholds([]string{"p99 < 1s", "rps >= 99% target"}, &proto.Plan{}); err == nil || !strings.Contains(err.Error(), "open model") {
		t.Errorf("closed model with rps of target: %v", err)
	}
	if ts, err := ParseThresholds([]string{"p99 < 1s", "rps >= 99% target"}, openPlan); err != nil || len(ts) != 2 {
		t.Errorf("open model: %v", err)
	}
}

// sample builds an open-model interval: latencies (ms) from the intended
// send, service times of half of them, responses by status, transport
// errors.
func openStats(lat []int64, status map[int]uint64, timeouts uint64) *proto.Stats {
	s := proto.NewStats(true)
	for _, ms := range lat {
		_ = s.Latency.RecordValue(ms * 1000)
		_ = s.Service.RecordValue(ms * 500)
	}
	for c, n := range status {
		s.Status[c] += n
		s.Responses += n
	}
	s.Errors[proto.ErrTimeout] = timeouts
	s.Sent = s.Responses + timeouts
	return s
}

func TestThresholdValues(t *testing.T) {
	lat := make([]int64, 1000)
	for i := range lat {
		lat[i] = int64(i + 1) // 1..1000 ms
	}
	st := openStats(lat, map[int]uint64{200: 700, 429: 200, 503: 100}, 100)
	s := Span{Stats: st, Seconds: 2, Asked: 1250}
	closed := proto.NewStats(false)
	for i := 1; i <= 100; i++ {
		_ = closed.Latency.RecordValue(int64(i) * 1000)
		_ = closed.Corrected.RecordCorrectedValue(int64(i)*1000, 10000) // back-filled below the stalls
	}
	closed.Responses, closed.Status[200] = 100, 100
	cs := Span{Stats: closed, Seconds: 1}
	if c, l := closed.Corrected.ValueAtQuantile(50), closed.Latency.ValueAtQuantile(50); c >= 40000 || l < 40000 {
		t.Fatalf("the closed-model case needs a corrected median under 40ms (%d µs) and a service median over it (%d µs)", c, l)
	}
	near := func(got, want float64) bool { return math.Abs(got-want) <= 0.002*math.Abs(want)+1e-9 }
	for _, tc := range []struct {
		expr  string
		s     Span
		value float64
		pass  bool
	}{
		// Percentiles of the latency from the intended send (1..1000 ms).
		{"p99 < 995ms", s, 990000, true},
		{"p50 <= 400ms", s, 500000, false},
		{"p99.9 < 1s", s, 999000, true},
		{"max < 1s", s, 1000000, false},
		{"min >= 1ms", s, 1000, true},
		{"mean < 600ms", s, 500500, true},
		// The service time is half of it here.
		{"service.p99 < 500ms", s, 495000, true},
		// Closed model: the default is the corrected latency, whose
		// back-filled samples pull the median below the service time's.
		{"p50 < 40ms", cs, float64(closed.Corrected.ValueAtQuantile(50)), true},
		{"service.p50 < 40ms", cs, float64(closed.Latency.ValueAtQuantile(50)), false},
		// Errors: 429 and 503 responses (300) and timeouts (100) over the
		// requests completed (1000 responses + 100 failed).
		{"errors < 30%", s, 400.0 / 1100, false},
		{"errors <= 400", s, 400, true},
		{"errors{kind=timeout} < 10%", s, 100.0 / 1100, true},
		{"errors{kind=http_4xx} > 300", s, 200, false},
		// Status: 429s are 20% of the responses; 5xx, 100 of them.
		{"status_429 > 10%", s, 0.2, true},
		{"status_200 >= 80%", s, 0.7, false},
		{"status_5xx < 100", s, 100, false},
		{"status_5xx <= 100", s, 100, true},
		// rps: 1000 responses in 2 s; 1250 were asked.
		{"rps >= 500", s, 500, true},
		{"rps >= 99% target", s, 0.8, false},
		{"rps > 79% target", s, 0.8, true},
	} {
		th, err := ParseThreshold(tc.expr)
		if err != nil {
			t.Fatalf("%q: %v", tc.expr, err)
		}
		v, pass, ok := th.Judge(tc.s)
		if !ok || !near(v, tc.value) || pass != tc.pass {
			t.Errorf("%q: value %v pass %v ok %v, want %v pass %v", tc.expr, v, pass, ok, tc.value, tc.pass)
		}
	}
	// Nothing to measure: no data, and not a pass.
	empty := Span{Stats: proto.NewStats(true), Seconds: 1}
	for _, e := range []string{"p99 < 1s", "errors < 1%", "status_429 > 10%", "rps >= 99% target"} {
		th, _ := ParseThreshold(e)
		if _, pass, ok := th.Judge(empty); ok || pass {
			t.Errorf("%q on nothing: pass %v ok %v", e, pass, ok)
		}
	}
	// A count of errors is 0 on nothing (data: it is a count).
	th, _ := ParseThreshold("errors < 1")
	if v, pass, ok := th.Judge(empty); !ok || !pass || v != 0 {
		t.Errorf("errors < 1 on nothing: %v %v %v", v, pass, ok)
	}
	// Only connection failures: every request failed.
	cf := proto.NewStats(true)
	cf.Errors[proto.ErrConnect] = 3
	th, _ = ParseThreshold("errors < 50%")
	if v, pass, ok := th.Judge(Span{Stats: cf, Seconds: 1}); !ok || pass || v != 1 {
		t.Errorf("connect failures only: %v %v %v", v, pass, ok)
	}
}

// TestJudgeThresholds: at the end, over the whole run and per step; a
// step threshold on its step only; the report's section and exit code.
func TestJudgeThresholds(t *testing.T) {
	segs := []proto.Segment{
		{Duration: 2 * time.Second, From: 1000, To: 1000, Connections: 8, Step: 0},
		{Start: 2 * time.Second, Duration: 2 * time.Second, From: 2000, To: 2000, Connections: 8, Step: 1},
	}
	a := New(Options{Target: "http://h/", Schedule: segs, Pipeline: 1, Open: true})
	fast := make([]int64, 1000)
	slow := make([]int64, 2000)
	for i := range fast {
		fast[i] = 5
	}
	for i := range slow {
		slow[i] = 300
	}
	for seq := 0; seq < 4; seq++ {
		var iv *proto.Stats
		if seq < 2 {
			iv = openStats(fast, map[int]uint64{200: 1000}, 0)
		} else {
			iv = openStats(slow, map[int]uint64{200: 1800, 429: 200}, 0)
		}
		iv.Seq, iv.Step = seq, seq/2
		iv.Start, iv.End = time.Duration(seq)*time.Second, time.Duration(seq+1)*time.Second
		iv.Scheduled = iv.Sent
		a.Add(iv)
	}
	ts, err := ParseThresholds([]string{"p50 < 250ms", "p99{step=1} < 10ms", "p99{step=2} < 10ms", "status_429 > 5%", "rps >= 99% target", "p99{step=9} < 1s"}, openPlan)
	if err != nil {
		t.Fatal(err)
	}
	res := a.JudgeThresholds(ts, 4*time.Second)
	want := []struct {
		ok     bool
		value  float64
		steps  int
		noData bool
	}{
		{false, 300 * 1000, 2, false}, // 4000 at 300ms of 6000: the median is slow
		{true, 5 * 1000, 0, false},    // step 1 alone is fast
		{false, 300 * 1000, 0, false}, // step 2 is not
		{true, 100 * 400.0 / 6000, 2, false},
		{true, 100, 2, false}, // 6000 responses for 6000 asked
		{false, 0, 0, true},   // no step 9
	}
	for i, w := range want {
		r := res[i]
		if r.OK != w.ok || math.Abs(r.Value-w.value) > 0.002*w.value || len(r.Steps) != w.steps || r.NoData != w.noData {
			t.Errorf("%s: %+v, want %+v", r.Expr, r, w)
		}
	}
	// The whole-run threshold's steps: step 1 passes, step 2 fails.
	if s := res[0].Steps; s[0].Step != 1 || !s[0].OK || s[1].Step != 2 || s[1].OK {
		t.Errorf("per step: %+v", s)
	}
	if res[0].Unit != "us" || res[3].Unit != "%" || res[4].Unit != "% of target" {
		t.Errorf("units: %s %s %s", res[0].Unit, res[3].Unit, res[4].Unit)
	}

	rep := a.Report(4 * time.Second)
	rep.Outcome = OutcomeCompleted
	if rep.ExitCode() != ExitOK {
		t.Fatalf("no thresholds: exit %d", rep.ExitCode())
	}
	rep.SetThresholds(res, nil)
	if rep.ExitCode() != ExitThresholds {
		t.Fatalf("failed thresholds: exit %d", rep.ExitCode())
	}
	var b strings.Builder
	if err := rep.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"Thresholds  3 of 6 passed", "FAIL  p50 < 250ms", "whole run; by step 1: 5.00ms, 2: 300.03ms (fails)", "ok    status_429 > 5%", "no data: step 9 did not run"} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("text report lacks %q:\n%s", s, b.String())
		}
	}
	// Stopped by something else: that reason's status; by a threshold's
	// abort: 3; the target answered nothing: 1.
	rep.Outcome = "stopped: degrade: errors"
	if rep.ExitCode() != ExitIncomplete {
		t.Fatalf("stopped by degradation: exit %d", rep.ExitCode())
	}
	rep.SetThresholds(res, map[string]string{"p99{step=1} < 10ms": "p99 412ms over the last 10s"})
	if rep.ExitCode() != ExitThresholds || res[1].OK || res[1].Aborted == "" {
		t.Fatalf("aborted by a threshold: exit %d, %+v", rep.ExitCode(), res[1])
	}
	rep.NoAnswers = true
	if rep.ExitCode() != ExitNoAnswers {
		t.Fatalf("no answers: exit %d", rep.ExitCode())
	}
	// Every threshold passing: 0.
	ok, _ := ParseThresholds([]string{"p99 < 1s"}, openPlan)
	rep2 := a.Report(4 * time.Second)
	rep2.Outcome = OutcomeCompleted
	rep2.SetThresholds(a.JudgeThresholds(ok, 4*time.Second), nil)
	if rep2.ExitCode() != ExitOK {
		t.Fatalf("thresholds passed: exit %d", rep2.ExitCode())
	}
}

func FuzzParseThreshold(f *testing.F) {
	for _, s := range []string{"p99 < 250ms", "p99.9{step=2} < 1s", "errors{kind=timeout} < 0.1%", "status_429 > 10%",
		"rps >= 99% of target", "service.max <= 3us", "status_5xx < 3", "p{", "errors{kind=", "rps >= 1 %", "p99 < 1µ"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		th, err := ParseThreshold(s)
		if err != nil {
			var te *ThresholdError
			if !errors.As(err, &te) || te.Col < 1 || te.Col > len(te.Expr)+1 {
				t.Fatalf("%q: %v (column out of range)", s, err)
			}
			return
		}
		// The canonical form parses back to the same threshold.
		again, err := ParseThreshold(th.String())
		if err != nil {
			t.Fatalf("%q: canonical %q: %v", s, th.String(), err)
		}
		if math.Abs(again.Limit-th.Limit) > 1e-9*math.Abs(th.Limit) {
			t.Fatalf("%q: limit %v, canonical %v", s, th.Limit, again.Limit)
		}
		again.Expr, again.Limit = th.Expr, th.Limit
		if *again != *th {
			t.Fatalf("%q: %+v, canonical %q gives %+v", s, *th, th.String(), *again)
		}
	})
}

// openPlan is an open-model plan for ParseThresholds.
var openPlan = &proto.Plan{Rate: 1000}

// TestThresholdPerRequest: request=NAME judges one request of a mix on its
// own figures, and a name the plan does not have is refused at load.
func TestThresholdPerRequest(t *testing.T) {
	plan := &proto.Plan{Rate: 100, Requests: []proto.Request{{Name: "browse"}, {Name: "buy now"}}}
	ts, err := ParseThresholds([]string{
		"p99{request=browse} < 100ms",
		`p99{request="buy now"} < 100ms`,
		`errors{request="buy now",kind=http_5xx} < 10%`,
		"status_5xx{request=browse} < 1",
		"rps{request=browse} >= 40",
	}, plan)
	if err != nil {
		t.Fatal(err)
	}
	st := proto.NewStats(true)
	st.SetRequests(2)
	for i := int64(1); i <= 100; i++ {
		_ = st.Requests[0].Latency.RecordValue(i * 500)  // browse: up to 50 ms
		_ = st.Requests[1].Latency.RecordValue(i * 2000) // buy now: up to 200 ms
		_ = st.Latency.RecordValue(i * 500)
		_ = st.Latency.RecordValue(i * 2000)
	}
	st.Requests[0].Sent, st.Requests[0].Responses, st.Requests[0].Status[200] = 100, 100, 100
	st.Requests[1].Sent, st.Requests[1].Responses, st.Requests[1].Status[200], st.Requests[1].Status[503] = 100, 100, 80, 20
	st.Sent, st.Responses, st.Status[200], st.Status[503] = 200, 200, 180, 20
	s := Span{Stats: st, Seconds: 2}
	want := []struct {
		v    float64
		pass bool
	}{{49663, true}, {198655, false}, {0.2, false}, {0, true}, {50, true}}
	for i, th := range ts {
		v, pass, ok := th.Judge(s)
		if !ok || pass != want[i].pass || math.Abs(v-want[i].v) > 0.01*want[i].v+1e-9 {
			t.Errorf("%s: value %v pass %v ok %v, want %v pass %v", th.Expr, v, pass, ok, want[i].v, want[i].pass)
		}
	}
	// Without the request's figures (a plain run) there is nothing to judge.
	if _, _, ok := ts[0].Judge(Span{Stats: proto.NewStats(true), Seconds: 1}); ok {
		t.Error("judged a request on stats without requests")
	}
	for _, tc := range []struct{ expr, msg string }{
		{"p99{request=checkout} < 1s", `no request named "checkout" in the plan (it has "browse", "buy now")`},
		{"p99{request=browse} < 1s", "it lists no requests"},
	} {
		p := plan
		if strings.Contains(tc.msg, "lists no") {
			p = &proto.Plan{Rate: 100}
		}
		_, err := ParseThresholds([]string{tc.expr}, p)
		var te *ThresholdError
		if !errors.As(err, &te) || !strings.Contains(te.Msg, tc.msg) || te.Col != 5 {
			t.Errorf("%s: %v, want column 5 with %q", tc.expr, err, tc.msg)
		}
	}
}
