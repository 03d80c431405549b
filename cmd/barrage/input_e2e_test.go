package main

import (
	"encoding/base64"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// Bad input, end to end: the real binary, exit status 2, and one line on
// stderr that names the problem with a single "barrage CMD:" prefix (no
// "proto: bad plan:" or "bad URL:" stacked behind it). Findings of issues
// 8 (bounds) and 9 (frictions).
//
// The URL is port 1 of loopback, where nothing listens: an input that
// slipped through validation would reach the engine and end with exit 1
// ("could not open any connection") instead of 2, so the test tells a
// check that ran from one that did not, and never sends a request.

const deadURL = "http://127.0.0.1:1/"

// wantBadInput runs barrage and asserts exit 2 and one clean line
// containing want.
func wantBadInput(t *testing.T, name string, want string, args ...string) {
	t.Helper()
	r := barrage(t, args...)
	line := strings.TrimSpace(r.stderr)
	prefix := "barrage " + args[0] + ": "
	switch {
	case r.code != 2:
		t.Errorf("%s: exit %d, want 2 (stderr %q)", name, r.code, r.stderr)
	case strings.Contains(line, "\n"):
		t.Errorf("%s: stderr is not one line: %q", name, r.stderr)
	case !strings.Contains(line, want):
		t.Errorf("%s: stderr %q, want it to contain %q", name, line, want)
	case !strings.HasPrefix(line, prefix) || strings.HasPrefix(line[len(prefix):], "barrage"):
		t.Errorf("%s: stderr %q, want one %q prefix", name, line, prefix)
	case strings.Contains(line, "proto:") || strings.Contains(line, "bad plan:") || strings.Contains(line, "bad URL:"):
		t.Errorf("%s: stacked error prefixes in %q", name, line)
	case strings.Contains(r.stderr, "panic") || strings.Contains(r.stderr, "goroutine"):
		t.Errorf("%s: crashed: %q", name, r.stderr)
	}
}

// TestBadLoadFlags: -r NaN ran the closed model, -r Inf sent nothing and
// exited 0, -r 1e12 hung (even SIGTERM did not end it), and -c 0, -p 0,
// -d 0 silently became the defaults.
func TestBadLoadFlags(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, want string
		args       []string
	}{
		{"rate NaN", "rate NaN is not a number", []string{"-r", "NaN"}},
		{"rate Inf", "rate +Inf is not a number", []string{"-r", "Inf"}},
		{"rate -Inf", "rate -Inf is not a number", []string{"-r", "-Inf"}},
		{"rate 1e12", "rate 1e+12 req/s is above the ceiling of 1e+08", []string{"-r", "1e12"}},
		{"negative rate", "rate must be >= 0", []string{"-r", "-1"}},
		{"-c 0", "connections must be at least 1; leave it out for the default 64", []string{"-c", "0"}},
		{"-p 0", "pipeline must be at least 1; leave it out for the default 1", []string{"-p", "0"}},
		{"-d 0", "duration must be positive; leave it out for the default 10s", []string{"-d", "0"}},
		{"--timeout 0", "timeout must be positive; leave it out for the default 10s", []string{"--timeout", "0"}},
		{"--connect-timeout 0", "connect_timeout must be positive; leave it out for the default 5s", []string{"--connect-timeout", "0s"}},
		{"-c beyond the ceiling", "connections 2000000 is above the ceiling of 1048576", []string{"-c", "2000000"}},
		{"-c beyond one box", "connections 100000 is above this box's cap of 65536", []string{"-c", "100000"}},
		{"-c negative", "connections must be at least 1", []string{"-c", "-4"}},
		{"-p too deep", "pipeline must be between 1 and 1024", []string{"-p", "5000"}},
		{"-d a month", "duration 720h0m0s is longer than 168h0m0s", []string{"-d", "720h"}},
		{"-d negative", "duration must be positive", []string{"-d", "-1s"}},
		{"--timeout 2h", "timeout 2h0m0s is longer than 1h0m0s", []string{"--timeout", "2h"}},
		{"expect-status twice", "expect_status lists 200 twice", []string{"--expect-status", "200,429,200"}},
		{"expect-status 99", "expect_status 99 is not an HTTP status code", []string{"--expect-status", "99"}},
		{"expect-status 1000", "expect_status 1000 is not an HTTP status code", []string{"--expect-status", "1000"}},
		{"expect-status word", `invalid argument "ok" for "--expect-status"`, []string{"--expect-status", "ok"}},
		{"--json in a missing directory", "--json /nonexistent/r.json: directory /nonexistent does not exist", []string{"--json", "/nonexistent/r.json"}},
		{"--json a directory", "is a directory", []string{"--json", dir}},
		{"bad header", `header name "Bad Name" is not a token`, []string{"-H", "Bad Name: x"}},
	} {
		wantBadInput(t, tc.name, tc.want, append(append([]string{"run", "-q"}, tc.args...), deadURL)...)
	}
	// A flag overrides a plan file's field: its explicit zero is refused too.
	plan := filepath.Join(dir, "ok.yaml")
	if err := os.WriteFile(plan, []byte("target_url: "+deadURL+"\nconnections: 8\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	wantBadInput(t, "-c 0 over a plan", "connections must be at least 1", "run", "-q", "-f", plan, "-c", "0")
	wantBadInput(t, "no URL", "no target URL", "run", "-q")
	// coord checks the same flags, and its report file, before it looks
	// for ZooKeeper (port 1: nothing there).
	wantBadInput(t, "coord rate NaN", "rate NaN is not a number", "coord", "-q", "--zk", "127.0.0.1:1", "-r", "NaN", deadURL)
	wantBadInput(t, "coord -c 0", "connections must be at least 1; leave it out", "coord", "-q", "--zk", "127.0.0.1:1", "-c", "0", deadURL)
	wantBadInput(t, "coord --json", "directory /nonexistent does not exist", "coord", "-q", "--zk", "127.0.0.1:1", "--json", "/nonexistent/r.json", deadURL)
}

// TestBadPlanFiles: the same bounds in a plan file, NaN and Inf included
// (YAML's .nan and .inf), and an explicit zero told apart from a field left
// out. An empty file said "EOF".
func TestBadPlanFiles(t *testing.T) {
	dir := t.TempDir()
	u := "target_url: " + deadURL + "\n"
	for i, tc := range []struct{ plan, want string }{
		{"", "the plan is empty"},
		{"# nothing yet\n", "the plan is empty"},
		{u + "connections: 0\n", "connections must be at least 1; leave it out for the default 64"},
		{u + "pipeline: 0\n", "pipeline must be at least 1; leave it out for the default 1"},
		{u + "duration: 0\n", "duration must be positive; leave it out for the default 10s"},
		{u + "timeout: 0s\n", "timeout must be positive; leave it out for the default 10s"},
		{u + "connect_timeout: 0\n", "connect_timeout must be positive; leave it out for the default 5s"},
		{`{"target_url": "` + deadURL + `", "connections": 0}`, "connections must be at least 1; leave it out"},
		{u + "rate: .nan\n", "rate NaN is not a number"},
		{u + "rate: .inf\n", "rate +Inf is not a number"},
		{u + "rate: 1e12\n", "rate 1e+12 req/s is above the ceiling of 1e+08 req/s"},
		{u + "pattern: {type: ramp, from: .nan, to: 100}\n", "ramp from NaN is not a number"},
		{u + "pattern: {type: ramp, from: 10, to: .inf}\n", "ramp to +Inf is not a number"},
		{u + "rate: 100\npattern: {type: spike, spike_rate: .inf, at: 1s, for: 1s}\n", "spike_rate +Inf is not a number"},
		{u + "pattern: {type: steps, steps: [{duration: 1s, rate: .nan}]}\n", "step 1: rate NaN is not a number"},
		{u + "pattern: {type: steps, steps: [{duration: 1s, rate: 10}, {duration: 1s, rate: -5}]}\n", "step 2: rate must be >= 0"},
		{u + "connections: 2000000\n", "connections 2000000 is above the ceiling of 1048576"},
		{u + "timeout: 3h\n", "timeout 3h0m0s is longer than 1h0m0s"},
		{u + "expect_status: [200, 200]\n", "expect_status lists 200 twice"},
		{u + "ratez: 5\n", "line 2: field ratez not found"},
		{u + "---\n" + u, "the plan holds more than one YAML document"},
		{"- " + deadURL + "\n", "the plan must be a mapping of fields"},
	} {
		path := filepath.Join(dir, "plan"+string(rune('a'+i))+".yaml")
		if err := os.WriteFile(path, []byte(tc.plan), 0o644); err != nil {
			t.Fatal(err)
		}
		wantBadInput(t, strings.TrimSpace(tc.plan), path+": "+tc.want, "run", "-q", "-f", path)
	}
}

// TestBadSet: `set --rate NaN` said "applied", and --connections had no
// cap; now both are refused before ZooKeeper is contacted (port 1).
func TestBadSet(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		args       []string
	}{
		{"rate NaN", "rate NaN is not a number", []string{"--rate", "NaN"}},
		{"rate Inf", "rate +Inf is not a number", []string{"--rate", "Inf"}},
		{"rate negative", "rate must be >= 0", []string{"--rate", "-5"}},
		{"rate 1e12", "above the ceiling of 1e+08", []string{"--rate", "1e12"}},
		{"connections 2000000", "connections 2000000 is above the ceiling of 1048576", []string{"--connections", "2000000"}},
		{"connections 0", "connections must be at least 1", []string{"--connections", "0"}},
		{"rate NaN beside good connections", "rate NaN is not a number", []string{"--connections", "10", "--rate", "NaN"}},
	} {
		wantBadInput(t, "set "+tc.name, tc.want, append([]string{"set", "--zk", "127.0.0.1:1", "--wait", "0s"}, tc.args...)...)
	}
}

// TestURLCredentials: http://user:pw@host/ sends Authorization: Basic, as
// curl does, and the password shows nowhere: not in the report, not on
// stderr. A Go net/http server on loopback records what arrives.
func TestURLCredentials(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[string]int{}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.Header.Get("Authorization")]++
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	const secret = "s3cr%3At" // decodes to "s3cr:t"
	url := "http://us%40er:" + secret + "@" + ln.Addr().String() + "/x?y=1"
	r := barrage(t, "run", "-q", "--cores", "1", "-c", "2", "-r", "50", "-d", "1s", "--json", "-", url)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte("us@er:s3cr:t"))
	mu.Lock()
	got, all := seen[want], len(seen)
	mu.Unlock()
	if got == 0 || all != 1 {
		t.Fatalf("the server saw Authorization headers %v, want only %q", seen, want)
	}
	if n := num(t, r.report, "requests"); n < 1 {
		t.Fatalf("%v responses", n)
	}
	if tg, _ := r.report["target"].(string); tg != "http://"+ln.Addr().String()+"/x?y=1" {
		t.Fatalf("report target %q, want the URL without credentials", tg)
	}
	for _, s := range []string{r.stdout, r.stderr} {
		if strings.Contains(s, "s3cr") || strings.Contains(s, "us%40er") {
			t.Fatalf("credentials in the output:\n%s", s)
		}
	}
	// An Authorization header and URL credentials together: which to send
	// would be a guess.
	wantBadInput(t, "credentials twice", "give one of them", "run", "-q", "-H", "Authorization: Bearer x", "http://u:pw@127.0.0.1:1/")
	// A bad URL's message hides the password too (exit 1: a bad URL).
	r = barrage(t, "run", "-q", "http://u:hunter2@127.0.0.1:99999/")
	if r.code != 1 || strings.Contains(r.stderr, "hunter2") || !strings.Contains(r.stderr, "bad port") || strings.Contains(r.stderr, "bad URL:") {
		t.Fatalf("bad port with credentials: exit %d, %q", r.code, r.stderr)
	}
}

