//go:build !linux

package engine

import (
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// AllowedCPUs lists CPUs 0..NumCPU-1; affinity is not read on this system.
func AllowedCPUs() ([]int, error) {
	cpus := make([]int, runtime.NumCPU())
	for i := range cpus {
		cpus[i] = i
	}
	return cpus, nil
}

// soleCPU is false: affinity is not read on this system.
func soleCPU(int) bool { return false }

// pinThread only locks the goroutine to its thread on this system.
func pinThread(int) error { runtime.LockOSThread(); return nil }

func setTimerSlack(int) {}

func sleepPrecise(d int64) { time.Sleep(time.Duration(d)) }

func sleepRaw(d int64) { sleepPrecise(d) }

func writeRaw(fd int, b []byte) error {
	_, err := unix.Write(fd, b)
	return err
}

// threadCPU and processCPU are unknown here (0): no loop busy figure.
func threadCPU() time.Duration  { return 0 }
func processCPU() time.Duration { return 0 }
