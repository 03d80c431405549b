package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/barrage-load/barrage/coord"
	"github.com/barrage-load/barrage/engine"
)

const agentAbout = `Registers with ZooKeeper as a load agent and runs the tests a coordinator
assigns to it, publishing one snapshot per interval. If ZooKeeper goes away
mid-test the agent finishes its plan alone and keeps its result on disk.
Stops on SIGINT/SIGTERM.`

func cmdAgent(args []string) int {
	fs := newFlagSet("agent", "--zk HOSTS [flags]", agentAbout)
	zkHosts := fs.String("zk", "", "ZooKeeper servers, host:port[,host:port...] (required)")
	root := fs.String("zk-root", coord.DefaultRoot, "znode under which barrage keeps its state")
	name := fs.String("name", "", "agent name shown in reports (default HOSTNAME-PID)")
	cores := fs.Int("cores", 0, "event loops, one per CPU of the allowed set (0 = all)")
	stateDir := fs.String("state-dir", "", "where a run finished without ZooKeeper keeps its result (default $TMPDIR/barrage-agent)")
	quiet := fs.BoolP("quiet", "q", false, "no event log on stderr")
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if *zkHosts == "" {
		fmt.Fprintln(os.Stderr, "barrage agent: --zk is required (e.g. --zk 127.0.0.1:2181)")
		return exitBadInput
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "barrage agent: unexpected arguments %v\n", fs.Args())
		return exitBadInput
	}
	cpus, err := engine.AllowedCPUs()
	if err != nil {
		fmt.Fprintf(os.Stderr, "barrage agent: %v\n", err)
		return exitNoStart
	}
	if *cores < 0 || *cores > len(cpus) {
		fmt.Fprintf(os.Stderr, "barrage agent: --cores %d: this process may use %d CPUs %v\n", *cores, len(cpus), cpus)
		return exitBadInput
	}
	if *cores > 0 {
		cpus = cpus[:*cores]
	}
	o := coord.AgentOptions{ZK: *zkHosts, Root: *root, Name: *name, CPUs: cpus, StateDir: *stateDir}
	if !*quiet {
		o.Log = os.Stderr
	}
	a, err := coord.NewAgent(o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "barrage agent: %v\n", err)
		if errors.Is(err, coord.ErrBadRoot) {
			return exitBadInput
		}
		return exitNoStart
	}
	defer a.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := a.Run(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "barrage agent: %v\n", err)
		return exitNoStart
	}
	return exitOK
}
