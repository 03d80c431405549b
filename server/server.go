// Package server is barrage's built-in HTTP/1.1 server, for benchmarks
// and tests of the load generator: fast enough not to be the bottleneck
// (gnet event loops, one pre-built response, every response of a read in
// one write, no allocation per request), and able to misbehave on purpose
// (Delay, stalls) so that what the generator's latency figures do with a
// slow target can be seen.
//
// It answers every request with the same small response; request bodies
// (Content-Length) are read and dropped; Transfer-Encoding gets a 501 and
// malformed requests a 400, after which the connection is closed.
//
// Hazard: gnet closes a connection as soon as the client half-closes it
// (shutdown(SHUT_WR)), so a client that does so loses the responses still
// held back by Delay or a stall.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"time"

	"github.com/panjf2000/gnet/v2"
)

// Defaults of Options.
const (
	DefaultListen   = "127.0.0.1:8080"
	DefaultBodySize = 2
	DefaultStatus   = 200
	// MaxBodySize bounds Options.BodySize.
	MaxBodySize = 64 << 20
)

// ErrOption occurs when Start is given an option it cannot use (a
// malformed listen address, a status outside 200..999, a negative delay,
// a stall that never ends); the error wrapping it says which.
var ErrOption = errors.New("server: bad option")

// Options configure a Server. Zero fields take their defaults.
type Options struct {
	// Listen is the host:port to listen on; port 0 picks a free port
	// (Server.Addr tells which). Default DefaultListen.
	Listen string
	// Loops is the number of event loops; 0 means runtime.NumCPU(), which
	// counts the CPUs the process may run on (taskset narrows it).
	Loops int
	// BodySize is the response body's length in bytes: "ok" padded with
	// 'x' (cut to "o" for 1). 0 means DefaultBodySize; a negative value
	// means an empty body. At most MaxBodySize.
	BodySize int
	// Status is the response's status code, 200 to 999. Default
	// DefaultStatus. 204 and 304 responses have no body.
	Status int
	// Delay holds every response back this long after its request has
	// been read, without blocking the loop: other requests and
	// connections are served meanwhile, and responses keep their order.
	Delay time.Duration
	// StallEvery and StallFor, given together, with StallFor shorter:
	// at every multiple of StallEvery after the server starts, the server
	// stops answering for StallFor (it still reads). The responses held
	// meanwhile are released, in order, when the stall ends.
	StallEvery, StallFor time.Duration
	// Logger, if set, gets one line per second: the responses written in
	// the last second and in all, as "served 51234 req/s total 1234567".
	Logger io.Writer
}

// normalize applies the defaults and checks o.
func (o *Options) normalize() error {
	if o.Listen == "" {
		o.Listen = DefaultListen
	}
	if _, _, err := net.SplitHostPort(o.Listen); err != nil {
		return fmt.Errorf("%w: listen address: %v", ErrOption, err)
	}
	switch {
	case o.Loops < 0:
		return fmt.Errorf("%w: %d loops", ErrOption, o.Loops)
	case o.Loops == 0:
		o.Loops = runtime.NumCPU()
	}
	switch {
	case o.BodySize == 0:
		o.BodySize = DefaultBodySize
	case o.BodySize < 0:
		o.BodySize = 0
	case o.BodySize > MaxBodySize:
		return fmt.Errorf("%w: body size %d is over %d", ErrOption, o.BodySize, MaxBodySize)
	}
	if o.Status == 0 {
		o.Status = DefaultStatus
	}
	if o.Status < 200 || o.Status > 999 {
		return fmt.Errorf("%w: status %d is not in 200..999", ErrOption, o.Status)
	}
	if o.Delay < 0 {
		return fmt.Errorf("%w: negative delay %s", ErrOption, o.Delay)
	}
	if o.StallEvery != 0 || o.StallFor != 0 {
		if o.StallFor <= 0 || o.StallEvery <= o.StallFor {
			return fmt.Errorf("%w: stall every %s for %s: want both, and the stall shorter than its period",
				ErrOption, o.StallEvery, o.StallFor)
		}
	}
	return nil
}

