package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/barrage-load/barrage/engine"
	"github.com/barrage-load/barrage/fleet"
	"github.com/barrage-load/barrage/proto"
	"github.com/barrage-load/barrage/request"
)

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("BUG: agent: cannot encode " + err.Error())
	}
	return b
}

func decodeHead(b []byte, v any) error {
	if len(b) > fleet.MaxNode {
		return fleet.ErrBadData
	}
	return json.Unmarshal(b, v)
}

// localHeaders reads the agent's --header-file values.
func (a *Agent) localHeaders() (map[string]string, error) {
	out := map[string]string{}
	for _, h := range a.o.HeaderFiles {
		v, err := h.Read()
		if err != nil {
			return nil, err
		}
		out[h.Name] = v
	}
	return out, nil
}

// withLocal returns the plan with the agent's own header values set on
// every request (they win over the plan's and over live changes).
func withLocal(p *proto.Plan, local map[string]string) *proto.Plan {
	if len(local) == 0 {
		return p
	}
	q := p.Clone()
	for k, v := range local {
		q.SetHeader(k, v)
	}
	return q
}

// check applies the agent's own rules to a decoded assignment: its caps
// and its target allowlist (on the address the target resolves to). It
// reads the plan's data files from this box (its slice of them) and
// compiles the requests. It returns the engine's options.
func (a *Agent) check(asg *fleet.Assignment, local map[string]string) (engine.Options, error) {
	if err := asg.Budget.Validate(&asg.Plan, a.o.Caps); err != nil {
		return engine.Options{}, err
	}
	opts, err := engine.FromBudget(withLocal(&asg.Plan, local), &asg.Budget)
	if err != nil {
		return engine.Options{}, err
	}
	if err := a.o.Allow.Check(opts.Addr); err != nil {
		return engine.Options{}, err
	}
	most := 0
	for _, g := range asg.Budget.Schedule {
		most = max(most, g.Connections)
	}
	if err := engine.CheckFileLimit(most); err != nil {
		return engine.Options{}, err
	}
	return opts, nil
}

// run is one test as this agent runs it.
type run struct {
	a       *Agent
	s       *fleet.Session
	id      string
	test    string
	eng     *engine.Engine
	cancel  context.CancelFunc
	dir     string
	fenceMu sync.Mutex
	fenced  string
	stopped string
	// mixMu guards the requests in force and the agent's own header
	// values (live changes and header files come from two goroutines).
	mixMu sync.Mutex
	mix   *request.Mix
	local map[string]string
}

// fence stops the run at once: the agent can no longer confirm it may
// send on this budget.
func (r *run) fence(why string) {
	r.fenceMu.Lock()
	first := r.fenced == ""
	if first {
		r.fenced = why
	}
	r.fenceMu.Unlock()
	if first {
		r.a.logf("test %s: stopping at once: %s", r.test, why)
		if r.eng != nil {
			r.eng.Stop()
		}
		r.cancel()
	}
}

func (r *run) fencedWhy() string {
	r.fenceMu.Lock()
	defer r.fenceMu.Unlock()
	return r.fenced
}

