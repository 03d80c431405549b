package dashboard

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/barrage-load/barrage/live"
	"github.com/barrage-load/barrage/proto"
	"github.com/barrage-load/barrage/web"
)

// Push: the page gets a Server-Sent Events stream, not a WebSocket. The
// page only listens (controls are plain POSTs beside it), so a one-way
// stream is all it needs; EventSource reconnects by itself after a
// network blip or a restart, and each (re)connection starts with a
// "hello" holding everything so far, so nothing is lost between
// reconnections; it is plain HTTP/1.1 (works through any proxy that
// streams, needs no extra dependency, and a test can read it with
// net/http). A stream writes at least once a second: a "tick" when
// intervals arrived, else a "status" heartbeat.

// HeartbeatEvery is the longest a stream stays silent.
const HeartbeatEvery = time.Second

// writeTimeout bounds one write to a stream: a client that stops reading
// is dropped rather than kept.
const writeTimeout = 10 * time.Second

// ErrBadAddr occurs when --http is not a port or host:port.
var ErrBadAddr = errors.New("dashboard: bad listen address")

// ParseAddr turns --http's value into a listen address: a bare port
// ("8080" or ":8080") means loopback (127.0.0.1); "0.0.0.0:8080" or a
// host:port listens where it says.
func ParseAddr(s string) (string, error) {
	s = strings.TrimSpace(s)
	port := strings.TrimPrefix(s, ":")
	if n, err := strconv.Atoi(port); err == nil && !strings.ContainsAny(port, "+-") {
		if n < 0 || n > 65535 {
			return "", fmt.Errorf("%w %q: port %d is not in 0..65535", ErrBadAddr, s, n)
		}
		return net.JoinHostPort("127.0.0.1", port), nil
	}
	host, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", fmt.Errorf("%w %q: want a port (8080: loopback) or host:port", ErrBadAddr, s)
	}
	if n, err := strconv.Atoi(p); err != nil || n < 0 || n > 65535 {
		return "", fmt.Errorf("%w %q: bad port %q", ErrBadAddr, s, p)
	}
	return net.JoinHostPort(host, p), nil
}

// NewToken returns a fresh control token (128 random bits, hex).
func NewToken() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("BUG: dashboard: no randomness: " + err.Error())
	}
	return hex.EncodeToString(b[:])
}

// Options configure a Server.
type Options struct {
	// Addr is where to listen (ParseAddr's result).
	Addr string
	// Recorder feeds the page and the API; nil serves only /metrics and
	// the health endpoints (an agent).
	Recorder *Recorder
	// Control changes or stops the test; nil makes the page read-only.
	Control live.Controller
	// Token guards the controls (required with Control). It is never
	// logged.
	Token string
	// Metrics, if set, is served at /metrics.
	Metrics http.Handler
	// Ready, if set, answers /readyz (nil error: 200) and /healthz is
	// served (200 while the process runs).
	Ready func() error
}

// Server is the dashboard's HTTP server.
type Server struct {
	o    Options
	ln   net.Listener
	srv  *http.Server
	quit chan struct{}
	once sync.Once
	done chan struct{}
	// loopback: every Host header must name a loopback host (no DNS
	// rebinding from a web page the user visits).
	loopback bool
	tokenSum [sha256.Size]byte
}

// Start listens on o.Addr and serves in the background.
func Start(o Options) (*Server, error) {
	if o.Control != nil && o.Token == "" {
		return nil, errors.New("dashboard: controls need a token")
	}
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return nil, fmt.Errorf("dashboard: cannot listen on %s: %w", o.Addr, err)
	}
	s := &Server{o: o, ln: ln, quit: make(chan struct{}), done: make(chan struct{}), tokenSum: sha256.Sum256([]byte(o.Token))}
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok && tcp.IP.IsLoopback() {
		s.loopback = true
	}
	if o.Recorder != nil {
		o.Recorder.SetControl(o.Control != nil)
	}
	s.srv = &http.Server{Handler: s.routes(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: nil}
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(ln)
	}()
	return s, nil
}

// Addr is the address listened on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// URL is the page's address.
func (s *Server) URL() string {
	host, port, _ := net.SplitHostPort(s.Addr())
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/"
}

