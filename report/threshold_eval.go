package report

import (
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/barrage-load/barrage/proto"
)

// ExitThresholds is the exit status when a threshold failed (the test
// completed, or was stopped by a threshold's abort_on_fail).
const ExitThresholds = 3

// Span is what thresholds are judged on: statistics merged over a span
// (the whole run, a step, the last seconds of a live test), the span's
// length and the requests the schedule asked over it.
type Span struct {
	Stats *proto.Stats
	// Seconds is the span's length (for rps).
	Seconds float64
	// Asked counts the requests the schedule asked over the span (open
	// model; 0 when unknown): rps's target.
	Asked float64
	// Expect is the plan's success set (errors).
	Expect Expect
}

// hist is the latency histogram t reads: the report's leading latency
// (open model: from the intended send; closed model: corrected for
// coordinated omission) or, with service., the time from the actual send.
func (t *Threshold) hist(s *proto.Stats) *hdrhistogram.Histogram {
	open := s.Open()
	switch {
	case t.Service && open:
		return s.Service
	case t.Service, open:
		return s.Latency
	}
	return s.Corrected
}

// errorCount counts the errors t counts in s.
func (t *Threshold) errorCount(s *proto.Stats, e Expect) uint64 {
	errs := CountErrors(s, e)
	if t.Kind == "" {
		return errs.Total()
	}
	var n uint64
	errs.Each(func(k string, v uint64) {
		if k == t.Kind {
			n = v
		}
	})
	return n
}

// statusCount counts the responses with t's code or class.
func (t *Threshold) statusCount(s *proto.Stats) uint64 {
	if !t.Class {
		return s.Status[t.Status]
	}
	var n uint64
	for c := t.Status * 100; c < t.Status*100+100 && c < proto.MaxStatus; c++ {
		n += s.Status[c]
	}
	return n
}

// Value measures t on s: microseconds (latency), a fraction (a share, or
// rps against the target), a count, or requests per second. ok is false
// when s holds nothing to measure (no latency recorded, no request
// completed, no response, no rate asked).
func (t *Threshold) Value(s Span) (v float64, ok bool) {
	st := s.Stats
	if t.Request != "" {
		if st = requestView(st, t.req); st == nil {
			return 0, false
		}
	}
	switch t.Metric {
	case MetricLatency:
		h := t.hist(st)
		if h == nil || h.TotalCount() == 0 {
			return 0, false
		}
		switch t.Quantile {
		case StatMean:
			return h.Mean(), true
		case StatMin:
			return float64(h.Min()), true
		case StatMax:
			return float64(h.Max()), true
		}
		return float64(h.ValueAtQuantile(t.Quantile)), true
	case MetricErrors:
		n := float64(t.errorCount(st, s.Expect))
		if !t.Share {
			return n, true
		}
		done := float64(st.Responses + st.Failed())
		switch {
		case done > 0:
			return min(n/done, 1), true
		case n > 0:
			// Connection attempts failed and nothing completed.
			return 1, true
		}
		return 0, false
	case MetricStatus:
		n := float64(t.statusCount(st))
		if !t.Share {
			return n, true
		}
		if st.Responses == 0 {
			return 0, false
		}
		return n / float64(st.Responses), true
	case MetricRPS:
		if t.OfTarget {
			if s.Asked <= 0 {
				return 0, false
			}
			return float64(st.Responses) / s.Asked, true
		}
		if s.Seconds <= 0 {
			return 0, false
		}
		return float64(st.Responses) / s.Seconds, true
	}
	return 0, false
}

// Judge measures t on s and says whether it holds; ok is false when there
// was nothing to measure (then pass is false too).
func (t *Threshold) Judge(s Span) (v float64, pass, ok bool) {
	v, ok = t.Value(s)
	if !ok {
		return 0, false, false
	}
	return v, t.Op.Holds(v, t.Limit), true
}

