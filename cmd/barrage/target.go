package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/barrage-load/barrage/target"
)

const targetAbout = `A fast built-in HTTP/1.1 server for benchmarks and tests. It answers every
request (pipelined ones too) with a small fixed response, and can misbehave
on purpose: --delay holds every response back, --stall-every/--stall-for stop
answering for a while (to show what coordinated omission hides).

Its first line on stdout is "listening on HOST:PORT"; then it logs the rate
it served each second on stderr. Stops on SIGINT/SIGTERM.`

func cmdTarget(args []string) int {
	fs := newFlagSet("target", "[flags]", targetAbout)
	listen := fs.String("listen", target.DefaultListen, "address to listen on; port 0 picks a free one")
	loops := fs.Int("loops", 0, "event loops (0 = one per CPU)")
	bodySize := fs.Int("body-size", target.DefaultBodySize, "response body size in bytes")
	status := fs.Int("status", target.DefaultStatus, "response status code")
	delay := fs.Duration("delay", 0, "hold every response back this long (without blocking the loop)")
	stallEvery := fs.Duration("stall-every", 0, "stop answering every this long (with --stall-for)")
	stallFor := fs.Duration("stall-for", 0, "how long each stall lasts")
	quiet := fs.BoolP("quiet", "q", false, "no served-rate log")
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "barrage target: unexpected arguments %v\n", fs.Args())
		return exitBadInput
	}
	if (*stallFor > 0) != (*stallEvery > 0) || (*stallFor > 0 && *stallFor >= *stallEvery) {
		fmt.Fprintln(os.Stderr, "barrage target: give --stall-every and --stall-for together, with --stall-for shorter")
		return exitBadInput
	}
	if *bodySize < 0 || *delay < 0 || *status < 100 || *status > 999 {
		fmt.Fprintln(os.Stderr, "barrage target: --body-size and --delay must be >= 0, --status a 3-digit code")
		return exitBadInput
	}
	var logger io.Writer = os.Stderr
	if *quiet {
		logger = nil
	}
	size := *bodySize
	if size == 0 {
		size = -1 // an explicit 0: empty body
	}
	s, err := target.Start(target.Options{
		Listen: *listen, Loops: *loops, BodySize: size, Status: *status,
		Delay: *delay, StallEvery: *stallEvery, StallFor: *stallFor, Logger: logger,
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "barrage %v\n", err)
		return exitNoStart
	}
	fmt.Printf("listening on %s\n", s.Addr())
	_ = os.Stdout.Sync()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	if err := s.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "barrage target: %v\n", err)
	}
	return exitOK
}
