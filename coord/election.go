package coord

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/barrage-load/barrage/fleet"
	"github.com/barrage-load/barrage/report"
)

// join creates this coordinator's election node.
func (c *Coordinator) join(standby bool) error {
	made, err := c.s.Ensure(c.p.Election())
	c.dirs = append(c.dirs, made...)
	if err != nil {
		return err
	}
	info, _ := json.Marshal(fleet.CoordInfo{Name: c.o.Name, Host: c.host, PID: os.Getpid(), Standby: standby})
	var me string
	err = fleet.Retry(10*time.Second, func() (err error) {
		me, err = c.s.Create(c.p.Election()+"/c-", info, zk.FlagEphemeral|zk.FlagSequence)
		return err
	})
	if err != nil {
		return fmt.Errorf("coord: cannot join the election: %w", err)
	}
	c.me = me[strings.LastIndex(me, "/")+1:]
	return nil
}

// leave deletes the election node (the next candidate leads).
func (c *Coordinator) leave() {
	if c.me != "" {
		_ = c.s.Conn.Delete(c.p.Election()+"/"+c.me, -1)
		c.me = ""
	}
}

// predecessor returns the election node just below ours ("" when we
// lead) and the name of the lowest (the leader).
func (c *Coordinator) predecessor() (pred, leader string, err error) {
	kids, _, err := c.s.Conn.Children(c.p.Election())
	if err != nil {
		return "", "", fmt.Errorf("coord: election: %w", err)
	}
	sort.Strings(kids)
	for _, k := range kids {
		if k < c.me && fleet.CheckElectionNode(k) == nil {
			pred = k
			if leader == "" {
				leader = k
			}
		}
	}
	return pred, leader, nil
}

// describe names the coordinator behind an election node.
func (c *Coordinator) describe(node string) string {
	b, _, err := c.s.Conn.Get(c.p.Election() + "/" + node)
	if err != nil {
		return node + " (gone)"
	}
	info, err := fleet.DecodeCoordInfo(b)
	if err != nil {
		return node
	}
	return fmt.Sprintf("%s on %s, PID %d", info.Name, info.Host, info.PID)
}

// leadNow joins the election and fails unless this coordinator leads at
// once: a coordinator with a plan never queues behind another.
func (c *Coordinator) leadNow() error {
	if err := c.join(false); err != nil {
		return err
	}
	_, leader, err := c.predecessor()
	if err != nil {
		return err
	}
	if leader != "" {
		who := c.describe(leader)
		c.leave()
		return fmt.Errorf("%w: another coordinator (%s) is active under %s; wait for its test to end, or use --standby to stand behind it", ErrBusy, who, c.o.Root)
	}
	c.logf("leading (%s)", c.me)
	return nil
}

// errNotLeading is fenced's answer when our election node is gone.
var errNotLeading = fmt.Errorf("%w: this coordinator's election node is gone", ErrSuperseded)

// fenced runs ops as one multi-op, conditional on our election node
// still existing: it exists exactly as long as the session that won the
// election. A coordinator that was frozen past its session (a standby
// took over) or whose node was deleted writes nothing more.
func (c *Coordinator) fenced(ops ...any) error {
	if c.me == "" {
		return errNotLeading
	}
	if c.s.IsExpired() {
		return fmt.Errorf("%w: its ZooKeeper session expired", ErrSuperseded)
	}
	all := append([]any{&zk.CheckVersionRequest{Path: c.p.Election() + "/" + c.me, Version: -1}}, ops...)
	res, err := c.s.Conn.Multi(all...)
	if err == nil {
		return nil
	}
	if len(res) > 0 && errors.Is(res[0].Error, zk.ErrNoNode) {
		return errNotLeading
	}
	for i, r := range res {
		if r.Error != nil && i > 0 && !errors.Is(r.Error, zk.ErrAPIError) {
			return fmt.Errorf("coord: %s: %w", opPath(all[i]), r.Error)
		}
	}
	return err
}

func opPath(op any) string {
	switch o := op.(type) {
	case *zk.CreateRequest:
		return "create " + o.Path
	case *zk.SetDataRequest:
		return "write " + o.Path
	case *zk.DeleteRequest:
		return "delete " + o.Path
	case *zk.CheckVersionRequest:
		return "check " + o.Path
	}
	return "op"
}

// Operations for fenced.
func (c *Coordinator) opCreate(path string, data []byte) any {
	return &zk.CreateRequest{Path: path, Data: data, Acl: c.s.ACL()}
}

func opSet(path string, data []byte, version int32) any {
	return &zk.SetDataRequest{Path: path, Data: data, Version: version}
}

func opDelete(path string) any { return &zk.DeleteRequest{Path: path, Version: -1} }

// fencedRetry retries a fenced write through a lost connection (a
// ZooKeeper leader change closes it for about a second).
func (c *Coordinator) fencedRetry(ops ...any) error {
	return fleet.Retry(5*time.Second, func() error { return c.fenced(ops...) })
}

// setOrCreate writes path under the fence, creating it if missing.
func (c *Coordinator) setOrCreate(path string, data []byte) error {
	return fleet.Retry(5*time.Second, func() error {
		ok, _, err := c.s.Conn.Exists(path)
		if err != nil {
			return err
		}
		if ok {
			return c.fenced(opSet(path, data, -1))
		}
		err = c.fenced(c.opCreate(path, data))
		if errors.Is(err, zk.ErrNodeExists) {
			return c.fenced(opSet(path, data, -1))
		}
		return err
	})
}

