package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// End-to-end tests of `barrage target`: the real binary, its flags, its
// logs, and the figures `barrage run` reports against it.

// svTarget is a `barrage target` process started by a test and stopped by
// PID when the test ends.
type svTarget struct {
	t    *testing.T
	cmd  *exec.Cmd
	addr string
	done chan struct{}

	mu     sync.Mutex
	stderr []string
	change chan struct{} // closed and replaced at each stderr line
}

// svStart starts `barrage target --listen 127.0.0.1:0 --loops 1 args...`,
// under wrap (e.g. a shell that lowers a limit) if given, and waits for
// its "listening on" line.
func svStart(t *testing.T, wrap []string, args ...string) *svTarget {
	t.Helper()
	argv := append(append(wrap, binary, "target", "--listen", "127.0.0.1:0", "--loops", "1"), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tg := &svTarget{t: t, cmd: cmd, done: make(chan struct{}), change: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			tg.mu.Lock()
			tg.stderr = append(tg.stderr, sc.Text())
			close(tg.change)
			tg.change = make(chan struct{})
			tg.mu.Unlock()
		}
		_ = cmd.Wait()
		close(tg.done)
	}()
	t.Cleanup(func() { tg.stop() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "listening on ") {
		t.Fatalf("target's first line %q: %v; stderr:\n%s", line, err, tg.log())
	}
	tg.addr = strings.TrimSpace(strings.TrimPrefix(line, "listening on "))
	return tg
}

// stop sends SIGTERM and returns the exit status (-1 if it had to be
// killed).
func (tg *svTarget) stop() int {
	select {
	case <-tg.done:
		return tg.cmd.ProcessState.ExitCode()
	default:
	}
	_ = tg.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-tg.done:
		return tg.cmd.ProcessState.ExitCode()
	case <-time.After(5 * time.Second):
		_ = tg.cmd.Process.Kill()
		<-tg.done
		return -1
	}
}

func (tg *svTarget) alive() bool {
	select {
	case <-tg.done:
		return false
	default:
		return true
	}
}

func (tg *svTarget) log() string {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return strings.Join(tg.stderr, "\n")
}

// linesWith returns the stderr lines containing s.
func (tg *svTarget) linesWith(s string) []string {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	var out []string
	for _, l := range tg.stderr {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return out
}

// waitFor waits until a stderr line satisfies ok, and returns it.
func (tg *svTarget) waitFor(d time.Duration, what string, ok func(string) bool) string {
	tg.t.Helper()
	deadline := time.After(d)
	seen := 0
	for {
		tg.mu.Lock()
		lines, change := tg.stderr, tg.change
		tg.mu.Unlock()
		for ; seen < len(lines); seen++ {
			if ok(lines[seen]) {
				return lines[seen]
			}
		}
		select {
		case <-change:
		case <-deadline:
			tg.t.Fatalf("no %s on the target's stderr within %s:\n%s", what, d, tg.log())
		case <-tg.done:
			tg.t.Fatalf("the target exited waiting for %s:\n%s", what, tg.log())
		}
	}
}

var servedLine = regexp.MustCompile(`^served (\d+) req/s total (\d+)$`)

// settledTotal waits for a second in which the target served nothing and
// returns its running total then: what it wrote in all.
func (tg *svTarget) settledTotal() uint64 {
	tg.t.Helper()
	var total uint64
	tg.waitFor(15*time.Second, "a quiet second", func(l string) bool {
		m := servedLine.FindStringSubmatch(l)
		if m == nil {
			return false
		}
		total, _ = strconv.ParseUint(m[2], 10, 64)
		return m[1] == "0"
	})
	return total
}

// svRun runs `barrage run` and decodes its JSON report whatever its exit
// status (a run the target never answered may be judged a failure).
func svRun(t *testing.T, args ...string) map[string]any {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"run", "-q", "--json", "-"}, args...)...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(60*time.Second, func() { _ = cmd.Process.Kill() })
	_ = cmd.Wait()
	timer.Stop()
	var rep map[string]any
	if err := json.Unmarshal(so.Bytes(), &rep); err != nil {
		t.Fatalf("barrage run %v: exit %d, no JSON report (%v):\n%s", args, cmd.ProcessState.ExitCode(), err, se.String())
	}
	return rep
}

