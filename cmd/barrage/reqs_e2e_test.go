package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/barrage-load/barrage/internal/zktest"
)

// The request mix end to end: the flash sale (a POST of JSON with a random
// product, quantity and order id, a user and her bearer token from a CSV
// file, and a GET of a random product, 1:3, on a spike) against the
// built-in target and against nginx with an access log that shows what
// was rendered, from `run` and from two agents; bad input refused.

// nginx is an nginx started by a test on a free port, with a private
// prefix and an access log of one JSON object per request: method, URI,
// body and Authorization. Its one location proxies to itself so that the
// body is read (nginx logs $request_body only for a body it read).
type nginx struct {
	url, log string
	cacert   string // the CA of its certificate (https only)
	cmd      *exec.Cmd
}

func startNginx(t *testing.T) *nginx { return startNginxWith(t, false) }

// startNginxTLS is startNginx over https, with a certificate for
// 127.0.0.1 from a CA the test makes; cacert is that CA's file.
func startNginxTLS(t *testing.T) (n *nginx, cacert string) {
	n = startNginxWith(t, true)
	return n, n.cacert
}

func startNginxWith(t *testing.T, tlsOn bool) *nginx {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		bin = "/usr/sbin/nginx"
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("nginx is not installed: run scripts/install-deps.sh nginx (as root)")
	}
	dir := t.TempDir()
	port, err := zktest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	sinkPort, err := zktest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	n := &nginx{url: fmt.Sprintf("http://127.0.0.1:%d/", port), log: filepath.Join(dir, "access.log")}
	ssl := ""
	if tlsOn {
		ca := newCA(t)
		srv := ca.issue(t, dir, "nginx", false)
		n.url, n.cacert = fmt.Sprintf("https://127.0.0.1:%d/", port), ca.file
		ssl = fmt.Sprintf(" ssl;\n    ssl_certificate %s;\n    ssl_certificate_key %s;\n    ssl_protocols TLSv1.2 TLSv1.3", srv.cert, srv.key)
	}
	conf := fmt.Sprintf(`daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 4096; }
http {
  client_body_temp_path %[1]s/cb; proxy_temp_path %[1]s/p; fastcgi_temp_path %[1]s/f;
  uwsgi_temp_path %[1]s/u; scgi_temp_path %[1]s/s;
  log_format mix escape=json '{"m":"$request_method","u":"$request_uri","b":"$request_body","a":"$http_authorization","s":"$status"}';
  keepalive_requests 100000000;
  # The request body is read (so $request_body is logged) by proxying to
  # a sink server on a plain port of its own.
  upstream sink { server 127.0.0.1:%[5]d; keepalive 64; }
  server {
    listen 127.0.0.1:%[5]d backlog=4096;
    location / { access_log off; return 200 "ok"; }
  }
  server {
    listen 127.0.0.1:%[2]d backlog=4096%[4]s;
    location / {
      access_log %[3]s mix;
      proxy_pass http://sink/__sink;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`, dir, port, n.log, ssl, sinkPort)
	cf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	n.cmd = exec.Command(bin, "-p", dir, "-c", cf)
	n.cmd.Stderr = os.Stderr
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = n.cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		// SIGQUIT: a graceful stop, by PID.
		_ = n.cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = n.cmd.Process.Kill()
			<-done
		}
	})
	for i := 0; ; i++ {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			break
		}
		if i > 100 {
			b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx did not listen: %v\n%s", err, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return n
}

// logLine is one request as nginx logged it.
type logLine struct {
	Method string `json:"m"`
	URI    string `json:"u"`
	Body   string `json:"b"`
	Auth   string `json:"a"`
	Status string `json:"s"`
}

func (n *nginx) lines(t *testing.T) []logLine {
	t.Helper()
	f, err := os.Open(n.log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []logLine
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l logLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("access log line %q: %v", sc.Text(), err)
		}
		out = append(out, l)
	}
	return out
}

