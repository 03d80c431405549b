package engine

import (
	"crypto/tls"
	"fmt"
	"net"

	"github.com/barrage-load/barrage/proto"
	reqmix "github.com/barrage-load/barrage/request"
)

// FromPlan turns a validated plan into engine options for a generator
// that runs it alone (`barrage run`): every row of its data files, part 0
// of 1. See FromBudget.
func FromPlan(p *proto.Plan) (Options, error) { return FromBudget(p, nil) }

// FromBudget turns a validated plan into engine options for the
// generator whose budget is b (an agent's: its data slice and its part of
// the fleet; nil: alone). It resolves the target's address once (the
// loops dial the IP, never DNS), reads the plan's data files from this
// box and compiles the requests once (reqmix.Build): the loops only
// render them. For an https:// target it builds the TLS configuration,
// reading the plan's certificate files from this box (see TLSConfig).
// Errors in the plan match proto.ErrBadPlan.
func FromBudget(p *proto.Plan, b *proto.Budget) (Options, error) {
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
	ro := reqmix.Options{}
	if b != nil {
		ro.Slice, ro.Part, ro.Parts = b.Data, b.Part, b.Parts
	}
	m, err := reqmix.Build(p, ro)
	if err != nil {
		return Options{}, err
	}
	var tc *tls.Config
	if u.Scheme == "https" {
		if tc, err = TLSConfig(p, serverName(p, u.Hostname())); err != nil {
			return Options{}, err
		}
	}
	o := Options{
		TLS:            tc,
		NoKeepAlive:    p.NoKeepAlive,
		Addr:           ta.String(),
		Mix:            m,
		Head:           m.Head(),
		Schedule:       p.Schedule(),
		Pipeline:       p.Pipeline,
		Timeout:        p.Timeout.D(),
		ConnectTimeout: p.ConnectTimeout.D(),
		Retry:          p.Retry,
		Breaker:        p.Breaker,
		FailOn:         p.FailKinds(),
		ExpectStatus:   p.ExpectStatus,
		Seed:           p.Seed,
	}
	if b != nil {
		// Each agent's loops draw their own jitter.
		o.Seed ^= uint64(b.Part+1) << 40
	}
	if req, ok := m.Static(); ok {
		o.Request = req
	}
	return o, nil
}
