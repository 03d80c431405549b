package fleet

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/barrage-load/barrage/proto"
)

// MaxNode bounds what barrage reads from one znode (ZooKeeper's default
// jute.maxbuffer).
const MaxNode = 1 << 20

// MaxIntervalsPerTest bounds sequence numbers read from ZooKeeper.
const MaxIntervalsPerTest = 10_000_000

// Every decoder below reads data that anyone with access to ZooKeeper
// could have written: it caps the size, rejects what barrage would not
// write, and never panics (each has a fuzz target).

func decode(kind string, b []byte, v any) error {
	if len(b) == 0 {
		return fmt.Errorf("%w: empty %s", ErrBadData, kind)
	}
	if len(b) > MaxNode {
		return fmt.Errorf("%w: %s of %d bytes (at most %d)", ErrBadData, kind, len(b), MaxNode)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrBadData, kind, Clean(err.Error(), 200))
	}
	if dec.More() {
		return fmt.Errorf("%w: %s: data after the JSON value", ErrBadData, kind)
	}
	return nil
}

func bad(kind, format string, a ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrBadData, kind, fmt.Sprintf(format, a...))
}

// Clean makes s safe for a log line: control characters become '?' and
// it is cut to max bytes.
func Clean(s string, max int) string {
	if len(s) > max {
		s = s[:max] + "…"
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

func checkHost(kind, h string) error {
	if len(h) > 255 || Clean(h, 255) != h {
		return bad(kind, "host %q", Clean(h, 40))
	}
	return nil
}

// DecodeAgentInfo reads a registration.
func DecodeAgentInfo(b []byte) (*AgentInfo, error) {
	const kind = "agent registration"
	var a AgentInfo
	if err := decode(kind, b, &a); err != nil {
		return nil, err
	}
	if err := CheckName("agent name", a.Name); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadData, kind, err)
	}
	if err := checkHost(kind, a.Host); err != nil {
		return nil, err
	}
	if a.Cores < 1 || a.Cores > 4096 {
		return nil, bad(kind, "%d cores", a.Cores)
	}
	if !finite(a.MaxRate) || a.MaxRate < 0 || a.MaxRate > proto.MaxRate {
		return nil, bad(kind, "max rate %g", a.MaxRate)
	}
	if a.MaxConnections < 0 || a.MaxConnections > proto.MaxConnections {
		return nil, bad(kind, "max connections %d", a.MaxConnections)
	}
	a.Version = Clean(a.Version, 40)
	return &a, nil
}

// DecodeCoordInfo reads an election node.
func DecodeCoordInfo(b []byte) (*CoordInfo, error) {
	const kind = "election node"
	var c CoordInfo
	if err := decode(kind, b, &c); err != nil {
		return nil, err
	}
	if err := CheckName("coordinator name", c.Name); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadData, kind, err)
	}
	if err := checkHost(kind, c.Host); err != nil {
		return nil, err
	}
	return &c, nil
}

func checkInterval(kind string, d time.Duration) error {
	if d < 10*time.Millisecond || d > time.Hour {
		return bad(kind, "interval %s (want 10ms..1h)", d)
	}
	return nil
}

// CheckSchedule checks a whole test's schedule as read from ZooKeeper.
func CheckSchedule(kind string, segs []proto.Segment, d time.Duration) error {
	if len(segs) == 0 || len(segs) > proto.MaxSegments {
		return bad(kind, "%d schedule segments", len(segs))
	}
	b := proto.Budget{Schedule: segs, Weight: 1}
	p := &proto.Plan{Duration: proto.Duration(d)}
	if err := b.Validate(p, proto.Caps{}); err != nil {
		return fmt.Errorf("%w: %s: schedule: %v", ErrBadData, kind, err)
	}
	return nil
}

// DecodeAssignment reads an assignment and checks it as a plan file is
// checked; the agent then applies its own caps and target allowlist.
func DecodeAssignment(b []byte) (*Assignment, error) {
	const kind = "assignment"
	var a Assignment
	if err := decode(kind, b, &a); err != nil {
		return nil, err
	}
	if err := CheckTestID(a.Test); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadData, kind, err)
	}
	if a.Epoch < 1 || a.Version < 1 || a.Version > MaxIntervalsPerTest {
		return nil, bad(kind, "epoch %d, version %d", a.Epoch, a.Version)
	}
	if err := checkInterval(kind, a.Interval); err != nil {
		return nil, err
	}
	if err := a.Plan.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadData, kind, err)
	}
	if err := a.Budget.Validate(&a.Plan, proto.Caps{}); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadData, kind, err)
	}
	if err := CheckSchedule(kind, a.Schedule, a.Plan.Duration.D()); err != nil {
		return nil, err
	}
	return &a, nil
}

// DecodeActivation reads /tests/ID/active.
func DecodeActivation(b []byte) (*Activation, error) {
	const kind = "activation"
	var a Activation
	if err := decode(kind, b, &a); err != nil {
		return nil, err
	}
	if a.Version < 1 || a.Version > MaxIntervalsPerTest || a.Epoch < 1 || a.At < 0 || a.At > 366*24*time.Hour {
		return nil, bad(kind, "version %d, epoch %d, at %s", a.Version, a.Epoch, a.At)
	}
	return &a, nil
}