// writeFlash writes users.csv (users rows: user_id user-<i>, token
// tok-<i>-<hex>) and the flash-sale plan against url into dir; it returns
// the plan's path. The spike: 2500 req/s for 8 s, 5000 from 3 s to 5 s
// (25000 requests).
func writeFlash(t *testing.T, dir, url string, users int, extra string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("user_id,token\n")
	for i := 0; i < users; i++ {
		fmt.Fprintf(&b, "user-%d,tok-%d-%08x\n", i, i, uint32(i)*2654435761)
	}
	if err := os.WriteFile(filepath.Join(dir, "users.csv"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	plan := `target_url: ` + url + `
connections: 64
timeout: 5s
duration: 8s
rate: 2500
pattern: {type: spike, spike_rate: 5000, at: 3s, for: 2s}
seed: 20261126
headers: {Authorization: "Bearer {{users.token}}"}
data:
  users: {file: users.csv}
requests:
  - name: buy
    weight: 1
    method: POST
    path: /api/orders?seq={{seq}}
    headers: {Content-Type: application/json}
    body: '{"product":{{randInt 1 5000}},"quantity":{{randInt 1 5}},"user":"{{users.user_id}}","order":"{{uuid}}"}'
  - name: browse
    weight: 3
    path: /api/products/{{randInt 1 5000}}?seq={{seq}}
` + extra
	path := filepath.Join(dir, "flash.yaml")
	if err := os.WriteFile(path, []byte(plan), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// checkByRequest asserts that the report's rows per request add up to
// its totals, and returns the rows by name.
func checkByRequest(t *testing.T, rep map[string]any) map[string]map[string]any {
	t.Helper()
	rows, _ := rep["by_request"].([]any)
	if len(rows) != 2 {
		t.Fatalf("by_request: %v", rep["by_request"])
	}
	out := map[string]map[string]any{}
	sums := map[string]float64{}
	status := map[string]float64{}
	kinds := map[string]float64{}
	for _, r := range rows {
		row := r.(map[string]any)
		out[row["name"].(string)] = row
		for _, k := range []string{"sent", "requests", "failed", "unfinished", "errors", "http_errors"} {
			sums[k] += num(t, row, k)
		}
		for k, v := range row["status"].(map[string]any) {
			status[k] += v.(float64)
		}
		for k, v := range row["error_kinds"].(map[string]any) {
			kinds[k] += v.(float64)
		}
		if l := row["latency_us"].(map[string]any); num(t, row, "requests") > 0 && (l["p50"].(float64) <= 0 || l["p99"].(float64) < l["p50"].(float64)) {
			t.Fatalf("row %v: latency %v", row["name"], l)
		}
	}
	for _, k := range []string{"sent", "requests", "failed", "unfinished", "http_errors"} {
		if sums[k] != num(t, rep, k) {
			t.Fatalf("rows' %s add up to %v, the report says %v", k, sums[k], rep[k])
		}
	}
	// Connect errors belong to no request.
	if sums["errors"] != num(t, rep, "errors")-num(t, rep, "error_kinds", "connect") {
		t.Fatalf("rows' errors %v, report %v (connect %v)", sums["errors"], rep["errors"], num(t, rep, "error_kinds", "connect"))
	}
	for k, v := range rep["status"].(map[string]any) {
		if status[k] != v.(float64) {
			t.Fatalf("status %s: rows %v, report %v", k, status[k], v)
		}
	}
	for k, v := range rep["error_kinds"].(map[string]any) {
		if k != "connect" && kinds[k] != v.(float64) {
			t.Fatalf("error kind %s: rows %v, report %v", k, kinds[k], v)
		}
	}
	return out
}

// within asserts that got is want ± tol (absolute, as fractions).
func within(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	if math.Abs(got-want) > tol {
		t.Errorf("%s: %.4f, want %.4f ± %.2f", what, got, want, tol)
	} else {
		t.Logf("%s: %.4f (want %.4f ± %.2f)", what, got, want, tol)
	}
}

var (
	buyURI    = regexp.MustCompile(`^/api/orders\?seq=(\d+)$`)
	browseURI = regexp.MustCompile(`^/api/products/(\d+)\?seq=(\d+)$`)
	buyBody   = regexp.MustCompile(`^\{"product":(\d+),"quantity":(\d+),"user":"user-(\d+)","order":"([0-9a-f-]{36})"\}$`)
	authRE    = regexp.MustCompile(`^Bearer tok-(\d+)-[0-9a-f]{8}$`)
)

// logStats is what the access log shows of a flash sale.
type logStats struct {
	buy, browse int
	quantity    map[int]int
	users       map[int]int
	// usersBy counts each user by the part of the fleet that sent it
	// (seq mod parts).
	usersBy []map[int]bool
}

// checkFlashLog checks every logged request of a flash sale: each value
// rendered in its range, the token the user's own, every seq and order
// id distinct; and returns the counts.
func checkFlashLog(t *testing.T, lines []logLine, parts int) logStats {
	t.Helper()
	st := logStats{quantity: map[int]int{}, users: map[int]int{}}
	for i := 0; i < parts; i++ {
		st.usersBy = append(st.usersBy, map[int]bool{})
	}
	seqs := map[string]bool{}
	orders := map[string]bool{}
	products := map[string]bool{}
	for i, l := range lines {
		a := authRE.FindStringSubmatch(l.Auth)
		if a == nil {
			t.Fatalf("line %d: Authorization %q", i, l.Auth)
		}
		user, _ := strconv.Atoi(a[1])
		st.users[user]++
		var seq string
		switch {
		case l.Method == "POST" && buyURI.MatchString(l.URI):
			st.buy++
			seq = buyURI.FindStringSubmatch(l.URI)[1]
			g := buyBody.FindStringSubmatch(l.Body)
			if g == nil {
				t.Fatalf("line %d: buy body %q", i, l.Body)
			}
			p, _ := strconv.Atoi(g[1])
			q, _ := strconv.Atoi(g[2])
			if p < 1 || p > 5000 || q < 1 || q > 5 {
				t.Fatalf("line %d: product %d quantity %d", i, p, q)
			}
			// One row per request: the token is the user's own.
			if g[3] != a[1] {
				t.Fatalf("line %d: user-%s with the token of user %s", i, g[3], a[1])
			}
			if orders[g[4]] {
				t.Fatalf("line %d: order id %s twice", i, g[4])
			}
			orders[g[4]] = true
			st.quantity[q]++
			products[g[1]] = true
		case l.Method == "GET" && browseURI.MatchString(l.URI):
			st.browse++
			g := browseURI.FindStringSubmatch(l.URI)
			if p, _ := strconv.Atoi(g[1]); p < 1 || p > 5000 {
				t.Fatalf("line %d: product %d", i, p)
			}
			seq = g[2]
			if l.Body != "" {
				t.Fatalf("line %d: a GET with body %q", i, l.Body)
			}
		default:
			t.Fatalf("line %d: %s %s", i, l.Method, l.URI)
		}
		if seqs[seq] {
			t.Fatalf("line %d: seq %s twice", i, seq)
		}
		seqs[seq] = true
		n, _ := strconv.Atoi(seq)
		st.usersBy[n%parts][user] = true
	}
	if len(products) < 3000 {
		t.Errorf("only %d distinct products of 5000 in %d buys", len(products), st.buy)
	}
	return st
}

// checkFlashShares checks the proportions the weights and the random
// ranges ask, over at least 20000 requests, within 2 points.
func checkFlashShares(t *testing.T, st logStats) {
	t.Helper()
	n := st.buy + st.browse
	if n < 20000 {
		t.Fatalf("%d requests logged, want at least 20000", n)
	}
	within(t, "buy's share of the log", float64(st.buy)/float64(n), 0.25, 0.02)
	for q := 1; q <= 5; q++ {
		within(t, fmt.Sprintf("quantity %d's share of the buys", q), float64(st.quantity[q])/float64(st.buy), 0.2, 0.02)
	}
}

// checkReportVsLog: each request's answered count is at most what nginx
// logged of it (nginx also logs requests answered after barrage stopped
// reading), and nginx logged nothing that was not sent.
func checkReportVsLog(t *testing.T, rows map[string]map[string]any, st logStats) {
	t.Helper()
	for name, logged := range map[string]int{"buy": st.buy, "browse": st.browse} {
		r := rows[name]
		if a, s := num(t, r, "requests"), num(t, r, "sent"); float64(logged) < a || float64(logged) > s {
			t.Fatalf("%s: nginx logged %d, the report %v answered of %v sent", name, logged, a, s)
		}
	}
}

func runJSON(t *testing.T, args ...string) map[string]any {
	t.Helper()
	r := barrage(t, append(args, "--json", "-")...)
	if r.code != 0 {
		t.Fatalf("barrage %v: exit %d\n%s", args, r.code, r.stderr)
	}
	return r.report
}

// TestFlashSaleTarget runs the flash sale against the built-in target.
// The target URL comes from a function so that an https one (the TLS
// target) can be swapped in.
func TestFlashSaleTarget(t *testing.T) {
	for _, tgt := range []struct {
		name string
		url  func(t *testing.T) (url, planExtra string)
	}{
		{"plain", func(t *testing.T) (string, string) { return startTarget(t), "" }},
		{"tls", func(t *testing.T) (string, string) {
			u, ca := tlsTargetURL(t)
			return u, "cacert: " + ca + "\n"
		}},
	} {
		t.Run(tgt.name, func(t *testing.T) {
			url, extra := tgt.url(t)
			plan := writeFlash(t, t.TempDir(), url, 300, extra)
			rep := runJSON(t, "run", "-q", "--cores", "1", "-f", plan)
			checkAccounting(t, rep)
			rows := checkByRequest(t, rep)
			sent := num(t, rep, "sent")
			if sent < 20000 || num(t, rep, "errors") != 0 {
				t.Fatalf("%v sent, %v errors", sent, rep["errors"])
			}
			within(t, "buy's share of the sent", num(t, rows["buy"], "sent")/sent, 0.25, 0.02)
			if num(t, rep, "seed") != 20261126 {
				t.Fatalf("seed %v", rep["seed"])
			}
		})
	}
}

// TestFlashSaleNginxRun: the flash sale from `run`, as nginx saw it,
// over http and over https.
func TestFlashSaleNginxRun(t *testing.T) {
	t.Run("http", func(t *testing.T) { flashNginxRun(t, false) })
	t.Run("https", func(t *testing.T) { flashNginxRun(t, true) })
}

func flashNginxRun(t *testing.T, tlsOn bool) {
	ng := startNginxWith(t, tlsOn)
	extra := ""
	if tlsOn {
		extra = "cacert: " + ng.cacert + "\n"
	}
	plan := writeFlash(t, t.TempDir(), ng.url, 300, extra)
	rep := runJSON(t, "run", "-q", "--cores", "1", "-f", plan)
	checkAccounting(t, rep)
	rows := checkByRequest(t, rep)
	time.Sleep(200 * time.Millisecond) // the last responses' log lines
	st := checkFlashLog(t, ng.lines(t), 1)
	checkFlashShares(t, st)
	checkReportVsLog(t, rows, st)
	// One loop walks the users in order and wraps: each was used the
	// same number of times, give or take one.
	lo, hi := math.MaxInt, 0
	for u := 0; u < 300; u++ {
		lo, hi = min(lo, st.users[u]), max(hi, st.users[u])
	}
	if len(st.users) != 300 || hi-lo > 1 {
		t.Fatalf("%d users used, %d to %d times each", len(st.users), lo, hi)
	}
}

// TestFlashSaleNginxAgents: the flash sale from a coordinator and two
// agents (real ZooKeeper), over https. The agents draw distinct streams
// (every seq and order id distinct), each uses its own half of the users,
// and the merged report's rows add up.
func TestFlashSaleNginxAgents(t *testing.T) {
	zk := zktest.Start(t)
	ng, ca := startNginxTLS(t)
	// The bearer token comes whole from the data file on each agent's
	// box: no secret value travels through ZooKeeper.
	plan := writeFlash(t, t.TempDir(), ng.url, 300, "cacert: "+ca+"\n")
	startAgents(t, zk.Addr, 2)
	out := filepath.Join(t.TempDir(), "r.json")
	c := startProc(t, nil, "coord", "--zk", zk.Addr, "--agents", "2", "-q", "-f", plan, "--json", out)
	if code := c.wait(t, 90*time.Second); code != 0 {
		t.Fatalf("coord exit %d:\n%s", code, c.log.String())
	}
	rep := readReport(t, out)
	checkAccounting(t, rep)
	rows := checkByRequest(t, rep)
	time.Sleep(200 * time.Millisecond)
	st := checkFlashLog(t, ng.lines(t), 2)
	checkFlashShares(t, st)
	checkReportVsLog(t, rows, st)
	// The agents' users: disjoint halves (equal cores, equal weights).
	for u := range st.usersBy[0] {
		if st.usersBy[1][u] || u >= 150 {
			t.Fatalf("user %d sent by agent 0 (and by agent 1: %v)", u, st.usersBy[1][u])
		}
	}
	if len(st.usersBy[0]) != 150 || len(st.usersBy[1]) != 150 {
		t.Fatalf("agents used %d and %d users", len(st.usersBy[0]), len(st.usersBy[1]))
	}
}

// TestMixBadInput: an unknown variable, a missing data file or column,
// a bad targets file: refused at load with one line and exit 2, by run
// and by coord (before ZooKeeper is dialed).
func TestMixBadInput(t *testing.T) {
	dir := t.TempDir()
	good := writeFlash(t, dir, "http://127.0.0.1:1/", 10, "")
	src, _ := os.ReadFile(good)
	write := func(name, from, to string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(strings.Replace(string(src), from, to, 1)), 0o644)
		return p
	}
	unknown := write("unknown.yaml", "{{randInt 1 5}}", "{{randint 1 5}}")
	column := write("column.yaml", "{{users.user_id}}", "{{users.userid}}")
	missing := write("missing.yaml", "file: users.csv", "file: nobody.csv")
	os.WriteFile(filepath.Join(dir, "targets.txt"), []byte("GET http://127.0.0.1:1/a\n\nGET http://127.0.0.2:1/b\n"), 0o644)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown variable", []string{"-f", unknown}, unknown + `:17:55: request "buy" body: unknown variable "randint"`},
		{"missing column", []string{"-f", column}, column + `:17:85: request "buy" body: data "users" has no column "userid" (its columns: user_id, token)`},
		{"missing file", []string{"-f", missing}, "data users: cannot read " + filepath.Join(dir, "nobody.csv") + ": no such file or directory"},
		{"flag variable", []string{"-H", "X-Id: {{uuid 4}}", "http://127.0.0.1:1/"}, "header X-Id, column 8: uuid takes no arguments"},
		{"targets origin", []string{"--targets", filepath.Join(dir, "targets.txt")}, "targets.txt:3: http://127.0.0.2:1 is not on the first target's origin"},
	} {
		for _, cmd := range []string{"run", "coord"} {
			args := append([]string{cmd, "-q"}, tc.args...)
			if cmd == "coord" {
				args = append(args, "--zk", "127.0.0.1:1")
			}
			r := barrage(t, args...)
			lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
			if r.code != 2 || len(lines) != 1 || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("%s %s: exit %d, stderr %q\n  want one line with %q", cmd, tc.name, r.code, r.stderr, tc.want)
			}
		}
	}
	// A secret on set's command line is refused before anything is sent.
	r := barrage(t, "set", "--zk", "127.0.0.1:1", "-H", "Authorization: Bearer oops")
	if r.code != 2 || !strings.Contains(r.stderr, "must not be on the command line") || strings.Contains(r.stderr, "oops") {
		t.Errorf("set with a literal secret: exit %d, %q", r.code, r.stderr)
	}
}

// TestSecretsRedacted: secret header values (Authorization from a file,
// a header marked --secret-header, a Cookie) reach the target but appear
// nowhere in the report (text or JSON) nor on stderr; a header file's
// change is in force from the next interval on.
func TestSecretsRedacted(t *testing.T) {
	ng := startNginx(t)
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	os.WriteFile(tok, []byte("Bearer FIRST-SECRET-1\n"), 0o600)
	cookie := filepath.Join(dir, "cookie")
	os.WriteFile(cookie, []byte("sid=COOKIE-SECRET-3\n"), 0o600)
	targets := filepath.Join(dir, "targets.txt")
	os.WriteFile(targets, []byte("GET "+ng.url+"a\nX-Session: MARKED-SECRET-2\n\nGET "+ng.url+"b\n"), 0o644)
	p := startProc(t, nil, "run", "--cores", "1", "-r", "1000", "-d", "4s", "-c", "4", "--targets", targets,
		"--header-file", "Authorization="+tok, "-H", "Cookie: @"+cookie, "--secret-header", "X-Session", "--json", filepath.Join(dir, "r.json"))
	time.Sleep(1500 * time.Millisecond)
	os.WriteFile(tok, []byte("Bearer SECOND-SECRET-4\n"), 0o600)
	if code := p.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.log.String())
	}
	js, _ := os.ReadFile(filepath.Join(dir, "r.json"))
	out := p.log.String() + string(js)
	for _, s := range []string{"FIRST-SECRET-1", "MARKED-SECRET-2", "COOKIE-SECRET-3", "SECOND-SECRET-4"} {
		if strings.Contains(out, s) {
			t.Fatalf("%s shown:\n%s", s, out)
		}
	}
	if !strings.Contains(string(js), `"Authorization": "[redacted]"`) || !strings.Contains(string(js), `"X-Session": "[redacted]"`) ||
		!strings.Contains(p.log.String(), "header Authorization changed in its file") {
		t.Fatalf("no redacted headers in the JSON, or no change said:\n%s", out)
	}
	rep := readReport(t, filepath.Join(dir, "r.json"))
	rows := checkByRequest(t, rep)
	within(t, "target a's share", num(t, rows["GET /a"], "sent")/num(t, rep, "sent"), 0.5, 0.05)
	// nginx saw both tokens: the first until the change, the second after.
	time.Sleep(200 * time.Millisecond)
	seen := map[string]int{}
	late := 0
	for _, l := range ng.lines(t) {
		seen[l.Auth]++
		if l.Auth == "Bearer FIRST-SECRET-1" && seen["Bearer SECOND-SECRET-4"] > 0 {
			late++
		}
	}
	if seen["Bearer FIRST-SECRET-1"] < 500 || seen["Bearer SECOND-SECRET-4"] < 500 || late > 4 || len(seen) != 2 {
		t.Fatalf("nginx saw %v (%d old tokens after the first new one)", seen, late)
	}
}

