package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/barrage-load/barrage/internal/zktest"
)

// End-to-end tests of HTTPS and --no-keepalive: the real binary against
// `barrage target --tls` and against nginx with ssl.

// tlsTargetURL starts `barrage target --tls args...` and returns its
// https URL and the file of its self-signed certificate.
func tlsTargetURL(t *testing.T, args ...string) (string, string) {
	t.Helper()
	tg := svStart(t, nil, append([]string{"--tls", "-q"}, args...)...)
	line := tg.waitFor(5*time.Second, "the certificate line", func(l string) bool {
		return strings.HasPrefix(l, "certificate ") && strings.HasSuffix(l, " (use --cacert)")
	})
	return "https://" + tg.addr + "/", strings.TrimSuffix(strings.TrimPrefix(line, "certificate "), " (use --cacert)")
}

func TestTLSRun(t *testing.T) {
	url, ca := tlsTargetURL(t)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"keep-alive", []string{"-c", "8"}},
		{"pipelined 16", []string{"-c", "8", "-p", "16"}},
		{"TLS 1.3 only", []string{"-c", "8", "--tls-min", "1.3"}},
		{"open model", []string{"-c", "16", "-r", "2000"}},
		{"TLS 1.2 with a chosen suite", []string{"-c", "4", "--ciphers", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"}},
	} {
		r := barrage(t, append(append([]string{"run", "-q", "--cores", "1", "-d", "1500ms", "--cacert", ca, "--json", "-"}, tc.args...), url)...)
		if r.code != 0 {
			t.Fatalf("%s: exit %d: %s", tc.name, r.code, r.stderr)
		}
		rep := r.report
		checkAccounting(t, rep)
		if num(t, rep, "requests") < 500 || num(t, rep, "errors") != 0 || rep["valid"] != true {
			t.Fatalf("%s: %v requests, %v errors, valid %v %v", tc.name, rep["requests"], rep["errors"], rep["valid"], rep["invalid_reasons"])
		}
		// Each connection's connect and handshake, apart from the
		// requests' latency.
		if c, h := num(t, rep, "connect_us", "count"), num(t, rep, "tls_handshake_us", "count"); c < 4 || c != h || num(t, rep, "tls_handshake_us", "p50") <= 0 {
			t.Fatalf("%s: %v connects, %v handshakes", tc.name, c, h)
		}
	}
	// The text report shows the handshake row.
	r := barrage(t, "run", "-q", "--cores", "1", "-c", "2", "-d", "500ms", "--cacert", ca, url)
	if r.code != 0 || !strings.Contains(r.stdout, "  TLS handshake ") || !strings.Contains(r.stdout, "  connect ") || !strings.Contains(r.stdout, "tls 0") {
		t.Fatalf("exit %d, text:\n%s", r.code, r.stdout)
	}
}

func TestTLSRunFailures(t *testing.T) {
	url, ca := tlsTargetURL(t)
	url12, ca12 := tlsTargetURL(t, "--tls-max", "1.2")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"self-signed, not trusted", []string{url}, "TLS handshake failed (unknown authority)"},
		{"wrong host name", []string{"--cacert", ca, "-H", "Host: wrong.example", url}, "TLS handshake failed (host name)"},
		{"TLS 1.3 against a TLS 1.2 server", []string{"--cacert", ca12, "--tls-min", "1.3", url12}, "TLS handshake failed (protocol version)"},
		{"https to a plain HTTP server", []string{"--insecure", strings.Replace(startTarget(t), "http://", "https://", 1)}, "TLS handshake failed (other)"},
	} {
		r := barrage(t, append([]string{"run", "-q", "-c", "2", "-d", "1s"}, tc.args...)...)
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		last := lines[len(lines)-1]
		if r.code != 1 || !strings.Contains(last, tc.want) || strings.Contains(r.stderr, "protocol 1") || strings.Contains(r.stderr, "panic") {
			t.Errorf("%s: exit %d, stderr %q (want exit 1 and %q)", tc.name, r.code, r.stderr, tc.want)
		}
	}
}

