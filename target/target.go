// Package target is barrage's built-in HTTP/1.1 server: fast enough that it
// is not the bottleneck when benchmarking the generator, and able to
// misbehave on purpose (delays, stalls) to show what the generator's
// measurements do with a slow target.
package target

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
)

// Defaults of Options.
const (
	DefaultListen   = "127.0.0.1:8080"
	DefaultBodySize = 2
	DefaultStatus   = 200
	// MaxHeaderBytes bounds a request's head.
	MaxHeaderBytes = 64 << 10
)

// ErrTarget prefixes the errors of Start.
var ErrTarget = errors.New("target")

// Options configure the server. Zero fields take the defaults.
type Options struct {
	// Listen is host:port; port 0 picks a free port. Default DefaultListen.
	Listen string
	// Loops is the number of event loops; 0 means runtime.NumCPU().
	Loops int
	// BodySize is the response body's length (default DefaultBodySize; a
	// negative value means an empty body). The body is "ok" padded with 'x'.
	BodySize int
	// Status is the response status code (default 200).
	Status int
	// Delay holds each response back this long, without blocking the loop.
	Delay time.Duration
	// StallEvery and StallFor: from the server's start, every StallEvery
	// the server stops answering for StallFor; the responses held are
	// released, in order, when the stall ends.
	StallEvery, StallFor time.Duration
	// Logger, if set, gets one line per second: the responses served in
	// the last second and in total.
	Logger io.Writer
}

// Server is a running target.
type Server struct {
	o      Options
	addr   string
	served atomic.Uint64
	start  time.Time
	eng    gnet.Engine
	done   chan error
	stop   chan struct{}
	wg     sync.WaitGroup

	// Prebuilt responses: [keepAlive][head].
	resp [2][2][]byte
	bad  []byte // 400 and close
	te   []byte // 501 and close

	timed bool // Delay or stall configured: responses go through the queue
	q     queue
}

// Start listens and serves until Stop.
func Start(o Options) (*Server, error) {
	if o.Listen == "" {
		o.Listen = DefaultListen
	}
	if o.Loops <= 0 {
		o.Loops = runtime.NumCPU()
	}
	if o.BodySize == 0 {
		o.BodySize = DefaultBodySize
	}
	if o.BodySize < 0 {
		o.BodySize = 0
	}
	if o.Status == 0 {
		o.Status = DefaultStatus
	}
	if o.Status < 100 || o.Status > 999 {
		return nil, fmt.Errorf("%w: status %d is not a 3-digit code", ErrTarget, o.Status)
	}
	if o.Delay < 0 || o.StallEvery < 0 || o.StallFor < 0 || (o.StallFor > 0 && o.StallEvery <= o.StallFor) {
		return nil, fmt.Errorf("%w: want delay >= 0 and stall-for < stall-every", ErrTarget)
	}
	// Resolve the address ourselves so that port 0 is known afterwards.
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return nil, fmt.Errorf("%w: cannot listen on %s: %v", ErrTarget, o.Listen, err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	s := &Server{o: o, addr: addr, done: make(chan error, 1), stop: make(chan struct{}), start: time.Now()}
	s.build()
	s.timed = o.Delay > 0 || o.StallFor > 0
	s.q.init()
	booted := make(chan struct{})
	h := &handler{s: s, booted: booted}
	go func() {
		s.done <- gnet.Run(h, "tcp://"+addr,
			gnet.WithMulticore(true),
			gnet.WithNumEventLoop(o.Loops),
			gnet.WithReusePort(false),
			gnet.WithReuseAddr(true),
			gnet.WithTCPNoDelay(gnet.TCPNoDelay),
			gnet.WithLogger(nopLogger{}),
		)
	}()
	select {
	case <-booted:
	case err := <-s.done:
		return nil, fmt.Errorf("%w: cannot serve on %s: %v", ErrTarget, addr, err)
	case <-time.After(5 * time.Second):
		return nil, fmt.Errorf("%w: the server did not start on %s", ErrTarget, addr)
	}
	if s.timed {
		s.wg.Add(1)
		go s.releaser()
	}
	if o.Logger != nil {
		s.wg.Add(1)
		go s.logRate()
	}
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.addr }

// Served counts the responses written so far.
func (s *Server) Served() uint64 { return s.served.Load() }

// Stop stops the server and waits for it.
func (s *Server) Stop() error {
	select {
	case <-s.stop:
		return nil
	default:
	}
	close(s.stop)
	s.q.wake()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.eng.Stop(ctx)
	s.wg.Wait()
	if rerr := <-s.done; err == nil && rerr != nil && !errors.Is(rerr, context.Canceled) {
		err = rerr
	}
	return err
}

func (s *Server) build() {
	body := make([]byte, 0, s.o.BodySize)
	if s.o.BodySize > 0 {
		body = append(body, "ok"[:min(2, s.o.BodySize)]...)
		for len(body) < s.o.BodySize {
			body = append(body, 'x')
		}
	}
	reason := map[int]string{200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request", 404: "Not Found",
		429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}[s.o.Status]
	noBody := s.o.Status == 204 || s.o.Status == 304 || s.o.Status < 200
	for ka := 0; ka < 2; ka++ {
		for head := 0; head < 2; head++ {
			var b []byte
			b = append(b, "HTTP/1.1 "...)
			b = strconv.AppendInt(b, int64(s.o.Status), 10)
			b = append(b, ' ')
			b = append(b, reason...)
			b = append(b, "\r\nServer: barrage-target\r\nContent-Type: text/plain\r\n"...)
			if !noBody {
				b = append(b, "Content-Length: "...)
				b = strconv.AppendInt(b, int64(len(body)), 10)
				b = append(b, "\r\n"...)
			}
			if ka == 0 {
				b = append(b, "Connection: close\r\n"...)
			}
			b = append(b, "\r\n"...)
			if head == 0 && !noBody {
				b = append(b, body...)
			}
			s.resp[ka][head] = b
		}
	}
	s.bad = []byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
	s.te = []byte("HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
}

// due returns when a response to a request arriving at now may go out:
// after Delay, and never inside a stall.
func (s *Server) due(now time.Duration) time.Duration {
	d := now + s.o.Delay
	if s.o.StallFor > 0 {
		e := s.o.StallEvery
		k := d / e
		if k >= 1 && d-k*e < s.o.StallFor {
			d = k*e + s.o.StallFor
		}
	}
	return d
}

func (s *Server) logRate() {
	defer s.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	last := uint64(0)
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			n := s.served.Load()
			fmt.Fprintf(s.o.Logger, "served %d req/s total %d\n", n-last, n)
			last = n
		}
	}
}

type nopLogger struct{}

func (nopLogger) Debugf(string, ...any) {}
func (nopLogger) Infof(string, ...any)  {}
func (nopLogger) Warnf(string, ...any)  {}
func (nopLogger) Errorf(string, ...any) {}
func (nopLogger) Fatalf(string, ...any) {}
