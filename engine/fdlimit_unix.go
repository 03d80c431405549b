//go:build unix

package engine

import (
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// FileMargin is how many file descriptors CheckFileLimit keeps for
// everything but the target connections, beside FilesPerLoop for each
// CPU: standard streams, the runtime's poller, the dialer's connects in
// flight (each briefly holds a second descriptor while it is handed to a
// loop), ZooKeeper, reports.
const FileMargin = 64 + MaxDials

// FilesPerLoop is what each event loop holds besides its connections: its
// poller, its wake-up descriptor and both ends of its pacer's doorbell.
const FilesPerLoop = 4

// RaiseFileLimit raises the soft limit on open files (RLIMIT_NOFILE) to
// the hard limit, as far as the system allows, and returns the limits in
// force afterwards. Go does this for itself since 1.19 at start; calling
// it again is harmless and says what the limits are.
func RaiseFileLimit() (soft, hard uint64, err error) {
	var r unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &r); err != nil {
		return 0, 0, fmt.Errorf("engine: cannot read the open-file limit: %w", err)
	}
	if r.Cur < r.Max {
		want := r
		want.Cur = r.Max
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &want); err != nil {
			return r.Cur, r.Max, fmt.Errorf("engine: cannot raise the open-file limit from %d to %d: %w", r.Cur, r.Max, err)
		}
		r = want
	}
	return r.Cur, r.Max, nil
}

// filesNeeded is the descriptors conns connections need with the margin.
func filesNeeded(conns int) uint64 {
	return uint64(conns) + FileMargin + FilesPerLoop*uint64(runtime.NumCPU())
}

// CheckFileLimit returns an error wrapping ErrFileLimit when conns
// connections and the margin (FileMargin, FilesPerLoop per CPU) do not fit
// under the soft open-file limit. Call RaiseFileLimit first.
func CheckFileLimit(conns int) error {
	var r unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &r); err != nil {
		return fmt.Errorf("engine: cannot read the open-file limit: %w", err)
	}
	need := filesNeeded(conns)
	if need <= r.Cur {
		return nil
	}
	if need > r.Max {
		return fmt.Errorf("%w: %d connections need about %d file descriptors, but the open-file limit (RLIMIT_NOFILE) is %d and its hard limit %d: raise both (ulimit -n %d as root, or limits.conf / LimitNOFILE) or use fewer connections",
			ErrFileLimit, conns, need, r.Cur, r.Max, need)
	}
	return fmt.Errorf("%w: %d connections need about %d file descriptors, but the open-file limit (RLIMIT_NOFILE) is %d: raise it (ulimit -n %d) or use fewer connections",
		ErrFileLimit, conns, need, r.Cur, need)
}
