package server

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// tlsClient trusts the certificate in file.
func tlsClient(t *testing.T, file string) (*http.Client, *tls.Config) {
	t.Helper()
	pemBytes, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		t.Fatalf("no certificate in %s", file)
	}
	cfg := &tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}}
	tr := &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: false}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}, cfg
}

func getStatus(t *testing.T, c *http.Client, url string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestTLS(t *testing.T) {
	s := start(t, Options{TLS: &TLSOptions{}, BodySize: 5})
	file := s.CertFile()
	if file == "" {
		t.Fatal("no certificate file")
	}
	client, cfg := tlsClient(t, file)
	_, port, _ := net.SplitHostPort(s.Addr())
	for _, host := range []string{"127.0.0.1", "localhost"} {
		for range 3 {
			resp, body := getStatus(t, client, "https://"+net.JoinHostPort(host, port)+"/")
			if resp.StatusCode != 200 || body != "okxxx" || resp.ProtoMajor != 1 {
				t.Fatalf("%s: %d %q %s", host, resp.StatusCode, body, resp.Proto)
			}
			if p := resp.TLS.NegotiatedProtocol; p != "http/1.1" {
				t.Fatalf("ALPN %q", p)
			}
		}
	}
	served(t, s, 6)

	// The certificate names every loopback address, not just the one
	// dialled.
	block, _ := pem.Decode(must(os.ReadFile(file)))
	cert := must(x509.ParseCertificate(block.Bytes))
	for _, name := range []string{"127.0.0.1", "::1", "localhost"} {
		if err := cert.VerifyHostname(name); err != nil {
			t.Errorf("certificate: %v", err)
		}
	}

	// Pipelined requests on one TLS connection, answered in order.
	conn := must(tls.Dial("tcp", s.Addr(), cfg.Clone()))
	defer conn.Close()
	_, _ = io.WriteString(conn, strings.Repeat(get+"HEAD / HTTP/1.1\r\n\r\n", 8))
	br := bufio.NewReader(conn)
	for i := range 16 {
		method := []string{"GET", "HEAD"}[i%2]
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		if want := map[string]string{"GET": "okxxx", "HEAD": ""}[method]; string(b) != want {
			t.Fatalf("pipelined %d (%s): %q", i, method, b)
		}
	}
	served(t, s, 22)

	// Stop removes the certificate.
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("certificate left behind: %v", err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestTLSVersions: a server that offers only TLS 1.2, and one that
// offers only 1.3, against clients that want the other.
func TestTLSVersions(t *testing.T) {
	for _, tc := range []struct {
		name               string
		srvMin, srvMax     uint16
		cliMin, cliMax     uint16
		want               uint16 // 0: the handshake fails
		wantErrSubstring   string
		alpn               []string
		wantNegotiatedALPN string
	}{
		{"1.2 only", tls.VersionTLS12, tls.VersionTLS12, 0, 0, tls.VersionTLS12, "", nil, "http/1.1"},
		{"1.2 only vs 1.3", tls.VersionTLS12, tls.VersionTLS12, tls.VersionTLS13, 0, 0, "protocol version", nil, ""},
		{"1.3 only vs 1.2", tls.VersionTLS13, tls.VersionTLS13, 0, tls.VersionTLS12, 0, "protocol version", nil, ""},
		{"default", 0, 0, 0, 0, tls.VersionTLS13, "", nil, "http/1.1"},
		{"no ALPN", 0, 0, 0, 0, tls.VersionTLS13, "", []string{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := start(t, Options{TLS: &TLSOptions{MinVersion: tc.srvMin, MaxVersion: tc.srvMax, ALPN: tc.alpn}})
			_, cfg := tlsClient(t, s.CertFile())
			cfg.MinVersion, cfg.MaxVersion = tc.cliMin, tc.cliMax
			cfg.NextProtos = []string{"http/1.1"}
			conn, err := tls.Dial("tcp", s.Addr(), cfg)
			if tc.want == 0 {
				if err == nil {
					conn.Close()
					t.Fatal("handshake succeeded")
				}
				if !strings.Contains(err.Error(), tc.wantErrSubstring) {
					t.Fatalf("error %q, want one about %q", err, tc.wantErrSubstring)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			st := conn.ConnectionState()
			if st.Version != tc.want || st.NegotiatedProtocol != tc.wantNegotiatedALPN {
				t.Fatalf("version %#x ALPN %q", st.Version, st.NegotiatedProtocol)
			}
		})
	}
}

// TestTLSCertFiles serves a certificate and key given as files.
func TestTLSCertFiles(t *testing.T) {
	dir := t.TempDir()
	key := must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(42), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		DNSNames: []string{"given.test"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der := must(x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key))
	certFile, keyFile := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	_ = os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	_ = os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: must(x509.MarshalECPrivateKey(key))}), 0o600)

	s := start(t, Options{TLS: &TLSOptions{CertFile: certFile, KeyFile: keyFile}})
	if s.CertFile() != "" {
		t.Fatalf("CertFile %q for a given certificate", s.CertFile())
	}
	client, _ := tlsClient(t, certFile)
	resp, body := getStatus(t, client, "https://"+s.Addr()+"/")
	if resp.StatusCode != 200 || body != "ok" || resp.TLS.PeerCertificates[0].SerialNumber.Int64() != 42 {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}

	for _, o := range []*TLSOptions{
		{CertFile: certFile},                                   // no key
		{CertFile: keyFile, KeyFile: certFile},                 // swapped
		{CertFile: filepath.Join(dir, "no"), KeyFile: keyFile}, // missing
		{MinVersion: tls.VersionTLS11},
		{MinVersion: tls.VersionTLS13, MaxVersion: tls.VersionTLS12},
		{ALPN: []string{""}},
	} {
		s, err := Start(Options{Listen: "127.0.0.1:0", TLS: o})
		if err == nil {
			s.Stop()
			t.Fatalf("%+v: started", o)
		}
		if !errors.Is(err, ErrOption) {
			t.Fatalf("%+v: %v is not ErrOption", o, err)
		}
	}
}

// TestTLSModes: the misbehaviours over TLS.
func TestTLSModes(t *testing.T) {
	dialTLS := func(t *testing.T, s *Server) *client {
		t.Helper()
		_, cfg := tlsClient(t, s.CertFile())
		c, err := tls.Dial("tcp", s.Addr(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		return &client{t, c, bufio.NewReader(c)}
	}
	t.Run("fail rate", func(t *testing.T) {
		s := start(t, Options{TLS: &TLSOptions{}, FailRate: 0.3})
		c := dialTLS(t, s)
		c.send(strings.Repeat(get, 1000))
		fails := 0
		for range 1000 {
			resp, err := http.ReadResponse(c.br, &http.Request{Method: "GET"})
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			if resp.StatusCode == 503 {
				fails++
			}
		}
		if fails < 220 || fails > 380 {
			t.Fatalf("%d failures of 1000 at 0.3", fails)
		}
		served(t, s, 1000)
	})
	t.Run("delay and status", func(t *testing.T) {
		const delay = 100 * time.Millisecond
		s := start(t, Options{TLS: &TLSOptions{}, Delay: delay, Status: 202})
		c := dialTLS(t, s)
		t0 := time.Now()
		c.send(get)
		time.Sleep(30 * time.Millisecond)
		c.send("HEAD / HTTP/1.1\r\nConnection: close\r\n\r\n")
		c.read("GET", 202, "ok", false)
		if d := time.Since(t0); d < delay {
			t.Fatalf("first response after %s", d)
		}
		c.read("HEAD", 202, "", true)
		if d := time.Since(t0); d < delay+30*time.Millisecond {
			t.Fatalf("second response after %s", d)
		}
		c.closed()
		served(t, s, 2)
	})
	t.Run("capacity", func(t *testing.T) {
		s := start(t, Options{TLS: &TLSOptions{}, Capacity: 100})
		c := dialTLS(t, s)
		t0 := time.Now()
		c.send(strings.Repeat(get, 20))
		for range 20 {
			c.read("GET", 200, "ok", false)
		}
		if d := time.Since(t0); d < 190*time.Millisecond {
			t.Fatalf("20 responses at 100/s in %s", d)
		}
		served(t, s, 20)
	})
	t.Run("rate limit", func(t *testing.T) {
		s := start(t, Options{TLS: &TLSOptions{}, RateLimit: 100})
		c := dialTLS(t, s)
		c.send(strings.Repeat(get, 40))
		ok := 0
		for range 40 {
			resp, err := http.ReadResponse(c.br, &http.Request{Method: "GET"})
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			if resp.StatusCode == 200 {
				ok++
			}
		}
		if ok < 10 || ok > 13 {
			t.Fatalf("%d of 40 allowed at 100/s, burst 10", ok)
		}
	})
	t.Run("close", func(t *testing.T) {
		s := start(t, Options{TLS: &TLSOptions{}, Close: true})
		c := dialTLS(t, s)
		c.send(get + get)
		resp, err := http.ReadResponse(c.br, &http.Request{Method: "GET"})
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil || string(b) != "ok" || resp.ContentLength != -1 {
			t.Fatalf("%q %v %d", b, err, resp.ContentLength)
		}
		served(t, s, 1)
	})
	t.Run("silent", func(t *testing.T) {
		s := start(t, Options{TLS: &TLSOptions{}, Silent: true})
		c := dialTLS(t, s)
		c.send(get)
		_ = c.c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if b, err := c.br.ReadByte(); !isTimeout(err) {
			t.Fatalf("silent: %q %v", b, err)
		}
	})
}
