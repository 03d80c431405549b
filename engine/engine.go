// Package engine drives HTTP/1.1 load: one gnet event loop per pinned CPU,
// each owning its connections, its share of the schedule (its tokens in the
// open model), its response parsers and its statistics. It knows nothing
// of ZooKeeper: an agent drives it through Options, Apply (live changes at
// an instant), Renew (its lease) and Stop, and reads it through
// Options.OnInterval.
package engine

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/barrage-load/barrage/proto"
	reqmix "github.com/barrage-load/barrage/request"
	"github.com/barrage-load/barrage/schedule"
)

// ErrClosedModel occurs when SetRate is called on a closed-model run.
var ErrClosedModel = errors.New("engine: the rate of a closed-model run cannot be set (start it with a rate)")

// Engine runs one load schedule against one target.
type Engine struct {
	opts    Options
	epoch   time.Time
	startNS int64 // schedule start, ns since epoch; set before running
	nloops  int
	open    bool
	loops   []*loop
	collect chan part
	dialer  *dialer

	// mu guards the schedule, its phases and version (live changes) and
	// started. Loops take it only to copy a changed schedule.
	mu      sync.Mutex
	sched   schedule.Schedule
	phases  []phaseChange
	version uint64
	started bool
	// running is set once startNS is: the loops' schedule has begun.
	running  atomic.Bool
	stopping atomic.Bool
	ran      atomic.Bool
	// lease is the window in which the engine may send (see Renew): one
	// atomic load per pump or fill, never a lock.
	lease atomic.Pointer[lease]
	// halt is closed by Stop.
	halt     chan struct{}
	haltOnce sync.Once
	halted   atomic.Bool
	// changed wakes the clock after a live change (new boundaries, new
	// connection counts ahead).
	changed chan struct{}
	// bells are the pacers' ends of the loops' doorbells (open model).
	bells []net.Conn
	// finalSeq is the sequence number of the last interval, once the clock
	// knows it (-1 before).
	finalSeq atomic.Int64
	// bounds are the interval boundaries: the clock hands off at them, the
	// loops cut at them. A live change replaces the list; the boundaries
	// already passed never change.
	bounds atomic.Pointer[[]schedule.Boundary]
	// float: the one loop runs unlocked, kept on its CPU by the process's
	// affinity mask alone (see Run).
	float bool
	// cpuShare is the share of a CPU each loop may have under the cgroup's
	// CPU quota (1 without one): its capacity per second (cpuquota.go).
	cpuShare float64
	// unixNS is the epoch's wall-clock time (Unix ns): a loop's now plus
	// it is a request's send time for {{now_ms}}.
	unixNS int64
	// The mix in force (mixCur) and the one that takes over at mixAt
	// (time since the start; SetMix), under mu; mixVersion counts
	// changes for the loops to follow.
	mixCur, mixNext *reqmix.Mix
	mixAt           time.Duration
	mixVersion      uint64
	// bk is the circuit breaker (Options.Breaker), nil without one.
	bk *breaker
}

// neverAt is a time no run reaches.
const neverAt = time.Duration(1<<63 - 1)

