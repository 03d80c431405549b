package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/barrage-load/barrage/server"
)

const targetAbout = `A fast built-in HTTP/1.1 server, for benchmarks and tests of the load
generator. It answers every request, pipelined ones included, with the same
small response ("ok" padded with 'x' to --body-size), keeps connections alive
unless asked not to, drops request bodies, and does not allocate per request.

It can also misbehave on purpose, to show what a load generator's figures
and verdict do with a slow, failing or broken target. None of these blocks
the server: other connections are served meanwhile, and responses keep
their order on each connection.

  --delay D                  every response D late.
  --stall-every P --stall-for D
                             stops answering for D at every multiple of P
                             after the start, as a GC pause or a full queue
                             would (a closed-model generator that waits for
                             each response hides such stalls: coordinated
                             omission); what was held is then sent in order.
  --fail-rate F              that share of responses (0 to 1) get
                             --fail-status, drawn by a deterministic
                             generator per event loop (--seed).
  --fail-every P --fail-for D
                             outage windows: at every multiple of P after
                             the start, every response to a request read in
                             the next D gets --fail-status.
  --rate-limit N             answers 429 Too Many Requests (Retry-After: 1)
                             above N req/s over the whole server: a token
                             bucket with a burst of N/10, shared by the
                             loops. Checked before the failures above.
  --capacity N               a single queue that serves at most N req/s in
                             all (each response takes 1/N): past N, latency
                             climbs without bound, a known knee.
  --close                    answers HTTP/1.0 with a body that ends when the
                             server closes (no Content-Length), and closes
                             after each response.
  --silent                   accepts connections, reads requests, never
                             answers.

Failures and 429s have an empty body and keep the connection open; every
one is counted in the served rate.

With --tls it serves HTTPS (TLS 1.2 and 1.3, narrowed by --tls-min and
--tls-max: --tls-max 1.2 makes a server that offers only TLS 1.2; ALPN as
--alpn lists, http/1.1 by default) with a self-signed certificate made at
start for 127.0.0.1, ::1, localhost and the --listen host, and prints on
stderr where it wrote it:
  certificate /tmp/barrage-target-123/cert.pem (use --cacert)
or with --tls-cert and --tls-key. Over TLS each connection has a goroutine
of its own, not the event loops (fine for tests and demos; benchmark HTTPS
against nginx), and every misbehaviour above works too.

If accepting a connection fails because the process or the system is out
of file descriptors, it logs that once, keeps serving the connections it
has, and accepts the waiting ones as descriptors free up.

Its first line on stdout is "listening on HOST:PORT" (with --listen
127.0.0.1:0, the port the system picked). It then logs the rate it serves
once a second on stderr ("served N req/s total M": M counts every response
written, failures included), until SIGINT or SIGTERM. Exit status: 0 when
stopped by a signal, 1 if it cannot listen, 2 for bad flags.`

