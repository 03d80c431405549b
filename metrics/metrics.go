// Package metrics exports a test's figures to Prometheus, from merged
// intervals only: the exporter reads, at scrape time, what the dashboard's
// recorder (run, coord) or an agent's Feed copied from the intervals —
// never anything per request.
//
// Library: prometheus/client_golang. Every figure is computed from
// barrage's own exact histograms and counters, so the exporter is a custom
// Collector of const metrics built at scrape time (no Observe per value,
// no second bookkeeping); client_golang's ConstHistogram takes exact
// cumulative bucket counts, so `barrage_latency_seconds` is a standard
// `le` histogram that histogram_quantile() and aggregation across
// processes understand, which VictoriaMetrics/metrics' vmrange histograms
// are not. Its process and Go collectors come for free (an agent's CPU,
// RSS and open descriptors against its LimitNOFILE).
//
// Latency is exported two ways, each for what it is good at:
//   - barrage_latency_seconds: a histogram of the whole run (cumulative,
//     only grows), buckets from 50 µs to 60 s; rate() over any window and
//     sums over agents work as Prometheus expects.
//   - barrage_interval_latency_seconds{quantile}: gauges of the last merged
//     interval's exact percentiles (what the dashboard shows). Not a
//     Summary: a summary's _count and _sum must be cumulative, and these
//     are per interval.
package metrics

import (
	"net/http"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/barrage-load/barrage/proto"
	"github.com/barrage-load/barrage/report"
)

// Source is what the exporter reads at scrape time: fn runs under the
// source's lock with the cumulative statistics of the merged intervals
// (nil before the first), the last interval's sample (nil when none is
// current), the success set, the final report (nil until the end; its
// totals win, so the counters end equal to the JSON report) and whether
// a test is running. fn must keep nothing it is given.
type Source interface {
	MetricsView(fn func(total *proto.Stats, last *report.Sample, e report.Expect, final *report.Report, running bool))
}

// Buckets are barrage_latency_seconds' upper bounds, in seconds.
var Buckets = []float64{
	0.00005, 0.0001, 0.00025, 0.0005,
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
	0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
}

var quantiles = []struct {
	label string
	get   func(q *report.Quantiles) int64
}{
	{"0.5", func(q *report.Quantiles) int64 { return q.P50 }},
	{"0.9", func(q *report.Quantiles) int64 { return q.P90 }},
	{"0.99", func(q *report.Quantiles) int64 { return q.P99 }},
	{"0.999", func(q *report.Quantiles) int64 { return q.P999 }},
	{"1", func(q *report.Quantiles) int64 { return q.Max }},
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

var (
	dRunning    = desc("barrage_test_running", "1 while a test runs (intervals arrive), else 0.")
	dSent       = desc("barrage_requests_sent_total", "Requests written.")
	dResponses  = desc("barrage_responses_total", "Responses received, by status class (1xx..5xx, other).", "class")
	dErrors     = desc("barrage_errors_total", "Errors as the report counts them, by kind: connect (attempts), timeout, reset, protocol, and responses outside the success set (http_4xx, http_5xx, http_other).", "kind")
	dShed       = desc("barrage_requests_shed_total", "Open-model requests that came due and were never sent.")
	dCensored   = desc("barrage_latency_censored_total", "Requests never answered whose latency counts as a lower bound.")
	dBytesIn    = desc("barrage_received_bytes_total", "Bytes received.")
	dBytesOut   = desc("barrage_sent_bytes_total", "Bytes sent.")
	dRate       = desc("barrage_rate_requests_per_second", "Responses per second in the last merged interval.")
	dTarget     = desc("barrage_target_requests_per_second", "Requests per second the open model asked in the last merged interval (0 in the closed model).")
	dConnsOpen  = desc("barrage_connections_open", "Connections held at the end of the last merged interval.")
	dConnsWant  = desc("barrage_connections_wanted", "Connections asked for at the end of the last merged interval.")
	dBusy       = desc("barrage_loop_busy_ratio", "Fraction of their cores the event loops used in the last merged interval.")
	dAgents     = desc("barrage_agents", "Agents merged into the last interval (reporting) and alive then (alive).", "state")
	dIntervalQ  = desc("barrage_interval_latency_seconds", "The last merged interval's exact latency percentiles; view: latency (what the report leads with: from the intended send in the open model), service (open model, from the actual send), corrected (closed model, coordinated omission back-filled).", "view", "quantile")
	dLatenessQ  = desc("barrage_interval_send_lateness_seconds", "The last merged interval's send lateness percentiles (open model).", "quantile")
	dIntervalAt = desc("barrage_interval_end_seconds", "End of the last merged interval, in seconds from the test's start.")
	dHist       = desc("barrage_latency_seconds", "Latency of the whole run so far (cumulative); view as in barrage_interval_latency_seconds.", "view")
)

// collector builds the metrics at scrape time.
type collector struct{ src Source }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{dRunning, dSent, dResponses, dErrors, dShed, dCensored, dBytesIn, dBytesOut,
		dRate, dTarget, dConnsOpen, dConnsWant, dBusy, dAgents, dIntervalQ, dLatenessQ, dIntervalAt, dHist} {
		ch <- d
	}
}

