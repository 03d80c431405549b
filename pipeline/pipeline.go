// Package pipeline is the one result pipeline: it folds interval snapshots
// from one agent (barrage run) or many (the coordinator) into merged
// intervals, in order, as they arrive, and feeds every consumer — progress
// lines, the report's aggregator, and anything else that watches a test —
// from that one stream. It knows nothing of ZooKeeper or the engine.
//
// Memory does not grow with the test's length: an interval's merged
// histograms live only until every agent has reported it (or it has waited
// Window intervals), then go into the aggregator's totals; per agent only
// counters and the set of intervals received are kept.
package pipeline

import (
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/barrage-load/barrage/proto"
	"github.com/barrage-load/barrage/report"
)

// DefaultWindow is how many intervals may wait for a late agent before
// the oldest is closed without it (its snapshot, if it comes, is still
// counted in the totals).
const DefaultWindow = 5

// Options configure a pipeline.
type Options struct {
	// Plan is the test's plan (target, pipeline depth, expected statuses).
	Plan *proto.Plan
	// Schedule is the whole test's schedule in force; Ends the interval
	// ends (schedule.IntervalEnds).
	Schedule []proto.Segment
	Ends     []time.Duration
	// Window: see DefaultWindow (0 takes it).
	Window int
}

// Agent is one agent's running totals.
type Agent struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Host string `json:"host"`
	Counters
	// Received lists the intervals received (duplicates are refused).
	Received Ranges `json:"received"`
	// Discarded counts what arrived from this agent after it was declared
	// lost (its budget had moved to the survivors), and Late what arrived
	// after its interval had closed (counted in the totals, not the
	// timeline).
	Discarded Counters `json:"discarded"`
	DiscardN  int      `json:"discarded_snapshots"`
	LateN     int      `json:"late_snapshots"`
}

// pending is an interval not yet closed.
type pending struct {
	st   *proto.Stats
	from map[string]*Counters
}

// Pipeline folds snapshots into merged intervals. It is not safe for
// concurrent use: one goroutine feeds it.
type Pipeline struct {
	o       Options
	open    bool
	agg     *report.Aggregator
	agents  map[string]*Agent
	order   []string
	pending map[int]*pending
	next    int // the next interval to close
	spare   []*proto.Stats
	late    map[int]*proto.Stats // by step
	dups    int
	sinks   []func(iv *proto.Stats, agents, of int)
	asinks  []func(iv *proto.Stats, agent string, c *Counters)
	events  []report.Event
	esinks  []func(report.Event)
	step    int // the step of the last interval closed (-1 before)
	closed  int // intervals closed with every agent
	partial int // intervals closed without some agent
}

// New makes a pipeline for one test.
func New(o Options) *Pipeline {
	if o.Window <= 0 {
		o.Window = DefaultWindow
	}
	open := o.Plan.Open()
	return &Pipeline{
		o: o, open: open,
		agg: report.New(report.Options{Target: o.Plan.TargetURL, Schedule: o.Schedule, Pipeline: o.Plan.Pipeline,
			Open: open, ExpectStatus: o.Plan.ExpectStatus, Requests: report.RequestInfos(o.Plan), Seed: o.Plan.Seed}),
		agents:  map[string]*Agent{},
		pending: map[int]*pending{},
		late:    map[int]*proto.Stats{},
		step:    -1,
	}
}

// OnInterval adds a consumer of merged intervals: fn gets each interval
// once, in order, with how many agents it merges of how many were alive.
// fn must not keep iv.
func (p *Pipeline) OnInterval(fn func(iv *proto.Stats, agents, of int)) {
	p.sinks = append(p.sinks, fn)
}

// OnAgentInterval adds a consumer of each agent's part of each merged
// interval: when an interval closes, fn gets, before the OnInterval
// consumers get the interval, the counters of every agent that reported
// it (in no set order). It is how a consumer applies a rule to each agent
// of the fleet ("any agent saturated") without histograms per agent. fn
// must keep neither iv nor c.
func (p *Pipeline) OnAgentInterval(fn func(iv *proto.Stats, agent string, c *Counters)) {
	p.asinks = append(p.asinks, fn)
}

