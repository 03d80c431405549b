package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/barrage-load/barrage/server"
)

const targetAbout = `A fast built-in HTTP/1.1 server, for benchmarks and tests of the load
generator. It answers every request, pipelined ones included, with the same
small response ("ok" padded with 'x' to --body-size), keeps connections alive
unless asked not to, drops request bodies, and does not allocate per request.

It can also misbehave on purpose, to show what a load generator's latency
figures do with a slow target: --delay holds every response back, and
--stall-every/--stall-for stop it answering for a while, as a GC pause or a
full queue would (a closed-model generator that waits for each response hides
such stalls: coordinated omission). Neither blocks the server: other
connections are served meanwhile and responses keep their order.

Its first line on stdout is "listening on HOST:PORT" (with --listen
127.0.0.1:0, the port the system picked). It then logs the rate it serves
once a second on stderr, until SIGINT or SIGTERM. Exit status: 0 when
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
	quiet := fs.BoolP("quiet", "q", false, "do not log the served rate")
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "barrage target: unexpected argument %q (see barrage target --help)\n", fs.Arg(0))
		return exitBadInput
	}
	if *bodySize < 0 {
		fmt.Fprintf(os.Stderr, "barrage target: --body-size %d is negative\n", *bodySize)
		return exitBadInput
	}
	o := server.Options{
		Listen: *listen, Loops: *loops, BodySize: *bodySize, Status: *status,
		Delay: *delay, StallEvery: *stallEvery, StallFor: *stallFor,
	}
	if *bodySize == 0 {
		o.BodySize = -1 // Options: 0 is the default size, negative is empty
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
		// err reads "target: ...".
		fmt.Fprintf(os.Stderr, "barrage %v\n", err)
		if errors.Is(err, server.ErrOption) {
			return exitBadInput
		}
		return exitNoStart
	}
	// os.Stdout is unbuffered: the line is out when Fprintf returns.
	fmt.Fprintf(os.Stdout, "listening on %s\n", s.Addr())
	<-sig
	if err := s.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "barrage %v\n", err)
	}
	return exitOK
}
