package main

import (
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/barrage-load/barrage/proto"
	"github.com/barrage-load/barrage/request"
)

// headerValues reads -H "Name: value" flags. A value "@-" is read from
// stdin (once), "@FILE" from a file: a secret kept off the command line,
// where ps shows it. It returns the headers and the names given with a
// literal value on the command line.
func headerValues(flags []string, stdin io.Reader) (map[string]string, []string, error) {
	out := map[string]string{}
	var literal []string
	usedStdin := false
	for _, h := range flags {
		name, value, ok := strings.Cut(h, ":")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if !ok || name == "" {
			return nil, nil, proto.BadPlanf("header %q is not \"Name: value\"", clipFlag(h))
		}
		switch {
		case value == "@-":
			if usedStdin {
				return nil, nil, proto.BadPlanf("-H %s: @- (stdin) may be given once", name)
			}
			usedStdin = true
			v, err := request.ReadValue(name, stdin)
			if err != nil {
				return nil, nil, err
			}
			value = v
		case strings.HasPrefix(value, "@") && len(value) > 1:
			v, err := request.HeaderFile{Name: name, Path: value[1:]}.Read()
			if err != nil {
				return nil, nil, err
			}
			value = v
		default:
			literal = append(literal, name)
		}
		out[name] = value
	}
	return out, literal, nil
}

// clipFlag shortens a flag's text for a message, cutting it before any
// value (which may be a secret).
func clipFlag(s string) string {
	if i := strings.IndexByte(s, ':'); i >= 0 {
		s = s[:i] + ": …"
	}
	if len(s) > 60 {
		s = s[:60] + "…"
	}
	return s
}

// secretOnCommandLine says, for run and coord, that a secret header's
// value was given on the command line.
func secretOnCommandLine(cmd string, p *proto.Plan, literal []string) {
	for _, n := range literal {
		if p.IsSecret(n) {
			fmt.Fprintf(os.Stderr, "barrage %s: warning: the value of %s is on the command line, where ps shows it: give -H '%s: @FILE' (or @- for stdin)\n", cmd, n, n)
		}
	}
}

// newSeed picks a seed when the plan and the flags give none: never 0,
// which means "not given".
func newSeed() uint64 {
	var b [8]byte
	for {
		_, _ = rand.Read(b[:])
		var s uint64
		for _, x := range b {
			s = s<<8 | uint64(x)
		}
		if s != 0 {
			return s
		}
	}
}