func TestTLSBadInput(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t)
	a, b := ca.issue(t, dir, "a", true), ca.issue(t, dir, "b", true)
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const https = "https://127.0.0.1:1/"
	for _, tc := range []struct {
		name, want string
		args       []string
	}{
		{"a certificate that does not parse", "cert " + garbage, []string{"--cert", garbage, "--key", a.key}},
		{"a key that does not match its certificate", "private key does not match public key", []string{"--cert", a.cert, "--key", b.key}},
		{"--cert without --key", "cert and key go together", []string{"--cert", a.cert}},
		{"--tls-min 1.4", `tls_min "1.4": want 1.2 or 1.3`, []string{"--tls-min", "1.4"}},
		{"an unknown cipher", `unknown cipher "TLS_FAST"`, []string{"--ciphers", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_FAST"}},
		{"a CA file that is not PEM", "no PEM certificate", []string{"--cacert", a.key}},
		{"a missing CA file", "no such file", []string{"--cacert", filepath.Join(dir, "none.pem")}},
		{"--insecure and --cacert", "not both", []string{"--insecure", "--cacert", ca.file}},
	} {
		wantBadInput(t, tc.name, tc.want, append(append([]string{"run", "-q"}, tc.args...), https)...)
	}
	wantBadInput(t, "--cacert with http", "cacert applies to https:// targets only", "run", "-q", "--cacert", ca.file, deadURL)
	wantBadInput(t, "--no-keepalive pipelined", "pipeline must be 1", "run", "-q", "--no-keepalive", "-p", "4", deadURL)
	wantBadInput(t, "-H Connection: close pipelined", "pipeline must be 1", "run", "-q", "-H", "Connection: close", "-p", "4", deadURL)
	wantBadInput(t, "-H Connection: upgrade", `header Connection: "upgrade"`, "run", "-q", "-H", "Connection: upgrade", deadURL)
	wantBadInput(t, "coord --tls-min 1.4", "want 1.2 or 1.3", "coord", "-q", "--zk", "127.0.0.1:1", "--tls-min", "1.4", https)
	// --insecure is warned about.
	r := barrage(t, "run", "-q", "-d", "1s", "--insecure", https)
	if !strings.Contains(r.stderr, "warning: --insecure") {
		t.Fatalf("no warning: %q", r.stderr)
	}
}

func TestNoKeepAliveRun(t *testing.T) {
	plain := startTarget(t)
	tlsURL, ca := tlsTargetURL(t)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"plain, closed", []string{"--no-keepalive", plain}},
		{"plain, Connection: close, open", []string{"-H", "Connection: close", "-r", "500", plain}},
		{"tls, closed", []string{"--no-keepalive", "--cacert", ca, tlsURL}},
		{"tls, open", []string{"--no-keepalive", "-r", "300", "--cacert", ca, tlsURL}},
		{"tls, closed, sessions resumed", []string{"--no-keepalive", "--tls-resume", "--cacert", ca, tlsURL}},
	} {
		r := barrage(t, append([]string{"run", "-q", "--cores", "1", "-c", "8", "-d", "1500ms", "--json", "-"}, tc.args...)...)
		if r.code != 0 {
			t.Fatalf("%s: exit %d: %s", tc.name, r.code, r.stderr)
		}
		rep := r.report
		checkAccounting(t, rep)
		reqs := num(t, rep, "requests")
		if reqs < 100 || num(t, rep, "errors") != 0 {
			t.Fatalf("%s: %v requests, %v errors", tc.name, reqs, rep["errors"])
		}
		// One request per connection: every response closed its
		// connection, each connection was timed; the connections
		// reopening are the plan's policy, not a failure.
		if num(t, rep, "client_closes") != reqs || num(t, rep, "connect_us", "count") < reqs || num(t, rep, "server_closes") != 0 {
			t.Fatalf("%s: %v requests, %v closed by the generator, %v connects, %v server closes", tc.name, reqs, rep["client_closes"], num(t, rep, "connect_us", "count"), rep["server_closes"])
		}
		if strings.HasPrefix(tc.args[len(tc.args)-1], "https") && num(t, rep, "tls_handshake_us", "count") < reqs {
			t.Fatalf("%s: %v handshakes for %v requests", tc.name, num(t, rep, "tls_handshake_us", "count"), reqs)
		}
		if rep["valid"] != true {
			t.Fatalf("%s: not valid: %v", tc.name, rep["invalid_reasons"])
		}
	}
}

