package main

import (
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/barrage-load/barrage/internal/zktest"
)

// gate is a TCP relay to ZooKeeper that the test opens and cuts: shut,
// it takes connections and closes them at once, as an unreachable server
// would look to a client that keeps retrying.
type gate struct {
	ln    net.Listener
	to    string
	mu    sync.Mutex
	open  bool
	conns []net.Conn
}

func newGate(t *testing.T, to string) *gate {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &gate{ln: ln, to: to}
	t.Cleanup(func() { ln.Close(); g.set(false) })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			g.mu.Lock()
			if !g.open {
				g.mu.Unlock()
				c.Close()
				continue
			}
			up, err := net.Dial("tcp", to)
			if err != nil {
				g.mu.Unlock()
				c.Close()
				continue
			}
			g.conns = append(g.conns, c, up)
			g.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
	return g
}

// set opens the gate, or shuts it and cuts every relayed connection.
func (g *gate) set(open bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.open = open
	if !open {
		for _, c := range g.conns {
			c.Close()
		}
		g.conns = nil
	}
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	r, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return r.StatusCode, string(b)
}

// waitStatus polls url until it answers code, for at most d.
func waitStatus(t *testing.T, url string, code int, d time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		c, body := httpGet(t, url)
		if c == code {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d %q, want %d within %s", url, c, body, code, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var agentServing = regexp.MustCompile(`serving (http://[^ ]+/)metrics`)

// TestAgentProbesAndMetrics: an agent's /healthz answers while it lives;
// /readyz flips to ready when it registers (ZooKeeper reachable at last),
// to not ready while it runs a test and when ZooKeeper is cut off; its
// /metrics parse and count what the coordinator's report says it sent.
// The coordinator's own --http serves the agents' table.
func TestAgentProbesAndMetrics(t *testing.T) {
	zk := zktest.Start(t)
	g := newGate(t, zk.Addr)
	lines := make(chan string, 100)
	startProc(t, lines, "agent", "--zk", g.ln.Addr().String(), "--zk-wait", "60s", "--name", "probed", "--cores", "1", "--http", "0")
	var base string
	deadline := time.After(15 * time.Second)
	for base == "" {
		select {
		case l := <-lines:
			if m := agentServing.FindStringSubmatch(l); m != nil {
				base = m[1]
			}
		case <-deadline:
			t.Fatal("the agent did not say where it serves")
		}
	}
	if c, _ := httpGet(t, base+"healthz"); c != 200 {
		t.Fatalf("healthz %d", c)
	}
	if c, body := httpGet(t, base+"readyz"); c != 503 || !strings.Contains(body, "not registered") {
		t.Fatalf("readyz before ZooKeeper is reachable: %d %q", c, body)
	}
	g.set(true)
	waitStatus(t, base+"readyz", 200, 20*time.Second)

	// A test: the agent is busy (not ready) while it runs.
	url := startTarget(t)
	coordLines := make(chan string, 100)
	co := startProc(t, coordLines, "coord", "-q", "--zk", zk.Addr, "--agents", "1", "-c", "4", "-r", "1000", "-d", "3s",
		"--http", "0", "--json", t.TempDir()+"/r.json", url)
	var dash string
	deadline = time.After(15 * time.Second)
	for dash == "" {
		select {
		case l := <-coordLines:
			if m := dashLine.FindStringSubmatch(l); m != nil {
				dash = m[1]
			}
		case <-deadline:
			t.Fatal("the coordinator printed no dashboard line")
		}
	}
	body := waitStatus(t, base+"readyz", 503, 20*time.Second)
	if !strings.Contains(body, "running test") {
		t.Fatalf("readyz during the test: %q", body)
	}
	var cur struct {
		Agents []struct {
			Name     string `json:"name"`
			Status   string `json:"status"`
			Requests uint64 `json:"requests"`
		} `json:"agents"`
	}
	for i := 0; ; i++ {
		getJSONURL(t, dash+"api/metrics", &cur)
		if len(cur.Agents) == 1 && cur.Agents[0].Requests > 0 {
			break
		}
		if i > 100 {
			t.Fatalf("the coordinator's dashboard has no agent row: %+v", cur)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if cur.Agents[0].Name != "probed" || cur.Agents[0].Status != "ok" {
		t.Fatalf("agent row %+v", cur.Agents[0])
	}
	if code := co.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("coord exit %d:\n%s", code, co.log.String())
	}
	waitStatus(t, base+"readyz", 200, 10*time.Second)
	rep := readReport(t, co.cmd.Args[len(co.cmd.Args)-2])

	// The agent's /metrics: parsed by Prometheus' parser, its counters are
	// what the report says this one agent sent and got.
	fams := scrapeMetrics(t, base+"metrics")
	get := func(name, label, val string) float64 {
		f := fams[name]
		if f == nil {
			t.Fatalf("no %s", name)
		}
		for _, m := range f.Metric {
			ok := label == ""
			for _, l := range m.Label {
				ok = ok || (l.GetName() == label && l.GetValue() == val)
			}
			if ok {
				if f.GetType() == dto.MetricType_COUNTER {
					return m.Counter.GetValue()
				}
				return m.Gauge.GetValue()
			}
		}
		t.Fatalf("no %s{%s=%q}", name, label, val)
		return 0
	}
	if got, want := get("barrage_requests_sent_total", "", ""), num(t, rep, "sent"); got != want || want == 0 {
		t.Fatalf("agent sent %v, report %v", got, want)
	}
	if got, want := get("barrage_responses_total", "class", "2xx"), num(t, rep, "requests"); got != want {
		t.Fatalf("agent 2xx %v, report responses %v", got, want)
	}
	if get("barrage_test_running", "", "") != 0 || get("barrage_rate_requests_per_second", "", "") != 0 {
		t.Fatal("an idle agent says a test runs")
	}

	// ZooKeeper cut off: not ready.
	g.set(false)
	body = waitStatus(t, base+"readyz", 503, 10*time.Second)
	if !strings.Contains(body, "unreachable") && !strings.Contains(body, "expired") {
		t.Fatalf("readyz with ZooKeeper cut off: %q", body)
	}
}

// scrapeMetrics reads url (a /metrics page) with Prometheus' own text
// parser.
func scrapeMetrics(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	r, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r.Body)
	if err != nil {
		t.Fatalf("%s: %v", url, err)
	}
	return fams
}