// counts are the counters as the exporter emits them.
type counts struct {
	sent, shed, censored, in, out uint64
	classes                       [6]uint64
	kinds                         [report.NumErrorKinds]uint64
}

func countsOf(total *proto.Stats, e report.Expect) counts {
	var c counts
	if total == nil {
		return c
	}
	c.sent, c.shed, c.censored, c.in, c.out = total.Sent, total.TotalShed(), total.Censored, total.BytesIn, total.BytesOut
	for code, n := range total.Status {
		if n > 0 {
			c.classes[report.StatusClass(code)] += n
		}
	}
	i := 0
	report.CountErrors(total, e).Each(func(_ string, n uint64) { c.kinds[i] = n; i++ })
	return c
}

func countsOfReport(r *report.Report) counts {
	c := counts{sent: r.Sent, censored: r.Censored, in: r.BytesIn, out: r.BytesOut}
	for _, n := range r.Shed {
		c.shed += n
	}
	for k, n := range r.Status {
		code, err := strconv.Atoi(k)
		if err != nil {
			code = 0 // "other"
		}
		c.classes[report.StatusClass(code)] += n
	}
	for i, k := range report.ErrorKindNames {
		c.kinds[i] = r.ErrorKinds[k]
	}
	return c
}

// hist is one cumulative histogram's buckets.
type hist struct {
	view    string
	count   uint64
	sum     float64
	buckets map[float64]uint64
}

