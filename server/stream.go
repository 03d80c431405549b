package server

import (
	"net"
	"time"
)

// A connection served on a goroutine of its own (the TLS connections):
// the same parser, responses and policy as a loop's connection, with
// blocking reads and writes.

// streamBufSize holds a request head of MaxHeaderBytes and then some, so
// that a head that is too large is seen as such (feed answers 431 once
// more than MaxHeaderBytes are pending) before the buffer is full.
const streamBufSize = MaxHeaderBytes + 16<<10

// serveStream serves c until the client closes it, a request asks to
// close, or the server stops. id numbers the connection for its policy's
// generator.
func (s *Server) serveStream(c net.Conn, id uint64) {
	// Loops number their policies from 0; connections from 2^32, so
	// that no connection draws the same sequence as a loop.
	pol := s.newPolicy(1<<32 + id)
	var ss session
	buf := make([]byte, streamBufSize)
	var out []byte
	have := 0
	var w *streamWriter
	if s.timed {
		w = s.newStreamWriter(c)
		defer w.finish()
	}
	for {
		k, err := c.Read(buf[have:])
		if k > 0 && s.o.Silent {
			k = 0 // read, never answered
		}
		if k > 0 {
			have += k
			if s.clocked {
				pol.begin(s.now())
			}
			var off, n int
			var closeConn bool
			out, off, n, closeConn = s.rs.feed(&ss, buf[:have], out[:0], &pol)
			have = copy(buf, buf[off:have])
			if len(out) > 0 {
				if w != nil {
					if !w.hold(out, n, &pol) {
						return
					}
				} else {
					if _, err := c.Write(out); err != nil {
						return
					}
					s.tlsServed.Add(uint64(n))
				}
			}
			if closeConn {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// streamWriter writes a stream's responses at their due times (Delay,
// stalls, Capacity), on a goroutine of its own, so that requests are
// read (and their times taken) while earlier responses wait.
type streamWriter struct {
	s    *Server
	c    net.Conn
	ch   chan streamBatch
	done chan struct{}
}

type streamBatch struct {
	b   []byte
	n   int
	due time.Duration
}

func (s *Server) newStreamWriter(c net.Conn) *streamWriter {
	w := &streamWriter{s: s, c: c, ch: make(chan streamBatch, 256), done: make(chan struct{})}
	go w.run()
	return w
}

// hold queues out (n responses) for writing at its due time, each
// response at its own in Capacity mode. It returns false when the server
// is stopping.
func (w *streamWriter) hold(out []byte, n int, p *policy) bool {
	s := w.s
	now := p.now
	if s.queue == nil {
		return w.send(streamBatch{b: append([]byte(nil), out...), n: n, due: s.due(now)})
	}
	start := 0
	due := s.due(now)
	if len(p.ends) > 0 {
		first := s.queue.reserve(now, len(p.ends))
		for i, end := range p.ends {
			due = s.stallEnd(max(now+s.o.Delay, s.queue.at(first, i)))
			if !w.send(streamBatch{b: append([]byte(nil), out[start:end]...), n: 1, due: due}) {
				return false
			}
			start = end
		}
	}
	if start < len(out) {
		return w.send(streamBatch{b: append([]byte(nil), out[start:]...), due: due})
	}
	return true
}

func (w *streamWriter) send(b streamBatch) bool {
	select {
	case w.ch <- b:
		return true
	case <-w.s.quit:
		return false
	}
}

// finish waits for every held response to be written (or the connection
// to fail, or the server to stop).
func (w *streamWriter) finish() {
	close(w.ch)
	<-w.done
}

func (w *streamWriter) run() {
	defer close(w.done)
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	failed := false
	for b := range w.ch {
		if failed {
			continue // drain, so that hold never blocks
		}
		if d := b.due - w.s.now(); d > 0 {
			t.Reset(d)
			select {
			case <-t.C:
			case <-w.s.quit:
				return
			}
		}
		if _, err := w.c.Write(b.b); err != nil {
			failed = true
			continue
		}
		w.s.tlsServed.Add(uint64(b.n))
	}
}