func TestTLSPlanFile(t *testing.T) {
	url, ca := tlsTargetURL(t)
	dir := t.TempDir()
	// A relative path is the plan file's folder's.
	b, err := os.ReadFile(ca)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	plan := filepath.Join(dir, "plan.yaml")
	if err := os.WriteFile(plan, []byte("target_url: "+url+"\ncacert: ca.pem\ntls_min: 1.3\nconnections: 4\nduration: 1s\npipeline: 4\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := barrage(t, "run", "-q", "--cores", "1", "-f", plan, "--json", "-")
	if r.code != 0 || num(t, r.report, "requests") < 100 || num(t, r.report, "errors") != 0 {
		t.Fatalf("exit %d: %s %v", r.code, r.stderr, r.report["errors"])
	}
}

// TestSteadyStateAllocationsTLS is TestSteadyStateAllocations over TLS:
// no allocation per request once the connections are open.
func TestSteadyStateAllocationsTLS(t *testing.T) {
	url, ca := tlsTargetURL(t)
	for _, p := range []string{"1", "4"} {
		r := barrage(t, "run", "-q", "--debug-stats", "--cores", "1", "-c", "16", "-p", p, "-d", "4s", "--cacert", ca, url)
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		ds := debugStatsOf(t, r.stderr)
		t.Logf("-p %s: %s", p, ds.line)
		// A count, not a timing.
		if ds.responses < 5000 || ds.per >= 0.01 || ds.gcs > 3 {
			t.Fatalf("-p %s: %d allocations for %d responses (%.4f per response), %d GC cycles", p, ds.allocs, ds.responses, ds.per, ds.gcs)
		}
	}
}

// TestClusterTLS: an https plan across the fleet. The plan carries the
// certificate's path; each agent reads the file from its own disk (here
// the same box); an agent that cannot read it refuses the test.
func TestClusterTLS(t *testing.T) {
	zk := zktest.Start(t)
	url, ca := tlsTargetURL(t)
	startAgents(t, zk.Addr, 2)
	out := filepath.Join(t.TempDir(), "r.json")
	c := startProc(t, nil, "coord", "--zk", zk.Addr, "--agents", "2", "-c", "16", "-r", "300", "-d", "3s",
		"--cacert", ca, "--tls-min", "1.3", "--no-keepalive", "--json", out, url)
	if code := c.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("coord exit %d:\n%s", code, c.log.String())
	}
	rep := readReport(t, out)
	agents := agentsOf(t, rep)
	reqs := num(t, rep, "requests")
	if len(agents) != 2 || reqs < 500 || num(t, rep, "errors") != 0 {
		t.Fatalf("%d agents, %v requests, %v errors", len(agents), reqs, rep["errors"])
	}
	// The agents' handshakes and closes travel in their snapshots.
	if num(t, rep, "tls_handshake_us", "count") < reqs || num(t, rep, "client_closes") != reqs {
		t.Fatalf("%v handshakes, %v closes for %v requests", num(t, rep, "tls_handshake_us", "count"), rep["client_closes"], reqs)
	}

	// A key file no agent has: each refuses the test, and it does not run.
	zk2 := zktest.Start(t)
	startAgents(t, zk2.Addr, 1)
	missing := filepath.Join(t.TempDir(), "none.key")
	c = startProc(t, nil, "coord", "--zk", zk2.Addr, "--agents", "1", "-c", "2", "-d", "2s",
		"--cacert", ca, "--cert", ca, "--key", missing, "--json", filepath.Join(t.TempDir(), "r2.json"), url)
	if code := c.wait(t, 60*time.Second); code == 0 || !strings.Contains(c.log.String(), "none.key") {
		t.Fatalf("coord exit %d with a key no agent has:\n%s", code, c.log.String())
	}
}

// ---- nginx with ssl ----

// testCA signs the certificates of one test (ECDSA P-256).
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string
}

type issued struct{ cert, key string }

func newCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "barrage e2e CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	file := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, file: file}
}

