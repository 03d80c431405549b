package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/barrage-load/barrage/coord"
	"github.com/barrage-load/barrage/proto"
)

const coordAbout = `Coordinates a distributed test through ZooKeeper: waits for --agents agents,
splits the plan into per-agent budgets weighted by their cores, starts them
all at one instant, prints merged progress once a second, moves a lost
agent's budget to the survivors, and prints the merged report (histograms
merged exactly) with one row per agent.

With --standby it waits in a leader election and takes over the running
test when the active coordinator dies. A standby started before any test
(or still there when one ends) waits for the next test and stands behind
its coordinator; it runs until it has taken over and finished a test, or
until it is interrupted.

Exit status: 0 test completed, 1 could not start or finish (ZooKeeper
unreachable, too few agents, agents that could not connect), 2 bad flags or
plan.`

func cmdCoord(args []string) int {
	fs := newFlagSet("coord", "--zk HOSTS --agents N [load flags] URL | -f plan.yaml", coordAbout)
	var lf loadFlags
	lf.register(fs)
	zkHosts := fs.String("zk", "", "ZooKeeper servers, host:port[,host:port...] (required)")
	root := fs.String("zk-root", coord.DefaultRoot, "znode under which barrage keeps its state")
	agents := fs.Int("agents", 1, "agents to wait for")
	minAgents := fs.Int("min-agents", 0, "fewest agents the test may go on with after losses (default --agents)")
	wait := fs.Duration("wait", coord.DefaultWait, "how long to wait for the agents")
	standby := fs.Bool("standby", false, "wait as a standby coordinator and take over the running test when the active one dies")
	jsonOut := fs.String("json", "", "also write the report as JSON to this file (- = stdout)")
	quiet := fs.BoolP("quiet", "q", false, "no progress lines")
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if *zkHosts == "" {
		fmt.Fprintln(os.Stderr, "barrage coord: --zk is required (e.g. --zk 127.0.0.1:2181)")
		return exitBadInput
	}
	var plan *proto.Plan
	if fs.NArg() > 0 || lf.plan != "" || !*standby {
		p, err := lf.build(fs, fs.Args())
		if err != nil {
			return planError("coord", err)
		}
		plan = p
	}
	if *agents < 1 || *minAgents < 0 || *minAgents > *agents {
		fmt.Fprintf(os.Stderr, "barrage coord: want --agents >= 1 and 0 <= --min-agents <= --agents, got %d and %d\n", *agents, *minAgents)
		return exitBadInput
	}
	o := coord.Options{
		ZK: *zkHosts, Root: *root, Agents: *agents, MinAgents: *minAgents, Wait: *wait,
		Plan: plan, Standby: *standby, Log: os.Stderr,
	}
	if !*quiet {
		o.Progress = os.Stderr
	}
	if *quiet {
		o.Log = io.Discard
	}
	c, err := coord.NewCoordinator(o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "barrage coord: %v\n", err)
		if errors.Is(err, coord.ErrBadRoot) {
			return exitBadInput
		}
		return exitNoStart
	}
	defer c.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := c.Run(ctx)
	if rep != nil {
		if werr := writeReport(rep, *jsonOut); werr != nil {
			fmt.Fprintf(os.Stderr, "barrage coord: %v\n", werr)
			return exitNoStart
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "barrage coord: %v\n", err)
		return exitNoStart
	}
	return exitOK
}

const setAbout = `Changes a running distributed test: writes the new rate and/or connection
count with a compare-and-swap on the test's config, then waits until every
agent has applied it and prints how long that took.`

func cmdSet(args []string) int {
	fs := newFlagSet("set", "--zk HOSTS [--test ID] --rate R [--connections C]", setAbout)
	zkHosts := fs.String("zk", "", "ZooKeeper servers (required)")
	root := fs.String("zk-root", coord.DefaultRoot, "znode under which barrage keeps its state")
	test := fs.String("test", "", "test ID (default: the running test)")
	rate := fs.Float64("rate", -1, "new total rate in requests per second")
	conns := fs.Int("connections", 0, "new total connection count")
	wait := fs.Duration("wait", 10*time.Second, "how long to wait for the agents to apply it (0 = don't wait)")
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if *zkHosts == "" || (!fs.Changed("rate") && !fs.Changed("connections")) {
		fmt.Fprintln(os.Stderr, "barrage set: give --zk and at least one of --rate R (>= 0) or --connections C (> 0)")
		return exitBadInput
	}
	// The same bounds as a plan's, checked before ZooKeeper is touched.
	if fs.Changed("rate") {
		if err := proto.CheckRate(*rate); err != nil {
			fmt.Fprintf(os.Stderr, "barrage set: %v\n", err)
			return exitBadInput
		}
	}
	if fs.Changed("connections") {
		if err := proto.CheckConnections(*conns); err != nil {
			fmt.Fprintf(os.Stderr, "barrage set: %v\n", err)
			return exitBadInput
		}
	}
	res, err := coord.Set(context.Background(), coord.SetOptions{
		ZK: *zkHosts, Root: *root, Test: *test, Rate: *rate, Connections: *conns, Wait: *wait,
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "barrage set: %v\n", err)
		return exitNoStart
	}
	if res.Applied > 0 {
		fmt.Printf("test %s: config version %d applied by %d agents %.1f ms after the write\n",
			res.Test, res.Version, res.Agents, float64(res.Applied)/1e6)
	} else {
		fmt.Printf("test %s: config version %d written\n", res.Test, res.Version)
	}
	return exitOK
}
