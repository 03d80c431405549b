package engine

import (
	"fmt"
	"runtime"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// AllowedCPUs lists the CPUs this process may run on (its affinity mask, so
// `taskset -c 0 barrage run ...` gives one loop on CPU 0).
func AllowedCPUs() ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, fmt.Errorf("engine: cannot read the CPU affinity: %w", err)
	}
	var cpus []int
	for i := 0; i < 1024 && len(cpus) < set.Count(); i++ {
		if set.IsSet(i) {
			cpus = append(cpus, i)
		}
	}
	return cpus, nil
}

// soleCPU reports whether the process may run on cpu and on no other.
func soleCPU(cpu int) bool {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return false
	}
	return set.Count() == 1 && set.IsSet(cpu)
}

// pinThread locks the calling goroutine to its OS thread and that thread to
// cpu. The extra LockOSThread is deliberate: it is never undone, so when the
// goroutine ends the pinned thread ends with it instead of going back to the
// runtime's pool with a one-CPU mask.
func pinThread(cpu int) error {
	runtime.LockOSThread()
	var set unix.CPUSet
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return fmt.Errorf("engine: cannot pin to CPU %d: %w", cpu, err)
	}
	return nil
}

// setTimerSlack makes the calling thread's sleeps end as close to their
// deadline as the kernel allows (the default slack is 50 µs).
func setTimerSlack(ns int) {
	_ = unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(ns), 0, 0, 0)
}

// sleepPrecise sleeps d on the calling thread with a raw nanosleep. Hazard:
// time.Sleep rounds short sleeps up to the runtime's netpoll granularity
// (1 ms when the process is idle), which would make the pacer late; the
// blocking syscall costs one OS thread per pacer instead.
func sleepPrecise(d int64) {
	ts := unix.NsecToTimespec(d)
	for {
		err := unix.Nanosleep(&ts, &ts)
		if err != unix.EINTR {
			return
		}
	}
}

// sleepRaw is sleepPrecise without telling the runtime: the goroutine
// keeps its P while it sleeps, so it needs none to wake (see Engine.float).
// The runtime can still preempt it between sleeps.
func sleepRaw(d int64) {
	ts := unix.NsecToTimespec(d)
	for {
		_, _, errno := unix.RawSyscall(unix.SYS_NANOSLEEP, uintptr(unsafe.Pointer(&ts)), uintptr(unsafe.Pointer(&ts)), 0)
		if errno != unix.EINTR {
			return
		}
	}
}

// writeRaw is write(2) without telling the runtime (see sleepRaw); fd must
// be non-blocking.
func writeRaw(fd int, b []byte) error {
	_, _, errno := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	if errno != 0 {
		return errno
	}
	return nil
}

// threadCPU is the CPU time (user + sys) of the calling thread so far.
func threadCPU() time.Duration { return rusageCPU(unix.RUSAGE_THREAD) }

// processCPU is the CPU time (user + sys) of the whole process so far.
func processCPU() time.Duration { return rusageCPU(unix.RUSAGE_SELF) }

func rusageCPU(who int) time.Duration {
	var ru unix.Rusage
	if unix.Getrusage(who, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
