package report

import (
	"strings"
	"testing"
	"time"

	"github.com/barrage-load/barrage/proto"
)

// tlsStats: an https run without keep-alive whose later handshakes
// failed: 40 answered, 5 TLS failures by reason, every connection timed.
func tlsStats(seq int) *proto.Stats {
	s := proto.NewStats(false)
	s.Seq, s.Start, s.End = seq, time.Duration(seq)*time.Second, time.Duration(seq+1)*time.Second
	s.Sent, s.Responses, s.Status[200] = 40, 40, 40
	s.Errors[proto.ErrTLS] = 5
	s.TLS[proto.TLSUnknownAuthority], s.TLS[proto.TLSHandshakeTimeout] = 3, 2
	s.ClientCloses = 40
	// Sampled while most slots were reconnecting, by the plan's policy.
	s.ConnsOpen, s.ConnsWanted = 1, 4
	rec(s.Latency, 200, 40)
	rec(s.Corrected, 200, 40)
	s.Connect, s.Handshake = proto.NewHistogram(), proto.NewHistogram()
	rec(s.Connect, 50, 40)
	rec(s.Handshake, 900, 40)
	return s
}

func TestTLSInReport(t *testing.T) {
	a := New(Options{Target: "https://x/", Schedule: constant(0, 2*time.Second, 4), Pipeline: 1})
	a.Add(tlsStats(0))
	a.Add(tlsStats(1))
	r := a.Report(2 * time.Second)
	// TLS failures count connections, not requests: none failed.
	if r.Failed != 0 || r.Errors != 10 || r.ErrorKinds["tls"] != 10 || r.TLSErrors["unknown_authority"] != 6 || r.TLSErrors["handshake_timeout"] != 4 {
		t.Fatalf("failed %d errors %d kinds %v tls %v", r.Failed, r.Errors, r.ErrorKinds, r.TLSErrors)
	}
	if r.Connect == nil || r.Connect.Count != 80 || r.Handshake == nil || r.Handshake.P50 != 900 || r.ClientCloses != 80 {
		t.Fatalf("connect %+v handshake %+v closes %d", r.Connect, r.Handshake, r.ClientCloses)
	}
	// Connections reopening after their one request are the plan's
	// policy, not the generator's failure.
	if !r.Valid {
		t.Fatalf("not valid: %q", r.InvalidReasons)
	}
	out := text(t, r)
	for _, want := range []string{
		"Errors      10: tls 10 (unknown_authority 6, handshake_timeout 4)\n",
		"No keep-alive  80 connections closed after their one request",
		"  connect ",
		"  TLS handshake ",
		"without keep-alive, each connection carried one request",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("text lacks %q:\n%s", want, out)
		}
	}
	m := jsonOf(t, r)
	if m["tls_errors"].(map[string]any)["unknown_authority"].(float64) != 6 || m["tls_handshake_us"].(map[string]any)["count"].(float64) != 80 ||
		m["connect_us"] == nil {
		t.Fatalf("json: %v %v %v", m["tls_errors"], m["tls_handshake_us"], m["connect_us"])
	}
}

func TestOnlyTLSFailuresIsNoAnswers(t *testing.T) {
	// Every handshake failed: nothing was sent, and the target answered
	// nothing.
	s := proto.NewStats(false)
	s.End = time.Second
	s.Errors[proto.ErrTLS], s.TLS[proto.TLSHostName] = 7, 7
	a := New(Options{Target: "https://x/", Schedule: constant(0, time.Second, 4), Pipeline: 1})
	a.Add(s)
	r := a.Report(time.Second)
	if !r.NoAnswers || r.Valid || !strings.Contains(strings.Join(r.InvalidReasons, ";"), "7 TLS failures (host_name 7)") {
		t.Fatalf("no answers %v valid %v %q", r.NoAnswers, r.Valid, r.InvalidReasons)
	}
	// A plain run shows neither histogram nor TLS errors.
	p := New(Options{Target: "http://x/", Schedule: constant(0, time.Second, 4), Pipeline: 1})
	p.Add(statusStats())
	pr := p.Report(time.Second)
	if pr.Handshake != nil || pr.TLSErrors != nil || strings.Contains(text(t, pr), "TLS handshake") {
		t.Fatalf("plain run: handshake %+v tls %v", pr.Handshake, pr.TLSErrors)
	}
}
