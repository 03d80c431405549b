package coord

import (
	"errors"
	"fmt"
	"io"
	"log"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"
)

// DefaultSessionTimeout is the ZooKeeper session timeout: an agent killed
// without warning is seen as lost about this long after.
const DefaultSessionTimeout = 2 * time.Second

// ParseHosts splits "h1:2181,h2:2181" into server addresses.
func ParseHosts(s string) ([]string, error) {
	var out []string
	for _, h := range strings.Split(s, ",") {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if !strings.Contains(h, ":") {
			h += ":2181"
		}
		out = append(out, h)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no ZooKeeper address given (--zk HOST:PORT[,HOST:PORT...])", ErrZooKeeper)
	}
	return out, nil
}

// Logger receives the ZooKeeper client's messages; nil discards them.
type Logger interface{ Printf(string, ...any) }

// Dial opens a ZooKeeper session and waits until it is established, at most
// timeout; unreachable servers give ErrZooKeeper at once after the timeout
// rather than a client that retries forever.
func Dial(hosts string, sessionTimeout, timeout time.Duration, logger Logger) (*zk.Conn, <-chan zk.Event, error) {
	servers, err := ParseHosts(hosts)
	if err != nil {
		return nil, nil, err
	}
	if logger == nil {
		logger = log.New(io.Discard, "", 0)
	}
	conn, events, err := zk.Connect(servers, sessionTimeout, zk.WithLogger(logger), zk.WithLogInfo(false))
	if err != nil {
		return nil, nil, fmt.Errorf("%w at %s: %v", ErrZooKeeper, hosts, err)
	}
	deadline := time.After(timeout)
	for {
		select {
		case ev := <-events:
			if ev.State == zk.StateHasSession {
				return conn, events, nil
			}
			if ev.State == zk.StateAuthFailed {
				conn.Close()
				return nil, nil, fmt.Errorf("%w at %s: authentication failed", ErrZooKeeper, hosts)
			}
		case <-deadline:
			conn.Close()
			return nil, nil, fmt.Errorf("%w at %s: no session within %s (is ZooKeeper running there?)", ErrZooKeeper, hosts, timeout)
		}
	}
}

// ensure creates path and its parents as persistent nodes if missing.
func ensure(c *zk.Conn, path string) error {
	_, err := ensureMade(c, path)
	return err
}

// ensureMade is ensure, and returns the nodes it created, parents first.
func ensureMade(c *zk.Conn, path string) ([]string, error) {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	cur := ""
	var made []string
	for _, p := range parts {
		cur += "/" + p
		err := retry(5*time.Second, func() error {
			_, err := c.Create(cur, nil, 0, zk.WorldACL(zk.PermAll))
			return err
		})
		if err == nil {
			made = append(made, cur)
		} else if !errors.Is(err, zk.ErrNodeExists) {
			return made, fmt.Errorf("coord: cannot create %s: %w", cur, err)
		}
	}
	return made, nil
}

// retry runs fn until it succeeds or fails with something other than a
// lost connection, for at most d: a ZooKeeper leader change closes the
// connection for about a second while the session survives.
func retry(d time.Duration, fn func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := fn()
		if err == nil || !transient(err) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func transient(err error) bool {
	return errors.Is(err, zk.ErrConnectionClosed) || errors.Is(err, zk.ErrNoServer) ||
		errors.Is(err, zk.ErrClosing) || errors.Is(err, zk.ErrSessionMoved)
}

// deleteTree removes path and everything under it.
func deleteTree(c *zk.Conn, path string) error {
	kids, _, err := c.Children(path)
	if errors.Is(err, zk.ErrNoNode) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, k := range kids {
		if err := deleteTree(c, path+"/"+k); err != nil {
			return err
		}
	}
	err = c.Delete(path, -1)
	if errors.Is(err, zk.ErrNoNode) {
		return nil
	}
	return err
}
