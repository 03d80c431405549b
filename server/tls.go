package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// HTTPS: crypto/tls on a goroutine per connection, feeding the same
// request parser and responses as the loops (session.go, response.go).
//
// Why not the gnet loops: gnet has no TLS, and crypto/tls blocks in its
// handshake and in Read, so a loop would need a non-blocking adapter that
// drives the handshake off the loop and turns "would block" into a
// temporary error crypto/tls retries (or a non-blocking port of
// crypto/tls). That is the load generator's job (issue 10), where the
// client's CPU per request is what is measured. The target's HTTPS is
// for tests and demos; nginx is the HTTPS benchmark peer. A goroutine
// per connection is correct at once, short, and as fast as net/http's
// TLS; the cost is a goroutine and a buffer per connection, and an
// allocation per held batch in the timed modes.

// DefaultALPN is what TLSOptions.ALPN offers when nil.
var DefaultALPN = []string{"http/1.1"}

// TLSOptions configure HTTPS (Options.TLS).
type TLSOptions struct {
	// CertFile and KeyFile are a PEM certificate (or chain) and its key.
	// Both or neither: with neither, Start makes a self-signed ECDSA
	// P-256 certificate, valid for a week, for 127.0.0.1, ::1, localhost
	// and the listen host, and writes it (PEM, no key) to a file of its
	// own (Server.CertFile) for clients to trust.
	CertFile, KeyFile string
	// MinVersion and MaxVersion bound the protocol versions offered:
	// tls.VersionTLS12 or tls.VersionTLS13. 0 means TLS 1.2 for the
	// minimum and TLS 1.3 for the maximum. Both 1.2: a server that
	// offers only TLS 1.2.
	MinVersion, MaxVersion uint16
	// ALPN lists the protocols the server accepts in ALPN, in order of
	// preference; nil means DefaultALPN, an empty list no ALPN at all. A
	// client that offers ALPN with none of them is refused (crypto/tls's
	// rule since Go 1.17).
	ALPN []string
}

func (t *TLSOptions) normalize(listen string) error {
	if (t.CertFile == "") != (t.KeyFile == "") {
		return fmt.Errorf("%w: TLS certificate and key: give both or neither", ErrOption)
	}
	if t.MinVersion == 0 {
		t.MinVersion = tls.VersionTLS12
	}
	if t.MaxVersion == 0 {
		t.MaxVersion = tls.VersionTLS13
	}
	for _, v := range []uint16{t.MinVersion, t.MaxVersion} {
		if v != tls.VersionTLS12 && v != tls.VersionTLS13 {
			return fmt.Errorf("%w: TLS version %#x: want 1.2 or 1.3", ErrOption, v)
		}
	}
	if t.MinVersion > t.MaxVersion {
		return fmt.Errorf("%w: TLS minimum version above the maximum", ErrOption)
	}
	if t.ALPN == nil {
		t.ALPN = DefaultALPN
	}
	for _, p := range t.ALPN {
		if p == "" || len(p) > 255 {
			return fmt.Errorf("%w: ALPN protocol %q: want 1 to 255 bytes", ErrOption, p)
		}
	}
	return nil
}

// handshakeTimeout bounds a TLS handshake, so that a client that
// connects and says nothing does not hold a goroutine for ever.
const handshakeTimeout = 10 * time.Second

// tlsServer serves the HTTPS connections.
type tlsServer struct {
	s        *Server
	cfg      *tls.Config
	certFile string // the self-signed certificate's file; "" when given
	dir      string // its temporary folder, removed by cleanup

	mu      sync.Mutex
	conns   map[net.Conn]struct{} // open connections, closed by stop
	stopped bool
	wg      sync.WaitGroup
	ids     atomic.Uint64
}

func newTLSServer(s *Server, o *TLSOptions) (*tlsServer, error) {
	t := &tlsServer{s: s, conns: make(map[net.Conn]struct{})}
	var cert tls.Certificate
	var err error
	if o.CertFile != "" {
		cert, err = tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%w: TLS certificate %s and key %s: %v", ErrOption, o.CertFile, o.KeyFile, err)
		}
	} else {
		cert, err = t.selfSigned(s.o.Listen)
		if err != nil {
			return nil, err
		}
	}
	t.cfg = &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   o.MinVersion,
		MaxVersion:   o.MaxVersion,
		NextProtos:   o.ALPN,
	}
	return t, nil
}

// selfSigned makes a certificate for the listen host and the loopback
// names, and writes it to a new temporary folder.
func (t *tlsServer) selfSigned(listen string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("server: cannot make a TLS key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("server: cannot make a TLS certificate: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "barrage target", Organization: []string{"barrage"}},
		NotBefore:    now.Add(-time.Hour), // a client whose clock is a little behind
		NotAfter:     now.Add(7 * 24 * time.Hour),
		// Its own issuer, marked CA: OpenSSL (curl --cacert, s_client
		// -CAfile) trusts a self-signed certificate given as a trust
		// anchor only if it may sign certificates; Go does either way.
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if host, _, err := net.SplitHostPort(listen); err == nil && host != "" {
		if ip := net.ParseIP(host); ip != nil {
			if !ip.IsUnspecified() && !ip.IsLoopback() {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			}
		} else if host != "localhost" {
			tmpl.DNSNames = append(tmpl.DNSNames, host)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("server: cannot make a TLS certificate: %w", err)
	}
	dir, err := os.MkdirTemp("", "barrage-target-")
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("server: cannot write the TLS certificate: %w", err)
	}
	file := filepath.Join(dir, "cert.pem")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		_ = os.RemoveAll(dir)
		return tls.Certificate{}, fmt.Errorf("server: cannot write the TLS certificate: %w", err)
	}
	t.certFile, t.dir = file, dir
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// serve serves c on a goroutine of its own; on the accept goroutine.
func (t *tlsServer) serve(c net.Conn) {
	t.mu.Lock()
	if t.stopped {
		t.mu.Unlock()
		_ = c.Close()
		return
	}
	t.conns[c] = struct{}{}
	t.wg.Add(1)
	t.mu.Unlock()
	go t.conn(c)
}

func (t *tlsServer) conn(raw net.Conn) {
	defer t.wg.Done()
	defer func() {
		t.mu.Lock()
		delete(t.conns, raw)
		t.mu.Unlock()
		_ = raw.Close()
	}()
	c := tls.Server(raw, t.cfg)
	ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
	err := c.HandshakeContext(ctx)
	cancel()
	if err != nil {
		return
	}
	t.s.serveStream(c, t.ids.Add(1))
	_ = c.Close() // close_notify, then the socket
}

// stop closes every connection and waits for their goroutines.
func (t *tlsServer) stop() {
	t.mu.Lock()
	t.stopped = true
	for c := range t.conns {
		_ = c.Close()
	}
	t.mu.Unlock()
	t.wg.Wait()
}

// cleanup removes the self-signed certificate's folder; nil-safe.
func (t *tlsServer) cleanup() {
	if t != nil && t.dir != "" {
		_ = os.RemoveAll(t.dir)
		t.dir = ""
	}
}
