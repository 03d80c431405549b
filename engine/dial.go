package engine

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"
)

// Backoff between connects of one slot after a failure.
const (
	minBackoff = 10 * time.Millisecond
	maxBackoff = time.Second
)

// dialer opens the connections of every loop's slots with at most MaxDials
// connects in flight: a queue of slots and a pool of worker goroutines that
// lives only while the queue is not empty. A failed connect puts the slot
// back with a growing backoff. Connects take the engine's dial context, so
// a stop cuts the ones in flight short rather than waiting for their
// timeout.
type dialer struct {
	e    *Engine
	ctx  context.Context
	stop context.CancelFunc

	// wg counts the workers, so a stop waits for connects being enrolled
	// before the loops go.
	wg      sync.WaitGroup
	mu      sync.Mutex
	queue   []dialJob
	head    int
	workers int
	// first receives the outcome of each slot's first connect (the
	// initial dial counts them); nil when nobody waits.
	first chan error
}

type dialJob struct {
	l  *loop
	c  *conn
	at time.Time // not before
}

func newDialer(e *Engine) *dialer {
	ctx, stop := context.WithCancel(context.Background())
	return &dialer{e: e, ctx: ctx, stop: stop}
}

// add queues slot c of loop l for a connect, after the slot's backoff when
// wait is set (its last connection failed). The caller has marked the slot
// dialing and no longer touches the dialer's fields of it.
func (d *dialer) add(l *loop, c *conn, wait bool) {
	var at time.Time
	if wait {
		c.backoff = min(max(c.backoff*2, minBackoff), maxBackoff)
		at = time.Now().Add(c.backoff)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ctx.Err() != nil {
		return
	}
	// Hazard: the queue is eaten from the front; reclaim the dead front
	// or it grows for as long as it never empties.
	if d.head > 0 && (d.head == len(d.queue) || d.head >= 64 && 2*d.head >= len(d.queue)) {
		n := copy(d.queue, d.queue[d.head:])
		clear(d.queue[n:])
		d.queue, d.head = d.queue[:n], 0
	}
	d.queue = append(d.queue, dialJob{l: l, c: c, at: at})
	if d.workers < MaxDials {
		d.workers++
		d.wg.Add(1)
		go d.work()
	}
}

func (d *dialer) pop() (dialJob, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.head == len(d.queue) || d.ctx.Err() != nil {
		d.workers--
		return dialJob{}, false
	}
	j := d.queue[d.head]
	d.queue[d.head] = dialJob{}
	d.head++
	return j, true
}

// errAbandoned is the outcome of a slot drained before it connected.
var errAbandoned = errors.New("engine: connection no longer wanted")

// report tells the initial dial how a slot's first connect went.
func (d *dialer) report(first bool, err error) {
	if first && d.first != nil {
		d.first <- err
	}
}

func (d *dialer) work() {
	defer d.wg.Done()
	e := d.e
	nd := net.Dialer{Timeout: e.opts.ConnectTimeout}
	for {
		j, ok := d.pop()
		if !ok {
			return
		}
		if wait := time.Until(j.at); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-d.ctx.Done():
				t.Stop()
			}
		}
		first := j.c.first
		j.c.first = false
		if d.ctx.Err() != nil {
			d.report(first, d.ctx.Err())
			continue
		}
		if j.c.abandon.Load() {
			// Drained while it waited: the loop forgets the slot.
			d.report(first, errAbandoned)
			l, c := j.l, j.c
			l.execute(func() { l.dropDialing(c) })
			continue
		}
		start := time.Now()
		nc, err := nd.DialContext(d.ctx, "tcp", e.opts.Addr)
		connected := time.Since(start)
		var shook time.Duration
		if err == nil && e.opts.TLS != nil {
			// The handshake, here on the dialer's goroutine: the loop
			// never waits for one (tls.go).
			if shook, err = handshake(d.ctx, j.c.tls, nc, e.opts.TLS, e.opts.ConnectTimeout); err != nil {
				_ = nc.Close()
				var te *TLSError
				if errors.As(err, &te) {
					j.l.tlsErrs[te.Reason].Add(1)
					j.l.connFails.Add(1)
					d.report(first, err)
					d.add(j.l, j.c, true)
					continue
				}
			}
		}
		if err == nil {
			// Hazard: once enrolled, the slot is the loop's again (it may
			// close and come back to the queue at once): the dialer's
			// fields are set before. EnrollContext closes nc (it keeps a
			// duplicate descriptor) and waits for the loop to open the
			// connection, which never happens once the loop has stopped:
			// the stop cancels d.ctx first, and no connect starts after.
			backoff := j.c.backoff
			j.c.backoff = 0
			j.c.connectNS, j.c.handshakeNS = int64(connected), int64(shook)
			if _, err = j.l.cli.EnrollContext(nc, j.c); err != nil {
				j.c.backoff = backoff
			}
		}
		if err != nil {
			if d.ctx.Err() != nil {
				d.report(first, d.ctx.Err())
				continue
			}
			j.l.connErrs.Add(1)
			j.l.connFails.Add(1)
			d.report(first, err)
			d.add(j.l, j.c, true)
			continue
		}
		d.report(first, nil)
	}
}

// close stops every connect in flight and every one to come, and waits
// (a second at most) for the workers: one enrolling a connection needs
// its loop alive to return.
func (d *dialer) close() {
	// Under the lock add takes: a worker is either counted before the
	// wait or never started.
	d.mu.Lock()
	d.stop()
	d.mu.Unlock()
	done := make(chan struct{})
	go func() {
		d.wg.Wait()
		close(done)
	}()
	t := time.NewTimer(time.Second)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}
