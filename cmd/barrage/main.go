// Command barrage is a maximum-QPS HTTP/1.1 load generator: `run` on one
// machine, `agent` and `coord` for a distributed test through ZooKeeper,
// `set` for live changes, and `target`, a fast built-in server.
package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"
)

// Exit codes, documented in the README.
const (
	exitOK       = 0
	exitNoStart  = 1 // the run could not start (bad URL, target unreachable)
	exitBadInput = 2 // bad flags or plan
	// exitInterrupted: stopped early by SIGINT or SIGTERM (partial report).
	exitInterrupted = 130
)

const usage = `barrage — a distributed, maximum-QPS HTTP/1.1 load generator

Usage:
  barrage run [flags] URL         load one target from this machine (wrk-like)
  barrage target [flags]          a fast built-in HTTP/1.1 server for benchmarks
  barrage agent --zk HOSTS        join a distributed test as a load agent
  barrage coord --zk HOSTS ...    coordinate a distributed test
  barrage set --zk HOSTS ...      change a running distributed test's rate or connections
  barrage find --threshold SLO URL  the highest rate the target sustains within an SLO
  barrage report --state-dir DIR  rebuild a distributed test's report from what agents kept
  barrage version                 the version and commit this binary was built from

Run 'barrage COMMAND --help' for a command's flags.
`

var commands = map[string]func(args []string) int{
	"run":    cmdRun,
	"target": cmdTarget,
	"agent":  cmdAgent,
	"coord":  cmdCoord,
	"set":    cmdSet,
	"report": cmdReport,
	"find":   cmdFind,
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(exitBadInput)
	}
	name := os.Args[1]
	switch name {
	case "-h", "--help", "help":
		fmt.Print(usage)
		os.Exit(exitOK)
	case "--version", "version":
		fmt.Println(version())
		os.Exit(exitOK)
	}
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "barrage: unknown command %q (want run, target, agent, coord, set, find, report or version; see barrage --help)\n", name)
		os.Exit(exitBadInput)
	}
	os.Exit(profiled(func() int { return cmd(os.Args[2:]) }))
}

// profiled runs fn with a CPU profile written to $BARRAGE_CPUPROFILE when
// it is set (a development aid: `make bench-fleet` profiles the
// coordinator this way).
func profiled(fn func() int) int {
	path := os.Getenv("BARRAGE_CPUPROFILE")
	if path == "" {
		return fn()
	}
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "barrage: BARRAGE_CPUPROFILE: %v\n", err)
		return fn()
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintf(os.Stderr, "barrage: BARRAGE_CPUPROFILE: %v\n", err)
		return fn()
	}
	defer pprof.StopCPUProfile()
	return fn()
}

// buildCommit is the commit `make build` passes with
// -ldflags "-X main.buildCommit=...": the fallback for builds in which the
// go command records no VCS information (GOFLAGS=-buildvcs=false, or a
// git worktree, whose .git is a file the go command does not look for).
var buildCommit string

// buildVersion is the version `make dist` passes (git describe) with
// -ldflags "-X main.buildVersion=..."; it wins over the module's.
var buildVersion string

// version says which build this is: the module version and the VCS commit
// ("devel" and "commit unknown" when neither was recorded) and the Go
// release. A bug report quoting it names the exact source.
func version() string {
	v, commit, modified := "devel", "", false
	if bi, ok := debug.ReadBuildInfo(); ok {
		if mv := bi.Main.Version; mv != "" && mv != "(devel)" {
			v = mv
		}
		if buildVersion != "" {
			v = buildVersion
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if commit == "" {
		commit, modified = strings.CutSuffix(buildCommit, "+modified")
	}
	switch {
	case commit == "":
		commit = "commit unknown"
	case modified:
		commit = "commit " + commit + " (modified)"
	default:
		commit = "commit " + commit
	}
	return fmt.Sprintf("barrage %s %s %s", v, commit, runtime.Version())
}
