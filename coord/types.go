package coord

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/barrage-load/barrage/proto"
)

// DefaultRoot is the znode under which everything lives.
const DefaultRoot = "/barrage"

// Version is what agents report of themselves.
const Version = "0.1.0"

// Sentinel errors.
var (
	// ErrZooKeeper occurs when ZooKeeper cannot be reached or a session
	// cannot be established in time.
	ErrZooKeeper = errors.New("coord: ZooKeeper unreachable")
	// ErrTooFewAgents occurs when fewer agents than asked registered in
	// time.
	ErrTooFewAgents = errors.New("coord: too few agents")
	// ErrBadRoot occurs when --zk-root is not an absolute znode path.
	ErrBadRoot = errors.New("coord: bad ZooKeeper root")
	// ErrNoTest occurs when `set` finds no running test.
	ErrNoTest = errors.New("coord: no running test")
	// ErrConflict occurs when a live change lost a compare-and-swap race.
	ErrConflict = errors.New("coord: the test's config changed meanwhile")
)

// CheckRoot validates a root path.
func CheckRoot(root string) error {
	if !strings.HasPrefix(root, "/") || root == "/" || strings.HasSuffix(root, "/") || strings.Contains(root, "//") {
		return fmt.Errorf("%w %q: want an absolute znode path such as /barrage", ErrBadRoot, root)
	}
	return nil
}

// AgentInfo is an agent's registration.
type AgentInfo struct {
	Name    string `json:"name"`
	Host    string `json:"host"`
	Cores   int    `json:"cores"`
	Version string `json:"version"`
	// Capacity is the rate the agent says it can drive (0: unknown); it
	// is informative, budgets follow cores.
	Capacity float64 `json:"capacity,omitempty"`
	PID      int     `json:"pid"`
}

// Budget is one agent's share of a test.
type Budget struct {
	Schedule    []proto.Segment `json:"schedule"`
	Rate        float64         `json:"rate"`        // the share of the current constant rate (0: follow Schedule)
	Connections int             `json:"connections"` // the share of the current connections
	Weight      float64         `json:"weight"`
}

// Assignment is what the coordinator writes to /assign/AGENT.
type Assignment struct {
	Test    string `json:"test"`
	Version int    `json:"version"` // config version it reflects
	Plan    proto.Plan
	Budget  Budget `json:"budget"`
	// Interval is the snapshot interval.
	Interval time.Duration `json:"interval"`
}

// LiveConfig is /tests/ID/config: the whole test's rate and connections.
type LiveConfig struct {
	Rate        float64 `json:"rate"`
	Connections int     `json:"connections"`
	SetAt       int64   `json:"set_at_unix_ns"`
	// Reason says who changed it: "set", "rebalance".
	Reason string `json:"reason"`
}

// TestState is /tests/ID.
type TestState struct {
	ID       string        `json:"id"`
	Plan     proto.Plan    `json:"plan"`
	Agents   []string      `json:"agents"` // agent node names
	Names    []string      `json:"names"`  // their human names
	Hosts    []string      `json:"hosts"`
	Cores    []int         `json:"cores"`
	StartAt  int64         `json:"start_at_unix_ns"`
	Interval time.Duration `json:"interval"`
	Phase    string        `json:"phase"` // assigned, running, done
	Lost     []LostAgent   `json:"lost,omitempty"`
	Version  int           `json:"version"`
	MinAgent int           `json:"min_agents"`
	// Schedule is the whole test's schedule in force (the plan's, edited
	// by live changes), and Rate and Connections the live config's.
	Schedule    []proto.Segment `json:"schedule"`
	Rate        float64         `json:"rate"`
	Connections int             `json:"connections"`
	// CfgVersion is the config znode version the schedule reflects.
	CfgVersion int32 `json:"cfg_version"`
}

// LostAgent records an agent that disappeared mid-test.
type LostAgent struct {
	Agent string  `json:"agent"`
	Name  string  `json:"name"`
	At    float64 `json:"at_seconds"`
}

// Ack is /tests/ID/ack/AGENT and /tests/ID/applied/AGENT.
type Ack struct {
	Version int   `json:"version"`
	At      int64 `json:"at_unix_ns"`
}

// AgentResult is /tests/ID/result/AGENT: the agent's summary.
type AgentResult struct {
	Agent     string `json:"agent"`
	Name      string `json:"name"`
	Intervals int    `json:"intervals"`
	FirstSend int64  `json:"first_send_unix_ns"`
	Sent      uint64 `json:"sent"`
	Responses uint64 `json:"responses"`
	Error     string `json:"error,omitempty"`
	// Detached is true when the agent lost ZooKeeper and finished alone.
	Detached bool `json:"detached,omitempty"`
}

// znode paths.
type paths struct{ root string }

func (p paths) agents() string              { return p.root + "/agents" }
func (p paths) agent(n string) string       { return p.root + "/agents/" + n }
func (p paths) election() string            { return p.root + "/election" }
func (p paths) current() string             { return p.root + "/current" }
func (p paths) assigns() string             { return p.root + "/assign" }
func (p paths) assign(a string) string      { return p.root + "/assign/" + a }
func (p paths) tests() string               { return p.root + "/tests" }
func (p paths) test(id string) string       { return p.root + "/tests/" + id }
func (p paths) config(id string) string     { return p.test(id) + "/config" }
func (p paths) acks(id string) string       { return p.test(id) + "/ack" }
func (p paths) ack(id, a string) string     { return p.test(id) + "/ack/" + a }
func (p paths) barrier(id string) string    { return p.test(id) + "/barrier" }
func (p paths) active(id string) string     { return p.test(id) + "/active" }
func (p paths) applieds(id string) string   { return p.test(id) + "/applied" }
func (p paths) applied(id, a string) string { return p.test(id) + "/applied/" + a }
func (p paths) snaps(id string) string      { return p.test(id) + "/snap" }
func (p paths) snap(id, a string, seq int) string {
	return fmt.Sprintf("%s/snap/%s-%06d", p.test(id), a, seq)
}
func (p paths) results(id string) string   { return p.test(id) + "/result" }
func (p paths) result(id, a string) string { return p.test(id) + "/result/" + a }
func (p paths) stop(id string) string      { return p.test(id) + "/stop" }
