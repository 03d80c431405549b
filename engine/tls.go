package engine

// HTTPS: crypto/tls on the event loops.
//
// crypto/tls is written for blocking connections: its handshake is one
// function that reads and writes until it is done, and its state lives
// on that function's stack, so a handshake that returns "would block"
// halfway is lost (the error is kept in Conn.handshakeErr and returned
// for ever). Its record layer is not: Conn.Read keeps a partial record in
// rawInput and its state intact when the underlying Read fails with a
// net.Error whose Temporary() is true (conn.go, readRecordOrCCS: "if e,
// ok := err.(net.Error); !ok || !e.Temporary() { c.in.setErrorLocked(err)
// }"), and Conn.Write only calls the underlying Write.
//
// So each connection splits in two:
//
//   - The handshake runs on a dialer goroutine (dial.go), over the real
//     socket, right after the TCP connect and before the socket is
//     enrolled in a loop. The dialer's goroutines are a bounded pool
//     (MaxDials), not one per connection, and a loop never waits for
//     them: it only learns of a connection once it is ready.
//   - Once enrolled, the same tls.Conn runs over a tlsPipe the loop feeds:
//     OnTraffic hands it the ciphertext gnet read (no copy until
//     crypto/tls takes it into its record buffer) and reads plaintext
//     until the pipe says "would block"; flush encrypts the batch of
//     requests into the pipe's outbound buffer and writes that with one
//     write(2). Nothing of this allocates once the buffers have grown.
//
// crypto/tls's own locks (one per Read and Write, never contended: one
// loop owns the connection) and its interface calls (the AEAD, our pipe)
// are the library's, like gnet's callbacks.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/barrage-load/barrage/proto"
)

// wouldBlock is what a tlsPipe's Read returns when the loop has handed
// it all the ciphertext it has: a temporary net.Error, which crypto/tls
// passes up without poisoning the connection (see above).
type wouldBlock struct{}

func (wouldBlock) Error() string   { return "engine: no more TLS bytes for now" }
func (wouldBlock) Timeout() bool   { return false }
func (wouldBlock) Temporary() bool { return true }

// errWouldBlock is the one value of wouldBlock (an empty struct in an
// interface allocates nothing).
var errWouldBlock net.Error = wouldBlock{}

// tlsPipe is the net.Conn under a connection's tls.Conn. During the
// handshake (on a dialer goroutine) it is the socket itself, read one
// record at a time; once the connection is enrolled in a loop (sock nil),
// it is two buffers the loop owns: in, the ciphertext gnet read and the
// loop is handing over, and out, the ciphertext to send, which flush
// writes.
type tlsPipe struct {
	sock net.Conn
	in   []byte
	out  []byte
	// Reading the socket: the header of the record being read, how
	// much of it came, and how much of its body is left. No read goes
	// past a record's end, so crypto/tls never takes a record after its
	// handshake's last: those are the engine's record layer's, which
	// starts at the sequence number the handshake left (tlsrecord.go).
	hdr     [recordHeaderLen]byte
	hdrN    int
	left    int
	records int
	// hello is the start of the server's first handshake record: its
	// hello, whose random TLS 1.2's keys are made from.
	hello []byte
}

func (p *tlsPipe) Read(b []byte) (int, error) {
	if p.sock != nil {
		return p.readSocket(b)
	}
	if len(p.in) == 0 {
		return 0, errWouldBlock
	}
	n := copy(b, p.in)
	p.in = p.in[n:]
	return n, nil
}

// readSocket reads the socket, a record's header or (part of) its body
// at a time.
func (p *tlsPipe) readSocket(b []byte) (int, error) {
	if p.left == 0 {
		n, err := p.sock.Read(b[:min(len(b), recordHeaderLen-p.hdrN)])
		copy(p.hdr[p.hdrN:], b[:n])
		if p.hdrN += n; p.hdrN == recordHeaderLen {
			p.left, p.hdrN = int(p.hdr[3])<<8|int(p.hdr[4]), 0
			p.records++
		}
		return n, err
	}
	n, err := p.sock.Read(b[:min(len(b), p.left)])
	if p.records == 1 && p.hdr[0] == recordHandshake && len(p.hello) < helloLen {
		p.hello = append(p.hello, b[:min(n, helloLen-len(p.hello))]...)
	}
	p.left -= n
	return n, err
}

