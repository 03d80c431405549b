package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	dto "github.com/prometheus/client_model/go"
)

// The browser tests drive Debian's headless Chromium (make test installs
// it: scripts/install-deps.sh chromium) with chromedp, with the flags a
// closed network needs and a fresh profile.

// browser starts headless Chromium; problems collects console errors,
// uncaught exceptions and failed loads, and requests every URL asked.
type browser struct {
	ctx      context.Context
	mu       sync.Mutex
	problems []string
	requests []string
}

func startBrowser(t *testing.T) *browser {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("no chromium: run scripts/install-deps.sh chromium (make test does): %v", err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 2200),
	}
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	b := &browser{}
	ctx, cancel2 := chromedp.NewContext(actx, chromedp.WithListener(func(ev any) {
		b.mu.Lock()
		defer b.mu.Unlock()
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			b.problems = append(b.problems, fmt.Sprintf("exception: %s at %s:%d", msg, d.URL, d.LineNumber))
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError {
				var parts []string
				for _, a := range ev.Args {
					parts = append(parts, string(a.Value)+a.Description)
				}
				b.problems = append(b.problems, "console error: "+strings.Join(parts, " "))
			}
		case *log.EventEntryAdded:
			if ev.Entry.Level == log.EntryLevelError {
				b.problems = append(b.problems, "log: "+ev.Entry.Text+" "+ev.Entry.URL)
			}
		case *network.EventRequestWillBeSent:
			b.requests = append(b.requests, ev.Request.URL)
		case *network.EventLoadingFailed:
			if !ev.Canceled {
				b.problems = append(b.problems, "load failed: "+ev.ErrorText)
			}
		}
	}))
	t.Cleanup(cancel2)
	b.ctx = ctx
	// Start the browser now (it takes a while on a busy machine), with
	// the domains whose events we watch.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("chromium: %v", err)
	}
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, log.Enable, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	return b
}

func (b *browser) run(t *testing.T, d time.Duration, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, d)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("browser: %v", err)
	}
}

// eval runs a script in the page and decodes its value into v.
func eval[T any](t *testing.T, b *browser, script string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](script))
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	return v
}

func (b *browser) check(t *testing.T, where string) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.problems) > 0 {
		t.Fatalf("%s: the browser reported %d problems:\n%s", where, len(b.problems), strings.Join(b.problems, "\n"))
	}
}

// pageView is what the test reads off the live page.
type pageView struct {
	Seq       int     `json:"seq"`
	Rate      string  `json:"rate"`
	Requests  string  `json:"requests"`
	Errors    string  `json:"errors"`
	Conns     string  `json:"conns"`
	P99       string  `json:"p99"`
	State     string  `json:"state"`
	Canvases  int     `json:"canvases"`
	Points    []int   `json:"points"`
	Final     *string `json:"final"`
	FinalSent *string `json:"final_sent"`
	FinalErr  *string `json:"final_errors"`
	FinalFail *string `json:"final_failed"`
	FinalUnf  *string `json:"final_unfinished"`
}

const readPage = `(() => {
  const v = id => { const e = document.getElementById(id); return e ? e.getAttribute("data-value") : null; };
  const s = window.barrage || {};
  return { seq: s.seq == null ? -1 : s.seq, rate: v("rate"), requests: v("requests"), errors: v("errors"), conns: v("conns"), p99: v("p99"),
    state: s.state || "", canvases: document.querySelectorAll(".chart canvas").length,
    points: Array.from(document.querySelectorAll(".chart")).length ? [] : [],
    final: v("final-requests"), final_sent: v("final-sent"), final_errors: v("final-errors"), final_failed: v("final-failed"), final_unfinished: v("final-unfinished") };
})()`

func getJSONURL(t *testing.T, url string, v any) {
	t.Helper()
	r, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	if err := json.NewDecoder(r.Body).Decode(v); err != nil {
		t.Fatalf("%s: %v", url, err)
	}
}

// apiNow is the part of /api/metrics the test compares.
type apiNow struct {
	State string `json:"state"`
	Seq   int    `json:"seq"`
	Last  *struct {
		RPS       float64 `json:"rps"`
		ConnsOpen int     `json:"conns_open"`
		Latency   struct {
			P99 int64 `json:"p99"`
		} `json:"latency_us"`
	} `json:"last"`
	Totals struct {
		Responses uint64 `json:"responses"`
		Errors    uint64 `json:"errors"`
	} `json:"totals"`
}

