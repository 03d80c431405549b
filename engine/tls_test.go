package engine

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/barrage-load/barrage/proto"
	"github.com/barrage-load/barrage/server"
)

// tlsTarget is an HTTPS server for the engine's tests, on crypto/tls with
// a goroutine per connection: it answers every request (pipelined ones
// included) and notes what each handshake negotiated.
type tlsTarget struct {
	addr string
	// split cuts each response's head in two records; body is the body
	// size (one write: crypto/tls cuts a large one into many records).
	split bool
	body  int

	mu       sync.Mutex
	sni      map[string]int
	alpn     map[string]int
	versions map[uint16]int
	suites   map[uint16]int
	resumed  int
	peers    int // handshakes with a client certificate
	shakes   atomic.Int64
	served   atomic.Int64
}

func startTLSTarget(t *testing.T, cfg *tls.Config, split bool, body int) *tlsTarget {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tt := &tlsTarget{addr: ln.Addr().String(), split: split, body: body, sni: map[string]int{},
		alpn: map[string]int{}, versions: map[uint16]int{}, suites: map[uint16]int{}}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	stop := make(chan struct{})
	t.Cleanup(func() {
		close(stop)
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			select {
			case <-stop:
				mu.Unlock()
				c.Close()
				return
			default:
			}
			conns[c] = true
			wg.Add(1)
			mu.Unlock()
			go func() {
				defer wg.Done()
				defer func() { mu.Lock(); delete(conns, c); mu.Unlock(); c.Close() }()
				tt.serve(tls.Server(c, cfg))
			}()
		}
	}()
	return tt
}

func (tt *tlsTarget) serve(c *tls.Conn) {
	if err := c.Handshake(); err != nil {
		return
	}
	tt.shakes.Add(1)
	cs := c.ConnectionState()
	tt.mu.Lock()
	tt.sni[cs.ServerName]++
	tt.alpn[cs.NegotiatedProtocol]++
	tt.versions[cs.Version]++
	tt.suites[cs.CipherSuite]++
	if cs.DidResume {
		tt.resumed++
	}
	if len(cs.PeerCertificates) > 0 {
		tt.peers++
	}
	tt.mu.Unlock()
	body := strings.Repeat("b", tt.body)
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, req.Body)
		head := fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n", len(body))
		if req.Close {
			head += "Connection: close\r\n"
		}
		head += "\r\n"
		if tt.split {
			// Two records, cut inside the head.
			if _, err := c.Write([]byte(head[:20])); err != nil {
				return
			}
			head = head[20:]
		}
		if _, err := c.Write([]byte(head + body)); err != nil {
			return
		}
		tt.served.Add(1)
		if req.Close {
			return
		}
	}
}

func (tt *tlsTarget) count(m map[string]int, k string) int {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	return m[k]
}

// tlsOptions are the engine options for an https target at addr with
// the plan's TLS fields, naming serverName.
func tlsOptions(t *testing.T, addr, serverName string, p proto.Plan) Options {
	t.Helper()
	cfg, err := TLSConfig(&p, serverName)
	if err != nil {
		t.Fatal(err)
	}
	return Options{Addr: addr, Request: request(serverName, p.NoKeepAlive), TLS: cfg, NoKeepAlive: p.NoKeepAlive}
}

// checkOpened asserts that every connection opened recorded its connect
// and its handshake, and that the server saw as many handshakes.
func checkOpened(t *testing.T, total *proto.Stats, tt *tlsTarget) {
	t.Helper()
	if total.Connect == nil || total.Handshake == nil {
		t.Fatalf("connect or handshake histogram missing: %v %v", total.Connect, total.Handshake)
	}
	nc, nh := total.Connect.TotalCount(), total.Handshake.TotalCount()
	if nc != nh || nc == 0 {
		t.Fatalf("%d connects and %d handshakes recorded", nc, nh)
	}
	if tt != nil && int64(tt.shakes.Load()) < nh {
		t.Fatalf("the server saw %d handshakes, the engine recorded %d", tt.shakes.Load(), nh)
	}
}

