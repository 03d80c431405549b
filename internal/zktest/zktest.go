// Package zktest starts real ZooKeeper servers (Debian's zookeeper package)
// for tests: standalone or a loopback ensemble, on free ports with private
// data dirs, stopped by PID when the test ends.
package zktest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Jars are where Debian's zookeeper package puts its classpath.
var Jars = []string{
	"/usr/share/java/zookeeper.jar", // its manifest's Class-Path names the rest
	"/usr/share/java/slf4j-simple.jar",
}

// TickTime is small so sessions (and ephemeral nodes) can expire in ~2 s.
const TickTime = 200 * time.Millisecond

// Server is one ZooKeeper server process.
type Server struct {
	Addr    string // 127.0.0.1:PORT
	Dir     string
	cmd     *exec.Cmd
	done    chan struct{}
	logPath string
}

func classpath() (string, error) {
	if _, err := os.Stat(Jars[0]); err != nil {
		return "", fmt.Errorf("zktest: ZooKeeper is not installed (%s missing); run scripts/install-deps.sh", Jars[0])
	}
	var have []string
	for _, j := range Jars {
		if _, err := os.Stat(j); err == nil {
			have = append(have, j)
		}
	}
	return strings.Join(have, ":"), nil
}

// FreePort asks the OS for a free TCP port on loopback.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// config writes zoo.cfg for one server.
func config(dir string, port int, peers []string, id int) error {
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "tickTime=%d\ndataDir=%s\nclientPort=%d\nclientPortAddress=127.0.0.1\n", TickTime.Milliseconds(), filepath.Join(dir, "data"), port)
	b.WriteString("admin.enableServer=false\n4lw.commands.whitelist=ruok,srvr,stat,mntr\n")
	fmt.Fprintf(&b, "minSessionTimeout=%d\nmaxSessionTimeout=%d\n", 2*TickTime.Milliseconds(), 60000)
	b.WriteString("maxClientCnxns=0\n")
	if len(peers) > 0 {
		b.WriteString("initLimit=10\nsyncLimit=5\n")
		for i, p := range peers {
			fmt.Fprintf(&b, "server.%d=%s\n", i+1, p)
		}
		if err := os.WriteFile(filepath.Join(dir, "data", "myid"), []byte(fmt.Sprintf("%d\n", id)), 0o644); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(dir, "zoo.cfg"), []byte(b.String()), 0o644)
}

// launch starts java on dir's config.
func launch(dir string, port int) (*Server, error) {
	cp, err := classpath()
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "zk.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("java", "-Xms16m", "-Xmx128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-XX:-UsePerfData",
		"-Dzookeeper.log.dir="+dir, "-cp", cp, "org.apache.zookeeper.server.quorum.QuorumPeerMain", filepath.Join(dir, "zoo.cfg"))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("zktest: cannot start java: %w", err)
	}
	s := &Server{Addr: fmt.Sprintf("127.0.0.1:%d", port), Dir: dir, cmd: cmd, done: make(chan struct{}), logPath: logPath}
	go func() { _ = cmd.Wait(); logf.Close(); close(s.done) }()
	return s, nil
}

// PID is the server process's PID.
func (s *Server) PID() int { return s.cmd.Process.Pid }

// Kill stops the server with SIGKILL and waits for it.
func (s *Server) Kill() {
	_ = s.cmd.Process.Kill()
	<-s.done
}

// Stop stops the server with SIGTERM (SIGKILL after 5 s) and waits.
func (s *Server) Stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		s.Kill()
	}
}

// Alive reports whether the process still runs.
func (s *Server) Alive() bool {
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

func (s *Server) tail() string {
	b, _ := os.ReadFile(s.logPath)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return strings.Join(lines, "\n")
}

// Mode asks the server (four-letter word srvr) for its mode: standalone,
// leader or follower; "" when it does not serve.
func Mode(addr string) string {
	c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
	if err != nil {
		return ""
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("srvr")); err != nil {
		return ""
	}
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		if m, ok := strings.CutPrefix(sc.Text(), "Mode: "); ok {
			return strings.TrimSpace(m)
		}
	}
	return ""
}

// Ready waits until addr serves (srvr prints a Mode: line; ruok answers
// before that).
func Ready(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if Mode(addr) != "" {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("zktest: %s not serving after %s", addr, timeout)
}

// Start runs a standalone server for the test.
func Start(tb testing.TB) *Server {
	tb.Helper()
	var last error
	for try := 0; try < 3; try++ {
		port, err := FreePort()
		if err != nil {
			tb.Fatal(err)
		}
		dir := tb.TempDir()
		if err := config(dir, port, nil, 0); err != nil {
			tb.Fatal(err)
		}
		s, err := launch(dir, port)
		if err != nil {
			tb.Fatal(err)
		}
		if err := Ready(s.Addr, 30*time.Second); err != nil {
			last = fmt.Errorf("%v\n%s", err, s.tail())
			s.Kill()
			continue
		}
		tb.Cleanup(s.Kill)
		return s
	}
	tb.Fatalf("zktest: cannot start ZooKeeper: %v", last)
	return nil
}

// Ensemble is a quorum of servers on loopback.
type Ensemble struct{ Servers []*Server }

// StartEnsemble runs an n-node quorum for the test.
func StartEnsemble(tb testing.TB, n int) *Ensemble {
	tb.Helper()
	ports := make([]int, 3*n)
	for i := range ports {
		p, err := FreePort()
		if err != nil {
			tb.Fatal(err)
		}
		ports[i] = p
	}
	peers := make([]string, n)
	for i := 0; i < n; i++ {
		peers[i] = fmt.Sprintf("127.0.0.1:%d:%d", ports[n+i], ports[2*n+i])
	}
	e := &Ensemble{}
	for i := 0; i < n; i++ {
		dir := tb.TempDir()
		if err := config(dir, ports[i], peers, i+1); err != nil {
			tb.Fatal(err)
		}
		s, err := launch(dir, ports[i])
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(s.Kill)
		e.Servers = append(e.Servers, s)
	}
	for _, s := range e.Servers {
		if err := Ready(s.Addr, 60*time.Second); err != nil {
			tb.Fatalf("%v\n%s", err, s.tail())
		}
	}
	return e
}

// Addrs lists the servers' client addresses.
func (e *Ensemble) Addrs() []string {
	var out []string
	for _, s := range e.Servers {
		out = append(out, s.Addr)
	}
	return out
}

// Hosts is the comma-joined address list for --zk.
func (e *Ensemble) Hosts() string { return strings.Join(e.Addrs(), ",") }

// Leader is the index of the leader, or -1.
func (e *Ensemble) Leader() int {
	for i, s := range e.Servers {
		if s.Alive() && Mode(s.Addr) == "leader" {
			return i
		}
	}
	return -1
}
