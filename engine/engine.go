// Package engine drives HTTP/1.1 load: one gnet event loop per pinned CPU,
// each owning its connections, its share of the schedule (a token bucket in
// the open model), its response parsers and its statistics. It knows
// nothing of ZooKeeper: the coordinator drives it through Options, SetRate
// and SetConnections and reads it through Options.OnInterval.
package engine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/barrage-load/barrage/proto"
	"github.com/barrage-load/barrage/schedule"
)

// ErrClosedModel occurs when SetRate is called on a closed-model run.
var ErrClosedModel = errors.New("engine: the rate of a closed-model run cannot be set (start it with a rate)")

// Engine runs one load schedule against one target.
type Engine struct {
	opts    Options
	epoch   time.Time
	startNS int64 // schedule start, ns since epoch; set before the loops start
	nloops  int
	open    bool
	loops   []*loop
	collect chan part

	mu       sync.Mutex // guards sched and started for live changes
	sched    schedule.Schedule
	started  bool
	stopping atomic.Bool
	// bells are the pacers' ends of the loops' doorbells (open model).
	bells []net.Conn
	// refillAt is how many free pipeline slots a closed-model connection
	// waits for before it writes again: half the depth, so a deep pipeline
	// is refilled in a few large writes rather than one per response (the
	// kernel's cost is per write and per segment, not per byte).
	refillAt int
	// finalSeq is the sequence number of the last interval, once the clock
	// knows it (-1 before).
	finalSeq atomic.Int64
	// bounds are the interval boundaries, set before the loops start and
	// read-only after: the clock hands off at them, the loops cut at them.
	bounds []schedule.Boundary
	// float: the one loop runs unlocked, kept on its CPU by the process's
	// affinity mask alone (see Run).
	float bool
}

// part is one loop's statistics for one interval.
type part struct {
	loop int // -1: an offline hand-off, nothing to recycle
	st   *proto.Stats
}

// Result tells how a run went, beside the statistics streamed to
// Options.OnInterval.
type Result struct {
	// Start is the wall-clock instant the schedule started; FirstSend is
	// when the first request went out (zero if none did).
	Start, FirstSend time.Time
	// Loops is the number of event loops and CPUs the CPUs they ran on.
	Loops int
	CPUs  []int
}

// New checks the options and prepares an engine; Run starts it.
func New(o Options) (*Engine, error) {
	if err := o.normalize(); err != nil {
		return nil, err
	}
	e := &Engine{opts: o, epoch: time.Now(), sched: schedule.New(o.Schedule)}
	e.open = e.sched.Open()
	// Every loop must hold at least one connection in every step, or its
	// share of the tokens would wait for ever.
	minConns := 0
	for _, s := range o.Schedule {
		if minConns == 0 || s.Connections < minConns {
			minConns = s.Connections
		}
	}
	if minConns < 1 {
		return nil, fmt.Errorf("%w: every step needs at least one connection", ErrBadOptions)
	}
	e.nloops = min(len(o.CPUs), minConns)
	e.collect = make(chan part, e.nloops*8)
	e.finalSeq.Store(-1)
	e.refillAt = max(1, o.Pipeline/2)
	return e, nil
}

// Loops is the number of event loops the engine runs.
func (e *Engine) Loops() int { return e.nloops }

// Open reports whether the engine runs the open model.
func (e *Engine) Open() bool { return e.open }

// share splits n over the loops; loop i gets its part.
func (e *Engine) share(n, i int) int {
	s := n / e.nloops
	if i < n%e.nloops {
		s++
	}
	return s
}

type nopLogger struct{}

func (nopLogger) Debugf(string, ...any) {}
func (nopLogger) Infof(string, ...any)  {}
func (nopLogger) Warnf(string, ...any)  {}
func (nopLogger) Errorf(string, ...any) {}
func (nopLogger) Fatalf(string, ...any) {}

