// Package server is barrage's built-in HTTP/1.1 server, for benchmarks
// and tests of the load generator: fast enough not to be the bottleneck
// (gnet event loops, one pre-built response, every response of a read in
// one write, no allocation per request), and able to misbehave on purpose
// (Delay, stalls, failures, outages, a rate limit, a capacity queue, a
// close-delimited HTTP/1.0 mode, silence) so that what the generator
// makes of a slow or failing target can be seen. It speaks HTTPS too
// (Options.TLS), on a goroutine per connection.
//
// It answers every request with the same small response; request bodies
// (Content-Length) are read and dropped; Transfer-Encoding gets a 501 and
// malformed requests a 400, after which the connection is closed.
//
// Connections are accepted by a goroutine of our own and handed to gnet's
// loops (a gnet Client: loops without a listener), not by gnet's
// listener: gnet shuts its whole engine down, every connection with it,
// when accept fails, and accept fails with EMFILE whenever the process
// runs out of file descriptors. Ours waits and tries again (accept.go).
//
// Hazard: gnet closes a connection as soon as the client half-closes it
// (shutdown(SHUT_WR)), so a client that does so loses the responses still
// held back by Delay, a stall or the capacity queue.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
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
	// DefaultFailStatus is the status of the responses FailRate and the
	// outage windows fail.
	DefaultFailStatus = 503
	// DefaultSeed seeds the FailRate draws when Options.Seed is 0.
	DefaultSeed = 1
	// MaxBodySize bounds Options.BodySize.
	MaxBodySize = 64 << 20
	// MaxRate bounds Options.RateLimit and Options.Capacity (per second).
	MaxRate = 1e9
)

// ErrOption occurs when Start is given an option it cannot use (a
// malformed listen address, a status outside 200..999, a negative delay,
// a stall that never ends, a fail rate outside 0..1, a certificate that
// does not load); the error wrapping it says which.
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

	// FailRate, from 0 to 1, is the share of responses that get
	// FailStatus instead of Status, drawn by a deterministic generator of
	// each loop (each TLS connection) seeded from Seed.
	FailRate float64
	// FailStatus is the failures' status, 200 to 999. Default
	// DefaultFailStatus. Failures have an empty body and keep the
	// connection open.
	FailStatus int
	// FailEvery and FailFor, given together, with FailFor shorter: outage
	// windows. At every multiple of FailEvery after the server starts,
	// every response to a request read in the next FailFor gets
	// FailStatus.
	FailEvery, FailFor time.Duration
	// RateLimit, if positive, answers 429 Too Many Requests (with
	// Retry-After: 1) to requests beyond RateLimit per second over the
	// whole server: a token bucket with a burst of a tenth of a second's
	// worth (at least 1), shared by the loops (policy.go says why).
	// At most MaxRate. Checked before the failures above.
	RateLimit float64
	// Capacity, if positive, serves at most Capacity responses per second
	// over the whole server: a single queue with a service time of
	// 1/Capacity (so a response waits at least that), in which responses
	// wait their turn without blocking a loop, in order on each
	// connection. Past the capacity, latency climbs without bound. Every
	// response takes a turn, failures and 429s included. At most MaxRate.
	Capacity float64
	// Seed seeds the FailRate draws; 0 means DefaultSeed. The same seed
	// gives each loop the same sequence of draws every run.
	Seed uint64
	// Close answers every request with an HTTP/1.0 response whose body
	// ends when the server closes the connection (no Content-Length),
	// and closes the connection after it.
	Close bool
	// Silent accepts connections and reads requests, and never answers.
	Silent bool
	// TLS, if set, serves HTTPS instead of HTTP (see TLSOptions).
	TLS *TLSOptions

	// Logger, if set, gets one line per second: the responses written in
	// the last second and in all, as "served 51234 req/s total 1234567".
	Logger io.Writer
	// ErrorLog, if set, gets a line when accepting connections fails and
	// when it works again (at most two lines in ten seconds).
	ErrorLog io.Writer
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
	if !(o.FailRate >= 0 && o.FailRate <= 1) { // NaN fails both
		return fmt.Errorf("%w: fail rate %v is not in 0..1", ErrOption, o.FailRate)
	}
	if o.FailStatus == 0 {
		o.FailStatus = DefaultFailStatus
	}
	if o.FailStatus < 200 || o.FailStatus > 999 {
		return fmt.Errorf("%w: fail status %d is not in 200..999", ErrOption, o.FailStatus)
	}
	if o.FailEvery != 0 || o.FailFor != 0 {
		if o.FailFor <= 0 || o.FailEvery <= o.FailFor {
			return fmt.Errorf("%w: fail every %s for %s: want both, and the outage shorter than its period",
				ErrOption, o.FailEvery, o.FailFor)
		}
	}
	for _, r := range []struct {
		name string
		v    float64
	}{{"rate limit", o.RateLimit}, {"capacity", o.Capacity}} {
		// 1e-3/s keeps the picoseconds per event in an int64.
		if r.v != 0 && !(r.v >= 1e-3 && r.v <= MaxRate) {
			return fmt.Errorf("%w: %s %v/s is not in 0.001..%g", ErrOption, r.name, r.v, float64(MaxRate))
		}
	}
	if o.Seed == 0 {
		o.Seed = DefaultSeed
	}
	if o.TLS != nil {
		if err := o.TLS.normalize(o.Listen); err != nil {
			return err
		}
	}
	return nil
}

