package coord

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/go-zookeeper/zk"

	"github.com/barrage-load/barrage/fleet"
	"github.com/barrage-load/barrage/pipeline"
	"github.com/barrage-load/barrage/proto"
)

// fold is /tests/ID/fold: what the coordinator has folded, so that a
// coordinator that takes the test over (or `barrage report --zk`) resumes
// exactly where it stopped. It covers the merged intervals before
// Pipeline.Next (in /tests/ID/merged) and the snapshots deleted in the
// same write; the snapshots still listed under /tests/ID/snap are not
// covered and are folded again.
type fold struct {
	Pipeline *pipeline.State `json:"pipeline"`
	Nsnaps   int             `json:"snapshots"`
	Bytes    int             `json:"bytes"`
	MaxBytes int             `json:"max_bytes"`
	Foreign  int             `json:"foreign"`
}

// maxCheckpointOps bounds one checkpoint's multi-op (ZooKeeper takes at
// most jute.maxbuffer, 1 MB, per request: a delete is ~80 bytes).
const maxCheckpointOps = 5000

// checkpoint writes the fold node, the merged intervals closed since the
// last one, and deletes the snapshots they cover, in one fenced write. It
// runs every few intervals (every interval with many agents, so the
// write stays small), and always at the end (force).
func (m *monitor) checkpoint(force bool) {
	next := m.pipe.Next()
	every := max(1, min(5, 500/max(1, len(m.st.Agents))))
	if next == m.lastCkpt || (!force && next-m.lastCkpt < every) || m.c.s.Down() > 0 {
		// Nothing new, or cut off: the next poll tries again (a retry
		// here would hold the poll loop while ZooKeeper is away).
		return
	}
	st, err := m.pipe.Checkpoint()
	if err != nil {
		m.c.logf("BUG: checkpoint: %v", err)
		return
	}
	f := fold{Pipeline: st, Nsnaps: m.nsnaps, Bytes: m.bytes, MaxBytes: m.maxBytes, Foreign: m.foreign}
	b := mustJSON(f)
	c := m.c
	var ops []any
	if ok, _, _ := c.s.Conn.Exists(c.p.Fold(m.st.ID)); ok {
		ops = append(ops, opSet(c.p.Fold(m.st.ID), b, -1))
	} else {
		ops = append(ops, c.opCreate(c.p.Fold(m.st.ID), b))
	}
	size := len(b)
	for seq := m.lastCkpt; seq < next; seq++ {
		mb := m.merged[seq]
		if mb == nil {
			panic("BUG: coord: closed interval " + strconv.Itoa(seq) + " not kept for the checkpoint")
		}
		ops = append(ops, c.opCreate(c.p.MergedSeq(m.st.ID, seq), mb))
		size += len(mb) + 100
	}
	var gone []string
	for name, seq := range m.read {
		if seq >= 0 && seq < next && len(ops) < maxCheckpointOps && size < 800<<10 {
			ops = append(ops, opDelete(c.p.Snaps(m.st.ID)+"/"+name))
			gone = append(gone, name)
			size += 100
		}
	}
	err = c.fenced(ops...)
	if fleet.Transient(err) {
		return
	}
	if errors.Is(err, zk.ErrNodeExists) {
		// A merged interval written by an earlier try that failed after
		// the server applied it cannot be: multi-ops are atomic. Say it.
		m.c.logf("BUG: checkpoint found a merged interval already written: %v", err)
	}
	if !m.write("write the checkpoint", err) {
		return
	}
	for seq := m.lastCkpt; seq < next; seq++ {
		delete(m.merged, seq)
	}
	for _, name := range gone {
		delete(m.read, name)
	}
	m.lastCkpt = next
}

// restore rebuilds the monitor's pipeline from the checkpoint a previous
// coordinator left (none: the pipeline starts empty and every snapshot
// still in ZooKeeper is folded).
func (m *monitor) restore() error {
	c := m.c
	b, _, err := c.s.Conn.Get(c.p.Fold(m.st.ID))
	if errors.Is(err, zk.ErrNoNode) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("coord: cannot read the checkpoint of test %s: %w", m.st.ID, err)
	}
	var f fold
	if len(b) > fleet.MaxNode || json.Unmarshal(b, &f) != nil || f.Pipeline == nil {
		return fmt.Errorf("%w: checkpoint of test %s", fleet.ErrBadData, m.st.ID)
	}
	if f.Pipeline.Next < 0 || f.Pipeline.Next > len(m.ends) {
		return fmt.Errorf("%w: checkpoint of test %s through interval %d of %d", fleet.ErrBadData, m.st.ID, f.Pipeline.Next, len(m.ends))
	}
	for _, a := range f.Pipeline.Agents {
		if m.st.Agent(a.ID) < 0 {
			return fmt.Errorf("%w: checkpoint of test %s names agent %q", fleet.ErrBadData, m.st.ID, fleet.Clean(a.ID, 40))
		}
	}
	merged := make([]*proto.Stats, f.Pipeline.Next)
	for seq := range merged {
		mb, _, err := c.s.Conn.Get(c.p.MergedSeq(m.st.ID, seq))
		if err != nil {
			return fmt.Errorf("coord: cannot read merged interval %d of test %s: %w", seq, m.st.ID, err)
		}
		sn, err := proto.UnmarshalSnapshot(mb)
		if err != nil {
			return fmt.Errorf("coord: merged interval %d of test %s: %w", seq, m.st.ID, err)
		}
		merged[seq] = sn.Stats
	}
	p, err := pipeline.Restore(m.pipeOptions(), f.Pipeline, merged)
	if err != nil {
		return err
	}
	// Agents the checkpoint does not list (it was written before they
	// sent anything) still need their rows.
	for _, a := range m.st.Agents {
		p.AddAgent(a.ID, a.Name, a.Host)
	}
	m.pipe = p
	m.hook()
	m.lastCkpt = f.Pipeline.Next
	m.nsnaps, m.bytes, m.maxBytes, m.foreign = f.Nsnaps, f.Bytes, f.MaxBytes, f.Foreign
	return nil
}

// takeOver makes this coordinator the test's leader: a new epoch, written
// with a compare-and-swap on the test's state, then the checkpoint.
func (c *Coordinator) takeOver(st *fleet.TestState, v int32) (*monitor, error) {
	from := st.LeaderName
	st.Epoch++
	st.Leader, st.LeaderName = c.me, c.o.Name
	if err := c.fencedRetry(opSet(c.p.Test(st.ID), mustJSON(st), v)); err != nil {
		return nil, fmt.Errorf("coord: cannot take test %s over: %w", st.ID, err)
	}
	m := newMonitor(c, st, v+1, true)
	m.from = from
	m.begin()
	if err := m.restore(); err != nil {
		return nil, err
	}
	for _, a := range st.Agents {
		if b, _, err := c.s.Conn.Get(c.p.Assign(a.ID)); err == nil {
			if asg, err := fleet.DecodeAssignment(b); err == nil && asg.Test == st.ID {
				m.budgets[a.ID] = asg.Budget
			}
		}
	}
	if _, stat, err := c.s.Conn.Get(c.p.Config(st.ID)); err == nil {
		// A config written while no coordinator led is applied now.
		m.cfgVer = min(stat.Version, st.CfgVersion)
	}
	// Agents lost while nobody led still need their rebalance.
	if len(st.Lost) > st.Balanced {
		m.rebalance = true
	}
	return m, nil
}