// Run opens the connections, waits for Options.StartAt, runs the schedule
// to its end (or until ctx is done) and returns once the last interval has
// been handed to Options.OnInterval. It fails with ErrNoConnection when not
// one of the first connections opens.
func (e *Engine) Run(ctx context.Context) (*Result, error) {
	res := &Result{Loops: e.nloops}
	// Hazard: each loop's thread holds a P even while it blocks in
	// epoll_wait, and the runtime takes it back only when sysmon next looks
	// (up to 10 ms when idle). With GOMAXPROCS at the CPU count (1 under
	// taskset -c 0), a pacer thread waking from its nanosleep then waits
	// for a P, and requests go out milliseconds late. Spare Ps let it run at
	// once; the threads still share the pinned CPUs.
	//
	// One loop alone on a one-CPU mask (`taskset -c 0 barrage run --cores
	// 1`) is the exception where it pays: the mask already keeps every
	// thread on that CPU, so the loop can float, unlocked. Hazard: a locked
	// loop thread costs two thread hand-offs (four futex calls and two
	// context switches on the one CPU) each time gnet's poller yields after
	// an empty poll. That is often when responses trickle in (pipelining
	// against nginx: 0.916 futex calls per request, 15-28% of the CPU)
	// and in the open model (78000 futex calls a second at 20000 req/s), so
	// those float. A closed keep-alive loop rarely finds its poll empty
	// (0.044 futex calls per request), and locked it kept 8-10% more
	// requests a second against nginx in alternating 5 s runs, so it stays
	// locked. The closed model floats on the runtime's one P. The open
	// model has two Ps, one for the loop and one that the pacer never gives
	// up: it sleeps and rings with raw syscalls, so it needs no P to wake,
	// and no P is ever idle for the loop's yield to wake a thread for.
	e.float = e.nloops == 1 && soleCPU(e.opts.CPUs[0]) && (e.open || e.opts.Pipeline > 1)
	switch {
	case e.float && e.open:
		if runtime.GOMAXPROCS(0) < 2 {
			runtime.GOMAXPROCS(2)
		}
	case !e.float:
		if need := 2*e.nloops + 1; runtime.GOMAXPROCS(0) < need {
			runtime.GOMAXPROCS(need)
		}
	}
	conns0, _ := e.sched.Segment(0)
	for i := 0; i < e.nloops; i++ {
		l := &loop{e: e, idx: i, cpu: e.opts.CPUs[i], open: e.open, sched: e.sched}
		l.pool = make(chan *proto.Stats, 2)
		l.checkTask = gnet.RunnableFunc(func(context.Context) error { l.checkTimeouts(); return nil })
		l.st = proto.NewStats(e.open)
		l.nextDue.Store(1 << 62)
		l.resetCursors()
		cli, err := gnet.NewClient(l,
			gnet.WithNumEventLoop(1),
			gnet.WithLockOSThread(!e.float),
			gnet.WithLogger(nopLogger{}),
			gnet.WithReadBufferCap(64<<10),
		)
		if err == nil {
			err = cli.Start()
		}
		if err != nil {
			e.stopLoops()
			return nil, fmt.Errorf("engine: cannot start event loop %d: %w", i, err)
		}
		l.cli = cli
		e.loops = append(e.loops, l)
		if e.open {
			if err := e.doorbell(l); err != nil {
				e.stopLoops()
				return nil, err
			}
		}
		res.CPUs = append(res.CPUs, l.cpu)
		l.want = e.share(conns0, i)
	}
	if err := e.dialInitial(); err != nil {
		e.stopLoops()
		return nil, err
	}

	// Start: every loop at one instant.
	startAt := e.opts.StartAt
	if e.opts.Ready != nil {
		at, err := e.opts.Ready(ctx)
		if err != nil {
			e.stopLoops()
			return nil, err
		}
		startAt = at
	}
	if !startAt.IsZero() {
		if d := time.Until(startAt); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
				e.stopLoops()
				return nil, ctx.Err()
			}
		}
	}
	e.mu.Lock()
	e.startNS = int64(time.Since(e.epoch))
	e.started = true
	e.bounds = schedule.Bounds(&e.sched, e.opts.Interval)
	e.mu.Unlock()
	res.Start = e.epoch.Add(time.Duration(e.startNS))
	pctx, stopPacers := context.WithCancel(context.Background())
	defer stopPacers()
	for _, l := range e.loops {
		l.execute(l.start)
		if e.open {
			go l.pacer(pctx)
		}
	}

	done := make(chan struct{})
	go e.collector(done)
	e.clock(ctx)
	<-done
	stopPacers()
	e.stopLoops()

	first := int64(0)
	for _, l := range e.loops {
		if l.firstSend != 0 && (first == 0 || l.firstSend < first) {
			first = l.firstSend
		}
	}
	if first != 0 {
		res.FirstSend = e.epoch.Add(time.Duration(first))
	}
	return res, nil
}

func (e *Engine) stopLoops() {
	e.stopping.Store(true)
	for _, l := range e.loops {
		if l.cli != nil {
			_ = l.cli.Stop()
		}
	}
	for _, c := range e.bells {
		_ = c.Close()
	}
	e.bells = nil
}