func TestTLSClosedModel(t *testing.T) {
	ca := newTestCA(t)
	srv := ca.issue(t, false, time.Time{}, time.Time{}, "localhost", "127.0.0.1")
	for _, tc := range []struct {
		name     string
		max      uint16
		pipeline int
		split    bool
		body     int
		// crypto/tls's record layer rather than the engine's: TLS 1.3
		// with resumption, or a suite the engine does not speak.
		resume bool
		suite  string
	}{
		{"tls1.3 keep-alive", tls.VersionTLS13, 1, false, 2, false, ""},
		{"tls1.2 keep-alive", tls.VersionTLS12, 1, false, 2, false, ""},
		{"tls1.3 pipelined, heads cut across records", tls.VersionTLS13, 8, true, 2, false, ""},
		{"tls1.2 pipelined, 100 KB bodies over many records", tls.VersionTLS12, 4, false, 100 << 10, false, ""},
		{"tls1.3 pipelined, 100 KB bodies", tls.VersionTLS13, 4, true, 100 << 10, false, ""},
		{"tls1.2 AES-256", tls.VersionTLS12, 4, true, 2, false, "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"},
		{"crypto/tls records: tls1.3 resumable, pipelined, cut heads", tls.VersionTLS13, 8, true, 2, true, ""},
		{"crypto/tls records: tls1.3 resumable, 100 KB bodies", tls.VersionTLS13, 4, false, 100 << 10, true, ""},
		{"crypto/tls records: tls1.2 chacha20", tls.VersionTLS12, 4, true, 2, false, "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tt := startTLSTarget(t, &tls.Config{Certificates: []tls.Certificate{srv.pair}, MaxVersion: tc.max, NextProtos: []string{"http/1.1"}}, tc.split, tc.body)
			p := proto.Plan{CACert: ca.file, TLSResume: tc.resume}
			if tc.suite != "" {
				p.Ciphers = []string{tc.suite}
			}
			o := tlsOptions(t, tt.addr, "localhost", p)
			o.Schedule, o.Pipeline = closedPlan(4, 700*time.Millisecond), tc.pipeline
			total, _ := run(t, o, nil)
			checkAccounting(t, total)
			if total.Responses < 20 || total.TotalErrors() != 0 || total.Status[200] != total.Responses {
				t.Fatalf("%d responses, errors %v", total.Responses, total.Errors)
			}
			checkOpened(t, total, tt)
			if n := tt.count(tt.sni, "localhost"); n == 0 || n != int(tt.shakes.Load()) {
				t.Fatalf("SNI: %v", tt.sni)
			}
			if n := tt.count(tt.alpn, "http/1.1"); n != int(tt.shakes.Load()) {
				t.Fatalf("ALPN: %v", tt.alpn)
			}
			tt.mu.Lock()
			defer tt.mu.Unlock()
			if tt.versions[tc.max] != int(tt.shakes.Load()) {
				t.Fatalf("versions %v, want %x", tt.versions, tc.max)
			}
			// Bytes count the wire: records are larger than what they
			// carry.
			if min := total.Responses * uint64(tc.body+38); total.BytesIn < min {
				t.Fatalf("bytes in %d, less than the %d of the plaintext", total.BytesIn, min)
			}
		})
	}
}

func TestTLSOpenModel(t *testing.T) {
	ca := newTestCA(t)
	srv := ca.issue(t, false, time.Time{}, time.Time{}, "127.0.0.1")
	tt := startTLSTarget(t, &tls.Config{Certificates: []tls.Certificate{srv.pair}}, false, 2)
	o := tlsOptions(t, tt.addr, "127.0.0.1", proto.Plan{CACert: ca.file})
	o.Schedule = []proto.Segment{{Duration: time.Second, From: 1000, To: 1000, Connections: 4}}
	total, _ := run(t, o, nil)
	checkAccounting(t, total)
	checkOpenAccounting(t, total)
	// A count, not a timing: 1000 came due; what was not sent is
	// accounted for.
	if total.Scheduled != 1000 || total.Sent < 900 || total.TotalErrors() != 0 {
		t.Fatalf("scheduled %d, sent %d, errors %v", total.Scheduled, total.Sent, total.Errors)
	}
	checkOpened(t, total, tt)
}