func svNum(rep map[string]any, path ...string) float64 {
	var v any = rep
	for _, p := range path {
		m, _ := v.(map[string]any)
		v = m[p]
	}
	f, _ := v.(float64)
	return f
}

// TestServerFDExhaustion runs the target with 48 file descriptors and
// opens more connections than it can hold. It must stay alive, log the
// shortage once, keep serving the connections it has, and take each
// waiting one as soon as a descriptor frees up: closing one connection
// lets exactly one more in (issue 9).
func TestServerFDExhaustion(t *testing.T) {
	const conns = 80
	tg := svStart(t, []string{"/bin/sh", "-c", `ulimit -n 48 && exec "$0" "$@"`})
	t0 := time.Now()

	type client struct {
		c        net.Conn
		answered chan struct{}
	}
	answers := make(chan int, conns)
	clients := make([]*client, conns)
	for i := range clients {
		c, err := net.DialTimeout("tcp", tg.addr, 5*time.Second)
		if err != nil {
			t.Fatalf("dial %d: %v (the kernel queues connections the server has not accepted)", i, err)
		}
		t.Cleanup(func() { c.Close() })
		cl := &client{c: c, answered: make(chan struct{})}
		clients[i] = cl
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		go func() {
			_ = c.SetReadDeadline(time.Now().Add(60 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: "GET"})
			if err == nil && resp.StatusCode == 200 {
				close(cl.answered)
				answers <- i
			}
		}()
	}
	// collect waits for want more answers (and then a little, to see
	// that no more come); it returns the indexes answered.
	collect := func(want int, what string) []int {
		t.Helper()
		var got []int
		deadline := time.After(15 * time.Second)
		for len(got) < want {
			select {
			case i := <-answers:
				got = append(got, i)
			case <-deadline:
				t.Fatalf("%s: %d answers, want %d; target stderr:\n%s", what, len(got), want, tg.log())
			}
		}
		select {
		case i := <-answers:
			t.Fatalf("%s: answer %d beyond the %d expected", what, i, want)
		case <-time.After(500 * time.Millisecond):
		}
		return got
	}
	// The first ones are answered until the descriptors run out; how
	// many depends on what the process holds besides (about 15).
	var open []int
	deadline := time.After(15 * time.Second)
wait:
	for {
		select {
		case i := <-answers:
			open = append(open, i)
		case <-time.After(time.Second):
			break wait
		case <-deadline:
			break wait
		}
	}
	if len(open) < 10 || len(open) >= conns {
		t.Fatalf("%d of %d connections answered under a limit of 48 descriptors:\n%s", len(open), conns, tg.log())
	}
	tg.waitFor(5*time.Second, "an accept failure line", func(l string) bool {
		return strings.Contains(l, "cannot accept connections") && strings.Contains(l, "too many open files") &&
			strings.Contains(l, "the limit is 48")
	})
	if !tg.alive() {
		t.Fatal("the target died")
	}
	served, first := len(open), len(open)

	// One connection closed: exactly one more is answered.
	clients[open[0]].c.Close()
	open = open[1:]
	open = append(open, collect(1, "after closing one connection")...)
	served++

	// Ten closed: ten more.
	for _, i := range open[:10] {
		clients[i].c.Close()
	}
	open = open[10:]
	open = append(open, collect(10, "after closing ten connections")...)
	served += 10

	// Every answered one closed: the rest are answered.
	for _, i := range open {
		clients[i].c.Close()
	}
	collect(conns-served, "after closing every answered connection")

	// Logged once per episode, and at most once in ten seconds: never
	// once per failed accept.
	elapsed := time.Since(t0)
	failLines := tg.linesWith("cannot accept connections")
	again := tg.waitFor(5*time.Second, "an accepting-again line", func(l string) bool {
		return strings.Contains(l, "accepting connections again")
	})
	var attempts int
	if _, err := fmt.Sscanf(again[strings.Index(again, "(")+1:], "%d attempts failed", &attempts); err != nil {
		t.Fatalf("line %q: %v", again, err)
	}
	if max := 1 + int(elapsed/(10*time.Second)); len(failLines) > max || attempts < 2 {
		t.Fatalf("%d accept failure lines in %s (at most %d), the first episode had %d failures:\n%s",
			len(failLines), elapsed, max, attempts, tg.log())
	}
	t.Logf("%d connections answered before the limit; the target's accept log:\n%s\n%s",
		first, strings.Join(failLines, "\n"), strings.Join(tg.linesWith("accepting connections again"), "\n"))
	// Every response written is counted, and the process ends cleanly.
	if total := tg.settledTotal(); total != conns {
		t.Fatalf("the target says it served %d, the clients read %d", total, conns)
	}
	if code := tg.stop(); code != 0 {
		t.Fatalf("exit status %d", code)
	}
}