// doorbell connects loop l to its pacer over loopback: the loop's end is
// enrolled in the loop (which also pins it, in OnOpen), the other end's
// descriptor is the pacer's to write to.
func (e *Engine) doorbell(l *loop) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("engine: cannot set up a pacer doorbell: %w", err)
	}
	defer ln.Close()
	dialed, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return fmt.Errorf("engine: cannot set up a pacer doorbell: %w", err)
	}
	accepted, err := ln.Accept()
	if err != nil {
		dialed.Close()
		return fmt.Errorf("engine: cannot set up a pacer doorbell: %w", err)
	}
	e.bells = append(e.bells, accepted)
	rc, err := accepted.(*net.TCPConn).SyscallConn()
	if err == nil {
		err = rc.Control(func(fd uintptr) { l.bellFD = int(fd) })
	}
	if err == nil {
		_, err = l.cli.EnrollContext(dialed, &conn{l: l, bell: true})
	}
	if err != nil {
		dialed.Close()
		return fmt.Errorf("engine: cannot set up a pacer doorbell: %w", err)
	}
	return nil
}

// dialInitial opens every loop's first connections, at most 256 connects at
// a time, and fails when none opens. Slots whose connect failed go on
// dialing with backoff.
func (e *Engine) dialInitial() error {
	type result struct {
		l   *loop
		c   *conn
		err error
	}
	var slots []result
	for _, l := range e.loops {
		for j := 0; j < l.want; j++ {
			slots = append(slots, result{l: l, c: l.newConn()})
		}
	}
	sem := make(chan struct{}, 256)
	out := make(chan result, len(slots))
	for _, s := range slots {
		s.c.dialing = true
		go func(s result) {
			sem <- struct{}{}
			defer func() { <-sem }()
			nc, err := dialTCP(e.opts.Addr, e.opts.ConnectTimeout)
			if err == nil {
				if _, err = s.l.cli.EnrollContext(nc, s.c); err != nil {
					_ = nc.Close()
				}
			}
			s.err = err
			out <- s
		}(s)
	}
	var firstErr error
	ok := 0
	var failed []result
	for range slots {
		r := <-out
		if r.err != nil {
			r.l.connErrs.Add(1)
			if firstErr == nil {
				firstErr = r.err
			}
			failed = append(failed, r)
			continue
		}
		ok++
	}
	if ok == 0 && len(slots) > 0 {
		return fmt.Errorf("%w %s: %v", ErrNoConnection, e.opts.Addr, firstErr)
	}
	for _, r := range failed {
		e.redial(r.l, r.c, true)
	}
	return nil
}

// redial fills slot c with a new connection from a goroutine of its own,
// after a backoff when wait is set (a connection just failed). It gives up
// when the engine stops.
func (e *Engine) redial(l *loop, c *conn, wait bool) {
	if e.stopping.Load() {
		return
	}
	c.dialing = true
	go func() {
		backoff := 10 * time.Millisecond
		for {
			if wait {
				time.Sleep(backoff)
				backoff = min(backoff*2, time.Second)
			}
			wait = true
			if e.stopping.Load() {
				return
			}
			nc, err := dialTCP(e.opts.Addr, e.opts.ConnectTimeout)
			if err != nil {
				l.connErrs.Add(1)
				continue
			}
			if e.stopping.Load() {
				_ = nc.Close()
				return
			}
			if _, err := l.cli.EnrollContext(nc, c); err != nil {
				_ = nc.Close()
				return
			}
			return
		}
	}()
}

// clock drives the run from its own goroutine: it hands intervals off at
// every boundary, applies step changes, checks timeouts, and ends the run at
// the schedule's end or when ctx is done.
func (e *Engine) clock(ctx context.Context) {
	bs := e.bounds
	start := e.epoch.Add(time.Duration(e.startNS))
	check := time.NewTicker(timeoutCheck(e.opts.Timeout))
	defer check.Stop()
	var prev time.Duration
	for seq, b := range bs {
		final := seq == len(bs)-1
		timer := time.NewTimer(time.Until(start.Add(b.At)))
	wait:
		for {
			select {
			case <-timer.C:
				break wait
			case <-check.C:
				for _, l := range e.loops {
					l.run(l.checkTask)
				}
			case <-ctx.Done():
				timer.Stop()
				b.At = time.Since(start)
				final = true
				break wait
			}
		}
		e.mu.Lock()
		_, step := e.sched.Segment(prev)
		e.mu.Unlock()
		if final {
			e.finalSeq.Store(int64(seq))
		}
		for _, l := range e.loops {
			l := l
			s, p, end := seq, prev, b.At
			if !l.execute(func() { l.handoff(s, step, p, end, final) }) {
				e.mu.Lock()
				conns, _ := e.sched.Segment(prev)
				e.mu.Unlock()
				l.offlineHandoff(s, step, p, end, e.share(conns, l.idx))
			}
		}
		if final {
			return
		}
		if b.StepStart {
			e.mu.Lock()
			conns, _ := e.sched.Segment(b.At)
			e.mu.Unlock()
			for _, l := range e.loops {
				l := l
				n := e.share(conns, l.idx)
				l.execute(func() { l.setWant(n) })
			}
		}
		prev = b.At
	}
}