func TestTLSBuiltInTarget(t *testing.T) {
	// The built-in target over TLS (its own self-signed certificate),
	// the way `barrage target --tls` serves it.
	s := startTarget(t, server.Options{TLS: &server.TLSOptions{}})
	o := tlsOptions(t, s.Addr(), "127.0.0.1", proto.Plan{CACert: s.CertFile()})
	o.Schedule, o.Pipeline = closedPlan(4, 700*time.Millisecond), 4
	total, _ := run(t, o, nil)
	checkAccounting(t, total)
	if total.Responses < 20 || total.TotalErrors() != 0 {
		t.Fatalf("%d responses, errors %v", total.Responses, total.Errors)
	}
	checkOpened(t, total, nil)
}

// failFirst runs an engine whose every first connection should fail its
// handshake, and returns the TLS error.
func failFirst(t *testing.T, o Options) *TLSError {
	t.Helper()
	o.Schedule, o.CPUs = closedPlan(2, time.Second), []int{0}
	e, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.Run(context.Background())
	var te *TLSError
	if !errors.Is(err, ErrNoConnection) || !errors.As(err, &te) {
		t.Fatalf("want a TLS failure of the first connections, got %v", err)
	}
	return te
}

func TestTLSFailureReasons(t *testing.T) {
	ca := newTestCA(t)
	good := ca.issue(t, false, time.Time{}, time.Time{}, "localhost")
	expired := ca.issue(t, false, time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour), "localhost")
	other := newTestCA(t)
	client := ca.issue(t, true, time.Time{}, time.Time{}, "client")
	serve := func(t *testing.T, cfg *tls.Config) string {
		return startTLSTarget(t, cfg, false, 2).addr
	}
	for _, tc := range []struct {
		name   string
		server func(t *testing.T) string
		plan   proto.Plan
		host   string
		want   proto.TLSReason
	}{
		{"self-signed, not trusted", func(t *testing.T) string {
			return serve(t, &tls.Config{Certificates: []tls.Certificate{good.pair}})
		}, proto.Plan{CACert: other.file}, "localhost", proto.TLSUnknownAuthority},
		{"wrong host name", func(t *testing.T) string {
			return serve(t, &tls.Config{Certificates: []tls.Certificate{good.pair}})
		}, proto.Plan{CACert: ca.file}, "wrong.example", proto.TLSHostName},
		{"expired certificate", func(t *testing.T) string {
			return serve(t, &tls.Config{Certificates: []tls.Certificate{expired.pair}})
		}, proto.Plan{CACert: ca.file}, "localhost", proto.TLSBadCertificate},
		{"client certificate required, none given (TLS 1.2)", func(t *testing.T) string {
			return serve(t, &tls.Config{Certificates: []tls.Certificate{good.pair}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.pool, MaxVersion: tls.VersionTLS12})
		}, proto.Plan{CACert: ca.file}, "localhost", proto.TLSBadCertificate},
		{"client certificate from another authority (TLS 1.2)", func(t *testing.T) string {
			return serve(t, &tls.Config{Certificates: []tls.Certificate{good.pair}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: other.pool, MaxVersion: tls.VersionTLS12})
		}, proto.Plan{CACert: ca.file, Cert: client.certFile, Key: client.keyFile}, "localhost", proto.TLSBadCertificate},
		{"server offers only TLS 1.2, client asks 1.3", func(t *testing.T) string {
			return serve(t, &tls.Config{Certificates: []tls.Certificate{good.pair}, MaxVersion: tls.VersionTLS12})
		}, proto.Plan{CACert: ca.file, TLSMin: "1.3"}, "localhost", proto.TLSProtocolVersion},
		{"a server that never answers the hello", func(t *testing.T) string {
			return silentServer(t)
		}, proto.Plan{Insecure: true}, "localhost", proto.TLSHandshakeTimeout},
		{"a plain HTTP server", func(t *testing.T) string {
			return startTarget(t, server.Options{}).Addr()
		}, proto.Plan{Insecure: true}, "localhost", proto.TLSOther},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := tlsOptions(t, tc.server(t), tc.host, tc.plan)
			o.ConnectTimeout = 300 * time.Millisecond
			if te := failFirst(t, o); te.Reason != tc.want {
				t.Fatalf("reason %s, want %s (%v)", te.Reason, tc.want, te.Err)
			}
		})
	}
}

