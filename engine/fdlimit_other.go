//go:build !unix

package engine

// FileMargin and FilesPerLoop: see the Unix version.
const (
	FileMargin   = 64 + MaxDials
	FilesPerLoop = 4
)

// RaiseFileLimit does nothing where there is no RLIMIT_NOFILE.
func RaiseFileLimit() (soft, hard uint64, err error) { return 0, 0, nil }

// CheckFileLimit accepts any count where there is no RLIMIT_NOFILE.
func CheckFileLimit(conns int) error { return nil }
