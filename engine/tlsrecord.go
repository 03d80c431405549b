package engine

// The TLS record layer of an open connection, for the AES-GCM suites of
// TLS 1.2 and 1.3: the engine's own, so that the steady state allocates
// nothing and takes no lock.
//
// Why not crypto/tls's own: its Conn.Read allocates once per read from
// the connection below (readFromUntil hands bytes.Buffer.ReadFrom an
// &atLeastReader, which escapes), so over TLS a keep-alive connection
// cost one allocation per response, and each Read and Write takes a
// mutex and copies the bytes once more. crypto/tls still makes every
// connection (the handshake, certificate checks, ALPN, resumption); only
// then does this layer take over, with the traffic secrets crypto/tls
// reports through Config.KeyLogWriter (kept in memory, per connection,
// never written anywhere) and, for TLS 1.2, the server's random read
// from its hello. The handshake's pipe hands crypto/tls one record at a
// time (see tlsPipe), so it never reads past its last handshake record
// and the sequence numbers here start where the handshake left them.
//
// Anything else stays on crypto/tls's record layer over the pipe
// (tlsloop.go), at one small allocation per read: ChaCha20-Poly1305, CBC
// suites, TLS 1.3 with --tls-resume (crypto/tls must read the session
// tickets), and a resumed TLS 1.2 session (crypto/tls logs no secret for
// it; setup fails and the caller stays on crypto/tls).
//
// Hazard: this parses bytes an untrusted server sends. Every length is
// checked before it is used, a record that fails its authentication ends
// the connection, and FuzzRecordOpen feeds it garbage.

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
)

// TLS record and message types and sizes (RFC 8446 section 5, RFC 5246).
const (
	recordAlert       = 21
	recordHandshake   = 22
	recordAppData     = 23
	recordHeaderLen   = 5
	maxPlaintext      = 16384
	maxCiphertext13   = maxPlaintext + 256
	maxCiphertext12   = maxPlaintext + 2048
	gcmTagLen         = 16
	gcmExplicitLen    = 8
	msgHelloRequest   = 0
	msgNewTicket      = 4
	msgKeyUpdate      = 24
	alertCloseNotify  = 0
	alertLevelWarning = 1
)

// errRecord is a record this layer cannot take: a bad length, a failed
// authentication, a message out of place. The connection ends (a TLS
// error, reason other unless an alert says more).
var errRecord = errors.New("engine: bad TLS record")

// alertError is an alert the server sent.
type alertError uint8

func (a alertError) Error() string { return "remote error: " + tls.AlertError(a).Error() }

// keyLog takes the secrets crypto/tls writes to Config.KeyLogWriter during
// one connection's handshake (NSS key log lines).
type keyLog struct {
	client, server []byte // TLS 1.3 application traffic secrets
	master         []byte // TLS 1.2
	random         []byte // the client random
}

func (k *keyLog) Write(line []byte) (int, error) {
	f := strings.Fields(string(line))
	if len(f) != 3 {
		return len(line), nil
	}
	secret, err := hex.DecodeString(f[2])
	if err != nil {
		return len(line), nil
	}
	switch f[0] {
	case "CLIENT_TRAFFIC_SECRET_0":
		k.client = secret
	case "SERVER_TRAFFIC_SECRET_0":
		k.server = secret
	case "CLIENT_RANDOM":
		k.master = secret
		k.random, _ = hex.DecodeString(f[1])
	}
	return len(line), nil
}

// wipe forgets the secrets once the keys are made.
func (k *keyLog) wipe() {
	clear(k.client)
	clear(k.server)
	clear(k.master)
	*k = keyLog{}
}

// forget drops the keys of a connection that closed (its traffic
// secrets are zeroed, not left for the next connection to overwrite).
func (r *recordLayer) forget() {
	clear(r.in.secret)
	clear(r.out.secret)
	r.in, r.out = halfConn{}, halfConn{}
}

// halfConn is one direction's protection.
type halfConn struct {
	aead cipher.AEAD
	// iv is TLS 1.3's per-record nonce base (XORed with the sequence
	// number); in TLS 1.2 GCM its first 4 bytes are the salt and the
	// other 8 the explicit nonce, which is the sequence number.
	iv    [12]byte
	nonce [12]byte
	seq   uint64
	// secret is TLS 1.3's traffic secret (for KeyUpdate).
	secret []byte
}