// runTest runs one assignment from its checks to its result. It returns
// why it was fenced ("" when it was not): the caller then registers again.
func (a *Agent) runTest(ctx context.Context, s *fleet.Session, id string, asg *fleet.Assignment) string {
	test := asg.Test
	a.logf("assigned test %s (epoch %d): %s", test, asg.Epoch, asg.Budget.Describe(asg.Plan.Open()))
	local, err := a.localHeaders()
	var opts engine.Options
	if err == nil {
		opts, err = a.check(asg, local)
	}
	if err != nil {
		a.logf("test %s: refused: %v", test, err)
		a.ack(s, test, id, fleet.Ack{Version: asg.Version, Error: "refused: " + err.Error()})
		return ""
	}
	dir := filepath.Join(a.o.StateDir, test, id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		a.ack(s, test, id, fleet.Ack{Version: asg.Version, Error: "cannot keep results: " + err.Error()})
		return ""
	}
	saveAssignment(dir, asg)
	opts.Schedule = asg.Budget.Schedule
	opts.Phase = asg.Budget.Phase
	opts.CPUs = a.o.CPUs
	opts.Interval = asg.Interval
	opts.Lease = true

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	r := &run{a: a, s: s, id: id, test: test, cancel: cancel, dir: dir, mix: opts.Mix, local: local}
	pub := newPublisher(a, s, test, id, dir, asg.Plan.Open())
	opts.OnInterval = pub.publish
	if fn := a.o.OnInterval; fn != nil {
		plan := &asg.Plan
		opts.OnInterval = func(st *proto.Stats) { pub.publish(st); fn(plan, st) }
	}
	a.setTest(test)
	defer a.setTest("")
	var readied atomic.Bool
	opts.Ready = func(ctx context.Context) (time.Time, error) {
		readied.Store(true)
		a.ack(s, test, id, fleet.Ack{Version: asg.Version})
		return a.waitBarrier(ctx, s, test)
	}
	eng, err := engine.New(opts)
	if err != nil {
		a.ack(s, test, id, fleet.Ack{Version: asg.Version, Error: err.Error()})
		return ""
	}
	r.eng = eng
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); r.keepLease(runCtx) }()
	go func() { defer wg.Done(); r.follow(runCtx, asg) }()
	go func() { defer wg.Done(); r.watchHeaders(runCtx) }()
	res, err := eng.Run(runCtx)
	cancel()
	wg.Wait()
	fenced := r.fencedWhy()
	if err != nil {
		if !readied.Load() {
			// It never got as far as the barrier: say why at once, so
			// the coordinator need not wait out its ack timeout.
			a.ack(s, test, id, fleet.Ack{Version: asg.Version, Error: err.Error()})
		}
		if fenced == "" && r.stopped == "" {
			a.logf("test %s: %v", test, err)
		}
	}
	// Everything goes to disk first; then, unless fenced or stopping,
	// to ZooKeeper within FinishTimeout (it may be away: a call can then
	// block for good, and the session is dropped to end it).
	toZK := fenced == "" && ctx.Err() == nil
	pub.stop()
	result := pub.summary()
	result.Agent, result.Name, result.StateDir = id, a.info.Name, dir
	if res != nil && !res.FirstSend.IsZero() {
		result.FirstSend = res.FirstSend.UnixNano()
	}
	if err != nil && fenced == "" && r.stopped == "" && !errors.Is(err, context.Canceled) {
		result.Error = err.Error()
	}
	result.Fenced = fenced
	saveJSON(filepath.Join(dir, "result.json"), result)
	if toZK {
		done := make(chan struct{})
		go func() {
			defer close(done)
			result = pub.finish(true)
			result.Agent, result.Name, result.StateDir = id, a.info.Name, dir
			if res != nil && !res.FirstSend.IsZero() {
				result.FirstSend = res.FirstSend.UnixNano()
			}
			if err != nil && r.stopped == "" && !errors.Is(err, context.Canceled) {
				result.Error = err.Error()
			}
			saveJSON(filepath.Join(dir, "result.json"), result)
			if err := fleet.Retry(3*time.Second, func() error { return s.SetOrCreate(a.p.Result(test, id), mustJSON(result)) }); err != nil {
				a.logf("test %s: cannot write my result (kept in %s): %v", test, dir, err)
			}
		}()
		select {
		case <-done:
		case <-time.After(FinishTimeout):
			a.logf("test %s: ZooKeeper did not take my last snapshots and result within %s: they are kept in %s; registering again", test, FinishTimeout, dir)
			s.Close()
			<-done
			if fenced == "" {
				fenced = "ZooKeeper did not answer at the end of the test"
			}
		}
	}
	a.logf("test %s done: %d sent, %d responses; snapshots kept in %s", test, result.Sent, result.Responses, dir)
	return fenced
}

// keepLease renews the engine's lease each time ZooKeeper confirms the
// session and the registration, a quarter session timeout apart. The
// lease runs to the instant the confirming request was sent plus the
// session timeout: ZooKeeper cannot expire the session before then, and
// the coordinator cannot declare the agent lost (and hand its budget to
// the survivors) before it expires. A request that hangs (no server)
// renews nothing: the lease lapses and the engine stops sending.
func (r *run) keepLease(ctx context.Context) {
	T := r.a.o.SessionTimeout
	type check struct {
		at  time.Time
		ok  bool
		err error
	}
	results := make(chan check, 1)
	inflight := false
	probe := func() {
		at := time.Now()
		go func() {
			ok, _, err := r.s.Conn.Exists(r.a.p.Agent(r.id))
			results <- check{at, ok, err}
		}()
	}
	probe()
	inflight = true
	tick := time.NewTicker(T / 4)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.s.Expired():
			r.fence("my ZooKeeper session expired")
			return
		case c := <-results:
			inflight = false
			switch {
			case c.err == nil && c.ok && !r.s.IsExpired():
				r.eng.Renew(c.at.Add(T))
			case c.err == nil && !c.ok:
				r.fence("my registration was deleted (the coordinator may have moved my budget)")
				return
			case errors.Is(c.err, zk.ErrSessionExpired):
				r.fence("my ZooKeeper session expired")
				return
			}
		case <-tick.C:
			if !inflight {
				probe()
				inflight = true
			}
		}
	}
}

