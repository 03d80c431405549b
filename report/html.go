package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/barrage-load/barrage/proto"
	"github.com/barrage-load/barrage/web"
)

// This file holds what the live dashboard and the HTML report chart: one
// Sample per merged interval, the percentile spectrum of the whole run,
// and the self-contained HTML report that draws them (WriteHTML). Both
// draw with the same script (web/charts.js) from the same JSON, so a chart
// on the page and in the file cannot disagree.

// Quantiles are a histogram's percentiles in microseconds, as the charts
// show them.
type Quantiles struct {
	Count int64 `json:"count"`
	P50   int64 `json:"p50"`
	P90   int64 `json:"p90"`
	P99   int64 `json:"p99"`
	P999  int64 `json:"p999"`
	Max   int64 `json:"max"`
}

// chartPercentiles are the Quantiles' percentiles, in field order.
var chartPercentiles = []float64{50, 90, 99, 99.9, 100}

// QuantilesOf reads h's chart percentiles in one pass (nil for nil).
func QuantilesOf(h *hdrhistogram.Histogram) *Quantiles {
	if h == nil {
		return nil
	}
	q := &Quantiles{Count: h.TotalCount()}
	if q.Count == 0 {
		return q
	}
	v := h.ValueAtPercentilesSlice(chartPercentiles)
	q.P50, q.P90, q.P99, q.P999, q.Max = v[0], v[1], v[2], v[3], h.Max()
	return q
}

// NumErrorKinds is how many error kinds a Sample counts (ErrorKindNames).
const NumErrorKinds = int(proto.NumErrKinds) + 3

// ErrorKindNames names Sample.Errors' entries, in the JSON error_kinds'
// order: the transport's kinds, then http_4xx, http_5xx, http_other.
var ErrorKindNames = func() [NumErrorKinds]string {
	var out [NumErrorKinds]string
	i := 0
	Errors{}.Each(func(k string, _ uint64) { out[i] = k; i++ })
	return out
}()

// StatusClassNames names Sample.Classes' entries: responses by the first
// digit of their status, and "other" for a code outside 100..599.
var StatusClassNames = [6]string{"1xx", "2xx", "3xx", "4xx", "5xx", "other"}

// StatusClass is the index in StatusClassNames of a status code as the
// engine counts it (0 for a code outside 1..MaxStatus-1).
func StatusClass(code int) int {
	if code >= 100 && code < 600 {
		return code/100 - 1
	}
	return 5
}

// Sample is one merged interval as the charts show it. Rates are per
// second of the interval; latencies in microseconds.
type Sample struct {
	Seq int `json:"seq"`
	// Step is the step's row number in the report (its id + 1).
	Step  int     `json:"step"`
	Start float64 `json:"start"`
	End   float64 `json:"end"`
	// RPS counts responses, SentRPS requests written, and TargetRPS the
	// open model's requests that came due (the rate asked; 0 in the
	// closed model).
	RPS       float64 `json:"rps"`
	SentRPS   float64 `json:"sent_rps"`
	TargetRPS float64 `json:"target_rps"`
	Responses uint64  `json:"responses"`
	Sent      uint64  `json:"sent"`
	// Latency is what the report leads with (open model: from the
	// intended send time, coordinated omission corrected; closed model:
	// from the actual send). Service is the open model's time from the
	// actual send; Corrected the closed model's back-filled view;
	// Lateness the open model's send lateness.
	Latency   *Quantiles `json:"latency_us"`
	Service   *Quantiles `json:"service_us,omitempty"`
	Corrected *Quantiles `json:"corrected_us,omitempty"`
	Lateness  *Quantiles `json:"lateness_us,omitempty"`
	// Errors counts errors by ErrorKindNames; Classes responses by
	// StatusClassNames.
	Errors      [NumErrorKinds]uint64 `json:"errors"`
	Classes     [6]uint64             `json:"status_classes"`
	ConnsOpen   int                   `json:"conns_open"`
	ConnsWanted int                   `json:"conns_wanted"`
	// LoopBusy is the fraction of their cores the event loops used.
	LoopBusy   float64 `json:"loop_busy"`
	Shed       uint64  `json:"shed"`
	Backlogged uint64  `json:"backlogged"`
	Censored   uint64  `json:"censored"`
	// Agents merged into this interval, of how many were alive.
	Agents int `json:"agents"`
	Of     int `json:"of"`
}

// NewSample summarizes one merged interval. It reads s and keeps nothing
// of it.
func NewSample(s *proto.Stats, e Expect, agents, of int) Sample {
	x := Sample{
		Seq: s.Seq, Step: s.Step + 1, Start: s.Start.Seconds(), End: s.End.Seconds(),
		Responses: s.Responses, Sent: s.Sent,
		Latency: QuantilesOf(s.Latency), Service: QuantilesOf(s.Service),
		Corrected: QuantilesOf(s.Corrected), Lateness: QuantilesOf(s.Lateness),
		ConnsOpen: s.ConnsOpen, ConnsWanted: s.ConnsWanted, LoopBusy: s.LoopBusy(),
		Shed: s.TotalShed(), Backlogged: s.Backlogged, Censored: s.Censored,
		Agents: agents, Of: of,
	}
	if d := (s.End - s.Start).Seconds(); d > 0 {
		x.RPS = float64(s.Responses) / d
		x.SentRPS = float64(s.Sent) / d
		if s.Open() {
			x.TargetRPS = float64(s.Scheduled) / d
		}
	}
	i := 0
	CountErrors(s, e).Each(func(_ string, n uint64) { x.Errors[i] = n; i++ })
	for code, n := range s.Status {
		if n > 0 {
			x.Classes[StatusClass(code)] += n
		}
	}
	return x
}

