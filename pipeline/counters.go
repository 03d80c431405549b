package pipeline

import (
	"time"

	"github.com/barrage-load/barrage/proto"
)

// Counters are an agent's running totals without histograms: what its row
// in the report needs, small enough to keep for thousands of agents (the
// histograms of a whole run merge into the test's totals, not per agent).
type Counters struct {
	Sent       uint64                    `json:"sent"`
	Responses  uint64                    `json:"responses"`
	Unfinished uint64                    `json:"unfinished"`
	Errors     [proto.NumErrKinds]uint64 `json:"errors"`
	// Status counts responses by code (sparse: a few codes per agent).
	Status     map[int]uint64             `json:"status,omitempty"`
	Scheduled  uint64                     `json:"scheduled"`
	Backlogged uint64                     `json:"backlogged"`
	Shed       [proto.NumShedKinds]uint64 `json:"shed"`
	Censored   uint64                     `json:"censored"`
	LoopCPU    time.Duration              `json:"loop_cpu"`
	LoopCap    time.Duration              `json:"loop_capacity"`
	// End is the end of the latest interval received.
	End time.Duration `json:"end"`
}

// Add counts one interval's statistics.
func (c *Counters) Add(s *proto.Stats) {
	c.Sent += s.Sent
	c.Responses += s.Responses
	c.Unfinished += s.Unfinished
	for i := range s.Errors {
		c.Errors[i] += s.Errors[i]
	}
	for code, n := range s.Status {
		if n > 0 {
			if c.Status == nil {
				c.Status = map[int]uint64{}
			}
			c.Status[code] += n
		}
	}
	c.Scheduled += s.Scheduled
	c.Backlogged += s.Backlogged
	for i := range s.Shed {
		c.Shed[i] += s.Shed[i]
	}
	c.Censored += s.Censored
	c.LoopCPU += s.LoopCPU
	c.LoopCap += s.LoopCapacity
	c.End = max(c.End, s.End)
}

// Merge adds o.
func (c *Counters) Merge(o *Counters) {
	c.Sent += o.Sent
	c.Responses += o.Responses
	c.Unfinished += o.Unfinished
	for i := range o.Errors {
		c.Errors[i] += o.Errors[i]
	}
	for code, n := range o.Status {
		if c.Status == nil {
			c.Status = map[int]uint64{}
		}
		c.Status[code] += n
	}
	c.Scheduled += o.Scheduled
	c.Backlogged += o.Backlogged
	for i := range o.Shed {
		c.Shed[i] += o.Shed[i]
	}
	c.Censored += o.Censored
	c.LoopCPU += o.LoopCPU
	c.LoopCap += o.LoopCap
	c.End = max(c.End, o.End)
}

// Failed counts requests that got no response (every error kind but
// connect).
func (c *Counters) Failed() uint64 {
	var n uint64
	for k := proto.ErrTimeout; k < proto.NumErrKinds; k++ {
		n += c.Errors[k]
	}
	return n
}

// Stats returns the counters as statistics without histograms.
func (c *Counters) Stats() *proto.Stats {
	s := &proto.Stats{Sent: c.Sent, Responses: c.Responses, Unfinished: c.Unfinished, Errors: c.Errors,
		Scheduled: c.Scheduled, Backlogged: c.Backlogged, Shed: c.Shed, Censored: c.Censored,
		LoopCPU: c.LoopCPU, LoopCapacity: c.LoopCap, End: c.End}
	for code, n := range c.Status {
		if code >= 0 && code < proto.MaxStatus {
			s.Status[code] += n
		} else {
			s.Status[0] += n
		}
	}
	return s
}

// LoopBusy is the fraction of their cores the agent's event loops used.
func (c *Counters) LoopBusy() float64 {
	if c.LoopCap <= 0 {
		return 0
	}
	return float64(c.LoopCPU) / float64(c.LoopCap)
}

// Ranges is a set of interval sequence numbers as sorted, disjoint,
// inclusive ranges: an agent that misses nothing has one.
type Ranges [][2]int

// Add puts seq in the set; it reports false when seq was there already.
func (r *Ranges) Add(seq int) bool {
	rs := *r
	i := 0
	for i < len(rs) && rs[i][1] < seq-1 {
		i++
	}
	switch {
	case i == len(rs):
		*r = append(rs, [2]int{seq, seq})
	case seq >= rs[i][0] && seq <= rs[i][1]:
		return false
	case seq == rs[i][1]+1:
		rs[i][1] = seq
		if i+1 < len(rs) && rs[i+1][0] == seq+1 {
			rs[i][1] = rs[i+1][1]
			*r = append(rs[:i+1], rs[i+2:]...)
		}
	case seq == rs[i][0]-1:
		rs[i][0] = seq
	default: // seq < rs[i][0]-1
		rs = append(rs, [2]int{})
		copy(rs[i+1:], rs[i:])
		rs[i] = [2]int{seq, seq}
		*r = rs
	}
	return true
}

// List lists the set's members in order.
func (r Ranges) List() []int {
	var out []int
	for _, x := range r {
		for s := x[0]; s <= x[1]; s++ {
			out = append(out, s)
		}
	}
	return out
}

// Has reports whether seq is in the set.
func (r Ranges) Has(seq int) bool {
	for _, x := range r {
		if seq >= x[0] && seq <= x[1] {
			return true
		}
	}
	return false
}

// Len counts the set's members.
func (r Ranges) Len() int {
	n := 0
	for _, x := range r {
		n += x[1] - x[0] + 1
	}
	return n
}