// helloLen covers a ServerHello's handshake header, version and random.
const helloLen = 4 + 2 + 32

// serverRandom is the random of the server's hello, or nil.
func (p *tlsPipe) serverRandom() []byte {
	if len(p.hello) < helloLen || p.hello[0] != 2 {
		return nil
	}
	return p.hello[6:helloLen]
}

func (p *tlsPipe) Write(b []byte) (int, error) {
	if p.sock != nil {
		return p.sock.Write(b)
	}
	p.out = append(p.out, b...)
	return len(b), nil
}

// Close closes the socket during the handshake (crypto/tls does when the
// handshake's context ends); afterwards the loop closes the connection.
func (p *tlsPipe) Close() error {
	if p.sock != nil {
		return p.sock.Close()
	}
	return nil
}

func (p *tlsPipe) LocalAddr() net.Addr {
	if p.sock != nil {
		return p.sock.LocalAddr()
	}
	return nil
}

func (p *tlsPipe) RemoteAddr() net.Addr {
	if p.sock != nil {
		return p.sock.RemoteAddr()
	}
	return nil
}

func (p *tlsPipe) SetDeadline(t time.Time) error {
	if p.sock != nil {
		return p.sock.SetDeadline(t)
	}
	return nil
}

func (p *tlsPipe) SetReadDeadline(t time.Time) error {
	if p.sock != nil {
		return p.sock.SetReadDeadline(t)
	}
	return nil
}

func (p *tlsPipe) SetWriteDeadline(t time.Time) error {
	if p.sock != nil {
		return p.sock.SetWriteDeadline(t)
	}
	return nil
}

// tlsState is a slot's TLS: made with the slot, kept across its
// connections (its buffers are reused; the tls.Conn is new for each).
// The dialer owns it while the slot dials, the loop once it is open.
type tlsState struct {
	pipe tlsPipe
	// tc is crypto/tls's connection: it makes the handshake; then, when
	// the engine's record layer (rl) does not speak the suite (fast is
	// false), it carries the records too. Nil once rl took over.
	tc   *tls.Conn
	rl   recordLayer
	fast bool
	keys keyLog
	// pending holds plaintext the parser left (a response head cut by a
	// record boundary), presented again before the next record's.
	pending []byte
}

// TLSError is a failed TLS handshake: why (the reason the report counts)
// and crypto/tls's error.
type TLSError struct {
	Reason proto.TLSReason
	Err    error
}

func (e *TLSError) Error() string {
	return fmt.Sprintf("TLS handshake failed (%s): %v", strings.ReplaceAll(e.Reason.String(), "_", " "), e.Err)
}

func (e *TLSError) Unwrap() error { return e.Err }

// handshake runs slot c's TLS handshake over nc, the socket just
// connected, on the dialer's goroutine, within timeout (and ctx: a stop
// cuts it short). On success the slot's pipe is switched to the loop's
// buffers, ready for the socket to be enrolled. It returns how long the
// handshake took.
func handshake(ctx context.Context, t *tlsState, nc net.Conn, cfg *tls.Config, timeout time.Duration) (time.Duration, error) {
	t.pipe = tlsPipe{sock: nc, in: t.pipe.in[:0], out: t.pipe.out[:0], hello: t.pipe.hello[:0]}
	t.pending = t.pending[:0]
	t.fast = false
	t.keys = keyLog{}
	// A copy of the configuration per connection, to learn whether the
	// server asked for a client certificate: a TLS 1.2 server that gets
	// none answers "handshake failure", which says nothing by itself.
	// The callback runs within HandshakeContext, on this goroutine.
	requested := false
	cc := cfg.Clone()
	cc.KeyLogWriter = &t.keys
	cc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		requested = true
		if len(cfg.Certificates) > 0 {
			return &cfg.Certificates[0], nil
		}
		return &tls.Certificate{}, nil // none: an empty Certificate message
	}
	t.tc = tls.Client(&t.pipe, cc)
	hctx, cancel := context.WithTimeout(ctx, timeout)
	start := time.Now()
	err := t.tc.HandshakeContext(hctx)
	took := time.Since(start)
	cancel()
	if err != nil {
		t.tc = nil
		t.pipe.sock = nil
		if ctx.Err() != nil {
			return took, ctx.Err()
		}
		reason := tlsReason(err)
		if reason == proto.TLSOther && requested && isAlert(err, alertHandshakeFailure) {
			// Asked for a certificate, the server refused the handshake:
			// ours (or the lack of one) is what it refused.
			reason = proto.TLSBadCertificate
		}
		return took, &TLSError{Reason: reason, Err: err}
	}
	// From here the loop feeds the pipe; the kernel holds whatever came
	// after the handshake's last record, and gnet reads it. The
	// engine's record layer takes over unless the suite is not one it
	// speaks, or TLS 1.3 session tickets must reach crypto/tls's cache.
	t.pipe.sock = nil
	if cs := t.tc.ConnectionState(); cs.Version != tls.VersionTLS13 || cfg.ClientSessionCache == nil {
		if t.rl.setup(cs, &t.keys, t.pipe.serverRandom()) == nil {
			t.fast, t.tc = true, nil
		}
	}
	t.keys.wipe()
	return took, nil
}

