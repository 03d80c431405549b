package chaos

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// stallLimit is the pause of the machine from which a failed row is run
// again: half a session timeout, the point where ZooKeeper sessions of
// processes that did not run start to expire (the client pings every
// third of a session) and the fleet reacts to the machine, not to the
// row's fault.
const stallLimit = session / 2

// probeTick is how often each probe wakes up.
const probeTick = 10 * time.Millisecond

// pause is one late wake-up of a probe.
type pause struct {
	at  time.Time
	len time.Duration
	cpu int
}

// probes watch every CPU the harness may use with a thread pinned to it
// that sleeps probeTick at a time; a wake-up late by more than 100 ms is a
// pause of that CPU (other work, or the VM not running at all). They run
// for the whole test binary and cost a few wake-ups per second.
type probes struct {
	mu     sync.Mutex
	pauses []pause
}

var machineProbes = startProbes()

func startProbes() *probes {
	p := &probes{}
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return p
	}
	for cpu := 0; cpu < 1024; cpu++ {
		if !set.IsSet(cpu) {
			continue
		}
		go p.watch(cpu)
	}
	return p
}

func (p *probes) watch(cpu int) {
	// The thread stays locked (and pinned) until the binary exits.
	runtime.LockOSThread()
	var one unix.CPUSet
	one.Set(cpu)
	if err := unix.SchedSetaffinity(0, &one); err != nil {
		return
	}
	for {
		before := time.Now()
		time.Sleep(probeTick)
		if late := time.Since(before) - probeTick; late > 100*time.Millisecond {
			p.mu.Lock()
			p.pauses = append(p.pauses, pause{before, late, cpu})
			p.mu.Unlock()
		}
	}
}

// worst is the longest pause that began within [from, to].
func (p *probes) worst(from, to time.Time) pause {
	p.mu.Lock()
	defer p.mu.Unlock()
	var w pause
	for _, x := range p.pauses {
		if !x.at.Before(from) && !x.at.After(to) && x.len > w.len {
			w = x
		}
	}
	return w
}

// retries is how many times a row that failed while the machine paused
// for stallLimit or more may run again (CHAOS_RETRIES, default 2); it stops
// earlier when an attempt breaks the same invariants as the one before.
func retries() int {
	if n, err := strconv.Atoi(os.Getenv("CHAOS_RETRIES")); err == nil && n >= 0 {
		return n
	}
	return 2
}

// agentCPU is the CPU the agents are pinned to (with taskset, which execs
// the binary: the PID stays the agent's). `--cores 1` takes the first CPU
// of the allowed set, so every `--cores 1` process on a shared machine
// lands on CPU 0; the agents go to the last one instead. CHAOS_AGENT_CPU
// overrides it ("none": no taskset).
func agentCPU() (wrap []string, desc string) {
	v := os.Getenv("CHAOS_AGENT_CPU")
	if v == "none" {
		return nil, "agents not pinned by the harness"
	}
	if _, err := exec.LookPath("taskset"); err != nil {
		return nil, "agents not pinned (no taskset)"
	}
	if v == "" {
		var set unix.CPUSet
		if err := unix.SchedGetaffinity(0, &set); err != nil {
			return nil, "agents not pinned"
		}
		last := -1
		for cpu := 0; cpu < 1024; cpu++ {
			if set.IsSet(cpu) {
				last = cpu
			}
		}
		if last < 0 {
			return nil, "agents not pinned"
		}
		v = strconv.Itoa(last)
	}
	if _, err := strconv.Atoi(strings.TrimSpace(v)); err != nil {
		return nil, fmt.Sprintf("agents not pinned (CHAOS_AGENT_CPU=%q is not a CPU number)", v)
	}
	return []string{"taskset", "-c", v}, "agents pinned to CPU " + v
}
