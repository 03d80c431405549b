package fleet

import (
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"
)

// DefaultSessionTimeout is the ZooKeeper session timeout: an agent killed
// without warning is seen as lost about this long after, and an agent cut
// off from ZooKeeper stops sending this long after its last contact.
const DefaultSessionTimeout = 2 * time.Second

// MaxPacket bounds what the ZooKeeper client will read in one response,
// so a hostile node or a huge child list cannot make it allocate without
// limit (ZooKeeper's own default jute.maxbuffer is 1 MB).
const MaxPacket = 4 << 20

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

// Auth is a ZooKeeper digest identity.
type Auth struct{ User, Password string }

// ReadAuthFile reads "user:password" from the first line of a file: the
// secret never goes on a command line, where ps and shell histories show
// it.
func ReadAuthFile(path string) (*Auth, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("fleet: --zk-auth: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	line = strings.TrimSpace(line)
	user, pw, ok := strings.Cut(line, ":")
	if !ok || user == "" || pw == "" {
		return nil, fmt.Errorf("fleet: --zk-auth %s: want one line \"user:password\"", path)
	}
	if strings.ContainsAny(user, " \t") {
		return nil, fmt.Errorf("fleet: --zk-auth %s: the user name has blanks", path)
	}
	return &Auth{User: user, Password: pw}, nil
}

// Logger receives the ZooKeeper client's messages; nil discards them.
type Logger interface{ Printf(string, ...any) }

// DialOptions configure a session.
type DialOptions struct {
	Hosts          string
	SessionTimeout time.Duration // default DefaultSessionTimeout
	Timeout        time.Duration // to establish the session; default 5 s
	// Auth, if set, is added as a digest identity and every node barrage
	// creates gets an ACL for that identity alone.
	Auth   *Auth
	Logger Logger
}

// Session is one ZooKeeper session and what barrage tracks of it.
type Session struct {
	Conn    *zk.Conn
	auth    *Auth
	acl     []zk.ACL
	timeout time.Duration

	// id is the session barrage started with. go-zookeeper opens a new
	// session by itself after an expiry: whoever held leases or leadership
	// under the first one must not go on as if nothing happened.
	id        int64
	expired   chan struct{}
	expOnce   sync.Once
	connected atomic.Bool
	// downSince is when the connection was last lost (unix ns; 0 while
	// connected).
	downSince atomic.Int64
}

// Dial opens a ZooKeeper session and waits until it is established, at most
// o.Timeout.
func Dial(o DialOptions) (*Session, error) {
	servers, err := ParseHosts(o.Hosts)
	if err != nil {
		return nil, err
	}
	if o.SessionTimeout == 0 {
		o.SessionTimeout = DefaultSessionTimeout
	}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Second
	}
	var logger Logger = log.New(io.Discard, "", 0)
	if o.Logger != nil {
		logger = o.Logger
	}
	s := &Session{auth: o.Auth, timeout: o.SessionTimeout, expired: make(chan struct{})}
	s.acl = zk.WorldACL(zk.PermAll)
	if o.Auth != nil {
		s.acl = zk.DigestACL(zk.PermAll, o.Auth.User, o.Auth.Password)
	}
	ready := make(chan zk.State, 4)
	// The callback sees every state change; the event channel drops
	// events when nobody reads it.
	cb := func(ev zk.Event) {
		if ev.Type != zk.EventSession {
			return
		}
		switch ev.State {
		case zk.StateHasSession:
			s.connected.Store(true)
			s.downSince.Store(0)
		case zk.StateDisconnected, zk.StateConnecting:
			if s.connected.Swap(false) || s.downSince.Load() == 0 {
				s.downSince.CompareAndSwap(0, time.Now().UnixNano())
			}
		case zk.StateExpired:
			s.connected.Store(false)
			s.expOnce.Do(func() { close(s.expired) })
		}
		select {
		case ready <- ev.State:
		default:
		}
	}
	conn, _, err := zk.Connect(servers, o.SessionTimeout, zk.WithLogger(logger), zk.WithLogInfo(false),
		zk.WithEventCallback(cb), zk.WithMaxBufferSize(MaxPacket))
	if err != nil {
		return nil, fmt.Errorf("%w at %s: %v", ErrZooKeeper, o.Hosts, err)
	}
	s.Conn = conn
	deadline := time.After(o.Timeout)
	for {
		select {
		case st := <-ready:
			if st == zk.StateAuthFailed {
				conn.Close()
				return nil, fmt.Errorf("%w at %s: authentication failed", ErrZooKeeper, o.Hosts)
			}
			if st != zk.StateHasSession {
				continue
			}
			s.id = conn.SessionID()
			if o.Auth != nil {
				if err := conn.AddAuth("digest", []byte(o.Auth.User+":"+o.Auth.Password)); err != nil {
					conn.Close()
					return nil, fmt.Errorf("%w at %s: cannot authenticate as %q: %v", ErrZooKeeper, o.Hosts, o.Auth.User, err)
				}
			}
			return s, nil
		case <-deadline:
			conn.Close()
			return nil, fmt.Errorf("%w at %s: no session within %s (is ZooKeeper running there?)", ErrZooKeeper, o.Hosts, o.Timeout)
		}
	}
}