func TestTLS13ClientCertificateRefused(t *testing.T) {
	// In TLS 1.3 the client's handshake ends before the server checks
	// the client's certificate: the refusal comes as an alert on the
	// first read, on the loop. Every connection opens, and fails so.
	ca := newTestCA(t)
	srv := ca.issue(t, false, time.Time{}, time.Time{}, "localhost")
	tt := startTLSTarget(t, &tls.Config{Certificates: []tls.Certificate{srv.pair}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.pool}, false, 2)
	o := tlsOptions(t, tt.addr, "localhost", proto.Plan{CACert: ca.file})
	o.Schedule = closedPlan(2, 500*time.Millisecond)
	total, _ := run(t, o, nil)
	checkAccounting(t, total)
	if total.Responses != 0 || total.TLS[proto.TLSBadCertificate] == 0 || total.Errors[proto.ErrTLS] != total.TLS[proto.TLSBadCertificate] {
		t.Fatalf("%d responses, errors %v, tls %v", total.Responses, total.Errors, total.TLS)
	}
}

func TestTLSErrorsCounted(t *testing.T) {
	// The first 10 handshakes get a certificate for the right name, the
	// rest one for another: one request per connection, so the run goes
	// on with every later handshake failing, counted by reason.
	ca := newTestCA(t)
	good := ca.issue(t, false, time.Time{}, time.Time{}, "localhost")
	bad := ca.issue(t, false, time.Time{}, time.Time{}, "other.example")
	var n atomic.Int64
	cfg := &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		if n.Add(1) <= 10 {
			return &good.pair, nil
		}
		return &bad.pair, nil
	}}
	tt := startTLSTarget(t, cfg, false, 2)
	o := tlsOptions(t, tt.addr, "localhost", proto.Plan{CACert: ca.file, NoKeepAlive: true})
	o.Schedule = closedPlan(2, 700*time.Millisecond)
	total, _ := run(t, o, nil)
	checkAccounting(t, total)
	var sum uint64
	for _, x := range total.TLS {
		sum += x
	}
	if total.TLS[proto.TLSHostName] == 0 || sum != total.Errors[proto.ErrTLS] || sum != total.TLS[proto.TLSHostName] {
		t.Fatalf("tls errors %d by reason %v", total.Errors[proto.ErrTLS], total.TLS)
	}
	// Failed handshakes are not failed requests, nor connect errors.
	if total.Failed() != 0 || total.Errors[proto.ErrConnect] != 0 || total.Responses == 0 || total.Responses > 10 {
		t.Fatalf("%d responses, errors %v", total.Responses, total.Errors)
	}
}