// recordLayer protects an open connection's records.
type recordLayer struct {
	tls13   bool
	newHash func() hash.Hash
	keyLen  int
	in, out halfConn
	aad     [13]byte
	// msg holds a post-handshake message cut across records.
	msg []byte
}

// gcmSuites are the suites this layer speaks: key length and hash.
var gcmSuites = map[uint16]struct {
	keyLen int
	sha384 bool
}{
	tls.TLS_AES_128_GCM_SHA256:                  {16, false},
	tls.TLS_AES_256_GCM_SHA384:                  {32, true},
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256: {16, false},
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256:   {16, false},
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384: {32, true},
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384:   {32, true},
	tls.TLS_RSA_WITH_AES_128_GCM_SHA256:         {16, false},
	tls.TLS_RSA_WITH_AES_256_GCM_SHA384:         {32, true},
}

// setup makes the record layer of a connection whose handshake just
// ended with state cs, from the secrets logged and (TLS 1.2) the server's
// random. It fails (nothing set) for a suite or version it does not
// speak, or when a secret is missing: the caller stays on crypto/tls.
func (r *recordLayer) setup(cs tls.ConnectionState, k *keyLog, serverRandom []byte) error {
	s, ok := gcmSuites[cs.CipherSuite]
	if !ok {
		return fmt.Errorf("suite %s: not AES-GCM", tls.CipherSuiteName(cs.CipherSuite))
	}
	*r = recordLayer{keyLen: s.keyLen, newHash: sha256.New, msg: r.msg[:0]}
	if s.sha384 {
		r.newHash = sha512.New384
	}
	switch cs.Version {
	case tls.VersionTLS13:
		if len(k.client) == 0 || len(k.server) == 0 {
			return errors.New("no TLS 1.3 traffic secrets logged")
		}
		r.tls13 = true
		if err := r.in.set13(r, k.server); err != nil {
			return err
		}
		return r.out.set13(r, k.client)
	case tls.VersionTLS12:
		if len(k.master) != 48 || len(k.random) != 32 || len(serverRandom) != 32 {
			return errors.New("no TLS 1.2 master secret or randoms")
		}
		seed := make([]byte, 0, 64)
		seed = append(append(seed, serverRandom...), k.random...)
		block := prf12(r.newHash, k.master, "key expansion", seed, 2*s.keyLen+8)
		ck, sk := block[:s.keyLen], block[s.keyLen:2*s.keyLen]
		civ, siv := block[2*s.keyLen:2*s.keyLen+4], block[2*s.keyLen+4:]
		if err := r.out.setGCM(ck, civ); err != nil {
			return err
		}
		if err := r.in.setGCM(sk, siv); err != nil {
			return err
		}
		clear(block)
		// The Finished messages went under these keys: sequence 0 each.
		r.in.seq, r.out.seq = 1, 1
		return nil
	}
	return fmt.Errorf("version %x", cs.Version)
}

func (h *halfConn) setGCM(key, iv []byte) error {
	b, err := aes.NewCipher(key)
	if err != nil {
		return err
	}
	h.aead, err = cipher.NewGCM(b)
	copy(h.iv[:], iv)
	h.seq = 0
	return err
}

// set13 derives a TLS 1.3 direction's key and IV from its traffic secret
// (RFC 8446 section 7.3).
func (h *halfConn) set13(r *recordLayer, secret []byte) error {
	key, err := expandLabel(r.newHash, secret, "key", r.keyLen)
	if err != nil {
		return err
	}
	iv, err := expandLabel(r.newHash, secret, "iv", 12)
	if err != nil {
		return err
	}
	h.secret = append(h.secret[:0], secret...)
	err = h.setGCM(key, iv)
	clear(key)
	return err
}

// update moves a TLS 1.3 direction to its next traffic secret (KeyUpdate).
func (h *halfConn) update(r *recordLayer) error {
	next, err := expandLabel(r.newHash, h.secret, "traffic upd", len(h.secret))
	if err != nil {
		return err
	}
	return h.set13(r, next)
}

