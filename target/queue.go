package target

import (
	"runtime"
	"sync"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"
)

// queue holds the connections that have responses waiting, in due order.
// Every response is due at max(arrival + Delay, end of the stall it falls
// in), which never decreases, so a FIFO is already sorted.
type queue struct {
	mu      sync.Mutex
	items   []qitem
	head    int
	kick    chan struct{} // a push into an empty queue
	stopped bool
}

type qitem struct {
	c   gnet.Conn
	due time.Duration
}

func (q *queue) init() { q.kick = make(chan struct{}, 1) }

func (q *queue) push(c gnet.Conn, due time.Duration) {
	q.mu.Lock()
	empty := q.head == len(q.items)
	q.items = append(q.items, qitem{c, due})
	q.mu.Unlock()
	if empty {
		select {
		case q.kick <- struct{}{}:
		default:
		}
	}
}

func (q *queue) wake() {
	select {
	case q.kick <- struct{}{}:
	default:
	}
}

// popDue takes the items due by now into dst; next is the next due time
// (-1: empty).
func (q *queue) popDue(now time.Duration, dst []qitem) ([]qitem, time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.head < len(q.items) && q.items[q.head].due <= now {
		dst = append(dst, q.items[q.head])
		q.items[q.head] = qitem{}
		q.head++
	}
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
		return dst, -1
	}
	if q.head > 4096 && q.head > len(q.items)/2 {
		n := copy(q.items, q.items[q.head:])
		q.items, q.head = q.items[:n], 0
	}
	return dst, q.items[q.head].due
}

// releaser wakes each connection when its held responses come due. It
// sleeps on its own OS thread with nanosleep: Go timers can be a
// millisecond late, which would show up in every delayed response.
func (s *Server) releaser() {
	defer s.wg.Done()
	runtime.LockOSThread()
	_ = unix.Prctl(unix.PR_SET_TIMERSLACK, 1000, 0, 0, 0)
	var due []qitem
	for {
		select {
		case <-s.stop:
			return
		default:
		}
		now := time.Since(s.start)
		var next time.Duration
		due, next = s.q.popDue(now, due[:0])
		for i := range due {
			_ = due[i].c.Wake(nil)
			due[i] = qitem{}
		}
		if next < 0 {
			select {
			case <-s.q.kick:
			case <-s.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		if wait := next - time.Since(s.start); wait > 0 {
			ts := unix.NsecToTimespec(int64(wait))
			for unix.Nanosleep(&ts, &ts) == unix.EINTR {
			}
		}
	}
}
