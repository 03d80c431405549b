package engine

import (
	"bytes"
	"testing"
)

// What retries add to a request on the hot path, without sockets: the
// bookkeeping every request pays with retries on (keeping its bytes,
// the answer's accounting), and a whole failed-and-retried cycle.

var sinkInt int

// BenchmarkRetryKeep is one request with retries on that succeeds: its
// bytes kept (fixed: a slice header; rendered: a copy of ~180 bytes into
// the slot's buffer), pushed, popped and answered 200.
func BenchmarkRetryKeep(b *testing.B) {
	rendered := bytes.Repeat([]byte("x"), 180)
	// The baseline: the same request with retries off (written, pushed,
	// popped; nothing kept, nothing counted).
	b.Run("off", func(b *testing.B) {
		_, cs := testLoopB(b, nil)
		c := cs[0]
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			c.wbuf = append(c.wbuf[:0], rendered...)
			c.push(int64(i), int64(i), 0)
			f := c.pop()
			sinkInt += int(f.req)
		}
	})
	for _, bc := range []struct {
		name  string
		fixed []byte
	}{{"fixed", rendered}, {"rendered", nil}} {
		b.Run(bc.name, func(b *testing.B) {
			l, cs := testLoopB(b, bc.fixed)
			c := cs[0]
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				c.wbuf = append(c.wbuf[:0], rendered...)
				l.keep(c, 0)
				c.push(int64(i), int64(i), 0)
				j := c.head
				f := c.pop()
				l.answered(c, j, f, 200, int64(i)+1000)
			}
			sinkInt = int(l.st.EndToEnd.TotalCount())
		})
	}
}

// BenchmarkRetryCycle is a rendered request answered 503, queued, sent
// again on another connection and answered 200.
func BenchmarkRetryCycle(b *testing.B) {
	l, cs := testLoopB(b, nil)
	a, c := cs[0], cs[1]
	req := bytes.Repeat([]byte("x"), 180)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		now := int64(i) * 10_000_000
		a.wbuf = append(a.wbuf[:0], req...)
		l.keep(a, 0)
		a.push(now, now, 0)
		j := a.head
		l.answered(a, j, a.pop(), 503, now+10)
		c.wbuf = c.wbuf[:0]
		l.sendRetries(c, now+5_000_000, stateClosed, 2)
		k := c.head
		l.answered(c, k, c.pop(), 200, now+6_000_000)
		l.dirty = l.dirty[:0]
		c.dirty = false
	}
	sinkInt = int(l.st.RetriedOK)
}
