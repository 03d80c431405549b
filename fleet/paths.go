package fleet

import (
	"fmt"
	"strings"
)

// DefaultRoot is the znode under which everything lives.
const DefaultRoot = "/barrage"

// CheckRoot validates a root path.
func CheckRoot(root string) error {
	if !strings.HasPrefix(root, "/") || root == "/" || strings.HasSuffix(root, "/") || strings.Contains(root, "//") ||
		len(root) > 200 || hasBadChar(root) {
		return fmt.Errorf("%w %q: want an absolute znode path such as /barrage", ErrBadRoot, root)
	}
	return nil
}

func hasBadChar(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e {
			return true
		}
	}
	return false
}

// Paths names the znodes of one root (see the package doc for the layout).
type Paths struct{ Root string }

// Agents is the registry's parent.
func (p Paths) Agents() string { return p.Root + "/agents" }

// Agent is one registration.
func (p Paths) Agent(id string) string { return p.Root + "/agents/" + id }

// Election is the coordinators' election parent.
func (p Paths) Election() string { return p.Root + "/election" }

// Current names the running test.
func (p Paths) Current() string { return p.Root + "/current" }

// Assigns is the assignments' parent.
func (p Paths) Assigns() string { return p.Root + "/assign" }

// Assign is one agent's assignment.
func (p Paths) Assign(agent string) string { return p.Root + "/assign/" + agent }

// Tests is the tests' parent.
func (p Paths) Tests() string { return p.Root + "/tests" }

// Test is one test's state.
func (p Paths) Test(id string) string { return p.Root + "/tests/" + id }

// Config is a test's live config, written by `barrage set`.
func (p Paths) Config(id string) string { return p.Test(id) + "/config" }

// Acks is the parent of the agents' preparation acknowledgements.
func (p Paths) Acks(id string) string { return p.Test(id) + "/ack" }

// Ack is one agent's acknowledgement.
func (p Paths) Ack(id, agent string) string { return p.Test(id) + "/ack/" + agent }

// Barrier holds the start instant.
func (p Paths) Barrier(id string) string { return p.Test(id) + "/barrier" }

// Active names the change to apply and when.
func (p Paths) Active(id string) string { return p.Test(id) + "/active" }

// Applieds is the parent of the agents' applied notes.
func (p Paths) Applieds(id string) string { return p.Test(id) + "/applied" }

// Applied is one agent's applied note.
func (p Paths) Applied(id, agent string) string { return p.Test(id) + "/applied/" + agent }

// Snaps is the snapshots' parent.
func (p Paths) Snaps(id string) string { return p.Test(id) + "/snap" }

// Snap is one agent's snapshot of interval seq.
func (p Paths) Snap(id, agent string, seq int) string {
	return fmt.Sprintf("%s/snap/%s", p.Test(id), SnapName(agent, seq))
}

// SnapName is a snapshot node's name: AGENT-SEQ.
func SnapName(agent string, seq int) string { return fmt.Sprintf("%s-%06d", agent, seq) }

// ParseSnapName splits a snapshot node's name; ok is false for a name this
// package did not make.
func ParseSnapName(name string) (agent string, seq int, ok bool) {
	i := strings.LastIndexByte(name, '-')
	if i <= 0 || i == len(name)-1 || len(name)-i-1 > 9 {
		return "", 0, false
	}
	n := 0
	for _, c := range name[i+1:] {
		if c < '0' || c > '9' {
			return "", 0, false
		}
		n = n*10 + int(c-'0')
	}
	agent = name[:i]
	if CheckAgentID(agent) != nil {
		return "", 0, false
	}
	return agent, n, true
}

// Merged is the parent of the coordinator's merged intervals.
func (p Paths) Merged(id string) string { return p.Test(id) + "/merged" }

// MergedSeq is the merged interval seq.
func (p Paths) MergedSeq(id string, seq int) string {
	return fmt.Sprintf("%s/merged/%06d", p.Test(id), seq)
}

// Fold is the coordinator's checkpoint of what it folded.
func (p Paths) Fold(id string) string { return p.Test(id) + "/fold" }

// Results is the parent of the agents' final results.
func (p Paths) Results(id string) string { return p.Test(id) + "/result" }

// Result is one agent's final result.
func (p Paths) Result(id, agent string) string { return p.Test(id) + "/result/" + agent }

// Stop exists when the test must stop now.
func (p Paths) Stop(id string) string { return p.Test(id) + "/stop" }
