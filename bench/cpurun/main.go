// Command cpurun runs a command and prints the CPU time the OS charged to
// it (and its children): user and system seconds, wall seconds, max RSS,
// and voluntary/involuntary context switches, as one line of JSON on
// stderr (or to the file named by -o). The command's own output passes
// through. Used by bench/peers.sh to measure a generator's CPU per request.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

type usage struct {
	UserSeconds float64 `json:"user_s"`
	SysSeconds  float64 `json:"sys_s"`
	WallSeconds float64 `json:"wall_s"`
	MaxRSSKB    int64   `json:"max_rss_kb"`
	VolCS       int64   `json:"voluntary_ctx_switches"`
	InvolCS     int64   `json:"involuntary_ctx_switches"`
	ExitCode    int     `json:"exit_code"`
}

func main() {
	out := flag.String("o", "", "write the JSON line to this file instead of stderr")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: cpurun [-o FILE] COMMAND [ARGS...]")
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	cmd := exec.Command(flag.Arg(0), flag.Args()[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	t0 := time.Now()
	err := cmd.Run()
	wall := time.Since(t0)
	if cmd.ProcessState == nil {
		fmt.Fprintf(os.Stderr, "cpurun: %v\n", err)
		os.Exit(1)
	}
	ru, _ := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	u := usage{WallSeconds: wall.Seconds(), ExitCode: cmd.ProcessState.ExitCode()}
	if ru != nil {
		u.UserSeconds = time.Duration(ru.Utime.Nano()).Seconds()
		u.SysSeconds = time.Duration(ru.Stime.Nano()).Seconds()
		u.MaxRSSKB = ru.Maxrss
		u.VolCS, u.InvolCS = ru.Nvcsw, ru.Nivcsw
	}
	b, _ := json.Marshal(u)
	if *out != "" {
		if err := os.WriteFile(*out, append(b, '\n'), 0o644); err != nil {
			fmt.Fprintf(os.Stderr, "cpurun: %v\n", err)
			os.Exit(1)
		}
	} else {
		fmt.Fprintln(os.Stderr, string(b))
	}
	os.Exit(u.ExitCode)
}
