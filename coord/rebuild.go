package coord

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/barrage-load/barrage/fleet"
	"github.com/barrage-load/barrage/pipeline"
	"github.com/barrage-load/barrage/proto"
	"github.com/barrage-load/barrage/report"
)

// ErrNoData occurs when `barrage report` finds nothing to rebuild from.
var ErrNoData = errors.New("coord: nothing to rebuild a report from")

// agentDir is what one agent kept of one test in its state dir.
type agentDir struct {
	dir    string
	id     string
	asg    *fleet.Assignment
	result *fleet.AgentResult
	snaps  []string
}

// FromStateDirs rebuilds the merged report of a test from what its agents
// kept in their state dirs (--state-dir of each agent: copy them to one
// machine, or mount them). test picks the test; "" takes the newest found.
// Every snapshot the agents kept is merged exactly, whatever reached
// ZooKeeper.
func FromStateDirs(dirs []string, test string) (*report.Report, error) {
	byTest := map[string][]*agentDir{}
	for _, root := range dirs {
		matches, err := filepath.Glob(filepath.Join(root, "*", "agent-*", "assignment.json"))
		if err != nil {
			return nil, err
		}
		if st, err := os.Stat(root); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("%w: %s is not a directory", ErrNoData, root)
		}
		for _, m := range matches {
			ad, err := readAgentDir(filepath.Dir(m))
			if err != nil {
				return nil, err
			}
			byTest[ad.asg.Test] = append(byTest[ad.asg.Test], ad)
		}
	}
	if len(byTest) == 0 {
		return nil, fmt.Errorf("%w: no agent state (TEST/agent-N/assignment.json) under %s", ErrNoData, strings.Join(dirs, ", "))
	}
	if test == "" {
		var ids []string
		for id := range byTest {
			ids = append(ids, id)
		}
		sort.Strings(ids) // t<unix ms>: the newest sorts last
		test = ids[len(ids)-1]
	}
	ads := byTest[test]
	if len(ads) == 0 {
		return nil, fmt.Errorf("%w: no agent kept test %s", ErrNoData, test)
	}
	sort.Slice(ads, func(i, j int) bool { return ads[i].id < ads[j].id })
	// The latest assignment knows the test's schedule in force.
	latest := ads[0].asg
	for _, ad := range ads {
		if ad.asg.Version > latest.Version {
			latest = ad.asg
		}
	}
	ends := intervalEnds(latest.Schedule, latest.Interval)
	p := pipeline.New(pipeline.Options{Plan: &latest.Plan, Schedule: latest.Schedule, Ends: ends})
	var all []string
	for _, ad := range ads {
		name := ad.id
		if ad.result != nil && ad.result.Name != "" {
			name = ad.result.Name
		}
		p.AddAgent(ad.id, name, "")
		all = append(all, ad.id)
	}
	var elapsed time.Duration
	for _, ad := range ads {
		for _, f := range ad.snaps {
			b, err := os.ReadFile(f)
			if err != nil {
				return nil, err
			}
			sn, err := proto.UnmarshalSnapshot(b)
			if err != nil {
				return nil, fmt.Errorf("coord: %s: %w", f, err)
			}
			if sn.Agent != ad.id {
				return nil, fmt.Errorf("coord: %s holds agent %q's snapshot", f, fleet.Clean(sn.Agent, 40))
			}
			elapsed = max(elapsed, sn.Stats.End)
			p.Add(ad.id, sn.Stats)
		}
	}
	p.Close(all, true)
	rep := p.Report(elapsed)
	rep.Outcome = fmt.Sprintf("rebuilt from %d agents' state dirs", len(ads))
	for _, ad := range ads {
		a := p.Agent(ad.id)
		row := report.Agent{Name: a.Name, Status: "ok", Budget: ad.asg.Budget.Describe(latest.Plan.Open())}
		p.Aggregator().FillAgent(&row, a.Stats())
		row.Expected, row.Missing = p.Expected(a, a.End)
		row.Received = row.Expected - len(row.Missing)
		if r := ad.result; r != nil {
			row.P99 = r.P99
			switch {
			case r.Error != "":
				row.Status = "failed: " + r.Error
			case r.Fenced != "":
				row.Status = "fenced: " + r.Fenced
			case r.Unpublished > 0:
				row.Status = fmt.Sprintf("ok (%d snapshots kept only on disk)", r.Unpublished)
			}
		} else {
			row.Status = "no result kept (still running, or killed)"
		}
		rep.Agents = append(rep.Agents, row)
	}
	return rep, nil
}

func readAgentDir(dir string) (*agentDir, error) {
	ad := &agentDir{dir: dir, id: filepath.Base(dir)}
	if err := fleet.CheckAgentID(ad.id); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(dir, "assignment.json"))
	if err != nil {
		return nil, err
	}
	ad.asg, err = fleet.DecodeAssignment(b)
	if err != nil {
		return nil, fmt.Errorf("coord: %s: %w", dir, err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "result.json")); err == nil {
		var r fleet.AgentResult
		if json.Unmarshal(b, &r) == nil {
			ad.result = &r
		}
	}
	ad.snaps, _ = filepath.Glob(filepath.Join(dir, "snap-*.bin"))
	sort.Strings(ad.snaps)
	return ad, nil
}

// RebuildOptions pick a test kept in ZooKeeper.
type RebuildOptions struct {
	ZK, Root string
	Auth     *fleet.Auth
	Test     string // default: /current's
}

// FromZooKeeper rebuilds a test's report from what ZooKeeper holds: the
// coordinator's checkpoint and merged intervals, the snapshots not yet
// folded, and the agents' results. It writes nothing.
func FromZooKeeper(o RebuildOptions) (*report.Report, error) {
	if o.Root == "" {
		o.Root = fleet.DefaultRoot
	}
	s, err := fleet.Dial(fleet.DialOptions{Hosts: o.ZK, Timeout: 10 * time.Second, Auth: o.Auth})
	if err != nil {
		return nil, err
	}
	defer s.Close()
	c := &Coordinator{o: Options{Root: o.Root, SessionTimeout: fleet.DefaultSessionTimeout}, p: fleet.Paths{Root: o.Root}, s: s}
	test := o.Test
	if test == "" {
		b, _, err := s.Conn.Get(c.p.Current())
		if err != nil || len(b) == 0 {
			return nil, fmt.Errorf("%w: no --test given and no current test under %s", ErrNoData, o.Root)
		}
		test = string(b)
	}
	if err := fleet.CheckTestID(test); err != nil {
		return nil, err
	}
	st, _, err := c.testState(test)
	if err != nil {
		return nil, fmt.Errorf("%w: test %s under %s: %v", ErrNoData, test, o.Root, err)
	}
	m := newMonitor(c, st, 0, false)
	m.begin()
	if err := m.restore(); err != nil {
		return nil, err
	}
	m.err = ErrNoData // read-only: collect declares no agent lost
	m.collect(time.Now())
	m.pipe.Close(m.aliveIDs(), true)
	elapsed := min(time.Since(m.start), st.Plan.Duration.D())
	rep := m.report(elapsed)
	rep.Outcome = fmt.Sprintf("rebuilt from ZooKeeper (test %s, %s)", test, st.Phase)
	return rep, nil
}