// Close ends the streams (a stream that has not yet sent the final report
// gets up to grace to send it), then the server.
func (s *Server) Close(grace time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	// Streams end by themselves once they sent the final report; those
	// still open at the deadline are cut.
	_ = s.srv.Shutdown(ctx)
	s.once.Do(func() { close(s.quit) })
	_ = s.srv.Close()
	<-s.done
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	if s.o.Metrics != nil {
		mux.Handle("GET /metrics", s.o.Metrics)
	}
	if s.o.Ready != nil {
		mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			io.WriteString(w, "ok\n")
		})
		mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			if err := s.o.Ready(); err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				io.WriteString(w, "not ready: "+err.Error()+"\n")
				return
			}
			io.WriteString(w, "ready\n")
		})
	}
	if s.o.Recorder != nil {
		assets, _ := fs.Sub(web.FS, ".")
		mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Write(web.Asset("dashboard.html"))
		})
		mux.Handle("GET /assets/", http.StripPrefix("/assets/", http.FileServerFS(assets)))
		mux.HandleFunc("GET /api/stream", s.stream)
		mux.HandleFunc("GET /api/metrics", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, s.o.Recorder.Current()) })
		mux.HandleFunc("GET /api/timeline", s.timeline)
		mux.HandleFunc("GET /api/report", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, s.o.Recorder.Report()) })
		mux.HandleFunc("POST /api/auth", s.auth(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
		mux.HandleFunc("POST /api/control", s.auth(s.control))
		mux.HandleFunc("POST /api/stop", s.auth(s.stop))
	}
	return s.guard(mux)
}

// guard sets the headers every answer carries and refuses a Host that is
// not loopback when the server listens on loopback.
func (s *Server) guard(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.loopback && !loopbackHost(r.Host) {
			http.Error(w, "this dashboard answers only to a loopback host name", http.StatusMisdirectedRequest)
			return
		}
		hd := w.Header()
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}

func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

func (s *Server) timeline(w http.ResponseWriter, r *http.Request) {
	secs := 0.0
	if v := r.URL.Query().Get("seconds"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < 0 || math.IsNaN(f) || math.IsInf(f, 0) {
			writeError(w, http.StatusBadRequest, "seconds must be a number >= 0 (0: the whole run)")
			return
		}
		secs = f
	}
	samples, events := s.o.Recorder.Timeline(secs)
	writeJSON(w, http.StatusOK, map[string]any{"samples": samples, "events": events})
}

// auth lets a request through only with the control token, compared in
// constant time (of equal-length digests, so its length leaks nothing
// either). The token is never logged.
func (s *Server) auth(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.o.Control == nil {
			writeError(w, http.StatusNotFound, "this dashboard is read-only (no controls)")
			return
		}
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || got == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="barrage"`)
			writeError(w, http.StatusUnauthorized, "the controls need the token printed at start")
			return
		}
		sum := sha256.Sum256([]byte(got))
		if subtle.ConstantTimeCompare(sum[:], s.tokenSum[:]) != 1 {
			writeError(w, http.StatusForbidden, "wrong token")
			return
		}
		next(w, r)
	}
}

// controlRequest is POST /api/control's body.
type controlRequest struct {
	Rate        *float64 `json:"rate"`
	Connections int      `json:"connections"`
}

func (s *Server) control(w http.ResponseWriter, r *http.Request) {
	var req controlRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 4096))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "want {\"rate\": R, \"connections\": C} (either or both): "+err.Error())
		return
	}
	ch := live.Keep("dashboard")
	if req.Rate != nil {
		ch.Rate = *req.Rate
	}
	ch.Connections = req.Connections
	if !ch.SetsRate() && ch.Connections == 0 {
		writeError(w, http.StatusBadRequest, "nothing to change: give rate and/or connections")
		return
	}
	if req.Connections < 0 {
		writeError(w, http.StatusBadRequest, "connections must be > 0")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	at, err := s.o.Control.Change(ctx, ch)
	if err != nil {
		code := http.StatusConflict
		if errors.Is(err, proto.ErrBadPlan) || errors.Is(err, live.ErrClosedModel) {
			code = http.StatusBadRequest
		}
		writeError(w, code, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]float64{"at_seconds": at.Seconds()})
}

func (s *Server) stop(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Reason string `json:"reason"`
	}
	_ = json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&req)
	reason := "stopped from the dashboard"
	if t := strings.TrimSpace(req.Reason); t != "" && len(t) <= 200 && t != reason {
		reason += ": " + t
	}
	s.o.Control.Stop(reason)
	writeJSON(w, http.StatusAccepted, map[string]string{"stopping": reason})
}

// stream is /api/stream: a hello with everything so far, then a tick per
// change and a status heartbeat when a second passed without one. It
// ends after it sent the final report.
func (s *Server) stream(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rec := s.o.Recorder
	send := func(event string, v any) bool {
		b, err := json.Marshal(v)
		if err != nil {
			return false
		}
		_ = rc.SetWriteDeadline(time.Now().Add(writeTimeout))
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	var cur Cursor
	hello := true
	beat := time.NewTimer(HeartbeatEvery)
	defer beat.Stop()
	for {
		t, next, changed, ok := rec.Since(cur, hello)
		if ok {
			name := "tick"
			if hello {
				name = "hello"
			}
			if !send(name, t) {
				return
			}
			hello, cur = false, next
			if t.Final != nil {
				return
			}
			beat.Reset(HeartbeatEvery)
		}
		select {
		case <-r.Context().Done():
			return
		case <-s.quit:
			return
		case <-changed:
		case <-beat.C:
			if !send("status", rec.Status()) {
				return
			}
			beat.Reset(HeartbeatEvery)
		}
	}
}