// PrintProgress prints one progress line per merged interval to w: the
// one progress printer of run and the coordinator.
func (p *Pipeline) PrintProgress(w io.Writer, fleet bool) {
	expect := report.NewExpect(p.o.Plan.ExpectStatus)
	p.OnInterval(func(iv *proto.Stats, agents, of int) {
		o := report.ProgressOptions{Expect: expect}
		if p.open {
			o.TargetRate = report.PlannedRate(p.o.Schedule, iv.Start, iv.End)
		}
		if fleet {
			o.Agents, o.AgentsTotal = agents, len(p.order)
		}
		_ = report.ProgressLine(w, iv, p.Total(), o)
	})
}

// Emit records an event and hands it to every event consumer.
func (p *Pipeline) Emit(e report.Event) {
	p.events = append(p.events, e)
	for _, fn := range p.esinks {
		fn(e)
	}
}

// OnEvent adds a consumer of events.
func (p *Pipeline) OnEvent(fn func(report.Event)) { p.esinks = append(p.esinks, fn) }

// Events lists the events so far.
func (p *Pipeline) Events() []report.Event { return append([]report.Event(nil), p.events...) }

// Aggregator is the report's aggregator the pipeline feeds.
func (p *Pipeline) Aggregator() *report.Aggregator { return p.agg }

// SetSchedule records the test's schedule in force after a live change.
func (p *Pipeline) SetSchedule(segs []proto.Segment) {
	p.o.Schedule = segs
	p.agg.Schedule = segs
}

// AddAgent registers an agent (in test order).
func (p *Pipeline) AddAgent(id, name, host string) *Agent {
	if a := p.agents[id]; a != nil {
		return a
	}
	a := &Agent{ID: id, Name: name, Host: host}
	p.agents[id] = a
	p.order = append(p.order, id)
	return a
}

// Agent returns an agent's totals, or nil.
func (p *Pipeline) Agent(id string) *Agent { return p.agents[id] }

// Agents lists the agents in the order they were added.
func (p *Pipeline) Agents() []*Agent {
	out := make([]*Agent, 0, len(p.order))
	for _, id := range p.order {
		out = append(out, p.agents[id])
	}
	return out
}

// Next is the next interval to close (every interval before it is in the
// totals and the timeline).
func (p *Pipeline) Next() int { return p.next }

// Outcome of Add.
type Outcome int

// Outcomes.
const (
	Folded    Outcome = iota // into an open interval
	Late                     // its interval had closed: counted in the totals
	Duplicate                // this agent had sent this interval: refused
	Unknown                  // not an agent of the test, or out of range: refused
)

// Add folds one agent's snapshot of one interval.
func (p *Pipeline) Add(agent string, s *proto.Stats) Outcome { return p.add(agent, s, s.Open(), nil) }

// AddParsed folds a parsed snapshot (the coordinator's path: its
// histograms are merged from their count streams, never built).
func (p *Pipeline) AddParsed(agent string, ps *proto.ParsedSnapshot) Outcome {
	return p.add(agent, ps.Stats, ps.Open, ps)
}

func (p *Pipeline) add(agent string, s *proto.Stats, open bool, ps *proto.ParsedSnapshot) Outcome {
	a := p.agents[agent]
	if a == nil || s.Seq < 0 || s.Seq >= len(p.o.Ends) || open != p.open {
		return Unknown
	}
	if !a.Received.Add(s.Seq) {
		p.dups++
		return Duplicate
	}
	if len(p.order) > 1 {
		// A fleet's circuit breakers are one per agent: say whose.
		for i := range s.Breaker {
			s.Breaker[i].Agent = a.Name
		}
	}
	if s.Seq < p.next {
		a.Counters.Add(s)
		a.LateN++
		full := s
		if ps != nil {
			full = proto.NewStats(p.open)
			p.agg.AddDropped(ps.MergeInto(full))
		}
		l := p.late[s.Step]
		if l == nil {
			l = proto.NewStats(p.open)
			l.Step = s.Step
			p.late[s.Step] = l
		}
		p.agg.AddDropped(l.Merge(full))
		p.agg.AddLate(full)
		p.emitBreaker(s)
		return Late
	}
	pd := p.pending[s.Seq]
	if pd == nil {
		pd = &pending{st: p.fresh(), from: map[string]*Counters{}}
		p.pending[s.Seq] = pd
	}
	if ps != nil {
		p.agg.AddDropped(ps.MergeInto(pd.st))
	} else {
		p.agg.AddDropped(pd.st.Merge(s))
	}
	pd.st.Seq, pd.st.Step = s.Seq, s.Step
	c := &Counters{}
	c.Add(s)
	pd.from[agent] = c
	return Folded
}

