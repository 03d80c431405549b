package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// ErrNotAllowed occurs when an assignment aims at a target outside the
// agent's --allow-target list: the agent refuses it and says why.
var ErrNotAllowed = errors.New("agent: target not allowed")

// allowRule is one --allow-target entry: a prefix (an IP is a /32 or
// /128) or a host name, and an optional port (0: any).
type allowRule struct {
	prefix netip.Prefix
	host   string // a DNS name, resolved when checked
	port   int
	text   string
}

// Allowlist says which targets an agent may load. The zero value (no
// --allow-target) allows loopback only.
type Allowlist struct {
	rules []allowRule
}

// Loopback is the default allowlist's text.
const Loopback = "127.0.0.0/8, ::1"

// ParseAllowlist reads --allow-target values: hosts, IPs, CIDRs, each with
// an optional :port ([v6]:port), repeatable and comma-separated.
func ParseAllowlist(values []string) (*Allowlist, error) {
	a := &Allowlist{}
	for _, v := range values {
		for _, e := range strings.Split(v, ",") {
			e = strings.TrimSpace(e)
			if e == "" {
				continue
			}
			r, err := parseRule(e)
			if err != nil {
				return nil, err
			}
			a.rules = append(a.rules, r)
		}
	}
	return a, nil
}

func parseRule(e string) (allowRule, error) {
	r := allowRule{text: e}
	host := e
	// host:port, [v6]:port, v4/n:port; a bare v6 address has several colons.
	if h, p, err := net.SplitHostPort(e); err == nil {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return r, fmt.Errorf("agent: --allow-target %q: bad port %q", e, p)
		}
		host, r.port = h, n
	}
	if pfx, err := netip.ParsePrefix(host); err == nil {
		r.prefix = pfx.Masked()
		return r, nil
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		r.prefix = netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen())
		return r, nil
	}
	if host == "" || strings.ContainsAny(host, " /\\[]") {
		return r, fmt.Errorf("agent: --allow-target %q is not a host, IP, CIDR or host:port", e)
	}
	r.host = strings.ToLower(strings.TrimSuffix(host, "."))
	return r, nil
}

// String lists the rules as given.
func (a *Allowlist) String() string {
	if a == nil || len(a.rules) == 0 {
		return Loopback + " (loopback only: no --allow-target)"
	}
	var s []string
	for _, r := range a.rules {
		s = append(s, r.text)
	}
	return strings.Join(s, ", ")
}

// Check says whether the agent may send to addr (the IP:port the engine
// resolved the target to). Host-name rules are resolved now, so a name is
// judged by where it points when the test starts.
func (a *Allowlist) Check(addr string) error {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return fmt.Errorf("%w: cannot read address %q", ErrNotAllowed, addr)
	}
	ip, port := ap.Addr().Unmap(), int(ap.Port())
	if a == nil || len(a.rules) == 0 {
		if ip.IsLoopback() {
			return nil
		}
		return fmt.Errorf("%w: %s is not loopback, and this agent was started without --allow-target", ErrNotAllowed, addr)
	}
	for _, r := range a.rules {
		if r.port != 0 && r.port != port {
			continue
		}
		if r.host == "" {
			if r.prefix.Contains(ip) {
				return nil
			}
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", r.host)
		cancel()
		if err != nil {
			continue
		}
		for _, x := range ips {
			if x.Unmap() == ip {
				return nil
			}
		}
	}
	return fmt.Errorf("%w: %s is not in --allow-target (%s)", ErrNotAllowed, addr, a)
}
