package main

import (
	"github.com/barrage-load/barrage/engine"
	"github.com/barrage-load/barrage/proto"
)

// tlsHint says what to check when no connection could be opened because
// every TLS handshake failed.
func tlsHint(te *engine.TLSError) string {
	switch te.Reason {
	case proto.TLSUnknownAuthority:
		return "give the authority that signed the target's certificate with --cacert FILE, or skip verification with --insecure"
	case proto.TLSHostName:
		return "the certificate does not name the host asked for: check the URL's host, or the Host header, which names the host for TLS too"
	case proto.TLSBadCertificate:
		return "a certificate was refused: the target's (expired, not for a server), or the client's (--cert, --key)"
	case proto.TLSProtocolVersion:
		return "no TLS version in common: check --tls-min against the versions the target offers"
	case proto.TLSHandshakeTimeout:
		return "the target did not finish the handshake within --connect-timeout"
	}
	return "does the target speak TLS on this port, with a cipher suite in common (--ciphers)?"
}
