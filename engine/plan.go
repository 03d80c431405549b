package engine

import (
	"fmt"
	"net"
	"sort"
	"strings"

	"github.com/barrage-load/barrage/proto"
	"github.com/barrage-load/barrage/proto/http1"
)

// FromPlan turns a validated plan into engine options: it resolves the
// target's address once (the loops dial the IP, never DNS) and encodes the
// request's bytes once.
func FromPlan(p *proto.Plan) (Options, error) {
	u, err := proto.ParseTarget(p.TargetURL)
	if err != nil {
		return Options{}, err
	}
	port := u.Port()
	if port == "" {
		port = "80"
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
	req := http1.Request{Method: p.Method, Host: u.Host, Path: path, Body: []byte(p.Body)}
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
	return Options{
		Addr:           ta.String(),
		Request:        http1.AppendRequest(nil, &req),
		Head:           strings.EqualFold(p.Method, "HEAD"),
		Schedule:       p.Schedule(),
		Pipeline:       p.Pipeline,
		Timeout:        p.Timeout.D(),
		ConnectTimeout: p.ConnectTimeout.D(),
	}, nil
}
