package fleet

import (
	"errors"
	"time"

	"github.com/barrage-load/barrage/proto"
)

// Version is what agents and coordinators report of themselves.
const Version = "0.2.0"

// Sentinel errors.
var (
	// ErrZooKeeper occurs when ZooKeeper cannot be reached or a session
	// cannot be established in time.
	ErrZooKeeper = errors.New("fleet: ZooKeeper unreachable")
	// ErrBadRoot occurs when --zk-root is not an absolute znode path.
	ErrBadRoot = errors.New("fleet: bad ZooKeeper root")
	// ErrBadData occurs when a znode holds what barrage did not write: too
	// big, not the expected JSON, or out of bounds. It is refused, never
	// trusted.
	ErrBadData = errors.New("fleet: bad znode data")
	// ErrFenced occurs when a write is refused because its writer no
	// longer holds the lease it wrote under: a coordinator that lost its
	// leadership, or an agent whose session expired.
	ErrFenced = errors.New("fleet: fenced")
	// ErrOpenACL occurs when --zk-auth is given but a node barrage would
	// use is open to anyone.
	ErrOpenACL = errors.New("fleet: znode open to anyone")
)

// AgentInfo is an agent's registration, /agents/agent-NNNNNNNNNN.
type AgentInfo struct {
	Name    string `json:"name"`
	Host    string `json:"host"`
	Cores   int    `json:"cores"`
	Version string `json:"version"`
	PID     int    `json:"pid"`
	// MaxRate and MaxConnections are the agent's caps: budgets above them
	// are refused by the agent, so the coordinator splits within them.
	MaxRate        float64 `json:"max_rate"`
	MaxConnections int     `json:"max_connections"`
}

// CoordInfo is a coordinator's election node, /election/c-NNNNNNNNNN.
type CoordInfo struct {
	Name    string `json:"name"`
	Host    string `json:"host"`
	PID     int    `json:"pid"`
	Standby bool   `json:"standby"`
}

// Assignment is what the coordinator writes to /assign/AGENT: the test,
// the leadership epoch and change version it was written under, the plan
// (what to send) and this agent's budget (how much).
type Assignment struct {
	Test string `json:"test"`
	// Epoch is the test's leadership epoch (TestState.Epoch): it grows
	// each time a coordinator takes the test over, so an agent can tell a
	// stale writer's assignment from the current one.
	Epoch int64 `json:"epoch"`
	// Version numbers the test's changes: 1 is the start, each live change
	// or rebalance adds one.
	Version int          `json:"version"`
	Plan    proto.Plan   `json:"plan"`
	Budget  proto.Budget `json:"budget"`
	// Schedule is the whole test's schedule in force (the budget is this
	// agent's share of it); kept on the agent's disk so a report can be
	// rebuilt from what agents kept.
	Schedule []proto.Segment `json:"schedule"`
	Interval time.Duration   `json:"interval"`
}

// Activation is /tests/ID/active: apply the prepared change Version at At
// (time since the test's start, an interval boundary, so every agent
// switches at the same instant and step rows stay exact).
type Activation struct {
	Version int           `json:"version"`
	Epoch   int64         `json:"epoch"`
	At      time.Duration `json:"at"`
}

// LiveConfig is /tests/ID/config: the whole test's rate and connections,
// written by `barrage set` with a compare-and-swap on the znode version.
type LiveConfig struct {
	Rate        float64 `json:"rate"`
	Connections int     `json:"connections"`
	// Headers are header values set on every request of the test (a
	// rotated credential); a secret one is written only under --zk-auth.
	Headers map[string]string `json:"headers,omitempty"`
	SetAt   int64             `json:"set_at_unix_ns"`
	Reason  string            `json:"reason"`
}

// MaxLiveHeaders bounds the headers a live config sets.
const MaxLiveHeaders = 64

// Test phases.
const (
	PhaseAssigned  = "assigned"
	PhaseRunning   = "running"
	PhaseDone      = "done"
	PhaseAbandoned = "abandoned"
)

// AgentRef is one agent of a test.
type AgentRef struct {
	ID    string `json:"id"` // registration node name
	Name  string `json:"name"`
	Host  string `json:"host"`
	Cores int    `json:"cores"`
	// Caps are the agent's --max-rate and --max-connections.
	MaxRate        float64 `json:"max_rate"`
	MaxConnections int     `json:"max_connections"`
}

// Caps returns the agent's caps.
func (a AgentRef) Caps() proto.Caps {
	return proto.Caps{MaxRate: a.MaxRate, MaxConnections: a.MaxConnections}
}