// TestSetHeaderAcrossAgents: `barrage set -H 'Authorization: @-'` rotates
// the token on every agent at one boundary, under --zk-auth; the value
// reaches nginx and appears in no log or report. Without --zk-auth a
// secret is refused (exit 2).
func TestSetHeaderAcrossAgents(t *testing.T) {
	zk := zktest.Start(t)
	ng := startNginx(t)
	dir := t.TempDir()
	auth := filepath.Join(dir, "zk-auth")
	os.WriteFile(auth, []byte("fleet:s3cret-pw\n"), 0o600)
	tok := filepath.Join(dir, "old")
	os.WriteFile(tok, []byte("Bearer OLD-TOKEN-1\n"), 0o600)
	for i := 0; i < 2; i++ {
		startProc(t, nil, "agent", "--zk", zk.Addr, "--zk-auth", auth, "--name", "agent"+string(rune('A'+i)), "--cores", "1")
	}
	out := filepath.Join(dir, "r.json")
	lines := make(chan string, 100)
	c := startProc(t, lines, "coord", "--zk", zk.Addr, "--zk-auth", auth, "--agents", "2", "-c", "8", "-r", "1000", "-d", "7s",
		"-H", "Authorization: @"+tok, "--json", out, ng.url)
	waitLine(t, lines, " 2.0s]")
	set := exec.Command(binary, "set", "--zk", zk.Addr, "--zk-auth", auth, "-H", "Authorization: @-")
	set.Stdin = strings.NewReader("Bearer NEW-TOKEN-2\n")
	so, err := set.CombinedOutput()
	if err != nil || !strings.Contains(string(so), "took effect") {
		t.Fatalf("set: %v\n%s", err, so)
	}
	if code := c.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("coord exit %d:\n%s", code, c.log.String())
	}
	js, _ := os.ReadFile(out)
	all := c.log.String() + string(js) + string(so)
	if strings.Contains(all, "OLD-TOKEN-1") || strings.Contains(all, "NEW-TOKEN-2") || !strings.Contains(all, "header Authorization: [redacted]") {
		t.Fatalf("a token shown, or the change not said:\n%s", all)
	}
	time.Sleep(200 * time.Millisecond)
	seen := map[string]int{}
	late := 0
	for _, l := range ng.lines(t) {
		seen[l.Auth]++
		if l.Auth == "Bearer OLD-TOKEN-1" && seen["Bearer NEW-TOKEN-2"] > 0 {
			late++
		}
	}
	// Both agents switch at one boundary: a request sent before it may
	// be logged after one sent after it, one per connection at most.
	if seen["Bearer OLD-TOKEN-1"] < 1000 || seen["Bearer NEW-TOKEN-2"] < 1000 || late > 8 || len(seen) != 2 {
		t.Fatalf("nginx saw %v (%d old tokens after the first new one)", seen, late)
	}
	t.Logf("nginx saw %v; set: %s", seen, strings.TrimSpace(string(so)))
}

