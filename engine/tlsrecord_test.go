package engine

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// readAppData reads whole records from nc into the record layer until one
// carries application data, and returns it (control records on the way
// are handled, their replies returned too).
func readAppData(t *testing.T, rl *recordLayer, nc net.Conn, buf *[]byte) ([]byte, []byte) {
	t.Helper()
	var reply []byte
	tmp := make([]byte, 4096)
	for {
		for {
			n, err := rl.recordLen(*buf)
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				break
			}
			typ, p, err := rl.open((*buf)[:n])
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			out := append([]byte(nil), p...)
			*buf = (*buf)[n:]
			if typ == recordAppData {
				return out, reply
			}
			if reply, err = rl.control(typ, out, reply); err != nil {
				t.Fatalf("control: %v", err)
			}
		}
		_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := nc.Read(tmp)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		*buf = append(*buf, tmp[:n]...)
	}
}

// TestRecordLayerWithCryptoTLS: after crypto/tls's handshake, the
// engine's record layer talks to a crypto/tls server (an echo) in both
// directions, TLS 1.2 and 1.3, AES-128 and AES-256; in TLS 1.3 both
// sides update their keys. The suites it does not speak, and TLS 1.3
// with a session cache, stay on crypto/tls.
func TestRecordLayerWithCryptoTLS(t *testing.T) {
	ca := newTestCA(t)
	srv := ca.issue(t, false, time.Time{}, time.Time{}, "localhost")
	for _, tc := range []struct {
		name   string
		max    uint16
		suite  uint16 // TLS 1.2 only (Go lets no TLS 1.3 suite be chosen)
		resume bool
		fast   bool
	}{
		{"1.3 AES-128", tls.VersionTLS13, 0, false, true},
		{"1.2 ECDSA AES-128", tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, false, true},
		{"1.2 ECDSA AES-256", tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, false, true},
		{"1.2 resumable", tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, true, true},
		{"1.2 chacha20: crypto/tls", tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, false, false},
		{"1.3 resumable: crypto/tls", tls.VersionTLS13, 0, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			scfg := &tls.Config{Certificates: []tls.Certificate{srv.pair}, MaxVersion: tc.max}
			go func() {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				sc := tls.Server(c, scfg)
				_, _ = io.Copy(sc, sc) // echo
			}()
			nc, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			ccfg := &tls.Config{ServerName: "localhost", RootCAs: ca.pool, MaxVersion: tc.max}
			if tc.suite != 0 {
				ccfg.CipherSuites = []uint16{tc.suite}
			}
			if tc.resume {
				ccfg.ClientSessionCache = tls.NewLRUClientSessionCache(1)
			}
			var st tlsState
			if _, err := handshake(context.Background(), &st, nc, ccfg, 5*time.Second); err != nil {
				t.Fatal(err)
			}
			if st.fast != tc.fast || (st.tc == nil) != tc.fast {
				t.Fatalf("engine's record layer: %v, want %v", st.fast, tc.fast)
			}
			if !tc.fast {
				return
			}
			if st.keys.master != nil || st.keys.client != nil {
				t.Fatal("secrets kept after the keys were made")
			}
			var in []byte
			big := bytes.Repeat([]byte("0123456789abcdef"), 3000) // 48 KB: three records
			for i, msg := range [][]byte{[]byte("hello"), big, []byte("x")} {
				out := st.rl.seal(nil, recordAppData, msg)
				if _, err := nc.Write(out); err != nil {
					t.Fatal(err)
				}
				var got []byte
				for len(got) < len(msg) {
					p, reply := readAppData(t, &st.rl, nc, &in)
					if len(reply) > 0 {
						t.Fatal("a reply nobody asked for")
					}
					got = append(got, p...)
				}
				if !bytes.Equal(got, msg) {
					t.Fatalf("message %d: echoed %d bytes, want %d", i, len(got), len(msg))
				}
			}
			if st.rl.tls13 {
				// We update our keys and ask the server to update its.
				out := st.rl.seal(nil, recordHandshake, []byte{msgKeyUpdate, 0, 0, 1, 1})
				if err := st.rl.out.update(&st.rl); err != nil {
					t.Fatal(err)
				}
				out = st.rl.seal(out, recordAppData, []byte("after the update"))
				if _, err := nc.Write(out); err != nil {
					t.Fatal(err)
				}
				seq := st.rl.in.seq
				p, reply := readAppData(t, &st.rl, nc, &in)
				if string(p) != "after the update" || len(reply) != 0 || st.rl.in.seq >= seq {
					t.Fatalf("after a key update: %q, reply %d bytes, read sequence %d (was %d)", p, len(reply), st.rl.in.seq, seq)
				}
			}
		})
	}
}