// lease is the window, in ns since the epoch, in which the engine may
// send: until when, and since when it holds (tokens due before it was
// regained after a lapse are shed, never sent late).
type lease struct {
	from, until int64
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
	e := &Engine{opts: o, epoch: time.Now(), sched: schedule.New(o.Schedule),
		halt: make(chan struct{}), changed: make(chan struct{}, 1), mixCur: o.Mix, mixAt: neverAt}
	e.unixNS = e.epoch.UnixNano()
	e.open = e.sched.Open()
	e.phases = []phaseChange{{phase: o.Phase}}
	bs := schedule.Bounds(&e.sched, o.Interval)
	e.bounds.Store(&bs)
	if o.Lease {
		e.lease.Store(&lease{from: math.MinInt64, until: math.MinInt64})
	} else {
		e.lease.Store(&lease{from: math.MinInt64, until: math.MaxInt64})
	}
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
	e.cpuShare = loopShare(CPUQuota(), e.nloops)
	e.collect = make(chan part, e.nloops*8)
	if o.Breaker != nil {
		e.bk = newBreaker(*o.Breaker, o.fail.Connect, e.nloops)
	}
	e.finalSeq.Store(-1)
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
// to its end (or until ctx is done or Stop is called) and returns once the
// last interval has been handed to Options.OnInterval. It fails with
// ErrNoConnection when not one of the first connections opens, with ctx's
// error or ErrStopped when stopped before the start. It returns within a
// few hundred milliseconds of ctx's end in every state (dialing, waiting
// for the start, running at any rate or connection count, stopping).
func (e *Engine) Run(ctx context.Context) (*Result, error) {
	if !e.ran.CompareAndSwap(false, true) {
		return nil, fmt.Errorf("%w: Run called twice", ErrBadOptions)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-e.halt:
			cancel()
		case <-ctx.Done():
		}
	}()
	early := func(err error) (*Result, error) {
		e.stopLoops()
		if e.halted.Load() {
			err = ErrStopped
		}
		return nil, err
	}
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
	e.dialer = newDialer(e)
	e.mu.Lock()
	conns0, _ := e.sched.Segment(0)
	e.mu.Unlock()
	for i := 0; i < e.nloops; i++ {
		l := e.newLoop(i)
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
			return early(fmt.Errorf("engine: cannot start event loop %d: %w", i, err))
		}
		l.cli = cli
		// Under the lock: a live change or a renewal may come from
		// another goroutine while the loops are being made.
		e.mu.Lock()
		e.loops = append(e.loops, l)
		e.mu.Unlock()
		if e.open {
			if err := e.doorbell(l); err != nil {
				return early(err)
			}
		}
		res.CPUs = append(res.CPUs, l.cpu)
		l.wantN.Store(int64(max(e.share(conns0, i), 1)))
	}
	if err := e.dialInitial(ctx); err != nil {
		return early(err)
	}

	// Start: every loop at one instant.
	startAt := e.opts.StartAt
	if e.opts.Ready != nil {
		at, err := e.opts.Ready(ctx)
		if err == nil {
			err = ctx.Err()
		}
		if err != nil {
			return early(err)
		}
		startAt = at
	}
	if !startAt.IsZero() {
		if d := time.Until(startAt); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return early(ctx.Err())
			}
		}
	}
	if ctx.Err() != nil {
		return early(ctx.Err())
	}
	e.mu.Lock()
	e.startNS = int64(time.Since(e.epoch))
	e.started = true
	e.mu.Unlock()
	e.running.Store(true)
	res.Start = e.epoch.Add(time.Duration(e.startNS))
	pctx, stopPacers := context.WithCancel(context.Background())
	defer stopPacers()
	for _, l := range e.loops {
		l.execute(l.start)
		if e.open {
			go l.pacer(pctx)
		}
	}
	if e.bk != nil {
		go e.bk.run(pctx, e)
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

// newLoop makes loop i, before it runs anything.
func (e *Engine) newLoop(i int) *loop {
	l := &loop{e: e, idx: i, cpu: e.opts.CPUs[i], open: e.open}
	l.pool = make(chan *proto.Stats, 2)
	l.checkTask = gnet.RunnableFunc(func(context.Context) error { l.checkTimeouts(); return nil })
	l.adjustTask = gnet.RunnableFunc(func(context.Context) error { l.adjust(); return nil })
	l.syncTask = gnet.RunnableFunc(func(context.Context) error { l.resume(); return nil })
	if m := e.opts.Mix; m != nil {
		l.mix, l.rend = m, m.NewRenderer(i, e.nloops)
		l.perName, l.nreq = m.Named(), m.Len()
	}
	l.setMix(l.mix)
	if l.mix == nil {
		l.fixed = e.opts.Request
	}
	l.nextMixAt = neverAt
	l.pubAt = 1 << 62
	if e.opts.Retry != nil || e.opts.Breaker != nil {
		l.rt = newRetrier(&e.opts, i)
		if e.bk != nil {
			l.pubAt = 0
		}
	}
	l.st = l.newStats()
	if e.opts.TLS != nil {
		l.plain = make([]byte, tlsPlainBuf)
	}
	l.nextDue.Store(1 << 62)
	l.cutDue.Store(1 << 62)
	l.pc.stride, l.pc.idx = uint64(e.nloops), uint64(i)
	l.syncSchedule()
	return l
}

// loopList returns the loops made so far, for goroutines other than
// Run's.
func (e *Engine) loopList() []*loop {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.loops
}

// loadBounds returns the interval boundaries in force.
func (e *Engine) loadBounds() []schedule.Boundary { return *e.bounds.Load() }

func (e *Engine) stopLoops() {
	e.stopping.Store(true)
	if e.dialer != nil {
		// Before the loops stop: a connect enrolled after would wait for
		// a loop that never opens it.
		e.dialer.close()
	}
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

// dialInitial opens every loop's first connections through the dialer
// and waits for each one's first connect; it fails when none opened.
// Slots whose connect failed go on dialing with backoff. It returns at
// once when ctx ends, connects in flight included.
func (e *Engine) dialInitial(ctx context.Context) error {
	n := 0
	for _, l := range e.loops {
		n += int(l.wantN.Load())
	}
	e.dialer.first = make(chan error, n)
	var slots []*conn
	for _, l := range e.loops {
		for j := int64(0); j < l.wantN.Load(); j++ {
			c := l.newConn()
			c.first, c.dialing = true, true
			l.dialingN++
			slots = append(slots, c)
		}
	}
	// Hazard: every slot, and the loop's count of them, is set before the
	// first connect: once connections open on a loop, its fields are its
	// own.
	for _, c := range slots {
		e.dialer.add(c.l, c, false)
	}
	ok := 0
	var firstErr error
	for i := 0; i < n; i++ {
		select {
		case err := <-e.dialer.first:
			if err == nil {
				ok++
			} else if firstErr == nil {
				firstErr = err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if ok == 0 && n > 0 {
		return fmt.Errorf("%w %s: %w", ErrNoConnection, e.opts.Addr, firstErr)
	}
	return nil
}