// issue writes NAME.pem and NAME.key in dir: a server certificate for
// 127.0.0.1 and localhost, or a client one.
func (ca *testCA) issue(t *testing.T, dir, name string, client bool) issued {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	if client {
		tmpl.ExtKeyUsage, tmpl.DNSNames, tmpl.IPAddresses = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, nil, nil
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	out := issued{cert: filepath.Join(dir, name+".pem"), key: filepath.Join(dir, name+".key")}
	if err := os.WriteFile(out.cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out.key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return out
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// nginxTLS starts nginx with ssl on free ports, a private config and
// prefix, stopped by PID: server blocks for TLS 1.2 and 1.3, for TLS 1.2
// only, and for client certificates signed by ca. It logs whether each
// request's session was reused. It returns the three ports and the log.
func nginxTLS(t *testing.T, ca *testCA, srv issued) (both, only12, mtls int, log string) {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		if _, err := os.Stat("/usr/sbin/nginx"); err != nil {
			t.Skip("nginx is not installed (scripts/install-deps.sh nginx)")
		}
		bin = "/usr/sbin/nginx"
	}
	dir := t.TempDir()
	both, only12, mtls = freePort(t), freePort(t), freePort(t)
	log = filepath.Join(dir, "access.log")
	conf := fmt.Sprintf(`daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 1024; }
http {
  client_body_temp_path %[1]s/cb; proxy_temp_path %[1]s/p; fastcgi_temp_path %[1]s/f;
  uwsgi_temp_path %[1]s/u; scgi_temp_path %[1]s/s;
  log_format reuse "$ssl_protocol $ssl_session_reused";
  access_log %[2]s reuse;
  keepalive_requests 1000000;
  ssl_certificate %[3]s; ssl_certificate_key %[4]s;
  server { listen 127.0.0.1:%[5]d ssl; ssl_protocols TLSv1.2 TLSv1.3; location / { return 200 "ok"; } }
  server { listen 127.0.0.1:%[6]d ssl; ssl_protocols TLSv1.2; location / { return 200 "ok"; } }
  server { listen 127.0.0.1:%[7]d ssl; ssl_protocols TLSv1.2 TLSv1.3; ssl_verify_client on; ssl_client_certificate %[8]s;
           location / { return 200 "ok"; } }
}
`, dir, log, srv.cert, srv.key, both, only12, mtls, ca.file)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-c", filepath.Join(dir, "nginx.conf"))
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	for _, p := range []int{both, only12, mtls} {
		deadline := time.Now().Add(5 * time.Second)
		for {
			c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-done:
				t.Fatalf("nginx ended: %s", out.String())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("nginx is not listening on %d: %s", p, out.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return both, only12, mtls, log
}

func TestTLSAgainstNginx(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t)
	srv := ca.issue(t, dir, "server", false)
	cli := ca.issue(t, dir, "client", true)
	both, only12, mtls, log := nginxTLS(t, ca, srv)
	url := func(port int) string { return fmt.Sprintf("https://127.0.0.1:%d/", port) }
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"TLS 1.3 keep-alive", []string{"--tls-min", "1.3", url(both)}},
		{"TLS 1.3 pipelined 8", []string{"--tls-min", "1.3", "-p", "8", url(both)}},
		{"TLS 1.2 only, a chosen suite", []string{"--ciphers", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", url(only12)}},
		{"TLS 1.2 pipelined", []string{"-p", "8", url(only12)}},
		{"open model", []string{"-r", "1000", url(both)}},
		{"client certificate", []string{"--cert", cli.cert, "--key", cli.key, url(mtls)}},
		{"no keep-alive", []string{"--no-keepalive", url(both)}},
	} {
		r := barrage(t, append([]string{"run", "-q", "--cores", "1", "-c", "8", "-d", "1500ms", "--cacert", ca.file, "--json", "-"}, tc.args...)...)
		if r.code != 0 {
			t.Fatalf("%s: exit %d: %s", tc.name, r.code, r.stderr)
		}
		checkAccounting(t, r.report)
		if num(t, r.report, "requests") < 100 || num(t, r.report, "errors") != 0 || num(t, r.report, "status", "200") != num(t, r.report, "requests") {
			t.Fatalf("%s: %v requests, %v errors, status %v", tc.name, r.report["requests"], r.report["errors"], r.report["status"])
		}
		if num(t, r.report, "tls_handshake_us", "count") < 8 {
			t.Fatalf("%s: %v handshakes", tc.name, num(t, r.report, "tls_handshake_us", "count"))
		}
	}
	// nginx logged every request with its protocol; none resumed yet.
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), " r\n") || !strings.Contains(string(b), "TLSv1.3 .") || !strings.Contains(string(b), "TLSv1.2 .") {
		t.Fatalf("nginx's log: %d bytes, reused sessions or a version missing", len(b))
	}
	// --tls-resume: later connections resume from nginx's tickets.
	r := barrage(t, "run", "-q", "--cores", "1", "-c", "4", "-d", "1s", "--no-keepalive", "--tls-resume", "--cacert", ca.file, "--json", "-", url(both))
	b2, _ := os.ReadFile(log)
	if r.code != 0 || strings.Count(string(b2[len(b):]), " r\n") < int(num(t, r.report, "requests"))/2 {
		t.Fatalf("exit %d, %d of %v requests on resumed sessions", r.code, strings.Count(string(b2[len(b):]), " r\n"), r.report["requests"])
	}
	// Refusals name their reason. (nginx never refuses a client
	// certificate in the handshake: it answers 400; the engine's tests
	// check that refusal against Go servers.)
	for _, tc := range []struct {
		name, want string
		args       []string
	}{
		{"TLS 1.3 against a TLS 1.2 nginx", "(protocol version)", []string{"--cacert", ca.file, "--tls-min", "1.3", url(only12)}},
		{"not trusted", "(unknown authority)", []string{url(both)}},
	} {
		r := barrage(t, append([]string{"run", "-q", "--cores", "1", "-c", "2", "-d", "1s"}, tc.args...)...)
		if r.code != 1 || !strings.Contains(r.stderr+r.stdout, tc.want) {
			t.Errorf("%s: exit %d, stderr %q", tc.name, r.code, r.stderr)
		}
	}
}