// waitBarrier waits for the coordinator's start instant.
func (a *Agent) waitBarrier(ctx context.Context, s *fleet.Session, test string) (time.Time, error) {
	var bw, tw fleet.Watch
	for {
		data, _, err := bw.Get(s.Conn, a.p.Barrier(test))
		if err == nil {
			return fleet.DecodeBarrier(data)
		}
		if ok, err := tw.Exists(s.Conn, a.p.Test(test)); err == nil && !ok {
			return time.Time{}, fmt.Errorf("agent: test %s was withdrawn before its start", test)
		}
		select {
		case <-bw.C():
			bw.Fired()
		case <-tw.C():
			tw.Fired()
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-s.Expired():
			return time.Time{}, errors.New("agent: ZooKeeper session expired before the start")
		case <-time.After(time.Second):
		}
	}
}

// follow applies live changes (two phases: prepare on a new assignment
// version with an ack, apply at the instant /active names for that
// version) and stops the run when the stop node appears.
func (r *run) follow(ctx context.Context, first *fleet.Assignment) {
	a, s := r.a, r.s
	epoch, version := first.Epoch, first.Version
	prepared := map[int]*fleet.Assignment{}
	// mixes holds a prepared change's requests when its plan changed a
	// header (nil: the requests stay).
	mixes := map[int]*request.Mix{}
	var stopW, asgW, actW fleet.Watch
	for ctx.Err() == nil {
		if data, _, err := stopW.Get(s.Conn, a.p.Stop(r.test)); err == nil {
			r.stopped = fleet.DecodeStopInfo(data).Reason
			a.logf("test %s: stopped by the coordinator: %s", r.test, r.stopped)
			r.cancel()
			return
		}
		if data, _, err := asgW.Get(s.Conn, a.p.Assign(r.id)); err == nil {
			asg, err := fleet.DecodeAssignment(data)
			switch {
			case err != nil:
				a.logf("test %s: refused a change: %v", r.test, err)
			case asg.Test != r.test || asg.Version <= version || prepared[asg.Version] != nil:
			case asg.Epoch < epoch:
				a.logf("test %s: ignored change %d from an older leadership (epoch %d < %d)", r.test, asg.Version, asg.Epoch, epoch)
			default:
				err := asg.Budget.Validate(&asg.Plan, a.o.Caps)
				var mix *request.Mix
				if err == nil {
					mix, err = r.prepareMix(&first.Plan, &asg.Plan)
				}
				if err != nil {
					a.logf("test %s: refused change %d: %v", r.test, asg.Version, err)
					a.ack(s, r.test, r.id, fleet.Ack{Version: asg.Version, Error: "refused: " + err.Error()})
					break
				}
				epoch = asg.Epoch
				prepared[asg.Version] = asg
				mixes[asg.Version] = mix
				saveAssignment(r.dir, asg)
				a.ack(s, r.test, r.id, fleet.Ack{Version: asg.Version})
			}
		}
		if data, _, err := actW.Get(s.Conn, a.p.Active(r.test)); err == nil {
			act, err := fleet.DecodeActivation(data)
			if err == nil && act.Version > version && act.Epoch >= epoch {
				if asg := prepared[act.Version]; asg != nil {
					err := r.eng.Apply(act.At, asg.Budget.Schedule, asg.Budget.Phase)
					if mix := mixes[act.Version]; mix != nil && err == nil {
						err = r.setMix(act.At, mix)
					}
					version = act.Version
					for v := range prepared {
						if v <= version {
							delete(prepared, v)
							delete(mixes, v)
						}
					}
					ack := fleet.Ack{Version: version, At: time.Now().UnixNano()}
					if err != nil {
						ack.Error = err.Error()
						a.logf("test %s: change %d: %v", r.test, version, err)
					} else {
						a.logf("test %s: change %d at %.1fs: %s", r.test, version, act.At.Seconds(), asg.Budget.Describe(asg.Plan.Open()))
					}
					_ = s.SetOrCreate(a.p.Applied(r.test, r.id), mustJSON(ack))
					continue
				}
			}
		}
		select {
		case <-ctx.Done():
		case <-stopW.C():
			stopW.Fired()
		case <-asgW.C():
			asgW.Fired()
		case <-actW.C():
			actW.Fired()
		case <-time.After(time.Second):
		}
	}
}