// TestServerModesAgainstRun runs `barrage run` against each misbehaving
// mode and checks what the report shows against what the mode promises,
// and that the target's running total counts every response it wrote.
func TestServerModesAgainstRun(t *testing.T) {
	for _, tc := range []struct {
		name  string
		args  []string
		run   []string
		check func(t *testing.T, rep map[string]any)
	}{
		{"fail rate", []string{"--fail-rate", "0.3"}, []string{"-c", "8", "-d", "2s"}, func(t *testing.T, rep map[string]any) {
			n, fails := svNum(rep, "requests"), svNum(rep, "status", "503")
			// 5 standard deviations of a binomial either side.
			sd := 5 * math.Sqrt(n*0.3*0.7)
			if n < 100 || fails < 0.3*n-sd || fails > 0.3*n+sd || fails+svNum(rep, "status", "200") != n {
				t.Fatalf("%v of %v responses failed at --fail-rate 0.3: %v", fails, n, rep["status"])
			}
		}},
		{"outage windows", []string{"--fail-every", "1s", "--fail-for", "300ms", "--fail-status", "502"}, []string{"-c", "8", "-d", "3s"}, func(t *testing.T, rep map[string]any) {
			n, fails := svNum(rep, "requests"), svNum(rep, "status", "502")
			// Two 300 ms windows in a 3 s run: about a fifth.
			if fails == 0 || fails > 0.5*n {
				t.Fatalf("%v of %v responses failed with outages of 300ms every 1s: %v", fails, n, rep["status"])
			}
		}},
		{"rate limit", []string{"--rate-limit", "500"}, []string{"-c", "8", "-d", "2s"}, func(t *testing.T, rep map[string]any) {
			ok, limited, secs := svNum(rep, "status", "200"), svNum(rep, "status", "429"), svNum(rep, "duration_seconds")
			// At most 500 a second plus the burst of 50.
			if ok == 0 || ok > 500*(secs+0.2)+50 || limited == 0 {
				t.Fatalf("%v allowed, %v limited in %vs at --rate-limit 500: %v", ok, limited, secs, rep["status"])
			}
		}},
		{"capacity", []string{"--capacity", "500"}, []string{"-c", "8", "-d", "2s"}, func(t *testing.T, rep map[string]any) {
			// 8 requests in flight in a queue served at 500/s: each waits
			// for the 8 (16 ms); and never more than 500 a second.
			if rps, p50 := svNum(rep, "rps"), svNum(rep, "latency_us", "p50"); rps > 550 || p50 < 10000 {
				t.Fatalf("at --capacity 500 with 8 connections: %v req/s, p50 %vµs", rps, p50)
			}
		}},
		{"capacity, open model past the knee", []string{"--capacity", "500"}, []string{"-c", "32", "-r", "1000", "-d", "2s"}, func(t *testing.T, rep map[string]any) {
			// Twice the capacity for 2 s: the queue grows by 500 a
			// second; the last ones wait about a second.
			if p99 := svNum(rep, "latency_us", "p99"); p99 < 300000 {
				t.Fatalf("at twice --capacity 500: p99 %vµs, want the queue to show", p99)
			}
		}},
		{"close", []string{"--close", "--body-size", "100"}, []string{"-c", "4", "-d", "2s"}, func(t *testing.T, rep map[string]any) {
			if n := svNum(rep, "requests"); n == 0 || svNum(rep, "status", "200") != n {
				t.Fatalf("--close: %v responses, statuses %v, errors %v", n, rep["status"], rep["error_kinds"])
			}
		}},
		{"silent", []string{"--silent"}, []string{"-c", "4", "-d", "1s"}, func(t *testing.T, rep map[string]any) {
			if n := svNum(rep, "requests"); n != 0 {
				t.Fatalf("--silent: %v responses", n)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tg := svStart(t, nil, tc.args...)
			rep := svRun(t, append(tc.run, "http://"+tg.addr+"/")...)
			tc.check(t, rep)
			// The target's total counts what it wrote: every response
			// the run read, and perhaps some it sent when the run was
			// ending (counted by the run as unfinished or failed).
			total := float64(tg.settledTotal())
			got := svNum(rep, "requests")
			sent := svNum(rep, "sent")
			if total < got || total > sent {
				t.Fatalf("the target served %v; the run read %v of %v sent", total, got, sent)
			}
		})
	}
}

// TestServerTLS serves HTTPS with the certificate made at start, and
// checks it with Go's client and, when installed, openssl s_client and
// curl; then a server that offers only TLS 1.2.
func TestServerTLS(t *testing.T) {
	tg := svStart(t, nil, "--tls", "--fail-rate", "0.5", "--seed", "3")
	line := tg.waitFor(5*time.Second, "the certificate line", func(l string) bool {
		return strings.HasPrefix(l, "certificate ") && strings.HasSuffix(l, " (use --cacert)")
	})
	certFile := strings.TrimSuffix(strings.TrimPrefix(line, "certificate "), " (use --cacert)")
	pemBytes, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		t.Fatalf("no certificate in %s", certFile)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}}}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	_, port, _ := net.SplitHostPort(tg.addr)
	codes := map[int]int{}
	for i := range 100 {
		host := []string{"127.0.0.1", "localhost"}[i%2]
		resp, err := client.Get("https://" + net.JoinHostPort(host, port) + "/")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		codes[resp.StatusCode]++
		if resp.TLS.NegotiatedProtocol != "http/1.1" || resp.TLS.Version != tls.VersionTLS13 {
			t.Fatalf("ALPN %q, version %#x", resp.TLS.NegotiatedProtocol, resp.TLS.Version)
		}
	}
	if codes[200]+codes[503] != 100 || codes[503] < 25 || codes[503] > 75 {
		t.Fatalf("--fail-rate 0.5 over TLS: %v", codes)
	}

	extra := 0
	if openssl, err := exec.LookPath("openssl"); err == nil {
		out, _ := exec.Command(openssl, "s_client", "-connect", tg.addr, "-CAfile", certFile,
			"-servername", "localhost", "-alpn", "http/1.1", "-verify_return_error").CombinedOutput()
		for _, want := range []string{"Verify return code: 0 (ok)", "ALPN protocol: http/1.1", "TLSv1.3"} {
			if !bytes.Contains(out, []byte(want)) {
				t.Fatalf("openssl s_client: no %q in:\n%s", want, out)
			}
		}
	} else {
		t.Logf("openssl is not installed: s_client not tried")
	}
	if curl, err := exec.LookPath("curl"); err == nil {
		out, err := exec.Command(curl, "-sS", "--http1.1", "--cacert", certFile, "-o", "/dev/null",
			"-w", "%{http_code}", "https://localhost:"+port+"/").CombinedOutput()
		if err != nil || (string(out) != "200" && string(out) != "503") {
			t.Fatalf("curl: %v %s", err, out)
		}
		extra++
	} else {
		t.Logf("curl is not installed: not tried")
	}
	if total := tg.settledTotal(); total != uint64(100+extra) {
		t.Fatalf("the target served %d over TLS, the clients read %d", total, 100+extra)
	}

	// Only TLS 1.2: a client that wants 1.3 is refused with a version
	// alert; one that takes 1.2 gets it.
	tg12 := svStart(t, nil, "--tls", "--tls-max", "1.2")
	line = tg12.waitFor(5*time.Second, "the certificate line", func(l string) bool { return strings.HasPrefix(l, "certificate ") })
	pemBytes, _ = os.ReadFile(strings.TrimSuffix(strings.TrimPrefix(line, "certificate "), " (use --cacert)"))
	pool = x509.NewCertPool()
	pool.AppendCertsFromPEM(pemBytes)
	_, err = tls.Dial("tcp", tg12.addr, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13})
	if err == nil || !strings.Contains(err.Error(), "protocol version") {
		t.Fatalf("TLS 1.3 client against --tls-max 1.2: %v", err)
	}
	c, err := tls.Dial("tcp", tg12.addr, &tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatal(err)
	}
	if v := c.ConnectionState().Version; v != tls.VersionTLS12 {
		t.Fatalf("version %#x against --tls-max 1.2", v)
	}
	c.Close()

	// The certificate file goes when the target stops.
	if code := tg.stop(); code != 0 {
		t.Fatalf("exit status %d", code)
	}
	if _, err := os.Stat(certFile); err == nil {
		t.Fatalf("%s left behind", certFile)
	}
}

