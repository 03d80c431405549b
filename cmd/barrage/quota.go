package main

import (
	"fmt"
	"os"

	"github.com/barrage-load/barrage/engine"
)

// quotaNotice says, at start, when the cgroup's CPU quota (a container's
// CPU limit) gives the event loops less than a CPU each: the engine then
// counts a loop as full at its share of the quota, so a throttled
// generator reads as saturated rather than as a slow target.
func quotaNotice(cmd string, loops int) {
	q := engine.CPUQuota()
	if q <= 0 || loops <= 0 || q >= float64(loops) {
		return
	}
	fmt.Fprintf(os.Stderr, "barrage %s: note: the cgroup's CPU quota allows %.2f CPUs for %d event loops: each loop is counted busy against %.0f%% of a CPU\n",
		cmd, q, loops, 100*q/float64(loops))
}