// Spectrum is the percentile spectrum of a histogram (HdrHistogram's
// plot): values at percentiles spaced evenly on a log scale of
// 1/(1-percentile), from 0% up to the last value recorded.
type Spectrum struct {
	Count       int64     `json:"count"`
	Percentiles []float64 `json:"percentiles"`
	Latency     []int64   `json:"latency_us"`
	Service     []int64   `json:"service_us,omitempty"`
	Corrected   []int64   `json:"corrected_us,omitempty"`
}

// spectrumSteps is how many percentiles a Spectrum takes per decade of
// 1/(1-percentile).
const spectrumSteps = 10

// SpectrumPercentiles lists the spectrum's percentiles for count values:
// 100(1-10^(-k/10)) while 10^(k/10) < count, then the percentile of the
// last value (100(1-1/count), whose value is the maximum).
func SpectrumPercentiles(count int64) []float64 {
	out := []float64{0}
	for k := 1; count > 1; k++ {
		x := math.Pow(10, float64(k)/spectrumSteps)
		if x >= float64(count) {
			break
		}
		out = append(out, 100*(1-1/x))
	}
	if count > 1 {
		out = append(out, 100*(1-1/float64(count)))
	}
	return out
}

// NewSpectrum reads s's spectrum: its lead latency, and service time
// (open model) or the corrected view (closed model). Nil for no values.
func NewSpectrum(s *proto.Stats) *Spectrum {
	if s == nil || s.Latency == nil || s.Latency.TotalCount() == 0 {
		return nil
	}
	n := s.Latency.TotalCount()
	sp := &Spectrum{Count: n, Percentiles: SpectrumPercentiles(n)}
	read := func(h *hdrhistogram.Histogram) []int64 {
		if h == nil || h.TotalCount() == 0 {
			return nil
		}
		v := h.ValueAtPercentilesSlice(sp.Percentiles)
		// The last point is the maximum, whatever the rounding of its
		// percentile.
		v[len(v)-1] = max(v[len(v)-1], h.Max())
		return v
	}
	sp.Latency, sp.Service, sp.Corrected = read(s.Latency), read(s.Service), read(s.Corrected)
	return sp
}

// Charts is what the HTML report draws, and the shape of what the live
// dashboard pushes: the report, the merged intervals, the spectrum. A
// report without samples (rebuilt from JSON) still draws from its
// timeline; sections the JSON has (thresholds, per-request-name rows, any
// other list of rows) are drawn when present.
type Charts struct {
	Report        *Report                `json:"report"`
	Samples       []Sample               `json:"samples"`
	Spectrum      *Spectrum              `json:"spectrum,omitempty"`
	ErrorKinds    [NumErrorKinds]string  `json:"error_kinds"`
	StatusClasses [6]string              `json:"status_classes"`
	Title         string                 `json:"title"`
	Generated     string                 `json:"generated"`
	Version       string                 `json:"version,omitempty"`
	Extra         map[string]interface{} `json:"extra,omitempty"`
}

// NewCharts fills the names and the time of a Charts.
func NewCharts(rep *Report, samples []Sample, sp *Spectrum) *Charts {
	if samples == nil {
		samples = []Sample{}
	}
	return &Charts{Report: rep, Samples: samples, Spectrum: sp, ErrorKinds: ErrorKindNames,
		StatusClasses: StatusClassNames, Title: "barrage report: " + rep.Target,
		Generated: time.Now().UTC().Format(time.RFC3339)}
}

// WriteHTML writes the report as one self-contained HTML file: the page,
// uPlot (inlined), the chart script and the data. It needs no network.
func WriteHTML(w io.Writer, c *Charts) error {
	data, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("report: cannot encode the HTML report's data: %w", err)
	}
	// json.Marshal escapes <, > and & (so "</script>" cannot occur in
	// data); U+2028/9 are escaped too. The assets are checked for
	// closing tags by the web package's test.
	page := web.Asset("report.html")
	repl := strings.NewReplacer(
		"{{TITLE}}", htmlEscape(c.Title),
		"/*{{UPLOT_CSS}}*/", string(web.Asset("uplot/uPlot.min.css")),
		"/*{{STYLE_CSS}}*/", string(web.Asset("style.css")),
		"/*{{UPLOT_JS}}*/", string(web.Asset("uplot/uPlot.iife.min.js")),
		"/*{{CHARTS_JS}}*/", string(web.Asset("charts.js")),
		"/*{{REPORT_JS}}*/", string(web.Asset("report.js")),
		"{{DATA}}", string(data),
	)
	_, err = repl.WriteString(w, string(page))
	return err
}

func htmlEscape(s string) string {
	var b bytes.Buffer
	for _, r := range s {
		switch r {
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '&':
			b.WriteString("&amp;")
		case '"':
			b.WriteString("&#34;")
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// WriteHTMLFile writes the HTML report to path through a temporary file
// beside it, renamed into place: a reader never sees half a report.
func WriteHTMLFile(path string, c *Charts) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".barrage-html-*")
	if err != nil {
		return fmt.Errorf("cannot write the HTML report: %w", err)
	}
	tmp := f.Name()
	err = WriteHTML(f, c)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o644)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("cannot write the HTML report: %w", err)
	}
	return nil
}

// CheckWritable checks, before a test starts, that a report can be
// written at path: its directory exists and takes a new file (the probe
// is removed), and path is not a directory. "-" (stdout) passes.
func CheckWritable(path string) error {
	if path == "" || path == "-" {
		return nil
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return fmt.Errorf("%s is a directory", path)
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".barrage-probe-*")
	if err != nil {
		return fmt.Errorf("cannot write in %s: %w", filepath.Dir(path), err)
	}
	name := f.Name()
	f.Close()
	os.Remove(name)
	return nil
}