// Unit names the unit of t's values in the JSON: "us", "%", "count",
// "req/s" or "% of target" (shares are written in percent).
func (t *Threshold) Unit() string {
	switch {
	case t.Metric == MetricLatency:
		return "us"
	case t.OfTarget:
		return "% of target"
	case t.Metric == MetricRPS:
		return "req/s"
	case t.Share:
		return "%"
	}
	return "count"
}

// jsonValue is v in the JSON's unit (shares in percent).
func (t *Threshold) jsonValue(v float64) float64 {
	if t.Share || t.OfTarget {
		return v * 100
	}
	return v
}

// Format writes a value of t for people: "132.40ms", "12.5%", "37",
// "4980 req/s", "99.6% of target".
func (t *Threshold) Format(v float64) string {
	switch {
	case t.Metric == MetricLatency:
		return fmtUS(int64(v + 0.5))
	case t.OfTarget:
		return strconv.FormatFloat(100*v, 'f', 2, 64) + "% of target"
	case t.Metric == MetricRPS:
		return fmtRate(v) + " req/s"
	case t.Share:
		return fmtShare(v)
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

// fmtShare writes a fraction as a percentage with enough digits to tell
// 0.05% from 0.
func fmtShare(v float64) string {
	switch {
	case v == 0:
		return "0%"
	case v < 0.001:
		return strconv.FormatFloat(100*v, 'g', 2, 64) + "%"
	}
	return strconv.FormatFloat(100*v, 'f', 2, 64) + "%"
}

// ThresholdResult is one threshold judged at the end.
type ThresholdResult struct {
	Expr string `json:"expr"`
	// Value is in Unit: microseconds, percent, a count, req/s, or percent
	// of the rate asked; Text says it for people.
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
	Text  string  `json:"value_text"`
	OK    bool    `json:"ok"`
	// NoData: nothing to measure (no response, or the step never ran):
	// the threshold fails.
	NoData bool `json:"no_data,omitempty"`
	// Step is the step the threshold is judged on (0: the whole run).
	Step int `json:"step,omitempty"`
	// Aborted says why this threshold stopped the test live
	// (abort_on_fail); such a threshold has failed whatever the whole
	// run's value.
	Aborted string `json:"aborted,omitempty"`
	// Steps are the threshold's value in each step, for information
	// (only a threshold with step= is judged on a step).
	Steps []ThresholdStep `json:"steps,omitempty"`
}

// ThresholdStep is a threshold's value over one step.
type ThresholdStep struct {
	Step   int     `json:"step"`
	Value  float64 `json:"value"`
	Text   string  `json:"value_text"`
	OK     bool    `json:"ok"`
	NoData bool    `json:"no_data,omitempty"`
}

// Result judges t on s as a result row.
func (t *Threshold) Result(s Span) ThresholdResult {
	v, pass, ok := t.Judge(s)
	r := ThresholdResult{Expr: t.Expr, Unit: t.Unit(), OK: pass, NoData: !ok, Step: t.Step}
	if ok {
		r.Value, r.Text = t.jsonValue(v), t.Format(v)
	} else {
		r.Text = "no data"
	}
	return r
}

// JudgeThresholds judges ts at the end of a run, each on the whole run
// (elapsed long) or on the step it names, with its value in every step
// beside it. It reads the aggregator's merged histograms: call it once
// every interval is in (after the pipeline's last Close).
func (a *Aggregator) JudgeThresholds(ts []*Threshold, elapsed time.Duration) []ThresholdResult {
	whole := Span{Stats: a.total, Seconds: elapsed.Seconds(), Expect: a.expect}
	if a.open {
		whole.Asked, _ = asked(a.Schedule, 0, elapsed)
	}
	type stepSample struct {
		n int
		s Span
	}
	var steps []stepSample
	for _, id := range a.stepOrder() {
		acc := a.steps[id]
		if acc == nil {
			continue
		}
		s := Span{Stats: acc.st, Seconds: (acc.st.End - acc.st.Start).Seconds(), Expect: a.expect}
		if a.open {
			s.Asked, _ = asked(a.segmentsOf(id), 0, elapsed)
		}
		steps = append(steps, stepSample{id + 1, s})
	}
	out := make([]ThresholdResult, 0, len(ts))
	for _, t := range ts {
		if t.Step > 0 {
			r := ThresholdResult{Expr: t.Expr, Unit: t.Unit(), NoData: true, Step: t.Step,
				Text: fmt.Sprintf("no data: step %d did not run", t.Step)}
			for _, st := range steps {
				if st.n == t.Step {
					r = t.Result(st.s)
				}
			}
			out = append(out, r)
			continue
		}
		r := t.Result(whole)
		if len(steps) > 1 {
			for _, st := range steps {
				sr := t.Result(st.s)
				r.Steps = append(r.Steps, ThresholdStep{Step: st.n, Value: sr.Value, Text: sr.Text, OK: sr.OK, NoData: sr.NoData})
			}
		}
		out = append(out, r)
	}
	return out
}

// SetThresholds puts the thresholds judged at the end into the report;
// aborted maps an expression to why it stopped the test live (such a
// threshold is marked failed).
func (r *Report) SetThresholds(res []ThresholdResult, aborted map[string]string) {
	for i := range res {
		if why := aborted[res[i].Expr]; why != "" {
			res[i].Aborted, res[i].OK = why, false
		}
	}
	r.Thresholds = res
}

// ThresholdsFailed reports whether any threshold failed.
func (r *Report) ThresholdsFailed() bool {
	for _, t := range r.Thresholds {
		if !t.OK {
			return true
		}
	}
	return false
}

// thresholdsAborted reports whether a threshold stopped the test.
func (r *Report) thresholdsAborted() bool {
	for _, t := range r.Thresholds {
		if t.Aborted != "" {
			return true
		}
	}
	return false
}

// thresholdExit is ExitThresholds when a threshold failed and the test
// either completed or was stopped by a threshold: a test stopped for
// another reason (signal, degradation, ZooKeeper lost) exits with that
// reason's status, its thresholds judged on the part that ran.
func (r *Report) thresholdExit() (int, bool) {
	if r.ThresholdsFailed() && (r.Completed() || r.thresholdsAborted()) {
		return ExitThresholds, true
	}
	return 0, false
}

// writeThresholds prints the thresholds section.
func (r *Report) writeThresholds(b *strings.Builder) {
	if len(r.Thresholds) == 0 {
		return
	}
	pass := 0
	for _, t := range r.Thresholds {
		if t.OK {
			pass++
		}
	}
	fmt.Fprintf(b, "\nThresholds  %d of %d passed\n", pass, len(r.Thresholds))
	w := tabwriter.NewWriter(b, 0, 4, 2, ' ', 0)
	for _, t := range r.Thresholds {
		mark := "ok"
		if !t.OK {
			mark = "FAIL"
		}
		scope := "whole run"
		if t.Step > 0 {
			scope = fmt.Sprintf("step %d", t.Step)
		}
		if t.Aborted != "" {
			scope += "; stopped the test: " + t.Aborted
		}
		if len(t.Steps) > 0 {
			var parts []string
			for _, s := range t.Steps {
				m := ""
				if !s.OK {
					m = " (fails)"
				}
				parts = append(parts, fmt.Sprintf("%d: %s%s", s.Step, s.Text, m))
			}
			scope += "; by step " + strings.Join(parts, ", ")
		}
		fmt.Fprintf(w, "  %s\t%s\t%s\t%s\n", mark, t.Expr, t.Text, scope)
	}
	w.Flush()
}

// FormatShare writes a fraction as a percentage ("12.50%", "0.05%").
func FormatShare(v float64) string { return fmtShare(v) }

// requestView is request i's figures in s as Stats a threshold reads: its
// sends, responses, statuses and errors, and its latency as the leading
// latency. Nil when s holds no figures for it.
func requestView(s *proto.Stats, i int) *proto.Stats {
	if s == nil || i < 0 || i >= len(s.Requests) {
		return nil
	}
	r := &s.Requests[i]
	return &proto.Stats{Start: s.Start, End: s.End, Sent: r.Sent, Responses: r.Responses,
		Status: r.Status, Errors: r.Errors, Corrected: r.Latency}
}
