package proto

import (
	"crypto/tls"
	"path/filepath"
	"slices"
	"strings"
)

// TLS versions a plan may ask for as its lowest (Plan.TLSMin).
const (
	TLS12 = "1.2"
	TLS13 = "1.3"
)

// TLSVersion returns the crypto/tls version of a plan's tls_min ("" is
// TLS 1.2), and false for anything but 1.2 and 1.3.
func TLSVersion(v string) (uint16, bool) {
	switch v {
	case "", TLS12:
		return tls.VersionTLS12, true
	case TLS13:
		return tls.VersionTLS13, true
	}
	return 0, false
}

// CipherSuite returns the ID of a TLS 1.2 cipher suite by its Go name
// (crypto/tls's CipherSuiteName, e.g.
// TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256), the suites Go deems insecure
// included (a load generator may have to speak to a legacy server). It
// fails for an unknown name, and for a TLS 1.3 suite, which Go does not
// let a client choose.
func CipherSuite(name string) (uint16, error) {
	for _, list := range [][]*tls.CipherSuite{tls.CipherSuites(), tls.InsecureCipherSuites()} {
		for _, cs := range list {
			if cs.Name != name {
				continue
			}
			if !slices.Contains(cs.SupportedVersions, tls.VersionTLS12) {
				return 0, bad("cipher %s is a TLS 1.3 suite: Go offers all of them and lets none be chosen (ciphers picks TLS 1.2 suites)", name)
			}
			return cs.ID, nil
		}
	}
	return 0, bad("unknown cipher %q: want Go's names of TLS 1.2 suites, e.g. TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", name)
}

// HasTLSOptions reports whether the plan sets any TLS field.
func (p *Plan) HasTLSOptions() bool {
	return p.tlsField() != ""
}

// tlsField names the first TLS field set ("" when none is).
func (p *Plan) tlsField() string {
	switch {
	case p.Insecure:
		return "insecure"
	case p.CACert != "":
		return "cacert"
	case p.Cert != "":
		return "cert"
	case p.Key != "":
		return "key"
	case p.TLSMin != "":
		return "tls_min"
	case len(p.Ciphers) > 0:
		return "ciphers"
	case p.TLSResume:
		return "tls_resume"
	}
	return ""
}

// validateTLS checks the TLS fields: only for an https:// target; a
// client certificate with its key; a version Go speaks; cipher names Go
// knows. The files are not read here: they are paths on the box that
// runs the engine (engine.FromPlan loads and checks them there).
func (p *Plan) validateTLS(https bool) error {
	if !https {
		if f := p.tlsField(); f != "" {
			return bad("%s applies to https:// targets only", f)
		}
		return nil
	}
	if p.Insecure && p.CACert != "" {
		return bad("give insecure (no verification) or cacert (verify against these authorities), not both")
	}
	if (p.Cert == "") != (p.Key == "") {
		return bad("cert and key go together: the client certificate and its private key")
	}
	if _, ok := TLSVersion(p.TLSMin); !ok {
		return bad("tls_min %q: want 1.2 or 1.3", p.TLSMin)
	}
	if len(p.Ciphers) > 0 && p.TLSMin == TLS13 {
		return bad("ciphers pick TLS 1.2 suites, which tls_min 1.3 never uses")
	}
	for i, c := range p.Ciphers {
		if _, err := CipherSuite(c); err != nil {
			return err
		}
		if slices.Contains(p.Ciphers[:i], c) {
			return bad("cipher %s is listed twice", c)
		}
	}
	return nil
}

// moveConnection takes a Connection header out of the plan's headers:
// "close" sets NoKeepAlive, "keep-alive" is the default anyway. Any
// other value stays for Validate to refuse (barrage writes Connection).
func (p *Plan) moveConnection() {
	for name, v := range p.Headers {
		if !strings.EqualFold(name, "Connection") {
			continue
		}
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "close":
			p.NoKeepAlive = true
			delete(p.Headers, name)
		case "keep-alive":
			delete(p.Headers, name)
		}
	}
}

// resolveTLSFiles makes the plan file's relative certificate and key
// paths relative to its folder (as body_file is).
func (p *Plan) resolveTLSFiles(dir string) {
	for _, f := range []*string{&p.CACert, &p.Cert, &p.Key} {
		if *f != "" && !filepath.IsAbs(*f) {
			*f = filepath.Join(dir, *f)
		}
	}
}