// Close ends the session. It waits at most 300 ms for ZooKeeper to
// acknowledge: go-zookeeper's own Close can wait seconds when the server
// is away, and a process stopping on SIGTERM has 2 s in all. Every call
// blocked on the session returns at once.
func (s *Session) Close() {
	done := make(chan struct{})
	go func() { s.Conn.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(300 * time.Millisecond):
	}
}

// Secure reports whether the session authenticated (--zk-auth).
func (s *Session) Secure() bool { return s.auth != nil }

// ACL is the ACL every node barrage creates gets.
func (s *Session) ACL() []zk.ACL { return s.acl }

// Timeout is the session timeout asked for.
func (s *Session) Timeout() time.Duration { return s.timeout }

// Expired is closed once the session barrage started with has expired
// (a new one may be open by then: go-zookeeper reconnects by itself).
func (s *Session) Expired() <-chan struct{} { return s.expired }

// IsExpired reports whether the first session expired.
func (s *Session) IsExpired() bool {
	select {
	case <-s.expired:
		return true
	default:
		return false
	}
}

// Down is how long the connection has been lost (0 while connected).
func (s *Session) Down() time.Duration {
	if at := s.downSince.Load(); at != 0 {
		return time.Since(time.Unix(0, at))
	}
	return 0
}

// Retry runs fn until it succeeds or fails with something other than a
// lost connection, for at most d: a ZooKeeper leader change closes the
// connection for about a second while the session survives.
func Retry(d time.Duration, fn func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := fn()
		if err == nil || !Transient(err) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Transient reports whether err is a lost connection that may heal.
func Transient(err error) bool {
	return errors.Is(err, zk.ErrConnectionClosed) || errors.Is(err, zk.ErrNoServer) ||
		errors.Is(err, zk.ErrSessionMoved)
}

// Ensure creates path and its parents as persistent nodes if missing, and
// returns the nodes it created, parents first. With --zk-auth it refuses
// an existing node that anyone may change.
func (s *Session) Ensure(path string) ([]string, error) {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	cur := ""
	var made []string
	for _, p := range parts {
		cur += "/" + p
		err := Retry(5*time.Second, func() error {
			_, err := s.Conn.Create(cur, nil, 0, s.acl)
			return err
		})
		switch {
		case err == nil:
			made = append(made, cur)
		case errors.Is(err, zk.ErrNodeExists):
			if err := s.CheckACL(cur); err != nil {
				return made, err
			}
		default:
			return made, fmt.Errorf("fleet: cannot create %s: %w", cur, err)
		}
	}
	return made, nil
}

// CheckACL refuses, under --zk-auth, a node that anyone may change.
func (s *Session) CheckACL(path string) error {
	if s.auth == nil {
		return nil
	}
	acl, _, err := s.Conn.GetACL(path)
	if err != nil {
		if errors.Is(err, zk.ErrNoAuth) {
			return fmt.Errorf("%w: %s belongs to another identity than %q", ErrOpenACL, path, s.auth.User)
		}
		return fmt.Errorf("fleet: cannot read the ACL of %s: %w", path, err)
	}
	for _, a := range acl {
		if a.Scheme == "world" && a.Perms&(zk.PermWrite|zk.PermCreate|zk.PermDelete|zk.PermAdmin) != 0 {
			return fmt.Errorf("%w: %s is world:anyone (made without --zk-auth); delete it or use another --zk-root", ErrOpenACL, path)
		}
	}
	return nil
}

// Create creates a node with the session's ACL.
func (s *Session) Create(path string, data []byte, flags int32) (string, error) {
	return s.Conn.Create(path, data, flags, s.acl)
}

// SetOrCreate writes data to path, creating the node if missing.
func (s *Session) SetOrCreate(path string, data []byte) error {
	_, err := s.Conn.Set(path, data, -1)
	if errors.Is(err, zk.ErrNoNode) {
		_, err = s.Conn.Create(path, data, 0, s.acl)
		if errors.Is(err, zk.ErrNodeExists) {
			_, err = s.Conn.Set(path, data, -1)
		}
	}
	return err
}

// DeleteTree removes path and everything under it.
func (s *Session) DeleteTree(path string) error {
	kids, _, err := s.Conn.Children(path)
	if errors.Is(err, zk.ErrNoNode) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, k := range kids {
		if err := s.DeleteTree(path + "/" + k); err != nil {
			return err
		}
	}
	err = s.Conn.Delete(path, -1)
	if errors.Is(err, zk.ErrNoNode) {
		return nil
	}
	return err
}