// collector merges the loops' parts of each interval, hands the merged
// interval to OnInterval in order, and recycles the parts.
func (e *Engine) collector(done chan<- struct{}) {
	defer close(done)
	type pending struct {
		n  int
		st *proto.Stats
	}
	waiting := map[int]*pending{}
	// spares holds merged intervals handed back after OnInterval (which
	// must not keep them): a long run reuses a few rather than leaving
	// three histograms of garbage per interval for the GC.
	var spares []*proto.Stats
	next := 0
	for p := range e.collect {
		w := waiting[p.st.Seq]
		if w == nil {
			w = &pending{}
			if n := len(spares); n > 0 {
				w.st, spares = spares[n-1], spares[:n-1]
			} else {
				w.st = proto.NewStats(e.open)
			}
			waiting[p.st.Seq] = w
		}
		w.st.Merge(p.st)
		w.st.Seq, w.st.Step = p.st.Seq, p.st.Step
		w.st.Start, w.st.End = p.st.Start, p.st.End
		w.n++
		if p.loop >= 0 {
			p.st.Reset()
			select {
			case e.loops[p.loop].pool <- p.st:
			default:
			}
		}
		for {
			w := waiting[next]
			if w == nil || w.n < e.nloops {
				break
			}
			delete(waiting, next)
			if e.opts.OnInterval != nil {
				e.opts.OnInterval(w.st)
			}
			if int64(w.st.Seq) == e.finalSeq.Load() {
				return
			}
			w.st.Reset()
			spares = append(spares, w.st)
			next++
		}
	}
}

// SetRate changes the open model's rate, in requests per second over the
// whole engine, from now to the end of the run.
func (e *Engine) SetRate(r float64) error {
	if !e.open {
		return ErrClosedModel
	}
	if r < 0 {
		return fmt.Errorf("%w: negative rate %g", ErrBadOptions, r)
	}
	e.change(func(at time.Duration, s *schedule.Schedule) schedule.Schedule { return s.WithRate(at, r) }, false)
	return nil
}

// SetSchedule replaces the schedule from now on with segs (times from the
// run's start, rates and connections over the whole engine); what was due
// before now stays as it was. Connections follow the new schedule.
func (e *Engine) SetSchedule(segs []proto.Segment) error {
	next := schedule.New(segs)
	if next.Open() != e.open {
		return fmt.Errorf("%w: a live change cannot switch between the open and closed models", ErrBadOptions)
	}
	e.change(func(at time.Duration, s *schedule.Schedule) schedule.Schedule { return s.Splice(at, segs) }, true)
	return nil
}

// SetConnections changes the number of connections, over the whole engine,
// from now to the end of the run (at least one per loop).
func (e *Engine) SetConnections(n int) error {
	if n < e.nloops {
		return fmt.Errorf("%w: %d connections for %d event loops", ErrBadOptions, n, e.nloops)
	}
	e.change(func(at time.Duration, s *schedule.Schedule) schedule.Schedule { return s.WithConnections(at, n) }, true)
	return nil
}

// change applies a schedule edit at the current instant on every loop.
func (e *Engine) change(edit func(at time.Duration, s *schedule.Schedule) schedule.Schedule, conns bool) {
	e.mu.Lock()
	var at time.Duration
	if e.started {
		at = time.Since(e.epoch) - time.Duration(e.startNS)
	}
	e.sched = edit(at, &e.sched)
	s := e.sched
	n, _ := s.Segment(at)
	e.mu.Unlock()
	for _, l := range e.loops {
		l := l
		k := max(e.share(n, l.idx), 1)
		l.execute(func() {
			l.sched = s
			l.resetCursors()
			if conns {
				l.setWant(k)
			}
			if l.started && !l.stopped && l.open {
				l.pump(l.now())
				l.flush()
			}
		})
	}
}