func TestNoKeepAlive(t *testing.T) {
	ca := newTestCA(t)
	srv := ca.issue(t, false, time.Time{}, time.Time{}, "localhost")
	closed := closedPlan(4, 700*time.Millisecond)
	open := []proto.Segment{{Duration: 700 * time.Millisecond, From: 300, To: 300, Connections: 16}}
	for _, tc := range []struct {
		name  string
		tls   bool
		sched []proto.Segment
	}{
		{"plain, closed model", false, closed},
		{"plain, open model", false, open},
		{"tls, closed model", true, closed},
		{"tls, open model", true, open},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var o Options
			var tt *tlsTarget
			if tc.tls {
				tt = startTLSTarget(t, &tls.Config{Certificates: []tls.Certificate{srv.pair}}, false, 2)
				o = tlsOptions(t, tt.addr, "localhost", proto.Plan{CACert: ca.file, NoKeepAlive: true})
			} else {
				s := startTarget(t, server.Options{})
				o = Options{Addr: s.Addr(), Request: request(s.Addr(), true), NoKeepAlive: true}
			}
			o.Schedule = tc.sched
			total, _ := run(t, o, nil)
			checkAccounting(t, total)
			if total.Responses < 20 || total.TotalErrors() != 0 {
				t.Fatalf("%d responses, errors %v", total.Responses, total.Errors)
			}
			// Every response closed its connection, by the generator;
			// every connection opened was connected (and shook hands).
			if total.ClientCloses != total.Responses || total.ServerCloses != 0 {
				t.Fatalf("%d responses, %d closed by the generator, %d by the server", total.Responses, total.ClientCloses, total.ServerCloses)
			}
			if n := total.Connect.TotalCount(); n < int64(total.Responses) {
				t.Fatalf("%d connects for %d responses", n, total.Responses)
			}
			if tc.tls {
				checkOpened(t, total, tt)
				if tt.resumed != 0 {
					t.Fatalf("%d sessions resumed without tls_resume", tt.resumed)
				}
			}
		})
	}
}

func TestTLSResume(t *testing.T) {
	ca := newTestCA(t)
	srv := ca.issue(t, false, time.Time{}, time.Time{}, "localhost")
	for _, max := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		tt := startTLSTarget(t, &tls.Config{Certificates: []tls.Certificate{srv.pair}, MaxVersion: max}, false, 2)
		o := tlsOptions(t, tt.addr, "localhost", proto.Plan{CACert: ca.file, NoKeepAlive: true, TLSResume: true})
		o.Schedule = closedPlan(2, 500*time.Millisecond)
		total, _ := run(t, o, nil)
		checkAccounting(t, total)
		tt.mu.Lock()
		resumed, shakes := tt.resumed, int(tt.shakes.Load())
		tt.mu.Unlock()
		// The first connections have no ticket yet; later ones resume.
		if total.Responses < 20 || resumed == 0 || resumed < shakes/2 {
			t.Fatalf("version %x: %d responses, %d of %d handshakes resumed", max, total.Responses, resumed, shakes)
		}
	}
}

func TestTLSClientCertificate(t *testing.T) {
	ca := newTestCA(t)
	srv := ca.issue(t, false, time.Time{}, time.Time{}, "localhost")
	cli := ca.issue(t, true, time.Time{}, time.Time{}, "client")
	tt := startTLSTarget(t, &tls.Config{Certificates: []tls.Certificate{srv.pair}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.pool}, false, 2)
	o := tlsOptions(t, tt.addr, "localhost", proto.Plan{CACert: ca.file, Cert: cli.certFile, Key: cli.keyFile})
	o.Schedule = closedPlan(2, 500*time.Millisecond)
	total, _ := run(t, o, nil)
	checkAccounting(t, total)
	tt.mu.Lock()
	defer tt.mu.Unlock()
	if total.Responses < 20 || total.TotalErrors() != 0 || tt.peers != int(tt.shakes.Load()) || tt.peers == 0 {
		t.Fatalf("%d responses, errors %v, %d of %d handshakes with a client certificate", total.Responses, total.Errors, tt.peers, tt.shakes.Load())
	}
}

func TestTLSCiphersAndSNI(t *testing.T) {
	ca := newTestCA(t)
	srv := ca.issue(t, false, time.Time{}, time.Time{}, "vhost.example")
	tt := startTLSTarget(t, &tls.Config{Certificates: []tls.Certificate{srv.pair}, MaxVersion: tls.VersionTLS12}, false, 2)
	const suite = "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"
	// A Host header names the host for TLS too (SNI and verification),
	// while the connection goes to the URL's address.
	p := proto.Plan{CACert: ca.file, Ciphers: []string{suite}, Headers: map[string]string{"host": "vhost.example:8443"}}
	o := tlsOptions(t, tt.addr, serverName(&p, "127.0.0.1"), p)
	o.Schedule = closedPlan(2, 500*time.Millisecond)
	total, _ := run(t, o, nil)
	checkAccounting(t, total)
	id, _ := proto.CipherSuite(suite)
	tt.mu.Lock()
	defer tt.mu.Unlock()
	if total.Responses == 0 || total.TotalErrors() != 0 || tt.suites[id] != int(tt.shakes.Load()) || tt.sni["vhost.example"] != int(tt.shakes.Load()) {
		t.Fatalf("%d responses, errors %v, suites %v, SNI %v", total.Responses, total.Errors, tt.suites, tt.sni)
	}
}

