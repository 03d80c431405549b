package proto

// Bounds shared by every check (flags, plan files, set, agents).
const (
	// MaxRate bounds any rate, for a whole fleet.
	MaxRate = 1e8
	// MaxSegments bounds a schedule's segments (steps and live changes).
	MaxSegments = 10000
)

// Caps are one generator's own ceilings (an agent's --max-rate and
// --max-connections, or run's); zero fields are not checked.
type Caps struct {
	MaxRate        float64
	MaxConnections int
}

// Default caps of an agent (and of run).
const (
	DefaultAgentMaxRate        = 1e6
	DefaultAgentMaxConnections = 200000
)