var dashLine = regexp.MustCompile(`dashboard at (http://[^ ]+/) .*control token: ([0-9a-f]+)`)

func TestDashboardInBrowser(t *testing.T) {
	b := startBrowser(t)
	url := startTarget(t)
	dir := t.TempDir()
	jsonPath, htmlPath := filepath.Join(dir, "r.json"), filepath.Join(dir, "r.html")
	cmd := exec.Command(binary, "run", "-q", "--cores", "1", "-c", "8", "-r", "2000", "-d", "10s",
		"--http", "0", "--http-linger", "60s", "--json", jsonPath, "--html", htmlPath, url)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	done := make(chan struct{})
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-done
	})
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
		_ = cmd.Wait()
		close(done)
	}()
	var page, token string
	select {
	case l := <-lines:
		m := dashLine.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("first line %q has no dashboard URL and token", l)
		}
		page, token = m[1], m[2]
	case <-time.After(10 * time.Second):
		t.Fatal("no dashboard line")
	}
	if !strings.HasPrefix(page, "http://127.0.0.1:") {
		t.Fatalf("a bare port must listen on loopback: %s", page)
	}

	// 1. The live rate shows within 2 s of the start. On a loaded machine
	// the browser may take longer than that to load the page at all: the
	// 2 s then count from the page's load (a timing of the machine is not
	// the dashboard's; the log shows both).
	b.run(t, 10*time.Second, chromedp.Navigate(page))
	loaded := time.Since(started)
	var pv pageView
	for {
		pv = eval[pageView](t, b, readPage)
		if pv.Rate != "" {
			break
		}
		if time.Since(started) > max(2*time.Second, loaded+2*time.Second) {
			t.Fatalf("no rate on the page %s after the start, %s after it loaded (page: %+v)", time.Since(started), time.Since(started)-loaded, pv)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("page loaded %s after the start", loaded.Round(time.Millisecond))
	t.Logf("live rate %s req/s on the page %s after the start", pv.Rate, time.Since(started).Round(time.Millisecond))

	// 2. Mid-run, the page's numbers are /api's within one interval, and
	// exactly them when both are at the same interval.
	time.Sleep(2500 * time.Millisecond)
	matched := false
	for try := 0; try < 10 && !matched; try++ {
		var a1, a2 apiNow
		getJSONURL(t, page+"api/metrics", &a1)
		pv = eval[pageView](t, b, readPage)
		getJSONURL(t, page+"api/metrics", &a2)
		if pv.Seq < a1.Seq-1 || pv.Seq > a2.Seq {
			t.Fatalf("page at interval %d, /api at %d..%d: more than one interval apart", pv.Seq, a1.Seq, a2.Seq)
		}
		if a1.Seq != a2.Seq || pv.Seq != a1.Seq || a2.Last == nil {
			time.Sleep(150 * time.Millisecond)
			continue
		}
		want := map[string]string{
			"rate": strconv.Itoa(int(math.Round(a2.Last.RPS))), "requests": strconv.FormatUint(a2.Totals.Responses, 10),
			"errors": strconv.FormatUint(a2.Totals.Errors, 10), "conns": strconv.Itoa(a2.Last.ConnsOpen), "p99": strconv.FormatInt(a2.Last.Latency.P99, 10),
		}
		got := map[string]string{"rate": pv.Rate, "requests": pv.Requests, "errors": pv.Errors, "conns": pv.Conns, "p99": pv.P99}
		for k := range want {
			if got[k] != want[k] {
				t.Fatalf("interval %d: page %s = %q, /api says %q", pv.Seq, k, got[k], want[k])
			}
		}
		matched = true
	}
	if !matched {
		t.Fatal("page and /api never caught at the same interval")
	}
	if pv.Canvases < 8 {
		t.Fatalf("%d chart canvases on the page", pv.Canvases)
	}
	// 3. Controls: the page asks for the token; with it, a live change
	// goes through and shows as an event.
	b.run(t, 10*time.Second,
		chromedp.SendKeys("#token", token),
		chromedp.Click(`#unlock button[type=submit]`),
		chromedp.WaitVisible("#change"),
		chromedp.SendKeys("#set-rate", "3000"),
		chromedp.Click(`#change button[type=submit]`),
		chromedp.WaitVisible(`#events li[data-kind="change"]`),
	)

	time.Sleep(1500 * time.Millisecond) // the change shows on the charts
	// The screenshot for the README (BARRAGE_SCREENSHOT=docs/dashboard.png).
	sctx, scancel := context.WithTimeout(b.ctx, 10*time.Second)
	png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
	scancel()
	if err != nil {
		t.Fatal(err)
	}
	if len(png) < 10000 {
		t.Fatalf("screenshot of %d bytes", len(png))
	}
	if out := os.Getenv("BARRAGE_SCREENSHOT"); out != "" {
		if err := os.WriteFile(out, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// 4. The end: the page's final totals are the JSON report's, exactly.
	select {
	case <-done:
		t.Fatal("the run ended before --http-linger")
	default:
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(jsonPath); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no JSON report")
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // written in one call; let it land
	rep := readReport(t, jsonPath)
	for {
		pv = eval[pageView](t, b, readPage)
		if pv.Final != nil && *pv.Final != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the page never showed the final report: %+v", pv)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, c := range []struct {
		name string
		got  *string
		key  string
	}{{"requests", pv.Final, "requests"}, {"sent", pv.FinalSent, "sent"}, {"errors", pv.FinalErr, "errors"}, {"failed", pv.FinalFail, "failed"}, {"unfinished", pv.FinalUnf, "unfinished"}} {
		want := strconv.FormatFloat(num(t, rep, c.key), 'f', -1, 64)
		if c.got == nil || *c.got != want {
			t.Fatalf("final %s on the page %v, JSON report %s", c.name, c.got, want)
		}
	}
	if events, _ := rep["events"].([]any); !strings.Contains(fmt.Sprint(events), "dashboard at") {
		t.Fatalf("the report's events lack the dashboard's change: %v", events)
	}
	b.check(t, "live page")

	// 5. /metrics parses with the Prometheus text parser, and its counters
	// are the JSON report's.
	fams := scrapeMetrics(t, page+"metrics")
	counter := func(name, label, val string) float64 {
		f := fams[name]
		if f == nil || f.GetType() != dto.MetricType_COUNTER {
			t.Fatalf("no counter %s", name)
		}
		for _, m := range f.Metric {
			for _, l := range m.Label {
				if label == "" || (l.GetName() == label && l.GetValue() == val) {
					return m.Counter.GetValue()
				}
			}
			if label == "" {
				return m.Counter.GetValue()
			}
		}
		t.Fatalf("no %s{%s=%q}", name, label, val)
		return 0
	}
	if got, want := counter("barrage_requests_sent_total", "", ""), num(t, rep, "sent"); got != want {
		t.Fatalf("barrage_requests_sent_total %v, report sent %v", got, want)
	}
	classes := map[string]float64{}
	for code, n := range rep["status"].(map[string]any) {
		c := "other"
		if x, err := strconv.Atoi(code); err == nil && x >= 100 && x < 600 {
			c = fmt.Sprintf("%dxx", x/100)
		}
		classes[c] += n.(float64)
	}
	for _, c := range []string{"1xx", "2xx", "3xx", "4xx", "5xx", "other"} {
		if got := counter("barrage_responses_total", "class", c); got != classes[c] {
			t.Fatalf("barrage_responses_total{class=%q} %v, report %v", c, got, classes[c])
		}
	}
	for kind, n := range rep["error_kinds"].(map[string]any) {
		if got := counter("barrage_errors_total", "kind", kind); got != n.(float64) {
			t.Fatalf("barrage_errors_total{kind=%q} %v, report %v", kind, got, n)
		}
	}

	// SIGTERM ends the linger; the run's own exit status stands.
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("SIGTERM did not end the linger within 5 s")
	}
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit %d", code)
	}

	// 6. The HTML report opens in the same browser with no network,
	// renders every chart without a console error, and its totals are
	// the JSON report's.
	b.mu.Lock()
	b.requests = nil
	b.mu.Unlock()
	if _, err := chromedp.Call(b.ctx, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{
		MatchedNetworkConditions: []*network.Conditions{{Offline: true, DownloadThroughput: -1, UploadThroughput: -1}}}); err != nil {
		t.Fatalf("offline: %v", err)
	}
	b.run(t, 10*time.Second, chromedp.Navigate("file://"+htmlPath), chromedp.WaitReady("#charts .chart canvas"))
	type reportView struct {
		Rendered bool              `json:"rendered"`
		Points   []int             `json:"points"`
		Totals   map[string]string `json:"totals"`
		Sections []string          `json:"sections"`
	}
	rv := eval[reportView](t, b, `(() => {
	  const r = window.barrageReport || {};
	  const totals = {};
	  for (const e of document.querySelectorAll("[id^=total-]")) totals[e.id.slice(6)] = e.getAttribute("data-value");
	  return { rendered: !!r.rendered, points: (r.plots || []).map(u => u.data[0].length), totals,
	    sections: Array.from(document.querySelectorAll("#sections section")).map(s => s.id) };
	})()`)
	if !rv.Rendered || len(rv.Points) != 8 {
		t.Fatalf("report: rendered %v, %d charts", rv.Rendered, len(rv.Points))
	}
	for i, n := range rv.Points {
		if n == 0 {
			t.Fatalf("report chart %d has no points (%v)", i, rv.Points)
		}
	}
	for _, k := range []string{"requests", "sent", "errors"} {
		if want := strconv.FormatFloat(num(t, rep, k), 'f', -1, 64); rv.Totals[k] != want {
			t.Fatalf("report %s %q, JSON %s", k, rv.Totals[k], want)
		}
	}
	if !strings.Contains(strings.Join(rv.Sections, " "), "steps") || !strings.Contains(strings.Join(rv.Sections, " "), "events") {
		t.Fatalf("report sections %v", rv.Sections)
	}
	b.mu.Lock()
	for _, u := range b.requests {
		if !strings.HasPrefix(u, "file://") {
			b.mu.Unlock()
			t.Fatalf("the HTML report asked the network for %s", u)
		}
	}
	b.mu.Unlock()
	b.check(t, "HTML report")

	// Sections the report's JSON may carry (thresholds, per-request-name
	// rows) are drawn when present: the same file with them spliced in.
	page2, err := os.ReadFile(htmlPath)
	if err != nil {
		t.Fatal(err)
	}
	extra := strings.Replace(string(page2), `{"report":{`, `{"report":{"thresholds":[`+
		`{"expr":"p99 < 10ms","value":12000,"unit":"us","value_text":"12.00ms","ok":false,"steps":[{"step":1,"value":9000,"value_text":"9.00ms","ok":true},{"step":2,"value":15000,"value_text":"15.00ms","ok":false}]},`+
		`{"expr":"errors < 1%","value":0,"unit":"%","value_text":"0%","ok":true}],`+
		`"retries":{"attempts":175,"logical":100,"retries":75,"by_cause":{"5xx":75},"succeeded_after_retry":38,"exhausted":12,"dropped":{},"end_to_end_us":{"p50":900,"p99":52000,"p999":90000}},`+
		`"by_request":[{"name":"login","method":"POST","path":"/login","sent_share":0.25,"sent":5,"requests":5,"errors":0,"rps":1,"latency_us":{"p50":800,"p99":1200,"p999":1300}}],`, 1)
	if extra == string(page2) {
		t.Fatal("the HTML report's data block does not start as expected")
	}
	extraPath := filepath.Join(dir, "extra.html")
	if err := os.WriteFile(extraPath, []byte(extra), 0o644); err != nil {
		t.Fatal(err)
	}
	b.run(t, 10*time.Second, chromedp.Navigate("file://"+extraPath), chromedp.WaitReady("#thresholds"))
	type extraView struct {
		Failed  int    `json:"failed"`
		Rows    int    `json:"rows"`
		Text    string `json:"text"`
		Names   string `json:"names"`
		Retries string `json:"retries"`
	}
	ev := eval[extraView](t, b, `(() => ({
	  failed: document.querySelectorAll("#thresholds tr.fail").length,
	  rows: document.querySelectorAll("#thresholds tr").length - 1,
	  text: document.querySelector("#thresholds").textContent,
	  names: (document.querySelector("#by-request") || {}).textContent || "",
	  retries: (document.querySelector("#retries") || {}).textContent || "" }))()`)
	if ev.Rows != 2 || ev.Failed != 1 || !strings.Contains(ev.Text, "2: 15.00ms ✗") || !strings.Contains(ev.Names, "login") || !strings.Contains(ev.Names, "1.2 ms") ||
		!strings.Contains(ev.Retries, "succeeded only after a retry38") || !strings.Contains(ev.Retries, "5xx 75") {
		t.Fatalf("extra sections: %+v", ev)
	}
	b.check(t, "HTML report with thresholds")
	t.Logf("whole test %s", time.Since(started).Round(time.Millisecond))
}