func TestSetSecretNeedsAuth(t *testing.T) {
	zk := zktest.Start(t)
	url := startTarget(t)
	startAgents(t, zk.Addr, 1)
	lines := make(chan string, 100)
	c := startProc(t, lines, "coord", "--zk", zk.Addr, "--agents", "1", "-c", "4", "-r", "200", "-d", "5s", url)
	waitLine(t, lines, " 1.0s]")
	set := exec.Command(binary, "set", "--zk", zk.Addr, "-H", "Authorization: @-")
	set.Stdin = strings.NewReader("Bearer NOPE\n")
	so, _ := set.CombinedOutput()
	if code := set.ProcessState.ExitCode(); code != 2 || !strings.Contains(string(so), "only under --zk-auth") || strings.Contains(string(so), "NOPE") {
		t.Fatalf("set without --zk-auth: exit %d\n%s", code, so)
	}
	// A header that is no secret goes through.
	set = exec.Command(binary, "set", "--zk", zk.Addr, "-H", "X-Trace: on")
	if so, err := set.CombinedOutput(); err != nil || !strings.Contains(string(so), "took effect") {
		t.Fatalf("set X-Trace: %v\n%s", err, so)
	}
	if code := c.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("coord exit %d:\n%s", code, c.log.String())
	}
}