// TestState is /tests/ID.
type TestState struct {
	ID     string     `json:"id"`
	Plan   proto.Plan `json:"plan"`
	Agents []AgentRef `json:"agents"`
	// StartAt is the barrier instant; EndAt the planned end (unix ns).
	StartAt  int64         `json:"start_at_unix_ns"`
	EndAt    int64         `json:"end_at_unix_ns"`
	Interval time.Duration `json:"interval"`
	Phase    string        `json:"phase"`
	Lost     []LostAgent   `json:"lost,omitempty"`
	// Balanced is how many of Lost the last rebalance covered.
	Balanced int `json:"balanced"`
	// Version is the last change version; Epoch the leadership epoch;
	// Leader the election node and LeaderName the name of the coordinator
	// that holds the test.
	Version    int    `json:"version"`
	Epoch      int64  `json:"epoch"`
	Leader     string `json:"leader"`
	LeaderName string `json:"leader_name"`
	MinAgents  int    `json:"min_agents"`
	// Schedule is the whole test's schedule in force (the plan's, edited
	// by live changes), and Rate and Connections the live config's.
	Schedule    []proto.Segment `json:"schedule"`
	Rate        float64         `json:"rate"`
	Connections int             `json:"connections"`
	// Headers are the live config's headers in force (Plan has them set
	// on every request too).
	Headers map[string]string `json:"headers,omitempty"`
	// CfgVersion is the config znode version the schedule reflects.
	CfgVersion int32 `json:"cfg_version"`
	// Changes lists the live changes applied, for the report.
	Changes []Change `json:"changes,omitempty"`
}

// Agent returns the index of agent id in the test, or -1.
func (st *TestState) Agent(id string) int {
	for i, a := range st.Agents {
		if a.ID == id {
			return i
		}
	}
	return -1
}

// IsLost reports whether agent id was declared lost.
func (st *TestState) IsLost(id string) bool {
	for _, l := range st.Lost {
		if l.Agent == id {
			return true
		}
	}
	return false
}

// Change is one live change or rebalance.
type Change struct {
	Version int     `json:"version"`
	Reason  string  `json:"reason"`
	At      float64 `json:"at_seconds"`      // when it took effect, from the start
	Asked   float64 `json:"asked_seconds"`   // when it was asked for, from the start
	Agents  int     `json:"agents"`          // agents it went to
	Applied bool    `json:"applied"`         // every agent confirmed it
	Label   string  `json:"label,omitempty"` // what changed
}

// LostAgent records an agent declared lost mid-test. Its snapshots of
// intervals that start at or after Moved are discarded: its budget had
// moved to the survivors then (what it sent before counts: it was its
// share of the plan).
type LostAgent struct {
	Agent string  `json:"agent"`
	Name  string  `json:"name"`
	At    float64 `json:"at_seconds"`
	// Moved is when its budget moved to the survivors (0: not yet).
	Moved float64 `json:"moved_seconds,omitempty"`
	Why   string  `json:"why,omitempty"`
}

// Ack is /tests/ID/ack/AGENT (prepared) and /tests/ID/applied/AGENT: the
// change version, when, and for a preparation that failed, why.
type Ack struct {
	Version int    `json:"version"`
	At      int64  `json:"at_unix_ns"`
	Error   string `json:"error,omitempty"`
}

// AgentResult is /tests/ID/result/AGENT: the agent's own summary.
type AgentResult struct {
	Agent     string  `json:"agent"`
	Name      string  `json:"name"`
	Intervals int     `json:"intervals"`
	FirstSend int64   `json:"first_send_unix_ns"`
	Sent      uint64  `json:"sent"`
	Responses uint64  `json:"responses"`
	P99       int64   `json:"p99_us"`
	LoopBusy  float64 `json:"loop_busy"`
	Error     string  `json:"error,omitempty"`
	// Unpublished counts snapshots that never reached ZooKeeper (it was
	// away): they are in StateDir.
	Unpublished int `json:"unpublished,omitempty"`
	// Fenced says why the agent stopped sending before its plan's end
	// (its session expired, its registration vanished).
	Fenced string `json:"fenced,omitempty"`
	// StateDir is where the agent kept its snapshots.
	StateDir string `json:"state_dir,omitempty"`
}

// StopInfo is /tests/ID/stop: stop now, and why.
type StopInfo struct {
	Reason string `json:"reason"`
	At     int64  `json:"at_unix_ns"`
}
