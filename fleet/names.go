package fleet

import (
	"errors"
	"fmt"
	"strings"
)

// ErrBadName occurs when a name read from a flag or from ZooKeeper is not
// one barrage would make: it is refused before it is used in a znode path
// or a log line (a 1 MB test ID once went raw into an agent's log).
var ErrBadName = errors.New("fleet: bad name")

// MaxNameLen bounds agent, coordinator and test names.
const MaxNameLen = 64

// CheckName accepts a human name: 1 to MaxNameLen characters from
// [A-Za-z0-9._-], not starting with a dot or dash. Agent names (--name),
// coordinator names and test IDs are such names.
func CheckName(kind, s string) error {
	if s == "" || len(s) > MaxNameLen {
		return fmt.Errorf("%w: %s must be 1 to %d characters, got %d", ErrBadName, kind, MaxNameLen, len(s))
	}
	if s[0] == '.' || s[0] == '-' {
		return fmt.Errorf("%w: %s %q must not start with %q", ErrBadName, kind, s, s[0])
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w: %s %q has %q (want letters, digits, '.', '_', '-')", ErrBadName, kind, quoteShort(s), c)
		}
	}
	return nil
}

// CheckTestID accepts a test ID.
func CheckTestID(id string) error { return CheckName("test ID", id) }

// CheckAgentID accepts an agent's registration node name: "agent-"
// followed by ZooKeeper's 10-digit sequence number.
func CheckAgentID(id string) error {
	rest, ok := strings.CutPrefix(id, "agent-")
	if !ok || len(rest) != 10 {
		return fmt.Errorf("%w: agent ID %q (want agent-NNNNNNNNNN)", ErrBadName, quoteShort(id))
	}
	for _, c := range rest {
		if c < '0' || c > '9' {
			return fmt.Errorf("%w: agent ID %q (want agent-NNNNNNNNNN)", ErrBadName, quoteShort(id))
		}
	}
	return nil
}

// CheckElectionNode accepts a coordinator's election node name (c-NNNNNNNNNN).
func CheckElectionNode(id string) error {
	rest, ok := strings.CutPrefix(id, "c-")
	if !ok || len(rest) != 10 || strings.Trim(rest, "0123456789") != "" {
		return fmt.Errorf("%w: election node %q", ErrBadName, quoteShort(id))
	}
	return nil
}

// quoteShort cuts s for an error message.
func quoteShort(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
