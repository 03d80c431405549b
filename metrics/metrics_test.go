package metrics

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/barrage-load/barrage/proto"
	"github.com/barrage-load/barrage/report"
)

func stats(open bool, seq, n int) *proto.Stats {
	s := proto.NewStats(open)
	s.Seq, s.Start, s.End = seq, time.Duration(seq)*time.Second, time.Duration(seq+1)*time.Second
	s.Sent, s.Responses = uint64(n+1), uint64(n)
	s.Status[200], s.Status[404], s.Status[0] = uint64(n-2), 1, 1
	s.Errors[proto.ErrReset] = 1
	s.Errors[proto.ErrConnect] = 3
	s.BytesIn, s.BytesOut = 1000, 500
	s.ConnsOpen, s.ConnsWanted = 7, 8
	s.LoopCPU, s.LoopCapacity = 500*time.Millisecond, time.Second
	if open {
		s.Scheduled = uint64(n + 1)
	}
	for i := 0; i < n; i++ {
		// 10 µs .. 10 s, spread over the buckets.
		v := int64(10) << (i % 20)
		_ = s.Latency.RecordValue(v)
		if open {
			_ = s.Service.RecordValue(v)
			_ = s.Lateness.RecordValue(3)
		}
	}
	return s
}

// scrape parses the handler's answer with the Prometheus text parser.
func scrape(t *testing.T, h http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	if w.Code != 200 {
		t.Fatalf("status %d", w.Code)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(w.Body)
	if err != nil {
		t.Fatalf("the text parser refused /metrics: %v", err)
	}
	return fams
}

// value is a metric's value for the given labels (name=value pairs).
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	f := fams[name]
	if f == nil {
		t.Fatalf("no %s", name)
	}
next:
	for _, m := range f.Metric {
		for i := 0; i < len(labels); i += 2 {
			found := false
			for _, l := range m.Label {
				if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch f.GetType() {
		case dto.MetricType_COUNTER:
			return m.Counter.GetValue()
		case dto.MetricType_GAUGE:
			return m.Gauge.GetValue()
		}
	}
	t.Fatalf("no %s%v", name, labels)
	return 0
}

func TestFeedAndExporter(t *testing.T) {
	running := true
	f := NewFeed(func() bool { return running })
	h := Handler(f)
	fams := scrape(t, h)
	if value(t, fams, "barrage_requests_sent_total") != 0 || fams["barrage_latency_seconds"] != nil {
		t.Fatal("figures before any interval")
	}
	plan := &proto.Plan{}
	total := proto.NewStats(true)
	for seq := 0; seq < 3; seq++ {
		s := stats(true, seq, 100)
		total.Merge(s)
		f.Interval(plan, s)
	}
	fams = scrape(t, h)
	if got := value(t, fams, "barrage_requests_sent_total"); got != float64(total.Sent) {
		t.Fatalf("sent %v, want %d", got, total.Sent)
	}
	for _, c := range []struct {
		class string
		want  uint64
	}{{"2xx", total.Status[200]}, {"4xx", 3}, {"other", 3}, {"5xx", 0}} {
		if got := value(t, fams, "barrage_responses_total", "class", c.class); got != float64(c.want) {
			t.Errorf("class %s: %v, want %d", c.class, got, c.want)
		}
	}
	for _, c := range []struct {
		kind string
		want float64
	}{{"reset", 3}, {"connect", 9}, {"http_4xx", 3}, {"http_other", 3}, {"timeout", 0}} {
		if got := value(t, fams, "barrage_errors_total", "kind", c.kind); got != c.want {
			t.Errorf("kind %s: %v, want %v", c.kind, got, c.want)
		}
	}
	if value(t, fams, "barrage_rate_requests_per_second") != 100 || value(t, fams, "barrage_target_requests_per_second") != 101 ||
		value(t, fams, "barrage_connections_open") != 7 || value(t, fams, "barrage_loop_busy_ratio") != 0.5 || value(t, fams, "barrage_test_running") != 1 {
		t.Fatal("gauges of the last interval")
	}
	last := stats(true, 2, 100)
	if got := value(t, fams, "barrage_interval_latency_seconds", "view", "latency", "quantile", "0.99"); got != float64(last.Latency.ValueAtPercentile(99))/1e6 {
		t.Fatalf("interval p99 %v, want %v", got, float64(last.Latency.ValueAtPercentile(99))/1e6)
	}
	// The cumulative histogram: counts match the merged histogram's, the
	// buckets rise, +Inf holds every value.
	hf := fams["barrage_latency_seconds"]
	if hf == nil || hf.GetType() != dto.MetricType_HISTOGRAM {
		t.Fatal("no latency histogram")
	}
	for _, m := range hf.Metric {
		hh := m.Histogram
		if hh.GetSampleCount() != uint64(total.Latency.TotalCount()) {
			t.Fatalf("count %d, want %d", hh.GetSampleCount(), total.Latency.TotalCount())
		}
		prev := uint64(0)
		for _, b := range hh.Bucket {
			if b.GetCumulativeCount() < prev {
				t.Fatal("buckets fall")
			}
			prev = b.GetCumulativeCount()
			// Exact to the histogram's resolution: every value recorded
			// is 10<<k µs; count those at or under the bound.
			var want uint64
			for seq := 0; seq < 3; seq++ {
				for i := 0; i < 100; i++ {
					if float64(int64(10)<<(i%20))/1e6 <= b.GetUpperBound()*(1+1e-9) {
						want++
					}
				}
			}
			if b.GetCumulativeCount() != want {
				t.Errorf("le=%g: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want)
			}
		}
	}
	// The process and Go collectors ride along.
	if fams["process_cpu_seconds_total"] == nil || fams["go_goroutines"] == nil {
		t.Fatal("no process or Go metrics")
	}
	// Idle: the rate gauges drop, the counters stay.
	running = false
	f.Idle()
	fams = scrape(t, h)
	if value(t, fams, "barrage_rate_requests_per_second") != 0 || value(t, fams, "barrage_test_running") != 0 || value(t, fams, "barrage_requests_sent_total") != float64(total.Sent) {
		t.Fatal("idle agent")
	}
}

// source is a Source with a final report.
type source struct {
	total *proto.Stats
	final *report.Report
}

func (s source) MetricsView(fn func(*proto.Stats, *report.Sample, report.Expect, *report.Report, bool)) {
	fn(s.total, nil, report.Expect{}, s.final, false)
}

func TestFinalReportWins(t *testing.T) {
	// At the end the counters are the report's: late snapshots make the
	// report's totals larger than the closed intervals'.
	total := stats(false, 0, 10)
	rep := &report.Report{Sent: 99, Censored: 2, BytesIn: 5, BytesOut: 6,
		Status:     map[string]uint64{"200": 90, "503": 4, "other": 1},
		ErrorKinds: map[string]uint64{"timeout": 3, "http_5xx": 4, "connect": 1},
		Shed:       map[string]uint64{"backlog": 7, "fenced": 1}}
	fams := scrape(t, Handler(source{total, rep}))
	for _, c := range []struct {
		name, label, val string
		want             float64
	}{
		{"barrage_requests_sent_total", "", "", 99},
		{"barrage_responses_total", "class", "2xx", 90},
		{"barrage_responses_total", "class", "5xx", 4},
		{"barrage_responses_total", "class", "other", 1},
		{"barrage_errors_total", "kind", "timeout", 3},
		{"barrage_errors_total", "kind", "http_5xx", 4},
		{"barrage_requests_shed_total", "", "", 8},
		{"barrage_latency_censored_total", "", "", 2},
		{"barrage_received_bytes_total", "", "", 5},
	} {
		var got float64
		if c.label == "" {
			got = value(t, fams, c.name)
		} else {
			got = value(t, fams, c.name, c.label, c.val)
		}
		if got != c.want {
			t.Errorf("%s{%s=%s} = %v, want %v", c.name, c.label, c.val, got, c.want)
		}
	}
}