var versionLine = regexp.MustCompile(`^barrage (\S+) (commit ([0-9a-f]{7,64})( \(modified\))?|commit unknown) go\d+\.\d+\S*\n$`)

// TestVersion: --version and `barrage version` name the build: the module
// version and the commit the go command recorded, or the one `make build`
// passes with -ldflags -X when the go command records none (a git
// worktree, GOFLAGS=-buildvcs=false).
func TestVersion(t *testing.T) {
	a, b := barrage(t, "--version"), barrage(t, "version")
	if a.code != 0 || b.code != 0 || a.stdout != b.stdout || !versionLine.MatchString(a.stdout) {
		t.Fatalf("--version: exit %d %q; version: exit %d %q", a.code, a.stdout, b.code, b.stdout)
	}
	// The commit printed is the one recorded in the binary, if any.
	info, err := exec.Command("go", "version", "-m", binary).Output()
	if err != nil {
		t.Fatal(err)
	}
	rev := regexp.MustCompile(`vcs\.revision=([0-9a-f]+)`).FindSubmatch(info)
	m := versionLine.FindStringSubmatch(a.stdout)
	if rev != nil && m[3] != string(rev[1]) || rev == nil && m[2] != "commit unknown" {
		t.Fatalf("version says %q, the build info says %q", a.stdout, rev)
	}
	// The -ldflags fallback.
	bin := filepath.Join(t.TempDir(), "barrage")
	const commit = "0123456789abcdef0123456789abcdef01234567"
	out, err := exec.Command("go", "build", "-buildvcs=false", "-ldflags", "-X main.buildCommit="+commit+"+modified", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	out, err = exec.Command(bin, "--version").Output()
	if err != nil || !strings.Contains(string(out), "commit "+commit+" (modified)") || !versionLine.Match(out) {
		t.Fatalf("ldflags build: %v %q", err, out)
	}
}
