package server

import (
	"time"

	"golang.org/x/sys/unix"
)

// precisionSetup asks the kernel to wake the calling thread within 1 µs of
// the time it asked for (the default timer slack is 50 µs). The caller has
// locked its OS thread.
func precisionSetup() {
	_ = unix.Prctl(unix.PR_SET_TIMERSLACK, 1000, 0, 0, 0)
}

// preciseSleep sleeps d in nanosleep, blocking the thread rather than
// parking the goroutine on the runtime's millisecond-grained poller.
func preciseSleep(d time.Duration) {
	ts := unix.NsecToTimespec(int64(d))
	for unix.Nanosleep(&ts, &ts) == unix.EINTR {
	}
}