// bucketsOf counts h's values at or under each bound, exactly to h's
// resolution (a value counts under a bound when the top of its
// equivalence range is at or under it). It walks h's recorded buckets
// once: at scrape time, never per interval.
func bucketsOf(view string, h *hdrhistogram.Histogram) *hist {
	if h == nil {
		return nil
	}
	out := &hist{view: view, count: uint64(h.TotalCount()), buckets: make(map[float64]uint64, len(Buckets))}
	out.sum = h.Mean() * float64(h.TotalCount()) / 1e6
	bars := h.Distribution()
	i := 0
	var cum uint64
	for _, b := range Buckets {
		limit := int64(b * 1e6)
		for i < len(bars) && bars[i].To <= limit {
			cum += uint64(bars[i].Count)
			i++
		}
		out.buckets[b] = cum
	}
	return out
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	var (
		cnt     counts
		last    *report.Sample
		running bool
		hists   []*hist
	)
	c.src.MetricsView(func(total *proto.Stats, l *report.Sample, e report.Expect, final *report.Report, run bool) {
		running = run
		if final != nil {
			cnt = countsOfReport(final)
		} else {
			cnt = countsOf(total, e)
		}
		if l != nil {
			cp := *l
			last = &cp
		}
		if total != nil {
			for _, h := range []*hist{bucketsOf("latency", total.Latency), bucketsOf("service", total.Service), bucketsOf("corrected", total.Corrected)} {
				if h != nil {
					hists = append(hists, h)
				}
			}
		}
	})
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	b2f := map[bool]float64{false: 0, true: 1}
	gauge(dRunning, b2f[running])
	counter(dSent, cnt.sent)
	for i, k := range report.StatusClassNames {
		counter(dResponses, cnt.classes[i], k)
	}
	for i, k := range report.ErrorKindNames {
		counter(dErrors, cnt.kinds[i], k)
	}
	counter(dShed, cnt.shed)
	counter(dCensored, cnt.censored)
	counter(dBytesIn, cnt.in)
	counter(dBytesOut, cnt.out)
	var s report.Sample
	if last != nil && running {
		s = *last
	}
	gauge(dRate, s.RPS)
	gauge(dTarget, s.TargetRPS)
	gauge(dConnsOpen, float64(s.ConnsOpen))
	gauge(dConnsWant, float64(s.ConnsWanted))
	gauge(dBusy, s.LoopBusy)
	gauge(dAgents, float64(s.Agents), "reporting")
	gauge(dAgents, float64(s.Of), "alive")
	gauge(dIntervalAt, s.End)
	for _, v := range []struct {
		view string
		q    *report.Quantiles
	}{{"latency", s.Latency}, {"service", s.Service}, {"corrected", s.Corrected}} {
		if v.q == nil {
			continue
		}
		for _, q := range quantiles {
			gauge(dIntervalQ, float64(q.get(v.q))/1e6, v.view, q.label)
		}
	}
	if s.Lateness != nil {
		for _, q := range quantiles {
			gauge(dLatenessQ, float64(q.get(s.Lateness))/1e6, q.label)
		}
	}
	for _, h := range hists {
		ch <- prometheus.MustNewConstHistogram(dHist, h.count, h.sum, h.buckets, h.view)
	}
}

// Handler serves the source's metrics, with the process's and the Go
// runtime's, in the Prometheus text format.
func Handler(src Source) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector{src}, collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewGoCollector())
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Feed is an agent's Source: it keeps the totals of the intervals the
// agent published (every test since it started) and the last one.
type Feed struct {
	mu      sync.Mutex
	total   *proto.Stats
	last    report.Sample
	have    bool
	expect  report.Expect
	running func() bool
}

// NewFeed makes a feed; running, if set, says whether a test runs now
// (else: an interval arrived and no Idle since).
func NewFeed(running func() bool) *Feed { return &Feed{running: running} }

// Interval records one of the agent's intervals (merged over its loops);
// plan is its test's plan (for the success set). It runs on the engine's
// collector: it copies a summary and merges the histograms, nothing more.
func (f *Feed) Interval(plan *proto.Plan, s *proto.Stats) {
	var e report.Expect
	if plan != nil {
		e = report.NewExpect(plan.ExpectStatus)
	}
	x := report.NewSample(s, e, 1, 1)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.total == nil {
		f.total = proto.NewStats(s.Open())
	}
	// Counters add up over tests, as Prometheus counters must.
	c := *s
	c.Start, c.End = 0, 0
	f.total.Merge(&c)
	f.last, f.have, f.expect = x, true, e
}

// Idle says the test ended: the rate gauges drop to zero.
func (f *Feed) Idle() {
	f.mu.Lock()
	f.have = false
	f.mu.Unlock()
}

// MetricsView implements Source.
func (f *Feed) MetricsView(fn func(total *proto.Stats, last *report.Sample, e report.Expect, final *report.Report, running bool)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	run := f.have
	if f.running != nil {
		run = f.running()
	}
	var last *report.Sample
	if f.have && run {
		last = &f.last
	}
	fn(f.total, last, f.expect, nil, run)
}
