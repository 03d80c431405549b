package coord

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/barrage-load/barrage/fleet"
	"github.com/barrage-load/barrage/proto"
)

// ErrBadValue occurs when `set` is given a value no test could take.
var ErrBadValue = errors.New("coord: bad value")

// SetOptions describe a live change.
type SetOptions struct {
	ZK, Root string
	Auth     *fleet.Auth
	Test     string // default: the running test
	// Rate is the new total rate; NaN leaves it unchanged.
	Rate float64
	// Connections is the new total connection count; 0 leaves it.
	Connections int
	// Headers are set on every request of the test (a rotated
	// credential); a secret one (proto.IsSecretHeader, or one the test's
	// plan marks secret) only under Auth, on a test whose nodes are
	// closed to others.
	Headers map[string]string
	// Wait is how long to wait for the agents to apply it (0: don't).
	Wait time.Duration
}

// SetResult tells what a live change did.
type SetResult struct {
	Test    string
	Version int32 // the config znode's version written
	// Change is the change number the coordinator gave it, and At when it
	// took effect (from the test's start); zero if not waited for.
	Change int
	At     time.Duration
	// Applied is how long after the write every agent had applied it
	// (zero if not confirmed); Agents how many.
	Applied time.Duration
	Agents  int
}

// CheckSet checks a live change's values the way plans are checked.
func CheckSet(rate float64, conns int, headers ...map[string]string) error {
	if !math.IsNaN(rate) && (math.IsInf(rate, 0) || rate < 0 || rate > proto.MaxRate) {
		return fmt.Errorf("%w: --rate %g is not in [0, %g]", ErrBadValue, rate, proto.MaxRate)
	}
	if conns < 0 || conns > proto.MaxConnections {
		return fmt.Errorf("%w: --connections %d is not in [1, %d]", ErrBadValue, conns, proto.MaxConnections)
	}
	nh := 0
	for _, h := range headers {
		nh += len(h)
		if err := proto.CheckHeaders(h); err != nil {
			return fmt.Errorf("%w: %v", ErrBadValue, err)
		}
	}
	if nh > fleet.MaxLiveHeaders {
		return fmt.Errorf("%w: %d headers, more than %d", ErrBadValue, nh, fleet.MaxLiveHeaders)
	}
	if math.IsNaN(rate) && conns == 0 && nh == 0 {
		return fmt.Errorf("%w: give --rate, --connections and/or -H", ErrBadValue)
	}
	return nil
}

