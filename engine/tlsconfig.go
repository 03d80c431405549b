package engine

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"strings"

	"github.com/barrage-load/barrage/proto"
)

// ALPN is what the engine offers in ALPN: it speaks HTTP/1.1 only.
var ALPN = []string{"http/1.1"}

// TLSConfig builds the client TLS configuration of a validated plan with
// an https:// target, for the host serverName (the URL's, or a Host
// header's: what SNI names and the certificate must match). It reads
// the plan's certificate files here, on the box that runs the engine;
// a file that cannot be read or parsed, or a key that does not match its
// certificate, is a bad plan (proto.ErrBadPlan, one line).
func TLSConfig(p *proto.Plan, serverName string) (*tls.Config, error) {
	minV, ok := proto.TLSVersion(p.TLSMin)
	if !ok {
		return nil, proto.BadPlanf("tls_min %q: want 1.2 or 1.3", p.TLSMin)
	}
	cfg := &tls.Config{
		ServerName:         serverName,
		NextProtos:         ALPN,
		MinVersion:         minV,
		MaxVersion:         tls.VersionTLS13,
		InsecureSkipVerify: p.Insecure,
		// The engine batches its requests itself; crypto/tls's small
		// first records (for browsers' time to first byte) would only
		// add records.
		DynamicRecordSizingDisabled: true,
	}
	if p.CACert != "" {
		b, err := os.ReadFile(p.CACert)
		if err != nil {
			return nil, proto.BadPlanf("cacert: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, proto.BadPlanf("cacert %s: no PEM certificate in it", p.CACert)
		}
		cfg.RootCAs = pool
	}
	if p.Cert != "" || p.Key != "" {
		if p.Cert == "" || p.Key == "" {
			return nil, proto.BadPlanf("cert and key go together: the client certificate and its private key")
		}
		cert, err := tls.LoadX509KeyPair(p.Cert, p.Key)
		if err != nil {
			return nil, proto.BadPlanf("cert %s and key %s: %v", p.Cert, p.Key, strings.TrimPrefix(err.Error(), "tls: "))
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	for _, name := range p.Ciphers {
		id, err := proto.CipherSuite(name)
		if err != nil {
			return nil, err
		}
		cfg.CipherSuites = append(cfg.CipherSuites, id)
	}
	if p.TLSResume {
		// One entry per server name: every connection resumes from the
		// latest ticket. The cache takes a lock per connection (on the
		// dialer's goroutine, and on the loop when a ticket arrives),
		// never per request.
		cfg.ClientSessionCache = tls.NewLRUClientSessionCache(0)
	}
	return cfg, nil
}

// serverName is the host a TLS connection names in SNI and checks the
// certificate against: a Host header's host when the plan sets one (a
// virtual host behind an address), else the URL's.
func serverName(p *proto.Plan, urlHost string) string {
	for k, v := range p.Headers {
		if strings.EqualFold(k, "Host") {
			if h, _, err := net.SplitHostPort(v); err == nil {
				return h
			}
			return strings.TrimSuffix(strings.TrimPrefix(v, "["), "]")
		}
	}
	return urlHost
}
