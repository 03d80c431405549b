package agent

import (
	"errors"
	"testing"
)

func TestAllowlist(t *testing.T) {
	for _, tc := range []struct {
		rules []string
		addr  string
		ok    bool
	}{
		// No --allow-target: loopback only.
		{nil, "127.0.0.1:80", true},
		{nil, "127.0.0.2:8080", true},
		{nil, "[::1]:80", true},
		{nil, "10.0.0.1:80", false},
		// An IP allows that IP, any port.
		{[]string{"127.0.0.1"}, "127.0.0.1:9999", true},
		{[]string{"127.0.0.1"}, "127.0.0.2:9999", false},
		// A CIDR, comma-separated with a host:port.
		{[]string{"10.0.0.0/8,192.168.1.5:443"}, "10.200.1.1:80", true},
		{[]string{"10.0.0.0/8,192.168.1.5:443"}, "192.168.1.5:443", true},
		{[]string{"10.0.0.0/8,192.168.1.5:443"}, "192.168.1.5:80", false},
		// A CIDR with a port; an IPv6 address with a port.
		{[]string{"127.0.0.0/8:8080", "[::1]:81"}, "127.9.9.9:8080", true},
		{[]string{"127.0.0.0/8:8080", "[::1]:81"}, "127.9.9.9:8081", false},
		{[]string{"127.0.0.0/8:8080", "[::1]:81"}, "[::1]:81", true},
		// A host name is checked after resolution.
		{[]string{"localhost"}, "127.0.0.1:80", true},
		{[]string{"localhost:80"}, "127.0.0.1:81", false},
	} {
		a, err := ParseAllowlist(tc.rules)
		if err != nil {
			t.Fatalf("%v: %v", tc.rules, err)
		}
		err = a.Check(tc.addr)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrNotAllowed)) {
			t.Errorf("%v allows %s: %v, want %v", tc.rules, tc.addr, err, tc.ok)
		}
	}
	for _, bad := range []string{"1.2.3.4:0", "1.2.3.4:x", "a b", "[::1"} {
		if _, err := ParseAllowlist([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