// DecodeLiveConfig reads /tests/ID/config.
func DecodeLiveConfig(b []byte) (*LiveConfig, error) {
	const kind = "live config"
	var c LiveConfig
	if err := decode(kind, b, &c); err != nil {
		return nil, err
	}
	if !finite(c.Rate) || c.Rate < 0 || c.Rate > proto.MaxRate {
		return nil, bad(kind, "rate %g", c.Rate)
	}
	if c.Connections < 1 || c.Connections > proto.MaxConnections {
		return nil, bad(kind, "%d connections", c.Connections)
	}
	if err := checkLiveHeaders(c.Headers); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadData, kind, err)
	}
	c.Reason = Clean(c.Reason, 100)
	return &c, nil
}

// checkLiveHeaders checks live headers as a plan's headers are checked.
func checkLiveHeaders(h map[string]string) error {
	if len(h) > MaxLiveHeaders {
		return fmt.Errorf("%d headers, more than %d", len(h), MaxLiveHeaders)
	}
	return proto.CheckHeaders(h)
}

// DecodeTestState reads /tests/ID.
func DecodeTestState(b []byte) (*TestState, error) {
	const kind = "test state"
	var st TestState
	if err := decode(kind, b, &st); err != nil {
		return nil, err
	}
	if err := CheckTestID(st.ID); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadData, kind, err)
	}
	switch st.Phase {
	case PhaseAssigned, PhaseRunning, PhaseDone, PhaseAbandoned:
	default:
		return nil, bad(kind, "phase %q", Clean(st.Phase, 20))
	}
	if len(st.Agents) == 0 || len(st.Agents) > 100_000 {
		return nil, bad(kind, "%d agents", len(st.Agents))
	}
	for _, a := range st.Agents {
		if CheckAgentID(a.ID) != nil || CheckName("agent name", a.Name) != nil || checkHost(kind, a.Host) != nil || a.Cores < 1 || a.Cores > 4096 {
			return nil, bad(kind, "agent %q", Clean(a.ID, 40))
		}
	}
	if err := checkInterval(kind, st.Interval); err != nil {
		return nil, err
	}
	if err := st.Plan.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadData, kind, err)
	}
	if err := CheckSchedule(kind, st.Schedule, st.Plan.Duration.D()); err != nil {
		return nil, err
	}
	if err := checkLiveHeaders(st.Headers); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadData, kind, err)
	}
	if st.Epoch < 1 || st.Version < 1 || st.MinAgents < 1 || st.StartAt < 0 || st.EndAt < st.StartAt {
		return nil, bad(kind, "epoch %d, version %d, min agents %d", st.Epoch, st.Version, st.MinAgents)
	}
	if st.Leader != "" && CheckElectionNode(st.Leader) != nil {
		return nil, bad(kind, "leader %q", Clean(st.Leader, 40))
	}
	st.LeaderName = Clean(st.LeaderName, MaxNameLen)
	for i := range st.Lost {
		l := &st.Lost[i]
		if CheckAgentID(l.Agent) != nil || !finite(l.At) {
			return nil, bad(kind, "lost agent %q", Clean(l.Agent, 40))
		}
		l.Name, l.Why = Clean(l.Name, MaxNameLen), Clean(l.Why, 200)
	}
	for i := range st.Changes {
		c := &st.Changes[i]
		c.Reason, c.Label = Clean(c.Reason, 100), Clean(c.Label, 200)
	}
	return &st, nil
}

// DecodeAck reads an ack or applied node.
func DecodeAck(b []byte) (*Ack, error) {
	const kind = "acknowledgement"
	var a Ack
	if err := decode(kind, b, &a); err != nil {
		return nil, err
	}
	if a.Version < -1 || a.Version > MaxIntervalsPerTest {
		return nil, bad(kind, "version %d", a.Version)
	}
	a.Error = Clean(a.Error, 500)
	return &a, nil
}

// DecodeAgentResult reads an agent's final result.
func DecodeAgentResult(b []byte) (*AgentResult, error) {
	const kind = "agent result"
	var r AgentResult
	if err := decode(kind, b, &r); err != nil {
		return nil, err
	}
	if CheckAgentID(r.Agent) != nil {
		return nil, bad(kind, "agent %q", Clean(r.Agent, 40))
	}
	if !finite(r.LoopBusy) || r.Intervals < 0 || r.P99 < 0 {
		return nil, bad(kind, "numbers out of range")
	}
	r.Name, r.Error, r.Fenced, r.StateDir = Clean(r.Name, MaxNameLen), Clean(r.Error, 500), Clean(r.Fenced, 200), Clean(r.StateDir, 500)
	return &r, nil
}

// DecodeStopInfo reads a stop node (which may be empty: someone stopped
// the test by hand).
func DecodeStopInfo(b []byte) *StopInfo {
	var s StopInfo
	if len(b) == 0 || decode("stop node", b, &s) != nil {
		return &StopInfo{Reason: "stop node created"}
	}
	s.Reason = Clean(s.Reason, 200)
	return &s
}

// DecodeBarrier reads a start instant (unix ns).
func DecodeBarrier(b []byte) (time.Time, error) {
	var ns int64
	if err := decode("barrier", b, &ns); err != nil {
		return time.Time{}, err
	}
	if ns <= 0 {
		return time.Time{}, bad("barrier", "%d", ns)
	}
	return time.Unix(0, ns), nil
}
