package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/barrage-load/barrage/agent"
	"github.com/barrage-load/barrage/dashboard"
	"github.com/barrage-load/barrage/engine"
	"github.com/barrage-load/barrage/fleet"
	"github.com/barrage-load/barrage/metrics"
	"github.com/barrage-load/barrage/proto"
	"github.com/barrage-load/barrage/request"
)

const agentAbout = `Registers with ZooKeeper as a load agent and runs the tests a coordinator
assigns to it, publishing one snapshot per interval and keeping every
snapshot in --state-dir (barrage report --state-dir rebuilds a test from them).

Every assignment is checked as a plan file is, then against this agent's own
caps (--max-rate, --max-connections) and target allowlist (--allow-target;
loopback only without it): an agent never trusts what it reads in ZooKeeper.
A refusal reaches the coordinator at once, with the reason.

Fencing: the agent sends only while ZooKeeper confirms its session, at least
once per session timeout. Cut off longer (frozen, partitioned, ZooKeeper
down), it stops sending; if its session expired or its registration vanished
meanwhile, it abandons the test (the coordinator has given its budget to the
survivors) and registers again.

Without --zk-auth anyone who can reach ZooKeeper can aim this agent at any
target its allowlist permits: give --zk-auth FILE (a file holding
user:password) to every agent, coordinator and set.

Data files: a plan's data files are read from this box, at the path the plan
names (the coordinator's absolute path): copy them to every agent. Each agent
keeps its own slice of each file's rows unless the plan marks it shared.

Stops within 2 s on SIGINT/SIGTERM (exit 0).`

func cmdAgent(args []string) int {
	fs := newFlagSet("agent", "--zk HOSTS [flags]", agentAbout)
	zkHosts := fs.String("zk", "", "ZooKeeper servers, host:port[,host:port...] (required)")
	root := fs.String("zk-root", fleet.DefaultRoot, "znode under which barrage keeps its state")
	zkAuth := fs.String("zk-auth", "", "file holding \"user:password\" for ZooKeeper digest auth; every node gets an ACL for that identity alone")
	name := fs.String("name", "", "agent name shown in reports (default HOSTNAME-PID)")
	cores := fs.Int("cores", 0, "event loops, one per CPU of the allowed set (0 = all)")
	stateDir := fs.String("state-dir", "", "where every test's snapshots and result are kept (default $TMPDIR/barrage-agent)")
	maxRate := fs.Float64("max-rate", proto.DefaultAgentMaxRate, "the highest rate (req/s) this agent accepts in a budget")
	maxConns := fs.Int("max-connections", proto.DefaultAgentMaxConnections, "the most connections this agent accepts in a budget")
	allow := fs.StringArray("allow-target", nil, "targets this agent may load: host, IP or CIDR, each with an optional :port; repeatable or comma-separated (default: loopback only)")
	hfiles := fs.StringArray("header-file", nil, "NAME=FILE: set header NAME on every request of every test to FILE's first line, read again whenever FILE changes (a credential kept on this box); repeatable")
	quiet := fs.BoolP("quiet", "q", false, "no event log on stderr")
	httpAddr := fs.String("http", "", "serve /metrics (Prometheus), /healthz (alive) and /readyz (registered, connected and idle) on ADDR (a bare port = 127.0.0.1:PORT; 0.0.0.0:PORT for probes from outside)")
	zkWait := fs.Duration("zk-wait", 0, "at start, keep trying to reach ZooKeeper and register for this long (/readyz answers 503 meanwhile); 0 gives up at once (exit 1)")
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
	caps := proto.Caps{MaxRate: *maxRate, MaxConnections: *maxConns}
	if err := checkCaps(caps); err != nil {
		fmt.Fprintf(os.Stderr, "barrage agent: %v\n", err)
		return exitBadInput
	}
	al, err := agent.ParseAllowlist(*allow)
	if err != nil {
		fmt.Fprintf(os.Stderr, "barrage agent: %v\n", err)
		return exitBadInput
	}
	auth, code := readZKAuth("agent", *zkAuth)
	if code >= 0 {
		return code
	}
	// Descriptors: as many as the hard limit allows; budgets that cannot
	// fit are refused with the limit named.
	_, _, _ = engine.RaiseFileLimit()
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
	quotaNotice("agent", len(cpus))
	if *zkWait < 0 {
		fmt.Fprintln(os.Stderr, "barrage agent: --zk-wait must be >= 0")
		return exitBadInput
	}
	var headerFiles []request.HeaderFile
	for _, hf := range *hfiles {
		h, err := request.ParseHeaderFile(hf)
		if err == nil {
			_, err = h.Read()
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "barrage agent: %v\n", err)
			return exitBadInput
		}
		headerFiles = append(headerFiles, h)
	}
	o := agent.Options{ZK: *zkHosts, Root: *root, Name: *name, CPUs: cpus, StateDir: *stateDir, Auth: auth, Caps: caps, Allow: al,
		HeaderFiles: headerFiles}
	if !*quiet {
		o.Log = os.Stderr
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// --http: metrics from this agent's own intervals, and the probes. It
	// serves before the agent registers, so /readyz can say it has not.
	var cur atomic.Pointer[agent.Agent]
	if *httpAddr != "" {
		addr, err := dashboard.ParseAddr(*httpAddr)
		if err != nil {
			fmt.Fprintf(os.Stderr, "barrage agent: --http: %v\n", err)
			return exitBadInput
		}
		feed := metrics.NewFeed(func() bool { a := cur.Load(); return a != nil && a.Running() != "" })
		o.OnInterval = feed.Interval
		srv, err := dashboard.Start(dashboard.Options{Addr: addr, Metrics: metrics.Handler(feed), Ready: func() error {
			if a := cur.Load(); a != nil {
				return a.Ready()
			}
			return errors.New("not registered with ZooKeeper yet")
		}})
		if err != nil {
			fmt.Fprintf(os.Stderr, "barrage agent: %v\n", err)
			return exitNoStart
		}
		defer srv.Close(time.Second)
		if !*quiet {
			fmt.Fprintf(os.Stderr, "barrage agent: serving %smetrics, /healthz and /readyz\n", srv.URL())
		}
	}
	a, err := newAgent(ctx, o, *zkWait)
	if err != nil {
		fmt.Fprintf(os.Stderr, "barrage agent: %v\n", err)
		if errors.Is(err, fleet.ErrBadRoot) || errors.Is(err, fleet.ErrBadName) {
			return exitBadInput
		}
		return exitNoStart
	}
	cur.Store(a)
	defer a.Close()
	if auth == nil {
		warnOpen("agent")
	}
	if err := a.Run(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "barrage agent: %v\n", err)
		return exitNoStart
	}
	return exitOK
}