// TestSteadyStateAllocationsMix is TestSteadyStateAllocations with a
// templated mix: two requests, a body with three variables, a bearer
// token from a data file.
func TestSteadyStateAllocationsMix(t *testing.T) {
	url := startTarget(t)
	plan := writeFlash(t, t.TempDir(), url, 1000, "")
	// The plan's open-model spike is replaced by the closed model, as
	// in TestSteadyStateAllocations.
	src, _ := os.ReadFile(plan)
	s := strings.NewReplacer("rate: 2500\n", "", "pattern: {type: spike, spike_rate: 5000, at: 3s, for: 2s}\n", "", "duration: 8s", "duration: 4s", "connections: 64", "connections: 16").Replace(string(src))
	os.WriteFile(plan, []byte(s), 0o644)
	r := barrage(t, "run", "-q", "--debug-stats", "--cores", "1", "-p", "4", "-f", plan)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	ds := debugStatsOf(t, r.stderr)
	t.Logf("%s", ds.line)
	if ds.responses < 10000 || ds.per >= 0.01 {
		t.Fatalf("%d allocations for %d responses (%.4f per response), want < 0.01", ds.allocs, ds.responses, ds.per)
	}
	if ds.gcs > 3 {
		t.Fatalf("%d GC cycles in the steady state", ds.gcs)
	}
}