// alertCodes maps the text of a TLS alert (what crypto/tls's remote
// errors say; its alert type is not exported) to its code.
var alertCodes = func() map[string]uint8 {
	m := make(map[string]uint8, 256)
	for i := 0; i < 256; i++ {
		m[tls.AlertError(i).Error()] = uint8(i)
	}
	return m
}()

// alertReason is the reason a server's alert gives.
func alertReason(code uint8) proto.TLSReason {
	switch code {
	case alertProtocolVersion:
		return proto.TLSProtocolVersion
	case alertBadCertificate, alertUnsupportedCertificate, alertCertificateRevoked,
		alertCertificateExpired, alertCertificateUnknown, alertUnknownCA, alertCertificateRequired:
		return proto.TLSBadCertificate
	}
	return proto.TLSOther
}

// isAlert reports whether err is the server's alert code.
func isAlert(err error, code uint8) bool {
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "remote error" || oe.Err == nil {
		return false
	}
	c, ok := alertCodes[oe.Err.Error()]
	return ok && c == code
}

// TLS alert codes (RFC 8446 section 6) the reasons are told by.
const (
	alertHandshakeFailure       = 40
	alertBadCertificate         = 42
	alertUnsupportedCertificate = 43
	alertCertificateRevoked     = 44
	alertCertificateExpired     = 45
	alertCertificateUnknown     = 46
	alertUnknownCA              = 48
	alertProtocolVersion        = 70
	alertCertificateRequired    = 116
)

// tlsReason sorts a handshake's error into the reasons the report
// counts.
func tlsReason(err error) proto.TLSReason {
	var ae alertError
	if errors.As(err, &ae) {
		// An alert on the engine's record layer.
		return alertReason(uint8(ae))
	}
	var (
		ua  x509.UnknownAuthorityError
		sr  x509.SystemRootsError
		hn  x509.HostnameError
		ci  x509.CertificateInvalidError
		cve *tls.CertificateVerificationError
		oe  *net.OpError
	)
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return proto.TLSHandshakeTimeout
	case errors.As(err, &ua), errors.As(err, &sr):
		return proto.TLSUnknownAuthority
	case errors.As(err, &hn):
		return proto.TLSHostName
	case errors.As(err, &ci), errors.As(err, &cve):
		return proto.TLSBadCertificate
	case errors.As(err, &oe) && oe.Op == "remote error" && oe.Err != nil:
		// The server's alert, through crypto/tls.
		if code, ok := alertCodes[oe.Err.Error()]; ok {
			return alertReason(code)
		}
	case strings.Contains(err.Error(), "unsupported protocol version"),
		strings.Contains(err.Error(), "offered only unsupported versions"):
		// crypto/tls's own refusal of the version the server picked.
		return proto.TLSProtocolVersion
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		// The server hung up mid-handshake: a server that refuses the
		// versions or suites offered without an alert, or one that is
		// overloaded. Nothing tells which.
		return proto.TLSOther
	}
	return proto.TLSOther
}
