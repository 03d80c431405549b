package engine

import (
	"crypto/tls"
	"fmt"
	"net"
	"sort"
	"strings"

	"github.com/barrage-load/barrage/proto"
	"github.com/barrage-load/barrage/proto/http1"
)

// FromPlan turns a validated plan into engine options: it resolves the
// target's address once (the loops dial the IP, never DNS), encodes the
// request's bytes once, and for an https:// target builds the TLS
// configuration (reading the plan's certificate files: see TLSConfig).
func FromPlan(p *proto.Plan) (Options, error) {
	u, err := proto.ParseTarget(p.TargetURL)
	if err != nil {
		return Options{}, err
	}
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	ta, err := net.ResolveTCPAddr("tcp", net.JoinHostPort(u.Hostname(), port))
	if err != nil {
		return Options{}, fmt.Errorf("engine: cannot resolve %s: %w", u.Host, err)
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	if u.RawQuery != "" {
		path += "?" + u.RawQuery
	}
	req := http1.Request{Method: p.Method, Host: u.Host, Path: path, Body: []byte(p.Body), Close: p.NoKeepAlive}
	names := make([]string, 0, len(p.Headers))
	for k := range p.Headers {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		req.Headers = append(req.Headers, http1.Header{Name: k, Value: p.Headers[k]})
	}
	if err := req.Validate(); err != nil {
		return Options{}, proto.BadPlanf("%v", err)
	}
	var tc *tls.Config
	if u.Scheme == "https" {
		if tc, err = TLSConfig(p, serverName(p, u.Hostname())); err != nil {
			return Options{}, err
		}
	}
	return Options{
		TLS:            tc,
		NoKeepAlive:    p.NoKeepAlive,
		Addr:           ta.String(),
		Request:        http1.AppendRequest(nil, &req),
		Head:           strings.EqualFold(p.Method, "HEAD"),
		Schedule:       p.Schedule(),
		Pipeline:       p.Pipeline,
		Timeout:        p.Timeout.D(),
		ConnectTimeout: p.ConnectTimeout.D(),
	}, nil
}