// expandLabel is TLS 1.3's HKDF-Expand-Label with an empty context.
func expandLabel(h func() hash.Hash, secret []byte, label string, n int) ([]byte, error) {
	info := make([]byte, 0, 4+6+len(label))
	info = binary.BigEndian.AppendUint16(info, uint16(n))
	info = append(info, byte(6+len(label)))
	info = append(info, "tls13 "...)
	info = append(info, label...)
	info = append(info, 0)
	return hkdf.Expand(h, secret, string(info), n)
}

// prf12 is TLS 1.2's PRF (RFC 5246 section 5): P_hash(secret, label+seed).
func prf12(h func() hash.Hash, secret []byte, label string, seed []byte, n int) []byte {
	ls := append([]byte(label), seed...)
	mac := hmac.New(h, secret)
	mac.Write(ls)
	a := mac.Sum(nil)
	out := make([]byte, 0, n+mac.Size())
	for len(out) < n {
		mac.Reset()
		mac.Write(a)
		mac.Write(ls)
		out = mac.Sum(out)
		mac.Reset()
		mac.Write(a)
		a = mac.Sum(a[:0])
	}
	return out[:n]
}

// nonce13 is the per-record nonce: the IV XOR the sequence number.
func (h *halfConn) nonce13() []byte {
	h.nonce = h.iv
	for i := 0; i < 8; i++ {
		h.nonce[4+i] ^= byte(h.seq >> (56 - 8*i))
	}
	return h.nonce[:]
}

// seal appends to dst the records carrying plaintext (one per 16 KiB) of
// type typ. It allocates only when dst must grow.
func (r *recordLayer) seal(dst []byte, typ byte, plaintext []byte) []byte {
	for {
		n := min(len(plaintext), maxPlaintext)
		dst = r.sealOne(dst, typ, plaintext[:n])
		plaintext = plaintext[n:]
		if len(plaintext) == 0 {
			return dst
		}
	}
}

func (r *recordLayer) sealOne(dst []byte, typ byte, p []byte) []byte {
	h := &r.out
	if r.tls13 {
		// header, then the inner plaintext (content, type) sealed in
		// place; the header is the additional data.
		size := len(p) + 1 + gcmTagLen
		dst = grow(dst, recordHeaderLen+size)
		hdr := len(dst)
		dst = append(dst, recordAppData, 3, 3, byte(size>>8), byte(size))
		start := len(dst)
		dst = append(dst, p...)
		dst = append(dst, typ)
		out := h.aead.Seal(dst[start:start], h.nonce13(), dst[start:], dst[hdr:start])
		h.seq++
		return dst[:start+len(out)]
	}
	size := gcmExplicitLen + len(p) + gcmTagLen
	dst = grow(dst, recordHeaderLen+size)
	dst = append(dst, typ, 3, 3, byte(size>>8), byte(size))
	dst = binary.BigEndian.AppendUint64(dst, h.seq)
	start := len(dst)
	dst = append(dst, p...)
	h.nonce = h.iv
	binary.BigEndian.PutUint64(h.nonce[4:], h.seq)
	aad := r.aad12(h.seq, typ, len(p))
	out := h.aead.Seal(dst[start:start], h.nonce[:], dst[start:], aad)
	h.seq++
	return dst[:start+len(out)]
}

// aad12 is TLS 1.2's additional data: sequence, type, version, length.
func (r *recordLayer) aad12(seq uint64, typ byte, n int) []byte {
	binary.BigEndian.PutUint64(r.aad[:8], seq)
	r.aad[8], r.aad[9], r.aad[10] = typ, 3, 3
	binary.BigEndian.PutUint16(r.aad[11:], uint16(n))
	return r.aad[:]
}

// grow makes room for n more bytes in dst (so that sealing in place never
// reallocates under the header it authenticates).
func grow(dst []byte, n int) []byte {
	if cap(dst)-len(dst) >= n {
		return dst
	}
	nb := make([]byte, len(dst), 2*cap(dst)+n)
	copy(nb, dst)
	return nb
}