// testState reads a test's state and its znode version.
func (c *Coordinator) testState(id string) (*fleet.TestState, int32, error) {
	b, stat, err := c.s.Conn.Get(c.p.Test(id))
	if err != nil {
		return nil, 0, err
	}
	st, err := fleet.DecodeTestState(b)
	if err != nil {
		return nil, 0, err
	}
	return st, stat.Version, nil
}

// current reads /current and the test it names.
func (c *Coordinator) current() (string, *fleet.TestState, int32) {
	data, _, err := c.s.Conn.Get(c.p.Current())
	if err != nil || len(data) == 0 {
		return "", nil, 0
	}
	id := string(data)
	if fleet.CheckTestID(id) != nil {
		c.logf("ignoring /current: %v", fleet.CheckTestID(id))
		return "", nil, 0
	}
	st, v, err := c.testState(id)
	if err != nil {
		return id, nil, 0
	}
	return id, st, v
}

// past reports whether a test's planned end plus the abandon grace has
// passed (a test that never got its barrier counts from its creation).
func (c *Coordinator) past(st *fleet.TestState) bool {
	end := st.EndAt
	if end == 0 {
		if ms, err := strconv.ParseInt(strings.TrimPrefix(st.ID, "t"), 10, 64); err == nil {
			end = time.UnixMilli(ms).Add(AckTimeout + st.Plan.Duration.D()).UnixNano()
		}
	}
	return end > 0 && time.Now().After(time.Unix(0, end).Add(c.o.AbandonGrace))
}

// clearStale deals with the test /current names before a new one starts
// (we lead, so its coordinator is gone): a test past its end and grace is
// marked abandoned; one still within them is refused, since its agents are
// busy with it and a standby can take it over.
func (c *Coordinator) clearStale(ctx context.Context) error {
	id, st, v := c.current()
	if st == nil {
		return nil
	}
	if st.Phase != fleet.PhaseRunning && st.Phase != fleet.PhaseAssigned {
		return nil
	}
	if !c.past(st) {
		end := time.Unix(0, st.EndAt)
		return fmt.Errorf("%w: test %s is still running without its coordinator (%s) until %s; `barrage coord --standby` takes it over and reports it, or wait until %s",
			ErrBusy, id, st.LeaderName, end.Format("15:04:05"), end.Add(c.o.AbandonGrace).Format("15:04:05"))
	}
	return c.abandon(st, v)
}

// abandon marks a dead test abandoned, so no coordinator ever takes it
// for running again; its data stays for `barrage report --zk --test ID`.
func (c *Coordinator) abandon(st *fleet.TestState, v int32) error {
	st.Phase = fleet.PhaseAbandoned
	b, _ := json.Marshal(st)
	err := c.fencedRetry(opSet(c.p.Test(st.ID), b, v), opDelete(c.p.Current()))
	if err != nil && !errors.Is(err, zk.ErrBadVersion) && !errors.Is(err, zk.ErrNoNode) {
		return fmt.Errorf("coord: cannot mark test %s abandoned: %w", st.ID, err)
	}
	c.logf("test %s was abandoned: its coordinator (%s) died and its planned end passed at %s; `barrage report --zk %s --test %s` rebuilds its partial report",
		st.ID, st.LeaderName, time.Unix(0, st.EndAt).Format("15:04:05"), c.o.ZK, st.ID)
	return nil
}

// standby waits for a test to run, stands behind its coordinator, and
// takes the test over when it leads. A standby joins the election only
// while a test runs: started first, it never leads with nothing to do (a
// planned coordinator started beside it then found it in the way).
func (c *Coordinator) standby(ctx context.Context) (*report.Report, error) {
	var cw fleet.Watch
	for {
		// Wait for a running test.
		id, st, v := c.current()
		if st == nil || (st.Phase != fleet.PhaseRunning && st.Phase != fleet.PhaseAssigned) {
			if id == "" {
				c.logf("no test is running under %s; standing by until one starts", c.o.Root)
			}
			_, _, err := cw.Get(c.s.Conn, c.p.Current())
			_ = err
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-cw.C():
				cw.Fired()
			case <-time.After(time.Second):
			}
			continue
		}
		if c.me == "" {
			if err := c.join(true); err != nil {
				return nil, err
			}
		}
		pred, _, err := c.predecessor()
		if err != nil {
			return nil, err
		}
		if pred != "" {
			// Watch only the predecessor: no herd when the leader goes.
			var pw fleet.Watch
			ok, err := pw.Exists(c.s.Conn, c.p.Election()+"/"+pred)
			if err != nil {
				return nil, fmt.Errorf("coord: election: %w", err)
			}
			if ok {
				c.logf("standing by behind %s for test %s", c.describe(pred), id)
				select {
				case <-ctx.Done():
					c.leave()
					return nil, ctx.Err()
				case <-pw.C():
				case <-c.s.Expired():
					return nil, fmt.Errorf("%w: the standby's ZooKeeper session expired", ErrSuperseded)
				case <-time.After(5 * time.Second):
					// Re-read the test: it may have ended.
				}
			}
			if _, st2, _ := c.current(); st2 == nil || st2.ID != st.ID || st2.Phase == fleet.PhaseDone {
				c.leave()
			}
			continue
		}
		// We lead. Re-read the test under our leadership.
		id, st, v = c.current()
		switch {
		case st == nil || (st.Phase != fleet.PhaseRunning && st.Phase != fleet.PhaseAssigned):
			c.leave()
			continue
		case c.past(st):
			if err := c.abandon(st, v); err != nil {
				c.logf("%v", err)
			}
			c.leave()
			continue
		}
		c.logf("leading (%s): taking over test %s from %s", c.me, id, st.LeaderName)
		m, err := c.takeOver(st, v)
		if err != nil {
			c.leave()
			return nil, err
		}
		return m.run(ctx)
	}
}
