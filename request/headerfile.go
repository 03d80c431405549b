package request

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"os"
	"strings"
	"time"

	"github.com/barrage-load/barrage/proto"
)

// MaxHeaderValue bounds a header value read from a file or stdin.
const MaxHeaderValue = 16 << 10

// HeaderFile is a header whose value is read from a file: a credential
// kept out of the command line (where ps shows it) and out of the plan,
// re-read when the file changes (a rotated token).
type HeaderFile struct {
	Name, Path string
}

// ParseHeaderFile reads "NAME=FILE" (--header-file).
func ParseHeaderFile(s string) (HeaderFile, error) {
	name, path, ok := strings.Cut(s, "=")
	name = strings.TrimSpace(name)
	if !ok || name == "" || path == "" {
		return HeaderFile{}, proto.BadPlanf("--header-file %q is not NAME=FILE", clip(s))
	}
	if !token(name) {
		return HeaderFile{}, proto.BadPlanf("--header-file: %q is not a header name", clip(name))
	}
	return HeaderFile{Name: name, Path: path}, nil
}

func token(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return s != ""
}

// ReadValue reads a header value from r: its first line, spaces trimmed
// (a file written by `echo` ends in a newline). It refuses an empty value,
// control characters and more than MaxHeaderValue bytes; the message never
// shows the value.
func ReadValue(name string, r io.Reader) (string, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxHeaderValue+2))
	if err != nil {
		return "", proto.BadPlanf("header %s: cannot read its value: %v", name, err)
	}
	if len(b) > MaxHeaderValue+1 {
		return "", proto.BadPlanf("header %s: the value is longer than %d bytes", name, MaxHeaderValue)
	}
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		if len(bytes.TrimSpace(b[i+1:])) > 0 {
			return "", proto.BadPlanf("header %s: the value has more than one line", name)
		}
		b = b[:i]
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", proto.BadPlanf("header %s: the value is empty", name)
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return "", proto.BadPlanf("header %s: the value has a control character", name)
		}
	}
	return v, nil
}

// Read reads the header's value from its file.
func (h HeaderFile) Read() (string, error) {
	f, err := os.Open(h.Path)
	if err != nil {
		return "", proto.BadPlanf("--header-file %s: %v", h.Name, err)
	}
	defer f.Close()
	return ReadValue(h.Name, f)
}

// DefaultWatchEvery is how often Watch looks at the header files.
const DefaultWatchEvery = 500 * time.Millisecond

// Watch calls fn with a header's new value each time its file's content
// changes (looked at every `every`; a file being rewritten is read again
// at the next look), until ctx ends. A file that cannot be read or holds
// no valid value is skipped (the value in force stays) and reported to
// bad, without the value. current holds the values in force at the start.
func Watch(ctx context.Context, files []HeaderFile, current map[string]string, every time.Duration, fn func(name, value string), bad func(error)) {
	if len(files) == 0 {
		return
	}
	if every <= 0 {
		every = DefaultWatchEvery
	}
	last := map[string][32]byte{}
	for _, h := range files {
		last[h.Name] = sha256.Sum256([]byte(current[h.Name]))
	}
	failed := map[string]bool{}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, h := range files {
			v, err := h.Read()
			if err != nil {
				if !failed[h.Name] && bad != nil {
					bad(err)
				}
				failed[h.Name] = true
				continue
			}
			failed[h.Name] = false
			if sum := sha256.Sum256([]byte(v)); sum != last[h.Name] {
				last[h.Name] = sum
				fn(h.Name, v)
			}
		}
	}
}
