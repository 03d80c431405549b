package engine

import (
	"context"
	"crypto/tls"
	"net"
	"testing"
	"time"
)

// The per-request cost of TLS on the client: one request sealed, one
// response opened, by crypto/tls's record layer over the pipe and by the
// engine's own (tlsrecord.go), after a real TLS 1.3 handshake with a
// crypto/tls server. Run with -benchmem; callgrind counts their
// instructions:
//
//	go test -c -o /tmp/e.test ./engine
//	valgrind --tool=callgrind /tmp/e.test -test.run '^$' -test.bench 'TLSClient' -test.benchtime 200000x

// benchConns makes a client tlsState (engine's record layer or not) and
// the server's tls.Conn over a pipe, both past a TLS 1.3 handshake.
func benchConns(b *testing.B, fast bool) (*tlsState, *tls.Conn, *tlsPipe) {
	b.Helper()
	t := &testing.T{}
	ca := newTestCA(t)
	srv := ca.issue(t, false, time.Time{}, time.Time{}, "localhost")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	sp := &tlsPipe{}
	var sc *tls.Conn
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		sp.sock = c
		// No tickets: the client never reads the socket after its
		// handshake here, and tickets would take sequence numbers.
		sc = tls.Server(sp, &tls.Config{Certificates: []tls.Certificate{srv.pair}, SessionTicketsDisabled: true})
		done <- sc.Handshake()
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	cfg := &tls.Config{ServerName: "localhost", RootCAs: ca.pool}
	if !fast {
		cfg.ClientSessionCache = tls.NewLRUClientSessionCache(1)
	}
	st := &tlsState{}
	if _, err := handshake(context.Background(), st, nc, cfg, 5*time.Second); err != nil {
		b.Fatal(err)
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	if st.fast != fast {
		b.Fatalf("fast %v", st.fast)
	}
	// From here both sides are in memory.
	sp.sock = nil
	return st, sc, sp
}

var benchReq = []byte("GET / HTTP/1.1\r\nHost: 127.0.0.1:8443\r\nUser-Agent: barrage\r\nConnection: keep-alive\r\n\r\n")

func benchmarkTLSClientWrite(b *testing.B, fast bool) {
	st, _, _ := benchConns(b, fast)
	b.ReportAllocs()
	b.SetBytes(int64(len(benchReq)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		st.pipe.out = st.pipe.out[:0]
		if fast {
			st.pipe.out = st.rl.seal(st.pipe.out, recordAppData, benchReq)
		} else if _, err := st.tc.Write(benchReq); err != nil {
			b.Fatal(err)
		}
	}
	benchSink = len(st.pipe.out)
}

func benchmarkTLSClientRead(b *testing.B, fast bool) {
	st, sc, sp := benchConns(b, fast)
	resp := []byte("HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 2\r\n\r\nok")
	// b.N records from the server, made before the timer starts.
	sp.out = sp.out[:0]
	for i := 0; i < b.N; i++ {
		if _, err := sc.Write(resp); err != nil {
			b.Fatal(err)
		}
	}
	wire := sp.out
	rec := len(wire) / b.N
	plain := make([]byte, tlsPlainBuf)
	b.ReportAllocs()
	b.SetBytes(int64(len(resp)))
	b.ResetTimer()
	n := 0
	for i := 0; i < b.N; i++ {
		in := wire[i*rec : (i+1)*rec]
		if fast {
			_, p, err := st.rl.open(in)
			if err != nil {
				b.Fatal(err)
			}
			n += len(p)
			continue
		}
		st.pipe.in = in
		for {
			k, err := st.tc.Read(plain)
			n += k
			if err == errWouldBlock {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	benchSink = n
	if n != b.N*len(resp) {
		b.Fatalf("read %d bytes of %d", n, b.N*len(resp))
	}
}

var benchSink int

func BenchmarkTLSClientWriteCryptoTLS(b *testing.B) { benchmarkTLSClientWrite(b, false) }
func BenchmarkTLSClientWriteEngine(b *testing.B)    { benchmarkTLSClientWrite(b, true) }
func BenchmarkTLSClientReadCryptoTLS(b *testing.B)  { benchmarkTLSClientRead(b, false) }
func BenchmarkTLSClientReadEngine(b *testing.B)     { benchmarkTLSClientRead(b, true) }
