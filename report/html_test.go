package report

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/barrage-load/barrage/proto"
)

func TestSampleAndSpectrum(t *testing.T) {
	s := proto.NewStats(true)
	s.Seq, s.Step, s.Start, s.End = 3, 1, 3*time.Second, 3500*time.Millisecond
	s.Responses, s.Sent, s.Scheduled = 100, 110, 120
	s.Status[200], s.Status[302], s.Status[404], s.Status[500], s.Status[0] = 90, 5, 3, 1, 1
	s.Errors[proto.ErrTimeout] = 10
	for v := int64(1); v <= 1000; v++ {
		_ = s.Latency.RecordValue(v * 10)
		_ = s.Service.RecordValue(v)
	}
	x := NewSample(s, NewExpect(nil), 2, 3)
	if x.RPS != 200 || x.SentRPS != 220 || x.TargetRPS != 240 || x.Step != 2 || x.Agents != 2 || x.Of != 3 {
		t.Fatalf("sample %+v", x)
	}
	if x.Classes != [6]uint64{0, 90, 5, 3, 1, 1} {
		t.Fatalf("classes %v", x.Classes)
	}
	// timeout 10, http_4xx 3, http_5xx 1, http_other 1 (the code outside
	// 100..599).
	var want [NumErrorKinds]uint64
	want[proto.ErrTimeout], want[NumErrorKinds-3], want[NumErrorKinds-2], want[NumErrorKinds-1] = 10, 3, 1, 1
	if x.Errors != want || ErrorKindNames[NumErrorKinds-3] != KindHTTP4xx {
		t.Fatalf("errors %v (%v)", x.Errors, ErrorKindNames)
	}
	if x.Latency.P50 != s.Latency.ValueAtQuantile(50) || x.Latency.P999 != s.Latency.ValueAtQuantile(99.9) || x.Latency.Max != s.Latency.Max() || x.Service == nil || x.Corrected != nil {
		t.Fatalf("latency %+v", x.Latency)
	}
	ps := SpectrumPercentiles(1000)
	if ps[0] != 0 || len(ps) != 31 || ps[len(ps)-1] != 99.9 {
		t.Fatalf("percentiles for 1000 values: %d, last %v", len(ps), ps[len(ps)-1])
	}
	if got := SpectrumPercentiles(1); len(got) != 1 {
		t.Fatalf("one value: %v", got)
	}
	sp := NewSpectrum(s)
	if sp.Count != 1000 || sp.Latency[0] != 10 || sp.Latency[len(sp.Latency)-1] != s.Latency.Max() || len(sp.Service) != len(sp.Percentiles) {
		t.Fatalf("spectrum %+v", sp)
	}
	if NewSpectrum(proto.NewStats(false)) != nil {
		t.Fatal("a spectrum of nothing")
	}
}

func TestWriteHTML(t *testing.T) {
	rep := &Report{Target: `http://x/</script><script>alert(1)</script>`, Model: "open", Requests: 12345, Outcome: OutcomeCompleted,
		Steps: []Step{{Step: 1, Label: "10s @1000/s c=8"}}, Events: []Event{{At: 1, Kind: EventStep, Text: "</script>"}}}
	c := NewCharts(rep, []Sample{{Seq: 0, End: 1, RPS: 5}}, nil)
	var b bytes.Buffer
	if err := WriteHTML(&b, c); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	// One closing script tag per script (data, uPlot, charts, report):
	// the hostile target and event text are escaped.
	if n := strings.Count(page, "</script>"); n != 4 {
		t.Fatalf("%d closing script tags", n)
	}
	if strings.Contains(page, "{{") || strings.Contains(page, "/*{{") {
		t.Fatal("a placeholder was left in the page")
	}
	for _, want := range []string{"uPlot", "BarrageCharts", "barrage-data", `"requests":12345`, "&lt;/script&gt;"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(page, "http://") && strings.Contains(page, "src=\"http") {
		t.Fatal("the page loads something from the network")
	}
	// The data block decodes back to the report.
	i := strings.Index(page, `id="barrage-data">`)
	j := strings.Index(page[i:], "</script>")
	var back Charts
	if err := json.Unmarshal([]byte(page[i+len(`id="barrage-data">`):i+j]), &back); err != nil {
		t.Fatal(err)
	}
	if back.Report.Target != rep.Target || back.Report.Requests != 12345 || len(back.Samples) != 1 || back.ErrorKinds != ErrorKindNames {
		t.Fatalf("data block: %+v", back.Report)
	}
}

func TestWriteHTMLFileAndCheckWritable(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "r.html")
	if err := CheckWritable(path); err != nil {
		t.Fatal(err)
	}
	if err := CheckWritable(dir); err == nil {
		t.Fatal("a directory passed")
	}
	if err := CheckWritable(filepath.Join(dir, "nope", "r.html")); err == nil {
		t.Fatal("a missing directory passed")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("the probe was left behind: %v", entries)
	}
	if err := WriteHTMLFile(path, NewCharts(&Report{Target: "t"}, nil, nil)); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Size() < 50000 || fi.Mode().Perm() != 0o644 {
		t.Fatalf("%v %v", fi, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("temporary files left: %v", entries)
	}
	if os.Getuid() != 0 {
		ro := filepath.Join(dir, "ro")
		_ = os.Mkdir(ro, 0o555)
		if err := CheckWritable(filepath.Join(ro, "r.html")); err == nil {
			t.Fatal("a read-only directory passed")
		}
	}
}