// Server is a running target.
type Server struct {
	o       Options
	rs      *responses
	timed   bool      // Delay, stalls or Capacity: responses go through delay.go
	clocked bool      // the policy needs the time of each read
	start   time.Time // stalls, outages and due times are measured from here
	h       *handler
	limiter *gcra  // RateLimit; nil when off
	queue   *queue // Capacity; nil when off

	ln       net.Listener
	addr     string
	cli      *gnet.Client  // the loops (plain HTTP); nil with TLS
	tls      *tlsServer    // HTTPS; nil without TLS
	accepted chan struct{} // closed when the accept goroutine ends

	quit     chan struct{} // closed by Stop first: accept and TLS goroutines end
	stop     chan struct{} // closed by Stop last, for the timer and log goroutines
	wg       sync.WaitGroup
	stopOnce sync.Once
	stopErr  error

	tlsServed atomic.Uint64 // responses written on TLS connections
}

// Start starts a server and returns once it listens. Its errors start
// with "server: ": ErrOption for bad options, or why it cannot listen
// (address in use, unknown host...).
func Start(o Options) (*Server, error) {
	if err := o.normalize(); err != nil {
		return nil, err
	}
	s := &Server{
		o:        o,
		rs:       newResponses(&o),
		timed:    o.Delay > 0 || o.StallFor > 0 || o.Capacity > 0,
		accepted: make(chan struct{}),
		quit:     make(chan struct{}),
		stop:     make(chan struct{}),
	}
	s.clocked = s.timed || o.FailFor > 0 || o.RateLimit > 0
	if o.RateLimit > 0 {
		s.limiter = newGCRA(o.RateLimit)
	}
	if o.Capacity > 0 {
		s.queue = newQueue(o.Capacity)
	}
	s.h = &handler{s: s, loops: make(map[gnet.EventLoop]*loop)}
	if o.TLS != nil {
		t, err := newTLSServer(s, o.TLS)
		if err != nil {
			return nil, err
		}
		s.tls = t
	}
	// Listen before the loops start, so that a bad address costs nothing
	// to undo. No TCP keep-alive probes: a benchmark target's idle
	// connections are the client's business (gnet set none either).
	lc := net.ListenConfig{KeepAlive: -1}
	ln, err := lc.Listen(context.Background(), "tcp", o.Listen)
	if err != nil {
		s.tls.cleanup()
		return nil, fmt.Errorf("server: cannot listen on %s: %w", o.Listen, err)
	}
	s.ln, s.addr = ln, ln.Addr().String()
	if s.tls == nil {
		if err := s.startLoops(); err != nil {
			_ = ln.Close()
			return nil, err
		}
	}
	s.start = time.Now()
	go newAcceptor(s).run()
	if o.Logger != nil {
		s.wg.Add(1)
		go s.logRate()
	}
	return s, nil
}

// startLoops starts the gnet loops that serve plain HTTP.
func (s *Server) startLoops() error {
	// Hazard: a gnet loop's thread keeps its P while it blocks in
	// epoll_wait until sysmon takes it back (up to 10 ms later when
	// idle). With every P held so, nothing would poll Go's network
	// poller, and a new connection would wait that long to be accepted;
	// and a timer thread waking from nanosleep would wait that long for
	// a P, making every delayed response late. Spare Ps let both run at
	// once.
	need := s.o.Loops + 1
	if s.timed {
		need = 2*s.o.Loops + 1
	}
	if runtime.GOMAXPROCS(0) < need {
		runtime.GOMAXPROCS(need)
	}
	cli, err := gnet.NewClient(s.h,
		gnet.WithMulticore(true),
		gnet.WithNumEventLoop(s.o.Loops),
		// Go's accept has set TCP_NODELAY on every connection already.
		gnet.WithTCPNoDelay(gnet.TCPDelay),
		// gnet's default zap logger prints INFO lines to stderr,
		// and sets itself as gnet's process-wide default.
		gnet.WithLogger(silentLogger{}),
	)
	if err == nil {
		err = cli.Start()
	}
	if err != nil {
		return fmt.Errorf("server: cannot start the event loops: %w", err)
	}
	s.cli = cli
	return nil
}

// Addr is the address the server listens on, such as "127.0.0.1:41234".
func (s *Server) Addr() string { return s.addr }

// CertFile is where the self-signed certificate made at Start was written
// (PEM), for clients to trust; "" when TLS is off or the certificate was
// given. The file is removed by Stop.
func (s *Server) CertFile() string {
	if s.tls == nil {
		return ""
	}
	return s.tls.certFile
}

// Served counts the responses written so far (error responses included,
// "100 Continue" not).
func (s *Server) Served() uint64 { return s.h.served() + s.tlsServed.Load() }

// Stop closes the listener and every connection, and waits for the
// server's goroutines to end. Later calls return the first one's result.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		// First the acceptor, which may be handing a connection to a
		// loop: the loops must still run until it is done.
		close(s.quit)
		_ = s.ln.Close()
		<-s.accepted
		var err error
		if s.tls != nil {
			s.tls.stop()
		}
		if s.cli != nil {
			done := make(chan error, 1)
			go func() { done <- s.cli.Stop() }()
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				err = errors.New("the event loops did not stop within 10 s")
			}
		}
		s.h.mu.Lock()
		s.h.stopped = true // no timer goroutine starts after wg.Wait begins
		s.h.mu.Unlock()
		close(s.stop)
		s.wg.Wait()
		s.tls.cleanup()
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