func cmdTarget(args []string) int {
	fs := newFlagSet("target", "[flags]", targetAbout)
	listen := fs.String("listen", server.DefaultListen, "host:port to listen on; port 0 picks a free one")
	loops := fs.Int("loops", 0, "event loops, each on its own goroutine (0: one per CPU this process may use)")
	bodySize := fs.Int("body-size", server.DefaultBodySize, "response body size in bytes (0: empty body)")
	status := fs.Int("status", server.DefaultStatus, "response status code (200 to 999)")
	delay := fs.Duration("delay", 0, "hold every response back this long after its request, e.g. 10ms")
	stallEvery := fs.Duration("stall-every", 0, "stop answering at every multiple of this period after the start (with --stall-for)")
	stallFor := fs.Duration("stall-for", 0, "how long each stall lasts; the responses held are then sent in order")
	failRate := fs.Float64("fail-rate", 0, "share of responses, 0 to 1, that get --fail-status")
	failStatus := fs.Int("fail-status", server.DefaultFailStatus, "status of failed responses (200 to 999)")
	failEvery := fs.Duration("fail-every", 0, "an outage at every multiple of this period after the start (with --fail-for)")
	failFor := fs.Duration("fail-for", 0, "how long each outage lasts: every response gets --fail-status")
	rateLimit := fs.Float64("rate-limit", 0, "answer 429 above this many requests per second over the server (0: no limit)")
	capacity := fs.Float64("capacity", 0, "serve at most this many responses per second; the rest wait in a queue (0: no limit)")
	seed := fs.Uint64("seed", server.DefaultSeed, "seed of the --fail-rate draws: the same seed, the same draws on each loop")
	closeEach := fs.Bool("close", false, "answer HTTP/1.0 with a close-delimited body and close after each response")
	silent := fs.Bool("silent", false, "accept and read, never answer")
	useTLS := fs.Bool("tls", false, "serve HTTPS, with a self-signed certificate unless --tls-cert and --tls-key are given")
	tlsCert := fs.String("tls-cert", "", "PEM certificate (chain) for --tls (implies --tls)")
	tlsKey := fs.String("tls-key", "", "PEM private key of --tls-cert")
	tlsMin := fs.String("tls-min", "1.2", "lowest TLS version offered: 1.2 or 1.3")
	tlsMax := fs.String("tls-max", "1.3", "highest TLS version offered: 1.2 or 1.3 (1.2 for a server that offers only TLS 1.2)")
	alpn := fs.String("alpn", strings.Join(server.DefaultALPN, ","), "ALPN protocols accepted, comma-separated (\"\": no ALPN)")
	quiet := fs.BoolP("quiet", "q", false, "do not log the served rate")
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	bad := func(format string, a ...any) int {
		fmt.Fprintf(os.Stderr, "barrage target: "+format+"\n", a...)
		return exitBadInput
	}
	if fs.NArg() > 0 {
		return bad("unexpected argument %q (see barrage target --help)", fs.Arg(0))
	}
	if *bodySize < 0 {
		return bad("--body-size %d is negative", *bodySize)
	}
	o := server.Options{
		Listen: *listen, Loops: *loops, BodySize: *bodySize, Status: *status,
		Delay: *delay, StallEvery: *stallEvery, StallFor: *stallFor,
		FailRate: *failRate, FailStatus: *failStatus, FailEvery: *failEvery, FailFor: *failFor,
		RateLimit: *rateLimit, Capacity: *capacity, Seed: *seed,
		Close: *closeEach, Silent: *silent,
		ErrorLog: os.Stderr,
	}
	if *seed == 0 {
		return bad("--seed 0: give a positive seed")
	}
	if *bodySize == 0 {
		o.BodySize = -1 // Options: 0 is the default size, negative is empty
	}
	tlsFlags := fs.Changed("tls-key") || fs.Changed("tls-min") || fs.Changed("tls-max") || fs.Changed("alpn")
	if *useTLS || *tlsCert != "" {
		t := &server.TLSOptions{CertFile: *tlsCert, KeyFile: *tlsKey, ALPN: []string{}}
		var err error
		if t.MinVersion, err = tlsVersion("tls-min", *tlsMin); err != nil {
			return bad("%v", err)
		}
		if t.MaxVersion, err = tlsVersion("tls-max", *tlsMax); err != nil {
			return bad("%v", err)
		}
		for _, p := range strings.Split(*alpn, ",") {
			if p = strings.TrimSpace(p); p != "" {
				t.ALPN = append(t.ALPN, p)
			}
		}
		o.TLS = t
	} else if tlsFlags {
		return bad("--tls-key, --tls-min, --tls-max and --alpn need --tls")
	}
	if !*quiet {
		o.Logger = os.Stderr
	}
	// Before "listening on": a signal sent as soon as that line is read
	// must stop the server, not kill the process.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	s, err := server.Start(o)
	if err != nil {
		// err reads "server: ...".
		fmt.Fprintf(os.Stderr, "barrage target: %v\n", strings.TrimPrefix(err.Error(), "server: "))
		if errors.Is(err, server.ErrOption) {
			return exitBadInput
		}
		return exitNoStart
	}
	if f := s.CertFile(); f != "" {
		// Before "listening on": a client that starts when it reads that
		// line finds the certificate's path already written.
		fmt.Fprintf(os.Stderr, "certificate %s (use --cacert)\n", f)
	}
	// os.Stdout is unbuffered: the line is out when Fprintf returns.
	fmt.Fprintf(os.Stdout, "listening on %s\n", s.Addr())
	<-sig
	if err := s.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "barrage target: %v\n", strings.TrimPrefix(err.Error(), "server: "))
	}
	return exitOK
}

// tlsVersion reads "1.2" or "1.3".
func tlsVersion(flag, v string) (uint16, error) {
	switch v {
	case "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("--%s %q: want 1.2 or 1.3", flag, v)
}