// Server is a running target.
type Server struct {
	o     Options
	rs    *responses
	timed bool      // Delay or stalls: responses go through delay.go
	start time.Time // stalls and due times are measured from here
	h     *handler

	done     chan error    // gnet.Run's result
	stop     chan struct{} // closed by Stop for the timer and log goroutines
	wg       sync.WaitGroup
	stopOnce sync.Once
	stopErr  error
}

// Start starts a server and returns once it listens. Its errors start
// with "server: ": ErrOption for bad options, or why it cannot listen
// (address in use, unknown host...).
func Start(o Options) (*Server, error) {
	if err := o.normalize(); err != nil {
		return nil, err
	}
	s := &Server{
		o:     o,
		rs:    newResponses(o.Status, o.BodySize),
		timed: o.Delay > 0 || o.StallFor > 0,
		done:  make(chan error, 1),
		stop:  make(chan struct{}),
	}
	if need := 2*o.Loops + 1; s.timed && runtime.GOMAXPROCS(0) < need {
		// Hazard: a gnet loop's thread keeps its P while it blocks in
		// epoll_wait until sysmon takes it back (up to 10 ms later when
		// idle); a timer thread waking from nanosleep would wait that long
		// for a P and every delayed response would be late. Spare Ps let
		// it run at once.
		runtime.GOMAXPROCS(need)
	}
	s.h = &handler{s: s, booted: make(chan struct{}), loops: make(map[gnet.EventLoop]*loop)}
	s.start = time.Now()
	go func() {
		s.done <- gnet.Run(s.h, "tcp://"+o.Listen,
			gnet.WithMulticore(true),
			gnet.WithNumEventLoop(o.Loops),
			// With SO_REUSEPORT each loop would bind its own port 0.
			gnet.WithReusePort(false),
			gnet.WithReuseAddr(true),
			gnet.WithTCPNoDelay(gnet.TCPNoDelay),
			// gnet's default zap logger prints INFO lines to stderr,
			// and sets itself as gnet's process-wide default.
			gnet.WithLogger(silentLogger{}),
		)
	}()
	select {
	case <-s.h.booted:
		if s.h.err != nil {
			<-s.done
			return nil, s.h.err
		}
	case err := <-s.done:
		if err == nil {
			err = errors.New("the engine stopped at once")
		}
		return nil, fmt.Errorf("server: cannot listen on %s: %w", o.Listen, err)
	}
	if o.Logger != nil {
		s.wg.Add(1)
		go s.logRate()
	}
	return s, nil
}

// Addr is the address the server listens on, such as "127.0.0.1:41234".
func (s *Server) Addr() string { return s.h.addr }

// Served counts the responses written so far (error responses included,
// "100 Continue" not).
func (s *Server) Served() uint64 { return s.h.served() }

// Stop closes the listener and every connection, and waits for the
// server's goroutines to end. Later calls return the first one's result.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// Engine.Stop polls for the end every 500 ms; gnet.Run returns
		// as soon as the loops are done and the listener closed. So wait
		// for Run, and cancel Stop's polling.
		go func() { _ = s.h.eng.Stop(ctx) }()
		var err error
		select {
		case err = <-s.done:
		case <-ctx.Done():
			err = errors.New("gnet did not stop within 10 s")
		}
		cancel()
		s.h.mu.Lock()
		s.h.stopped = true // no timer goroutine starts after wg.Wait begins
		s.h.mu.Unlock()
		close(s.stop)
		s.wg.Wait()
		if err != nil {
			s.stopErr = fmt.Errorf("server: cannot stop: %w", err)
		}
	})
	return s.stopErr
}

// logRate writes the served rate to o.Logger once a second.
func (s *Server) logRate() {
	defer s.wg.Done()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var last uint64
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C:
			n := s.Served()
			fmt.Fprintf(s.o.Logger, "served %d req/s total %d\n", n-last, n)
			last = n
		}
	}
}

// silentLogger drops gnet's log lines.
type silentLogger struct{}

func (silentLogger) Debugf(string, ...any) {}
func (silentLogger) Infof(string, ...any)  {}
func (silentLogger) Warnf(string, ...any)  {}
func (silentLogger) Errorf(string, ...any) {}
func (silentLogger) Fatalf(string, ...any) {}
