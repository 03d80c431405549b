package proto

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestTLSPlan(t *testing.T) {
	p, err := ParsePlan([]byte(`
target_url: https://example.test/api
insecure: false
cacert: /etc/ca.pem
cert: /etc/client.pem
key: /etc/client.key
tls_min: 1.3
tls_resume: true
headers: {Connection: close}
`))
	if err != nil {
		t.Fatal(err)
	}
	if p.TLSMin != "1.3" || !p.TLSResume || p.Cert != "/etc/client.pem" || !p.NoKeepAlive || len(p.Headers) != 0 {
		t.Fatalf("plan: %+v", p)
	}
	// The plan travels to agents as JSON: the TLS fields (paths, never
	// the files) go with it.
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var back Plan
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&back, p) {
		t.Fatalf("round trip:\n%+v\n%+v", back, *p)
	}
	if v, ok := TLSVersion(p.TLSMin); !ok || v != 0x0304 {
		t.Fatalf("version %x", v)
	}
}

func TestTLSPlanErrors(t *testing.T) {
	for _, tc := range []struct{ plan, want string }{
		{"target_url: http://h/\ninsecure: true\n", "insecure applies to https:// targets only"},
		{"target_url: http://h/\ncacert: ca.pem\n", "cacert applies to https://"},
		{"target_url: http://h/\ntls_resume: true\n", "tls_resume applies to https://"},
		{"target_url: https://h/\ncert: c.pem\n", "cert and key go together"},
		{"target_url: https://h/\nkey: k.pem\n", "cert and key go together"},
		{"target_url: https://h/\ntls_min: 1.4\n", `tls_min "1.4": want 1.2 or 1.3`},
		{"target_url: https://h/\ntls_min: 1.1\n", `tls_min "1.1": want 1.2 or 1.3`},
		{"target_url: https://h/\nciphers: [TLS_NOPE]\n", `unknown cipher "TLS_NOPE"`},
		{"target_url: https://h/\nciphers: [TLS_AES_128_GCM_SHA256]\n", "is a TLS 1.3 suite"},
		{"target_url: https://h/\ntls_min: 1.3\nciphers: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]\n", "which tls_min 1.3 never uses"},
		{"target_url: https://h/\nciphers: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]\n", "listed twice"},
		{"target_url: https://h/\ninsecure: true\ncacert: ca.pem\n", "not both"},
		{"target_url: http://h/\nno_keepalive: true\npipeline: 4\n", "pipeline must be 1"},
		{"target_url: http://h/\nheaders: {Connection: close}\npipeline: 4\n", "pipeline must be 1"},
		{"target_url: http://h/\nheaders: {Connection: upgrade}\n", `header Connection: "upgrade": only "close"`},
		{"target_url: ftp://h/\n", "want http://HOST[:PORT]/PATH or https://"},
	} {
		_, err := ParsePlan([]byte(tc.plan))
		if !errors.Is(err, ErrBadPlan) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.plan, err, tc.want)
		}
	}
	// Insecure suites are Go's names too (a legacy server); keep-alive
	// is the default and may be said.
	for _, ok := range []string{
		"target_url: https://h/\nciphers: [TLS_RSA_WITH_AES_128_CBC_SHA, TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256]\n",
		"target_url: http://h/\nheaders: {connection: Keep-Alive}\npipeline: 4\n",
		"target_url: https://h:8443/\ntls_min: '1.2'\n",
	} {
		if _, err := ParsePlan([]byte(ok)); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
}

func TestTLSFilesRelativeToPlan(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "plan.yaml")
	if err := os.WriteFile(f, []byte("target_url: https://h/\ncacert: ca.pem\ncert: /abs/c.pem\nkey: sub/k.pem\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := LoadPlan(f)
	if err != nil {
		t.Fatal(err)
	}
	if p.CACert != filepath.Join(dir, "ca.pem") || p.Cert != "/abs/c.pem" || p.Key != filepath.Join(dir, "sub/k.pem") {
		t.Fatalf("paths: %q %q %q", p.CACert, p.Cert, p.Key)
	}
}

func TestSnapshotCarriesTLS(t *testing.T) {
	s := NewStats(false)
	_ = s.Latency.RecordValue(100)
	s.Errors[ErrTLS] = 5
	s.TLS[TLSUnknownAuthority], s.TLS[TLSProtocolVersion] = 3, 2
	s.ClientCloses = 7
	s.Connect, s.Handshake = NewHistogram(), NewHistogram()
	_ = s.Connect.RecordValue(50)
	_ = s.Handshake.RecordValue(900)
	s.End = time.Second
	b, err := MarshalSnapshot(&Snapshot{Agent: "a", Stats: s})
	if err != nil {
		t.Fatal(err)
	}
	sn, err := UnmarshalSnapshot(b)
	if err != nil {
		t.Fatal(err)
	}
	got := sn.Stats
	if got.TLS != s.TLS || got.Errors != s.Errors || got.ClientCloses != 7 ||
		got.Connect.TotalCount() != 1 || got.Handshake.Max() != s.Handshake.Max() {
		t.Fatalf("decoded: tls %v errors %v closes %d", got.TLS, got.Errors, got.ClientCloses)
	}
	// The coordinator's path merges the same.
	ps, err := ParseSnapshot(b)
	if err != nil {
		t.Fatal(err)
	}
	dst := NewStats(false)
	ps.MergeInto(dst)
	if dst.TLS != s.TLS || dst.Handshake == nil || dst.Handshake.TotalCount() != 1 || dst.Failed() != 0 || dst.TotalErrors() != 5 {
		t.Fatalf("merged: tls %v, failed %d, total errors %d", dst.TLS, dst.Failed(), dst.TotalErrors())
	}
	// A plain run's merge makes no handshake histogram from empty ones.
	empty := NewStats(false)
	empty.Handshake = NewHistogram()
	into := NewStats(false)
	into.Merge(empty)
	if into.Handshake != nil {
		t.Fatal("an empty handshake histogram was merged into being")
	}
}