// TestServerTargetFlags: every mode is documented in --help, and bad
// values are refused with one line and exit status 2.
func TestServerTargetFlags(t *testing.T) {
	r := barrage(t, "target", "--help")
	for _, f := range []string{"--fail-rate", "--fail-status", "--fail-every", "--fail-for", "--rate-limit",
		"--capacity", "--seed", "--close", "--silent", "--tls", "--tls-cert", "--tls-key", "--tls-min", "--tls-max", "--alpn",
		"--delay", "--stall-every"} {
		if r.code != 0 || strings.Count(r.stdout, f) < 2 { // the flag list and the text
			t.Errorf("--help: %s is not documented in the text and the flag list", f)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--fail-rate", "1.5"}, "fail rate"},
		{[]string{"--fail-every", "1s"}, "fail every"},
		{[]string{"--rate-limit", "-3"}, "rate limit"},
		{[]string{"--capacity", "NaN"}, "capacity"},
		{[]string{"--seed", "0"}, "seed"},
		{[]string{"--tls", "--tls-min", "1.4"}, "tls-min"},
		{[]string{"--tls", "--tls-min", "1.3", "--tls-max", "1.2"}, "minimum"},
		{[]string{"--tls-key", "k.pem"}, "need --tls"},
		{[]string{"--tls-cert", "/nonexistent/c.pem", "--tls-key", "/nonexistent/k.pem"}, "certificate"},
		{[]string{"--tls", "--tls-cert", "c.pem"}, "both or neither"},
	} {
		r := barrage(t, append([]string{"target", "--listen", "127.0.0.1:0"}, tc.args...)...)
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		if r.code != 2 || len(lines) != 1 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q (want exit 2 and one line about %q)", tc.args, r.code, r.stderr, tc.want)
		}
	}
}