// TestAgentHeaderFile: an agent's --header-file sets the header on every
// request of the test it runs (the value never travels through
// ZooKeeper: the coordinator runs without --zk-auth) and a change of the
// file is in force at once.
func TestAgentHeaderFile(t *testing.T) {
	zk := zktest.Start(t)
	ng := startNginx(t)
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	os.WriteFile(tok, []byte("Bearer AGENT-ONE\n"), 0o600)
	ag := startProc(t, nil, "agent", "--zk", zk.Addr, "--name", "agentA", "--cores", "1", "--header-file", "Authorization="+tok)
	lines := make(chan string, 100)
	c := startProc(t, lines, "coord", "--zk", zk.Addr, "--agents", "1", "-c", "4", "-r", "1000", "-d", "5s", ng.url)
	waitLine(t, lines, " 2.0s]")
	os.WriteFile(tok, []byte("Bearer AGENT-TWO\n"), 0o600)
	if code := c.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("coord exit %d:\n%s", code, c.log.String())
	}
	time.Sleep(200 * time.Millisecond)
	seen := map[string]int{}
	for _, l := range ng.lines(t) {
		seen[l.Auth]++
	}
	if seen["Bearer AGENT-ONE"] < 1000 || seen["Bearer AGENT-TWO"] < 1000 || len(seen) != 2 {
		t.Fatalf("nginx saw %v", seen)
	}
	log := ag.log.String() + c.log.String()
	if !strings.Contains(log, "header Authorization changed in its file") || strings.Contains(log, "AGENT-ONE") || strings.Contains(log, "AGENT-TWO") {
		t.Fatalf("agent and coordinator logs:\n%s", log)
	}
}