// Discard counts a snapshot refused because its agent had been declared
// lost before the interval ended.
func (p *Pipeline) Discard(agent string, s *proto.Stats) {
	if a := p.agents[agent]; a != nil {
		a.Discarded.Add(s)
		a.DiscardN++
	}
}

func (p *Pipeline) fresh() *proto.Stats {
	if n := len(p.spare); n > 0 {
		s := p.spare[n-1]
		p.spare = p.spare[:n-1]
		return s
	}
	return proto.NewStats(p.open)
}

// Close closes, in order, every interval that all of alive have reported;
// with all, every interval up to the last one received; and any interval
// that has waited Window intervals. It returns how many it closed.
func (p *Pipeline) Close(alive []string, all bool) int {
	last := -1
	for seq := range p.pending {
		last = max(last, seq)
	}
	n := 0
	for p.next < len(p.o.Ends) {
		pd := p.pending[p.next]
		have := 0
		for _, id := range alive {
			if pd != nil && pd.from[id] != nil {
				have++
			}
		}
		ready := have == len(alive) && pd != nil
		if !ready && !all && last-p.next < p.o.Window {
			break
		}
		if !ready && all && p.next > last {
			break
		}
		p.closeOne(pd, len(alive))
		n++
	}
	return n
}

func (p *Pipeline) closeOne(pd *pending, alive int) {
	seq := p.next
	p.next++
	delete(p.pending, seq)
	agents := 0
	var st *proto.Stats
	if pd != nil {
		st = pd.st
		for id, c := range pd.from {
			p.agents[id].Counters.Merge(c)
			agents++
		}
	} else {
		// No agent reported it (all were lost or late): an empty point
		// keeps the timeline in step.
		st = p.fresh()
		st.Seq = seq
	}
	if agents == 0 {
		st.Start = 0
		if seq > 0 {
			st.Start = p.o.Ends[seq-1]
		}
		st.End = p.o.Ends[seq]
	}
	if agents < alive {
		p.partial++
	} else {
		p.closed++
	}
	if st.Step != p.step && agents > 0 {
		if p.step >= 0 {
			p.Emit(report.Event{At: st.Start.Seconds(), Kind: report.EventStep, Text: p.stepText(st.Step)})
		}
		p.step = st.Step
	}
	p.emitBreaker(st)
	p.agg.Add(st)
	if pd != nil {
		for _, fn := range p.asinks {
			for id, c := range pd.from {
				fn(st, id, c)
			}
		}
	}
	for _, fn := range p.sinks {
		fn(st, agents, alive)
	}
	st.Reset()
	p.spare = append(p.spare, st)
}

// emitBreaker emits the circuit breaker's transitions in s, in time order.
func (p *Pipeline) emitBreaker(s *proto.Stats) {
	if len(s.Breaker) == 0 {
		return
	}
	sort.SliceStable(s.Breaker, func(i, j int) bool { return s.Breaker[i].At < s.Breaker[j].At })
	for _, e := range report.BreakerEvents(s) {
		p.Emit(e)
	}
}

// stepText describes step n from the schedule.
func (p *Pipeline) stepText(n int) string {
	for _, g := range p.o.Schedule {
		if g.Step == n {
			return fmt.Sprintf("step %d: %s", n+1, proto.StepLabel(g))
		}
	}
	return fmt.Sprintf("step %d", n+1)
}

// Total is the merged statistics of every closed interval and every late
// snapshot (owned by the pipeline).
func (p *Pipeline) Total() *proto.Stats { return p.agg.Total() }