// recordLen returns the length of the record at the start of buf, or 0
// when buf does not hold a whole one yet; an impossible length is an
// error.
func (r *recordLayer) recordLen(buf []byte) (int, error) {
	if len(buf) < recordHeaderLen {
		return 0, nil
	}
	n := int(buf[3])<<8 | int(buf[4])
	limit := maxCiphertext12
	if r.tls13 {
		limit = maxCiphertext13
	}
	if n > limit || buf[1] != 3 {
		return 0, errRecord
	}
	if len(buf) < recordHeaderLen+n {
		return 0, nil
	}
	return recordHeaderLen + n, nil
}

// open authenticates and decrypts one whole record in place and returns
// its content type and plaintext (a slice of rec).
func (r *recordLayer) open(rec []byte) (byte, []byte, error) {
	h := &r.in
	typ, payload := rec[0], rec[recordHeaderLen:]
	if r.tls13 {
		if typ != recordAppData || len(payload) < 1+gcmTagLen {
			return 0, nil, errRecord
		}
		p, err := h.aead.Open(payload[:0], h.nonce13(), payload, rec[:recordHeaderLen])
		if err != nil {
			return 0, nil, errRecord
		}
		h.seq++
		// The inner type is the last byte that is not padding.
		i := len(p) - 1
		for i >= 0 && p[i] == 0 {
			i--
		}
		if i < 0 {
			return 0, nil, errRecord
		}
		return p[i], p[:i], nil
	}
	if typ != recordAppData && typ != recordAlert && typ != recordHandshake || len(payload) < gcmExplicitLen+gcmTagLen {
		return 0, nil, errRecord
	}
	h.nonce = h.iv
	copy(h.nonce[4:], payload[:gcmExplicitLen])
	ct := payload[gcmExplicitLen:]
	p, err := h.aead.Open(ct[:0], h.nonce[:], ct, r.aad12(h.seq, typ, len(ct)-gcmTagLen))
	if err != nil {
		return 0, nil, errRecord
	}
	h.seq++
	return typ, p, nil
}

// control handles a record that is not application data: an alert (a
// close_notify is io.EOF, a warning is dropped, anything else the
// server's error) or post-handshake messages (TLS 1.3 session tickets,
// dropped: resumption needs crypto/tls's record layer; a key update,
// followed, and answered through reply when the server asks; a TLS 1.2
// HelloRequest, dropped: the engine never renegotiates). It returns the
// bytes to send, appended to reply.
func (r *recordLayer) control(typ byte, p []byte, reply []byte) ([]byte, error) {
	switch typ {
	case recordAlert:
		if len(p) != 2 {
			return reply, errRecord
		}
		if p[1] == alertCloseNotify {
			return reply, io.EOF
		}
		if p[0] == alertLevelWarning && !r.tls13 {
			return reply, nil
		}
		return reply, alertError(p[1])
	case recordHandshake:
		if len(r.msg) > 0 {
			r.msg = append(r.msg, p...)
			p = r.msg
		}
		for len(p) >= 4 {
			n := int(p[1])<<16 | int(p[2])<<8 | int(p[3])
			if n > maxPlaintext {
				return reply, errRecord
			}
			if len(p) < 4+n {
				break
			}
			var err error
			if reply, err = r.message(p[0], p[4:4+n], reply); err != nil {
				return reply, err
			}
			p = p[4+n:]
		}
		// A message cut by the record's end waits for the next.
		r.msg = append(r.msg[:0], p...)
		return reply, nil
	}
	return reply, errRecord
}

func (r *recordLayer) message(typ byte, body []byte, reply []byte) ([]byte, error) {
	switch {
	case r.tls13 && typ == msgNewTicket:
		return reply, nil
	case r.tls13 && typ == msgKeyUpdate:
		if len(body) != 1 || body[0] > 1 {
			return reply, errRecord
		}
		if err := r.in.update(r); err != nil {
			return reply, err
		}
		if body[0] == 1 {
			// update_requested: say we follow, then do.
			reply = r.seal(reply, recordHandshake, []byte{msgKeyUpdate, 0, 0, 1, 0})
			if err := r.out.update(r); err != nil {
				return reply, err
			}
		}
		return reply, nil
	case !r.tls13 && typ == msgHelloRequest && len(body) == 0:
		return reply, nil
	}
	return reply, errRecord
}