func saveJSON(path string, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err == nil {
		err = os.WriteFile(path, append(b, '\n'), 0o600)
	}
	_ = err
}

// saveAssignment keeps the latest assignment (plan, budget, the test's
// schedule) beside the snapshots: `barrage report --state-dir` needs it.
// Secret header values are redacted: the report needs none.
func saveAssignment(dir string, asg *fleet.Assignment) {
	c := *asg
	c.Plan = *asg.Plan.RedactedCopy()
	saveJSON(filepath.Join(dir, "assignment.json"), &c)
}

// prepareMix checks a change's plan against the first: only header values
// may differ (the schedule travels in the budget). When they do, it
// returns the requests rebuilt with them (the agent's own header values
// still win); nil when the requests stay.
func (r *run) prepareMix(first, next *proto.Plan) (*request.Mix, error) {
	if !sameButHeaders(first, next) {
		return nil, proto.BadPlanf("a live change may change the schedule and header values only, not the rest of the plan")
	}
	r.mixMu.Lock()
	defer r.mixMu.Unlock()
	if r.mix == nil {
		return nil, nil
	}
	p := withLocal(next, r.local)
	if headersEqual(r.mix.Plan(), p) {
		return nil, nil
	}
	return r.mix.Rebuild(p)
}

// setMix puts a rebuilt mix in force from at (time since the start).
func (r *run) setMix(at time.Duration, m *request.Mix) error {
	r.mixMu.Lock()
	defer r.mixMu.Unlock()
	if err := r.eng.SetMix(at, m); err != nil {
		return err
	}
	r.mix = m
	return nil
}

// watchHeaders re-reads the agent's header files and puts a changed value
// in force at once (this agent's alone: nothing goes through ZooKeeper).
func (r *run) watchHeaders(ctx context.Context) {
	a := r.a
	r.mixMu.Lock()
	current := map[string]string{}
	for k, v := range r.local {
		current[k] = v
	}
	r.mixMu.Unlock()
	request.Watch(ctx, a.o.HeaderFiles, current, request.DefaultWatchEvery, func(name, value string) {
		r.mixMu.Lock()
		defer r.mixMu.Unlock()
		if r.mix == nil {
			return
		}
		m, err := r.mix.WithHeader(name, value)
		if err == nil {
			err = r.eng.SetMix(0, m)
		}
		if err != nil {
			a.logf("test %s: header %s from its file: not changed: %v", r.test, name, err)
			return
		}
		r.mix = m
		r.local[name] = value
		a.logf("test %s: header %s changed in its file: in force now", r.test, name)
	}, func(err error) { a.logf("test %s: %v (the value in force stays)", r.test, err) })
}

// sameButHeaders reports whether two plans differ in header values at
// most.
func sameButHeaders(a, b *proto.Plan) bool {
	strip := func(p *proto.Plan) []byte {
		q := p.Clone()
		q.Headers = nil
		for i := range q.Requests {
			q.Requests[i].Headers = nil
		}
		js, _ := json.Marshal(q)
		return js
	}
	return bytes.Equal(strip(a), strip(b))
}

// headersEqual reports whether two plans send the same headers.
func headersEqual(a, b *proto.Plan) bool {
	am, bm := a.Mix(), b.Mix()
	if len(am) != len(bm) {
		return false
	}
	for i := range am {
		x, y := a.RequestHeaders(&am[i]), b.RequestHeaders(&bm[i])
		if len(x) != len(y) {
			return false
		}
		for k, v := range x {
			if y[k] != v {
				return false
			}
		}
	}
	return true
}

// FinishTimeout bounds the end of a test's writes to ZooKeeper (the last
// snapshots and the result).
const FinishTimeout = 6 * time.Second

// DefaultCaps are an agent's caps when none are given.
var DefaultCaps = proto.Caps{MaxRate: proto.DefaultAgentMaxRate, MaxConnections: proto.DefaultAgentMaxConnections}
