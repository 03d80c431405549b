package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	"github.com/go-zookeeper/zk"

	"github.com/barrage-load/barrage/fleet"
	"github.com/barrage-load/barrage/proto"
)

// maxQueued bounds the snapshots kept in memory while ZooKeeper cannot
// take them; every one is on disk already, so the oldest are dropped from
// memory first (they can still be read back with `barrage report`).
const maxQueued = 4096

// publisher writes an agent's snapshots to its state dir and to ZooKeeper
// from a goroutine of its own.
//
// Hazard: publish runs on the engine's collector, and the loops wait for
// the collector; a write that blocks (a slow disk, no ZooKeeper) must
// never be made there, or the load would stop with it. Snapshots wait in
// a queue; memory holds only what has not been published yet.
type publisher struct {
	a        *Agent
	s        *fleet.Session
	test, id string
	dir      string
	kick     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup

	mu      sync.Mutex
	queue   []queued
	count   int
	dropped int // left in memory's overflow (still on disk)
	forged  int // a node was there before we wrote it
	result  fleet.AgentResult
	latency *hdrhistogram.Histogram
	cpu     time.Duration
	cap     time.Duration
}

type queued struct {
	seq   int
	b     []byte
	saved bool
}

func newPublisher(a *Agent, s *fleet.Session, test, id, dir string, open bool) *publisher {
	p := &publisher{a: a, s: s, test: test, id: id, dir: dir, kick: make(chan struct{}, 1), done: make(chan struct{}),
		latency: proto.NewHistogram()}
	p.wg.Add(1)
	go p.run()
	return p
}

// publish encodes s and queues it; it never blocks on the disk or on
// ZooKeeper.
func (p *publisher) publish(s *proto.Stats) {
	b, err := proto.MarshalSnapshot(&proto.Snapshot{Agent: p.id, Stats: s})
	p.mu.Lock()
	p.count++
	p.result.Sent += s.Sent
	p.result.Responses += s.Responses
	p.cpu += s.LoopCPU
	p.cap += s.LoopCapacity
	if s.Latency != nil {
		p.latency.Merge(s.Latency)
	}
	if err == nil {
		p.queue = append(p.queue, queued{seq: s.Seq, b: b})
	}
	p.mu.Unlock()
	if err != nil {
		p.a.logf("BUG: cannot encode snapshot %d: %v", s.Seq, err)
		return
	}
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

func (p *publisher) run() {
	defer p.wg.Done()
	for {
		select {
		case <-p.kick:
		case <-p.done:
			return
		case <-time.After(500 * time.Millisecond):
		}
		p.write(true)
	}
}

// write saves every queued snapshot to disk, then tries to create its
// node (when toZK). It returns true when nothing is left to write.
func (p *publisher) write(toZK bool) bool {
	p.mu.Lock()
	q := append([]queued(nil), p.queue...)
	p.mu.Unlock()
	var keep []queued
	for i := range q {
		it := &q[i]
		if !it.saved {
			f := filepath.Join(p.dir, fmt.Sprintf("snap-%06d.bin", it.seq))
			if err := os.WriteFile(f, it.b, 0o600); err != nil {
				p.a.logf("test %s: cannot keep snapshot %d on disk: %v", p.test, it.seq, err)
			}
			it.saved = true
		}
		if !toZK || p.s.IsExpired() {
			keep = append(keep, *it)
			continue
		}
		_, err := p.s.Create(p.a.p.Snap(p.test, p.id, it.seq), it.b, 0)
		switch {
		case err == nil:
		case errors.Is(err, zk.ErrNodeExists):
			// Someone wrote it before us: what is there is not ours,
			// and the coordinator would count it as ours. Say so.
			p.mu.Lock()
			p.forged++
			p.mu.Unlock()
			p.a.logf("test %s: snapshot %d: its node existed before I wrote it (forged?); mine is kept in %s", p.test, it.seq, p.dir)
		case errors.Is(err, zk.ErrNoNode):
			// The test's subtree is gone (the coordinator withdrew or
			// finished it): nothing will read it.
		default:
			keep = append(keep, *it)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	// Keep what failed, then what was queued meanwhile.
	keep = append(keep, p.queue[len(q):]...)
	if over := len(keep) - maxQueued; over > 0 {
		p.dropped += over
		keep = keep[over:]
	}
	p.queue = keep
	return len(p.queue) == 0
}

// stop ends the writer goroutine and saves what is queued to disk.
func (p *publisher) stop() {
	p.stopOnce.Do(func() { close(p.done) })
	p.wg.Wait()
	p.write(false)
}

// finish tries ZooKeeper with what is queued for at most 3 s when toZK,
// and returns the agent's summary.
func (p *publisher) finish(toZK bool) fleet.AgentResult {
	p.stop()
	deadline := time.Now().Add(3 * time.Second)
	for toZK && !p.write(true) && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	return p.summary()
}

// summary is the agent's own account of the test so far.
func (p *publisher) summary() fleet.AgentResult {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.result
	r.Intervals = p.count
	if p.latency.TotalCount() > 0 {
		r.P99 = p.latency.ValueAtQuantile(99)
	}
	if p.cap > 0 {
		r.LoopBusy = float64(p.cpu) / float64(p.cap)
	}
	switch {
	case p.forged > 0:
		r.Error = fmt.Sprintf("%d snapshot nodes existed before this agent wrote them (forged?); its own are in %s", p.forged, p.dir)
	}
	r.Unpublished = len(p.queue) + p.dropped
	return r
}