// newAgent makes the agent (it connects and registers), retrying for up
// to wait while ZooKeeper cannot be reached.
func newAgent(ctx context.Context, o agent.Options, wait time.Duration) (*agent.Agent, error) {
	deadline := time.Now().Add(wait)
	for {
		a, err := agent.New(o)
		if err == nil || !errors.Is(err, fleet.ErrZooKeeper) || time.Now().After(deadline) {
			return a, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(time.Second):
		}
	}
}

// checkCaps checks --max-rate and --max-connections.
func checkCaps(c proto.Caps) error {
	if !(c.MaxRate > 0 && c.MaxRate <= proto.MaxRate) {
		return fmt.Errorf("--max-rate %g is not in (0, %g]", c.MaxRate, float64(proto.MaxRate))
	}
	if c.MaxConnections < 1 || c.MaxConnections > proto.MaxConnections {
		return fmt.Errorf("--max-connections %d is not in [1, %d]", c.MaxConnections, proto.MaxConnections)
	}
	return nil
}

// readZKAuth reads --zk-auth.
func readZKAuth(cmd, path string) (*fleet.Auth, int) {
	if path == "" {
		return nil, -1
	}
	a, err := fleet.ReadAuthFile(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "barrage %s: %v\n", cmd, err)
		return nil, exitBadInput
	}
	return a, -1
}

// warnOpen says once that ZooKeeper is open to anyone.
func warnOpen(cmd string) {
	fmt.Fprintf(os.Stderr, "barrage %s: warning: no --zk-auth: anyone who can reach ZooKeeper can read the plans and control the agents\n", cmd)
}