func TestTLSConfigRefusals(t *testing.T) {
	ca := newTestCA(t)
	a := ca.issue(t, true, time.Time{}, time.Time{}, "a")
	b := ca.issue(t, true, time.Time{}, time.Time{}, "b")
	garbage := writePEM(t, "garbage.pem", "NOTHING", []byte("not a certificate"))
	for _, tc := range []struct {
		name string
		plan proto.Plan
		want string
	}{
		{"a CA file with no certificate", proto.Plan{CACert: garbage}, "no PEM certificate"},
		{"a missing CA file", proto.Plan{CACert: "/nonexistent/ca.pem"}, "no such file"},
		{"a certificate that does not parse", proto.Plan{Cert: garbage, Key: a.keyFile}, "cert "},
		{"a key that does not match its certificate", proto.Plan{Cert: a.certFile, Key: b.keyFile}, "does not match"},
		{"a certificate without its key", proto.Plan{Cert: a.certFile}, "go together"},
		{"TLS 1.4", proto.Plan{TLSMin: "1.4"}, "want 1.2 or 1.3"},
		{"an unknown cipher", proto.Plan{Ciphers: []string{"TLS_FOO"}}, "unknown cipher"},
	} {
		_, err := TLSConfig(&tc.plan, "localhost")
		if !errors.Is(err, proto.ErrBadPlan) || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v (want one line with %q)", tc.name, err, tc.want)
		}
	}
}

// TestTLSPipeResumesPartialRecords checks what the design leans on (see
// tls.go): crypto/tls keeps a record it got part of, and its state, when
// the pipe says "would block", so feeding it a byte at a time works.
func TestTLSPipeResumesPartialRecords(t *testing.T) {
	ca := newTestCA(t)
	srv := ca.issue(t, false, time.Time{}, time.Time{}, "localhost")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	const msg = "a message longer than one byte, in one record"
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		sc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{srv.pair}})
		if sc.Handshake() == nil {
			_, _ = sc.Write([]byte(msg))
			_, _ = io.Copy(io.Discard, sc)
		}
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var st tlsState
	// TLS 1.3 with a session cache: crypto/tls keeps the records (it
	// must read the tickets).
	cfg := &tls.Config{ServerName: "localhost", RootCAs: ca.pool, ClientSessionCache: tls.NewLRUClientSessionCache(1)}
	if _, err := handshake(context.Background(), &st, nc, cfg, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if st.fast || st.tc == nil {
		t.Fatal("the engine's record layer took a TLS 1.3 connection with a session cache")
	}
	plain := make([]byte, 1024)
	var got []byte
	one := make([]byte, 1)
	blocked := 0
	for len(got) < len(msg) {
		if _, err := nc.Read(one); err != nil {
			t.Fatalf("after %q: %v", got, err)
		}
		st.pipe.in = one
		for {
			n, err := st.tc.Read(plain)
			got = append(got, plain[:n]...)
			if err == errWouldBlock {
				blocked++
				break
			}
			if err != nil {
				t.Fatalf("after %q: %v", got, err)
			}
		}
	}
	if string(got) != msg || blocked < len(msg) {
		t.Fatalf("read %q after %d would-blocks", got, blocked)
	}
	// And the write side goes to the pipe's buffer, not the socket.
	if _, err := st.tc.Write([]byte("x")); err != nil || len(st.pipe.out) == 0 {
		t.Fatalf("write: %v, %d bytes in the pipe", err, len(st.pipe.out))
	}
}
