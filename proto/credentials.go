package proto

import (
	"encoding/base64"
	"net/url"
	"strings"
)

// userinfoSpan returns where the user:password part of a raw URL lies
// (between "scheme://" and the authority's last '@', as net/url splits
// it), or ok false when there is none.
func userinfoSpan(raw string) (start, end int, ok bool) {
	i := strings.Index(raw, "://")
	if i < 0 {
		return 0, 0, false
	}
	start = i + 3
	auth := raw[start:]
	if j := strings.IndexAny(auth, "/?#"); j >= 0 {
		auth = auth[:j]
	}
	at := strings.LastIndexByte(auth, '@')
	if at < 0 {
		return 0, 0, false
	}
	return start, start + at + 1, true
}

// redactURL hides a raw URL's user:password for a message, a log line or
// a report, even when the URL does not parse.
func redactURL(raw string) string {
	if s, e, ok := userinfoSpan(raw); ok {
		return raw[:s] + "xxxxx@" + raw[e:]
	}
	return raw
}

// hasHeader reports whether the plan sets header name (case-insensitive).
func (p *Plan) hasHeader(name string) bool {
	for k := range p.Headers {
		if strings.EqualFold(strings.TrimSpace(k), name) {
			return true
		}
	}
	return false
}

// MoveCredentials moves user:password from TargetURL into an
// "Authorization: Basic" header, as curl does with http://user:pw@host/,
// and strips them from TargetURL (the rest of the URL is kept byte for
// byte), so the URL that reports, logs and progress lines show carries no
// password. The user and password are percent-decoded first; a user with
// no password sends "user:". It does nothing when the URL has no
// credentials, and fails when the plan also sets an Authorization header
// (which of the two to send would be a guess). Normalize calls it.
//
// The header itself is a secret: whoever stores or shows the plan's
// headers must treat it as one.
func (p *Plan) MoveCredentials() error {
	s, e, ok := userinfoSpan(p.TargetURL)
	if !ok {
		return nil
	}
	if e-s == 1 { // "http://@host/": an empty user, nothing to send
		p.TargetURL = p.TargetURL[:s] + p.TargetURL[e:]
		return nil
	}
	u, err := url.Parse(p.TargetURL)
	if err != nil || u.User == nil {
		return bad("target_url %q: cannot read its user:password", redactURL(p.TargetURL))
	}
	if p.hasHeader("Authorization") {
		return bad("target_url has user:password and the plan also sets an Authorization header: give one of them")
	}
	pw, _ := u.User.Password()
	cred := base64.StdEncoding.EncodeToString([]byte(u.User.Username() + ":" + pw))
	if p.Headers == nil {
		p.Headers = map[string]string{}
	}
	p.Headers["Authorization"] = "Basic " + cred
	p.TargetURL = p.TargetURL[:s] + p.TargetURL[e:]
	return nil
}

// secretHeaders are header names whose values are secrets: they are
// redacted wherever a plan is shown, and travel through ZooKeeper only
// under --zk-auth.
var secretHeaders = []string{"Authorization", "Proxy-Authorization", "Cookie", "X-API-Key", "X-Auth-Token"}

// IsSecretHeader reports whether a header's value is a secret.
func IsSecretHeader(name string) bool {
	for _, s := range secretHeaders {
		if strings.EqualFold(name, s) {
			return true
		}
	}
	return false
}

// SecretHeaders lists the headers whose secret values the plan carries
// (the plan's and its requests'; see IsSecret): such a plan travels
// through ZooKeeper only under --zk-auth. A value taken whole from a
// data file ("Bearer {{users.token}}") carries no secret: the file stays
// on the generators' disks.
func (p *Plan) SecretHeaders() []string { return p.secretValues() }