// TestRecordLayerServerKeyUpdate: a server's key update asking for ours
// is followed and answered; alerts end the connection with their reason.
func TestRecordLayerServerKeyUpdate(t *testing.T) {
	var k keyLog
	k.client, k.server = bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	cs := tls.ConnectionState{Version: tls.VersionTLS13, CipherSuite: tls.TLS_AES_128_GCM_SHA256}
	var cli, srv recordLayer
	if err := cli.setup(cs, &k, nil); err != nil {
		t.Fatal(err)
	}
	// The server's side is the same layer with the secrets crossed.
	k2 := keyLog{client: k.server, server: k.client}
	if err := srv.setup(cs, &k2, nil); err != nil {
		t.Fatal(err)
	}
	wire := srv.seal(nil, recordAppData, []byte("one"))
	wire = srv.seal(wire, recordHandshake, []byte{msgKeyUpdate, 0, 0, 1, 1})
	if err := srv.out.update(&srv); err != nil {
		t.Fatal(err)
	}
	wire = srv.seal(wire, recordAppData, []byte("two"))
	var got []string
	var reply []byte
	for len(wire) > 0 {
		n, err := cli.recordLen(wire)
		if err != nil || n == 0 {
			t.Fatalf("record length %d: %v", n, err)
		}
		typ, p, err := cli.open(wire[:n])
		if err != nil {
			t.Fatal(err)
		}
		wire = wire[n:]
		if typ == recordAppData {
			got = append(got, string(p))
			continue
		}
		if reply, err = cli.control(typ, p, reply); err != nil {
			t.Fatal(err)
		}
	}
	if len(got) != 2 || got[0] != "one" || got[1] != "two" || len(reply) == 0 {
		t.Fatalf("got %q, reply %d bytes", got, len(reply))
	}
	// The reply is a key update under the old keys; what follows, under
	// the new.
	reply = cli.seal(reply, recordAppData, []byte("three"))
	var back []string
	for len(reply) > 0 {
		n, _ := srv.recordLen(reply)
		typ, p, err := srv.open(reply[:n])
		if err != nil {
			t.Fatal(err)
		}
		reply = reply[n:]
		if typ == recordAppData {
			back = append(back, string(p))
		} else if _, err := srv.control(typ, p, nil); err != nil {
			t.Fatal(err)
		}
	}
	if len(back) != 1 || back[0] != "three" {
		t.Fatalf("the server read %q", back)
	}
	// Alerts: close_notify is the end of the stream; another, an error
	// whose reason the report counts.
	if _, err := cli.control(recordAlert, []byte{1, 0}, nil); err != io.EOF {
		t.Fatalf("close_notify: %v", err)
	}
	_, err := cli.control(recordAlert, []byte{2, alertCertificateRequired}, nil)
	var ae alertError
	if !errors.As(err, &ae) || tlsReason(err).String() != "bad_certificate" {
		t.Fatalf("certificate_required: %v", err)
	}
	// A record that fails its authentication.
	bad := srv.seal(nil, recordAppData, []byte("tampered"))
	bad[len(bad)-1] ^= 1
	if _, _, err := cli.open(bad); err == nil {
		t.Fatal("a tampered record opened")
	}
}

// FuzzRecordOpen feeds the record layer bytes a hostile server could
// send: it must never panic, whatever they are.
func FuzzRecordOpen(f *testing.F) {
	var k keyLog
	k.client, k.server = bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	k.master, k.random = bytes.Repeat([]byte{3}, 48), bytes.Repeat([]byte{4}, 32)
	var srv13 recordLayer
	_ = srv13.setup(tls.ConnectionState{Version: tls.VersionTLS13, CipherSuite: tls.TLS_AES_128_GCM_SHA256}, &keyLog{client: k.server, server: k.client}, nil)
	f.Add(true, srv13.seal(nil, recordAppData, []byte("HTTP/1.1 200 OK\r\n\r\n")))
	f.Add(true, srv13.seal(nil, recordHandshake, []byte{msgKeyUpdate, 0, 0, 1, 1}))
	f.Add(true, srv13.seal(nil, recordHandshake, []byte{msgNewTicket, 0, 0, 9, 1, 2}))
	f.Add(false, []byte{23, 3, 3, 0, 30, 1, 2, 3})
	f.Add(false, []byte{21, 3, 3, 0, 0})
	f.Fuzz(func(t *testing.T, v13 bool, b []byte) {
		var rl recordLayer
		cs := tls.ConnectionState{Version: tls.VersionTLS12, CipherSuite: tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}
		kk := k
		if v13 {
			cs = tls.ConnectionState{Version: tls.VersionTLS13, CipherSuite: tls.TLS_AES_128_GCM_SHA256}
		}
		if err := rl.setup(cs, &kk, bytes.Repeat([]byte{5}, 32)); err != nil {
			t.Fatal(err)
		}
		b = append([]byte(nil), b...)
		var reply []byte
		for len(b) > 0 {
			n, err := rl.recordLen(b)
			if err != nil || n == 0 {
				return
			}
			typ, p, err := rl.open(b[:n])
			if err != nil {
				return
			}
			if n > len(b) || len(p) > n {
				t.Fatalf("plaintext of %d bytes from a record of %d", len(p), n)
			}
			b = b[n:]
			if typ != recordAppData {
				if reply, err = rl.control(typ, p, reply); err != nil {
					return
				}
			}
		}
		// Control records go through control without a valid record too.
		_, _ = rl.control(b0(b), b, nil)
	})
}

func b0(b []byte) byte {
	if len(b) == 0 {
		return recordHandshake
	}
	return b[0]
}