// Set writes a new live config for a running test with a compare-and-swap
// on the config znode's version, then waits for the agents to apply it.
func Set(ctx context.Context, o SetOptions) (*SetResult, error) {
	if err := CheckSet(o.Rate, o.Connections, o.Headers); err != nil {
		return nil, err
	}
	if o.Root == "" {
		o.Root = fleet.DefaultRoot
	}
	if err := fleet.CheckRoot(o.Root); err != nil {
		return nil, err
	}
	s, err := fleet.Dial(fleet.DialOptions{Hosts: o.ZK, Timeout: 10 * time.Second, Auth: o.Auth})
	if err != nil {
		return nil, err
	}
	defer s.Close()
	p := fleet.Paths{Root: o.Root}
	test := o.Test
	if test == "" {
		b, _, err := s.Conn.Get(p.Current())
		if err != nil || len(b) == 0 {
			return nil, fmt.Errorf("%w under %s", ErrNoTest, o.Root)
		}
		test = string(b)
	}
	if err := fleet.CheckTestID(test); err != nil {
		return nil, err
	}
	tb, _, err := s.Conn.Get(p.Test(test))
	if errors.Is(err, zk.ErrNoNode) {
		return nil, fmt.Errorf("%w: test %q under %s", ErrNoTest, test, o.Root)
	}
	if err != nil {
		return nil, fmt.Errorf("coord: cannot read test %s: %w", test, err)
	}
	st, err := fleet.DecodeTestState(tb)
	if err != nil {
		return nil, err
	}
	if st.Phase != fleet.PhaseRunning {
		return nil, fmt.Errorf("%w: test %s is %s", ErrNoTest, test, st.Phase)
	}
	if !math.IsNaN(o.Rate) && !st.Plan.Open() {
		return nil, fmt.Errorf("%w: test %s runs the closed model (as fast as the target answers); a rate would switch models: change --connections instead, or start an open-model test (--rate)", ErrBadValue, test)
	}
	var capRate float64
	capConns, alive := 0, 0
	for _, a := range st.Agents {
		if !st.IsLost(a.ID) {
			capRate += a.MaxRate
			capConns += a.MaxConnections
			alive++
		}
	}
	if !math.IsNaN(o.Rate) && capRate > 0 && o.Rate > capRate {
		return nil, fmt.Errorf("%w: --rate %g is over what the %d agents' --max-rate allow together (%g)", ErrBadValue, o.Rate, alive, capRate)
	}
	if o.Connections > 0 && (o.Connections < alive || (capConns > 0 && o.Connections > capConns)) {
		return nil, fmt.Errorf("%w: --connections %d is not between the %d agents and what their --max-connections allow together (%d)", ErrBadValue, o.Connections, alive, capConns)
	}
	// A secret travels through ZooKeeper only where no one else reads it:
	// under --zk-auth, into nodes that are this identity's alone (a test
	// started without --zk-auth has open nodes: its agents' assignments
	// would carry the secret to anyone).
	for k := range o.Headers {
		if !st.Plan.IsSecret(k) {
			continue
		}
		if o.Auth == nil {
			return nil, fmt.Errorf("%w: header %s is a secret: it travels through ZooKeeper only under --zk-auth (give the coordinator's and agents' --zk-auth FILE)", ErrBadValue, k)
		}
		for _, node := range []string{p.Config(test), p.Test(test)} {
			if err := closedToOthers(s, node); err != nil {
				return nil, fmt.Errorf("%w: header %s is a secret and %v", ErrBadValue, k, err)
			}
		}
	}
	b, stat, err := s.Conn.Get(p.Config(test))
	if err != nil {
		return nil, fmt.Errorf("coord: cannot read the config of test %s: %w", test, err)
	}
	cfg, err := fleet.DecodeLiveConfig(b)
	if err != nil {
		return nil, err
	}
	if !math.IsNaN(o.Rate) {
		cfg.Rate = o.Rate
	}
	if o.Connections > 0 {
		cfg.Connections = o.Connections
	}
	for k, v := range o.Headers {
		if cfg.Headers == nil {
			cfg.Headers = map[string]string{}
		}
		for old := range cfg.Headers {
			if strings.EqualFold(old, k) {
				delete(cfg.Headers, old)
			}
		}
		cfg.Headers[k] = v
	}
	if len(cfg.Headers) > fleet.MaxLiveHeaders {
		return nil, fmt.Errorf("%w: the test would have %d live headers, more than %d", ErrBadValue, len(cfg.Headers), fleet.MaxLiveHeaders)
	}
	cfg.Reason = "set"
	cfg.SetAt = time.Now().UnixNano()
	nb, _ := json.Marshal(cfg)
	version := st.Version
	written := time.Now()
	ns, err := s.Conn.Set(p.Config(test), nb, stat.Version)
	if errors.Is(err, zk.ErrBadVersion) {
		return nil, fmt.Errorf("%w (test %s); read it again and retry", ErrConflict, test)
	}
	if err != nil {
		return nil, fmt.Errorf("coord: cannot write the config of test %s: %w", test, err)
	}
	res := &SetResult{Test: test, Version: ns.Version}
	if o.Wait <= 0 {
		return res, nil
	}
	// The coordinator turns the config into a numbered change: wait for
	// it, then for every agent alive to have applied it.
	deadline := time.Now().Add(o.Wait)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
		tb, _, err := s.Conn.Get(p.Test(test))
		if err != nil {
			continue
		}
		st, err := fleet.DecodeTestState(tb)
		if err != nil || st.Version <= version || len(st.Changes) == 0 {
			continue
		}
		ch := st.Changes[len(st.Changes)-1]
		if ch.Reason != "set" {
			continue
		}
		res.Change, res.At = ch.Version, time.Duration(ch.At*float64(time.Second))
		var last int64
		n := 0
		for _, a := range st.Agents {
			if st.IsLost(a.ID) {
				continue
			}
			ab, _, err := s.Conn.Get(p.Applied(test, a.ID))
			if err != nil {
				break
			}
			ack, err := fleet.DecodeAck(ab)
			if err != nil || ack.Version < ch.Version {
				break
			}
			n++
			last = max(last, ack.At)
		}
		if want := len(st.Agents) - len(st.Lost); n >= want && n > 0 {
			res.Agents = n
			res.Applied = time.Unix(0, last).Sub(written)
			return res, nil
		}
	}
	return res, nil
}

// closedToOthers checks that no one but this session's identity can read
// node: fleet's CheckACL refuses a node others may write; a secret also
// needs one no one else may read.
func closedToOthers(s *fleet.Session, node string) error {
	if err := s.CheckACL(node); err != nil {
		return err
	}
	acl, _, err := s.Conn.GetACL(node)
	if err != nil {
		return fmt.Errorf("cannot read the ACL of %s: %w", node, err)
	}
	for _, a := range acl {
		if a.Scheme == "world" || a.Scheme == "anyone" {
			return fmt.Errorf("%w: %s is readable by anyone (the test was started without --zk-auth)", fleet.ErrOpenACL, node)
		}
	}
	return nil
}
