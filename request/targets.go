package request

import (
	"bufio"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/barrage-load/barrage/proto"
)

// ParseTargets reads vegeta's HTTP targets format: targets separated by
// blank lines, each a "METHOD URL" line, then header lines "Name: value",
// then an optional "@FILE" line naming its body (a path relative to dir).
// Lines starting with # are comments. Every target must share the first
// one's origin (scheme, host, port): a mix loads one target. It returns
// the first target's URL and the targets as a mix of equal weights, sent
// as written (Raw: vegeta has no variables). Errors name the file (name)
// and line and match proto.ErrBadPlan.
func ParseTargets(r io.Reader, name, dir string) (target string, reqs []proto.Request, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), proto.MaxPlanBytes)
	line := 0
	fail := func(format string, a ...any) error {
		return proto.BadPlanf("%s:%d: %s", name, line, fmt.Sprintf(format, a...))
	}
	var cur *proto.Request
	var origin *url.URL
	names := map[string]int{}
	end := func() {
		if cur != nil {
			reqs = append(reqs, *cur)
			cur = nil
		}
	}
	for sc.Scan() {
		line++
		l := strings.TrimRight(sc.Text(), "\r")
		t := strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(t, "#"):
			continue
		case t == "":
			end()
			continue
		case cur == nil:
			method, raw, ok := strings.Cut(t, " ")
			raw = strings.TrimSpace(raw)
			if !ok || raw == "" {
				return "", nil, fail("want \"METHOD URL\", got %q", clip(t))
			}
			u, err := url.Parse(raw)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return "", nil, fail("%q is not an http:// URL", clip(raw))
			}
			if u.User != nil {
				return "", nil, fail("a target URL with user:password: give an Authorization header instead")
			}
			if origin == nil {
				origin = u
				target = raw
			} else if u.Scheme != origin.Scheme || !strings.EqualFold(u.Host, origin.Host) {
				return "", nil, fail("%s is not on the first target's origin %s://%s (a mix loads one target)", u.Scheme+"://"+u.Host, origin.Scheme, origin.Host)
			}
			if len(reqs) >= proto.MaxRequests {
				return "", nil, fail("more than %d targets (each is its own row in the report: group them into fewer kinds, with variables)", proto.MaxRequests)
			}
			path := u.EscapedPath()
			if path == "" {
				path = "/"
			}
			if u.RawQuery != "" {
				path += "?" + u.RawQuery
			}
			method = strings.ToUpper(method)
			n := method + " " + path
			if len(n) > proto.MaxRequestName-4 {
				n = n[:proto.MaxRequestName-7] + "..."
			}
			names[n]++
			if k := names[n]; k > 1 {
				n = fmt.Sprintf("%s #%d", n, k)
			}
			cur = &proto.Request{Name: n, Weight: 1, Method: method, Path: path, Raw: true}
		case strings.HasPrefix(t, "@"):
			f := strings.TrimSpace(t[1:])
			if f == "" {
				return "", nil, fail("@ names no body file")
			}
			if !filepath.IsAbs(f) {
				f = filepath.Join(dir, f)
			}
			st, err := os.Stat(f)
			if err != nil {
				return "", nil, fail("body file: %v", err)
			}
			if st.Size() > proto.MaxPlanBytes {
				return "", nil, fail("body file %s is larger than %d bytes", f, proto.MaxPlanBytes)
			}
			b, err := os.ReadFile(f)
			if err != nil {
				return "", nil, fail("body file: %v", err)
			}
			cur.Body = string(b)
		default:
			k, v, ok := strings.Cut(l, ":")
			if !ok || strings.TrimSpace(k) == "" {
				return "", nil, fail("want a header \"Name: value\", a body \"@FILE\" or a blank line, got %q", clip(t))
			}
			k, v = strings.TrimSpace(k), strings.TrimSpace(v)
			if cur.Headers == nil {
				cur.Headers = map[string]string{}
			}
			if old, ok := cur.Headers[k]; ok {
				v = old + ", " + v // repeated fields combine (RFC 9110 5.3)
			}
			cur.Headers[k] = v
		}
	}
	if err := sc.Err(); err != nil {
		return "", nil, proto.BadPlanf("%s: %v", name, err)
	}
	end()
	if len(reqs) == 0 {
		return "", nil, proto.BadPlanf("%s: no targets (want \"METHOD URL\" lines)", name)
	}
	return target, reqs, nil
}