// Report builds the report of what was folded; elapsed is the test's
// length so far. The caller adds agent rows and outcome.
func (p *Pipeline) Report(elapsed time.Duration) *report.Report {
	rep := p.agg.Report(elapsed)
	rep.Events = p.Events()
	if rep.Events == nil {
		rep.Events = []report.Event{}
	}
	var late, disc int
	var discSent uint64
	for _, a := range p.Agents() {
		late += a.LateN
		disc += a.DiscardN
		discSent += a.Discarded.Sent
	}
	if late > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("%d snapshots arrived after their interval had closed: they are in the totals, not in the timeline", late))
	}
	if disc > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("%d snapshots (%d requests sent) from agents declared lost were discarded: their budget had moved to the survivors", disc, discSent))
	}
	if p.dups > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("%d duplicate snapshots were refused", p.dups))
	}
	return rep
}

// Expected lists the intervals an agent owed, up to until (time from the
// start), and the ones of them missing.
func (p *Pipeline) Expected(a *Agent, until time.Duration) (expected int, missing []int) {
	for seq, e := range p.o.Ends {
		if e > until {
			break
		}
		expected++
		if !a.Received.Has(seq) {
			missing = append(missing, seq)
		}
	}
	sort.Ints(missing)
	return expected, missing
}

// State is what a checkpoint keeps of a pipeline: with the merged
// intervals before Next, it restores the pipeline exactly (the snapshots
// it covers are deleted in the same write).
type State struct {
	Next   int      `json:"next"`
	Agents []*Agent `json:"agents"`
	// Late holds the late snapshots merged, one per step
	// (proto.MarshalSnapshot).
	Late   [][]byte       `json:"late,omitempty"`
	Dups   int            `json:"dups"`
	Events []report.Event `json:"events,omitempty"`
	Step   int            `json:"step"`
}

// Checkpoint returns the pipeline's state without its pending intervals:
// the snapshots of intervals from Next on are not covered and must be
// folded again after a Restore.
func (p *Pipeline) Checkpoint() (*State, error) {
	st := &State{Next: p.next, Dups: p.dups, Events: p.events, Step: p.step}
	for _, a := range p.Agents() {
		c := *a
		c.Received = nil
		// Intervals still pending are not covered: leave them out.
		for _, r := range a.Received {
			for seq := r[0]; seq <= r[1]; seq++ {
				if seq < p.next {
					c.Received.Add(seq)
				}
			}
		}
		st.Agents = append(st.Agents, &c)
	}
	for _, l := range p.late {
		b, err := proto.MarshalSnapshot(&proto.Snapshot{Stats: l})
		if err != nil {
			return nil, err
		}
		st.Late = append(st.Late, b)
	}
	return st, nil
}

// Restore rebuilds a pipeline from a checkpoint and the merged intervals
// it covers (seq 0 to st.Next-1, in order; a nil entry is an interval
// nobody reported).
func Restore(o Options, st *State, merged []*proto.Stats) (*Pipeline, error) {
	p := New(o)
	if st.Next < 0 || st.Next > len(o.Ends) || len(merged) != st.Next {
		return nil, fmt.Errorf("pipeline: checkpoint through interval %d with %d merged intervals for %d intervals", st.Next, len(merged), len(o.Ends))
	}
	for _, a := range st.Agents {
		c := *a
		p.agents[a.ID] = &c
		p.order = append(p.order, a.ID)
	}
	for seq, m := range merged {
		if m == nil {
			m = proto.NewStats(p.open)
		}
		m.Seq = seq
		m.Start = 0
		if seq > 0 {
			m.Start = o.Ends[seq-1]
		}
		m.End = o.Ends[seq]
		p.agg.Add(m)
	}
	p.next = st.Next
	p.dups = st.Dups
	p.events = st.Events
	p.step = st.Step
	for _, b := range st.Late {
		sn, err := proto.UnmarshalSnapshot(b)
		if err != nil {
			return nil, fmt.Errorf("pipeline: checkpoint's late snapshots: %w", err)
		}
		if sn.Stats.Open() != p.open {
			return nil, fmt.Errorf("pipeline: checkpoint's late snapshots are of the other model")
		}
		p.late[sn.Stats.Step] = sn.Stats
		p.agg.AddLate(sn.Stats)
	}
	return p, nil
}
