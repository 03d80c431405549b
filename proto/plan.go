// Package proto holds what the coordinator, the agents and the command line
// exchange: the test plan, the per-interval statistics and their wire
// encodings. It imports no other package of the project.
package proto

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// Defaults of a plan, applied by Normalize to every zero field.
const (
	DefaultMethod         = "GET"
	DefaultDuration       = 10 * time.Second
	DefaultConnections    = 64
	DefaultPipeline       = 1
	DefaultTimeout        = 10 * time.Second
	DefaultConnectTimeout = 5 * time.Second
	// MaxPipeline bounds the requests in flight on one connection; deeper
	// pipelines only hide the target's latency behind the generator's queue.
	MaxPipeline = 1024
	// MaxConnections bounds one plan's connection count (a whole fleet's).
	MaxConnections = 1 << 20
	// MaxPlanBytes bounds a plan file. A plan travels in a znode, and
	// ZooKeeper's default limit for one is 1 MB; a larger file is a
	// mistake (or /dev/zero), not a plan.
	MaxPlanBytes = 1 << 20
)

// Pattern types.
const (
	PatternConstant = "constant"
	PatternRamp     = "ramp"
	PatternSteps    = "steps"
	PatternSpike    = "spike"
)

// ErrBadPlan occurs when a plan, a flag, a live change or a budget is out
// of bounds or malformed. Every validation error matches it with
// errors.Is; its text is only the line that says what to fix.
var ErrBadPlan = errors.New("proto: bad plan")

// Duration is a time.Duration that reads "1.5s"-style strings (and plain
// numbers of seconds) from JSON and YAML, and writes the string form.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String returns the duration in Go's notation.
func (d Duration) String() string { return time.Duration(d).String() }

// secondsDuration converts a number of seconds, refusing what no
// time.Duration holds (NaN, ±Inf, beyond ±292 years): float-to-int
// conversion of those is undefined in Go and gave arbitrary durations.
func secondsDuration(f float64) (Duration, error) {
	ns := f * float64(time.Second)
	if !finite(ns) || math.Abs(ns) >= math.MaxInt64 {
		return 0, fmt.Errorf("duration %g s is out of range", f)
	}
	return Duration(ns), nil
}

func parseDuration(s string) (Duration, error) {
	s = strings.TrimSpace(s)
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return secondsDuration(f)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("bad duration %q (want e.g. 10s, 500ms, 2m)", s)
	}
	return Duration(v), nil
}

// MarshalJSON writes the duration as a string such as "10s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads "10s" or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var f float64
		if err2 := json.Unmarshal(b, &f); err2 != nil {
			return fmt.Errorf("bad duration %s (want e.g. \"10s\")", b)
		}
		v, err := secondsDuration(f)
		*d = v
		return err
	}
	v, err := parseDuration(s)
	*d = v
	return err
}

// MarshalYAML writes the duration as a string such as "10s".
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// UnmarshalYAML reads "10s" or a number of seconds.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := parseDuration(n.Value)
	*d = v
	return err
}

// Step is one stage of a "steps" pattern.
type Step struct {
	Duration    Duration `json:"duration" yaml:"duration"`
	Rate        float64  `json:"rate" yaml:"rate"`
	Connections int      `json:"connections,omitempty" yaml:"connections,omitempty"`
}

// Pattern shapes the load over the test's duration.
type Pattern struct {
	// Type is constant (the default), ramp, steps or spike.
	Type string `json:"type" yaml:"type"`
	// From and To are a ramp's rates at its start and end.
	From float64 `json:"from,omitempty" yaml:"from,omitempty"`
	To   float64 `json:"to,omitempty" yaml:"to,omitempty"`
	// Steps are the stages of a steps pattern; the test lasts their sum.
	Steps []Step `json:"steps,omitempty" yaml:"steps,omitempty"`
	// SpikeRate is the rate during a spike, which begins At into the test
	// and lasts For; outside it the plan's Rate holds.
	SpikeRate float64  `json:"spike_rate,omitempty" yaml:"spike_rate,omitempty"`
	At        Duration `json:"at,omitempty" yaml:"at,omitempty"`
	For       Duration `json:"for,omitempty" yaml:"for,omitempty"`
}

// Plan is one load test: what to send, how hard, for how long.
type Plan struct {
	TargetURL string            `json:"target_url" yaml:"target_url"`
	Method    string            `json:"method,omitempty" yaml:"method,omitempty"`
	Headers   map[string]string `json:"headers,omitempty" yaml:"headers,omitempty"`
	Body      string            `json:"body,omitempty" yaml:"body,omitempty"`
	// BodyFile is read into Body by Load; a path relative to the plan file.
	BodyFile string   `json:"body_file,omitempty" yaml:"body_file,omitempty"`
	Duration Duration `json:"duration,omitempty" yaml:"duration,omitempty"`
	// Rate is requests per second over all connections; 0 selects the closed
	// model (every connection keeps Pipeline requests in flight).
	Rate           float64  `json:"rate,omitempty" yaml:"rate,omitempty"`
	Connections    int      `json:"connections,omitempty" yaml:"connections,omitempty"`
	Pipeline       int      `json:"pipeline,omitempty" yaml:"pipeline,omitempty"`
	Timeout        Duration `json:"timeout,omitempty" yaml:"timeout,omitempty"`
	ConnectTimeout Duration `json:"connect_timeout,omitempty" yaml:"connect_timeout,omitempty"`
	Pattern        Pattern  `json:"pattern,omitzero" yaml:"pattern,omitempty"`
	// ExpectStatus lists the status codes that count as success; empty
	// means every code below 400. A response with any other code counts
	// as an error (http_4xx, http_5xx, or other).
	ExpectStatus []int `json:"expect_status,omitempty" yaml:"expect_status,omitempty"`
	// Raw sends the plan's one request (method, headers, body) as written:
	// no variables.
	Raw bool `json:"raw,omitempty" yaml:"raw,omitempty"`
	// Requests is a mix: each request is picked by its weight, and the
	// report breaks its figures down by request name. Top-level method
	// and headers are every request's defaults; top-level body is then
	// not allowed.
	Requests []Request `json:"requests,omitempty" yaml:"requests,omitempty"`
	// Data are the data files requests draw variables from, by name.
	Data map[string]Data `json:"data,omitempty" yaml:"data,omitempty"`
	// Seed seeds every generator's random choices (which request, random
	// variables, random rows): each event loop of each agent draws from
	// its own stream derived from it. 0 lets the command pick one (and
	// show it in the report).
	Seed uint64 `json:"seed,omitempty" yaml:"seed,omitempty"`
	// Secret names headers whose values are secrets besides those
	// IsSecretHeader knows: redacted wherever the plan is shown.
	Secret []string `json:"secret_headers,omitempty" yaml:"secret_headers,omitempty"`

	// NoKeepAlive sends one request per connection ("Connection: close")
	// and opens a new connection for the next: connect (and TLS
	// handshake) time becomes part of every request's cycle, and is
	// reported on its own. A "Connection: close" header sets it.
	NoKeepAlive bool `json:"no_keepalive,omitempty" yaml:"no_keepalive,omitempty"`

	// TLS, for https:// targets only (see tls.go). The files are paths
	// on the box that runs the engine: in a fleet, on every agent's box
	// (the plan carries the paths, never a certificate or a key).
	//
	// Insecure skips the verification of the server's certificate.
	// CACert is a PEM file of authorities to trust instead of the
	// system's. Cert and Key are a PEM client certificate (chain) and
	// its private key, for servers that ask for one (mTLS). TLSMin is
	// the lowest version offered, "1.2" (the default) or "1.3".
	// Ciphers are the TLS 1.2 cipher suites offered, by Go name (TLS
	// 1.3's are not configurable). TLSResume resumes sessions (tickets)
	// on reconnects; by default every connection makes a full handshake.
	Insecure  bool     `json:"insecure,omitempty" yaml:"insecure,omitempty"`
	CACert    string   `json:"cacert,omitempty" yaml:"cacert,omitempty"`
	Cert      string   `json:"cert,omitempty" yaml:"cert,omitempty"`
	Key       string   `json:"key,omitempty" yaml:"key,omitempty"`
	TLSMin    string   `json:"tls_min,omitempty" yaml:"tls_min,omitempty"`
	Ciphers   []string `json:"ciphers,omitempty" yaml:"ciphers,omitempty"`
	TLSResume bool     `json:"tls_resume,omitempty" yaml:"tls_resume,omitempty"`

	// Retry sends a request that failed with a listed kind again, the
	// same bytes, after a backoff (see retry.go); nil: no retries.
	// Breaker is the generator's circuit breaker; nil: none.
	Retry   *Retry   `json:"retry,omitempty" yaml:"retry,omitempty"`
	Breaker *Breaker `json:"breaker,omitempty" yaml:"breaker,omitempty"`
	// Thresholds are pass/fail criteria on the results ("p99 < 250ms",
	// "status_429 > 10%"; the syntax is report.ParseThreshold's), judged
	// at the end; a failed one makes the command exit 3. AbortOnFail also
	// judges them live and stops the test when one fails; Degrade lowers
	// the load, or stops the test, when errors stay high (guard.go).
	Thresholds  []string     `json:"thresholds,omitempty" yaml:"thresholds,omitempty"`
	AbortOnFail *AbortOnFail `json:"abort_on_fail,omitempty" yaml:"abort_on_fail,omitempty"`
	Degrade     *Degrade     `json:"degrade,omitempty" yaml:"degrade,omitempty"`
}

// planFields is Plan without its JSON methods (so they can call the
// default encoding without recursing).
type planFields Plan

// planWire is a plan as JSON carries it between the coordinator and the
// agents: a body that is not valid UTF-8 (a binary body_file) travels as
// base64, because encoding/json would replace its bytes with U+FFFD and
// every agent would send a corrupted body.
type planWire struct {
	planFields
	BodyBase64 string `json:"body_base64,omitempty"`
}

// MarshalJSON encodes the plan, a binary body as body_base64.
func (p Plan) MarshalJSON() ([]byte, error) {
	w := planWire{planFields: planFields(p)}
	if !utf8.ValidString(p.Body) {
		w.Body, w.BodyBase64 = "", base64.StdEncoding.EncodeToString([]byte(p.Body))
	}
	return json.Marshal(&w)
}

// UnmarshalJSON decodes what MarshalJSON writes.
func (p *Plan) UnmarshalJSON(b []byte) error {
	var w planWire
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	if w.BodyBase64 != "" {
		if w.Body != "" {
			return bad("give body or body_base64, not both")
		}
		body, err := base64.StdEncoding.DecodeString(w.BodyBase64)
		if err != nil {
			return bad("body_base64: %v", err)
		}
		w.Body = string(body)
	}
	*p = Plan(w.planFields)
	return nil
}

// LoadPlan reads a plan from a YAML or JSON file (YAML is a superset of JSON),
// rejecting unknown fields, then normalizes and validates it. Errors name
// the file and say what to fix, in one line.
func LoadPlan(path string) (*Plan, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, bad("cannot read the plan: %v", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxPlanBytes+1))
	if err != nil {
		return nil, bad("cannot read the plan %s: %v", path, err)
	}
	if len(b) > MaxPlanBytes {
		return nil, bad("plan %s is larger than %d bytes", path, MaxPlanBytes)
	}
	p, err := ParsePlan(b)
	if err != nil {
		return nil, bad("%s: %v", path, err)
	}
	if err := p.resolveFiles(path); err != nil {
		return nil, err
	}
	p.resolveTLSFiles(filepath.Dir(path))
	return p, nil
}

// LoadPlanSource is LoadPlan that also returns where each field lies in
// the file, for messages that point at a line and a column.
func LoadPlanSource(path string) (*Plan, *Source, error) {
	p, err := LoadPlan(path)
	if err != nil {
		return nil, nil, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return p, nil, nil
	}
	return p, newSource(path, b), nil
}

// resolveFiles reads body files into bodies and makes data file paths
// absolute, both relative to the plan file's directory.
func (p *Plan) resolveFiles(path string) error {
	rel := func(f string) string {
		if filepath.IsAbs(f) {
			return f
		}
		return filepath.Join(filepath.Dir(path), f)
	}
	read := func(what, f string) (string, error) {
		body, err := os.ReadFile(rel(f))
		if err != nil {
			return "", bad("%s: %s: %v", path, what, err)
		}
		if len(body) > MaxPlanBytes {
			return "", bad("%s: %s %s is larger than %d bytes (a body travels inside the plan)", path, what, f, MaxPlanBytes)
		}
		return string(body), nil
	}
	if p.BodyFile != "" {
		if p.Body != "" {
			return bad("%s: give body or body_file, not both", path)
		}
		body, err := read("body_file", p.BodyFile)
		if err != nil {
			return err
		}
		p.Body, p.BodyFile = body, ""
	}
	for i := range p.Requests {
		r := &p.Requests[i]
		if r.BodyFile == "" {
			continue
		}
		if r.Body != "" {
			return bad("%s: request %q: give body or body_file, not both", path, r.Name)
		}
		body, err := read(fmt.Sprintf("request %q: body_file", r.Name), r.BodyFile)
		if err != nil {
			return err
		}
		r.Body, r.BodyFile = body, ""
	}
	for k, d := range p.Data {
		if abs, err := filepath.Abs(rel(d.File)); err == nil {
			d.File = abs
			p.Data[k] = d
		}
	}
	return nil
}

// givenFields are the fields whose explicit zero CheckGiven refuses.
var givenFields = []string{"connections", "pipeline", "duration", "timeout", "connect_timeout"}

// ParsePlan decodes a YAML or JSON plan, then normalizes and validates it.
// A field given as zero where zero makes no sense (connections: 0) is an
// error, not a request for the default: see CheckGiven.
func ParsePlan(b []byte) (*Plan, error) {
	// First as a tree: to tell an empty plan from a broken one, and to
	// see which keys are present (a zero field left out takes its
	// default; one written as 0 is a mistake).
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, bad("the plan is empty (want at least target_url: http://HOST:PORT/)")
		}
		return nil, bad("%s", yamlMessage(err))
	}
	var more yaml.Node
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		return nil, bad("the plan holds more than one YAML document (one plan per file)")
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil, bad("the plan is empty (want at least target_url: http://HOST:PORT/)")
	}
	if root.Kind != yaml.MappingNode {
		return nil, bad("the plan must be a mapping of fields (target_url: ..., rate: ...), not a %s", kindName(root))
	}
	var given []string
	for i := 0; i+1 < len(root.Content); i += 2 {
		given = append(given, root.Content[i].Value)
	}

	var p Plan
	kd := yaml.NewDecoder(bytes.NewReader(b))
	kd.KnownFields(true)
	if err := kd.Decode(&p); err != nil {
		return nil, bad("%s", yamlMessage(err))
	}
	if err := p.CheckGiven(given...); err != nil {
		return nil, err
	}
	p.Normalize()
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		return "single value"
	case yaml.AliasNode:
		return "alias"
	}
	return "document"
}

// goTypes turns yaml's Go type names, which mean nothing to a user, into
// words ("field ratez not found in type proto.Plan").
var goTypes = strings.NewReplacer(
	" in type proto.Plan", "", " in type proto.Pattern", " in pattern", " in type proto.Step", " in a step",
	" in type proto.Degrade", " in degrade", " in type proto.AbortOnFail", " in abort_on_fail",
	" in type proto.Request", " in a request", " in type proto.Data", " in a data file",
	" in type proto.Retry", " in retry", " in type proto.Breaker", " in breaker",
	"[]proto.Step", "a list of steps", "[]proto.Request", "a list of requests", "map[string]proto.Data", "a mapping of data files",
	"proto.Plan", "a plan", "proto.Pattern", "a pattern", "proto.Request", "a request", "proto.Data", "a data file",
	"proto.Step", "a step", "proto.Duration", "a duration", "proto.Retry", "a retry section", "proto.Breaker", "a breaker section", "proto.FailOn", "a list of failure kinds", "proto.Jitter", "a jitter kind", "proto.Ratio", "a share", "map[string]string", "a mapping", "[]int", "a list of numbers",
	"[]string", "a list of names",
)

// yamlMessage makes one line of a YAML decoding error (a TypeError lists
// one problem per line).
func yamlMessage(err error) string {
	var te *yaml.TypeError
	msg := err.Error()
	if errors.As(err, &te) {
		msg = strings.Join(te.Errors, "; ")
	}
	msg = strings.TrimPrefix(msg, "yaml: ")
	msg = goTypes.Replace(msg)
	return strings.Join(strings.Fields(msg), " ")
}

// CheckGiven refuses a zero in a field given explicitly where zero makes no
// sense, with the message that says what to give: "connections: 0" in a
// plan file, or "-c 0" on the command line, is a mistake, not a request
// for the default (left out, the field takes its default). fields are plan
// field names (connections, pipeline, duration, timeout, connect_timeout;
// others are ignored); call it before Normalize, which fills zeros.
func (p *Plan) CheckGiven(fields ...string) error {
	for _, f := range fields {
		switch f {
		case "connections":
			if p.Connections == 0 {
				return bad("connections must be at least 1; leave it out for the default %d", DefaultConnections)
			}
		case "pipeline":
			if p.Pipeline == 0 {
				return bad("pipeline must be at least 1; leave it out for the default %d", DefaultPipeline)
			}
		case "duration":
			if p.Duration == 0 {
				if p.Pattern.Type == PatternSteps {
					return bad("duration must be positive; leave it out to use the steps' sum")
				}
				return bad("duration must be positive; leave it out for the default %s", DefaultDuration)
			}
		case "timeout":
			if p.Timeout == 0 {
				return bad("timeout must be positive; leave it out for the default %s", DefaultTimeout)
			}
		case "connect_timeout":
			if p.ConnectTimeout == 0 {
				return bad("connect_timeout must be positive; leave it out for the default %s", DefaultConnectTimeout)
			}
		}
	}
	return nil
}

// Normalize fills every zero field with its default, moves credentials
// from the target URL into an Authorization header (see MoveCredentials;
// a conflict is left for Validate to report), and makes empty lists and
// maps nil so that a plan reads back equal after encoding.
func (p *Plan) Normalize() {
	if p.Method == "" {
		p.Method = DefaultMethod
	}
	p.Method = strings.ToUpper(p.Method)
	if p.Pattern.Type == "" {
		p.Pattern.Type = PatternConstant
	}
	if p.Duration == 0 {
		if p.Pattern.Type == PatternSteps && len(p.Pattern.Steps) > 0 {
			var d Duration
			for _, s := range p.Pattern.Steps {
				// Saturate: a sum past MaxDuration is refused by Validate,
				// and must not wrap into a plausible one first.
				if s.Duration > 0 && d <= Duration(MaxDuration) {
					d += min(s.Duration, Duration(MaxDuration)+1)
				}
			}
			p.Duration = d
		} else {
			p.Duration = Duration(DefaultDuration)
		}
	}
	if p.Connections == 0 {
		p.Connections = DefaultConnections
	}
	if p.Pipeline == 0 {
		p.Pipeline = DefaultPipeline
	}
	if p.Timeout == 0 {
		p.Timeout = Duration(DefaultTimeout)
	}
	if p.ConnectTimeout == 0 {
		p.ConnectTimeout = Duration(DefaultConnectTimeout)
	}
	_ = p.MoveCredentials()
	p.normalizeRequests()
	p.normalizeRetry()
	p.moveConnection()
	if len(p.Headers) == 0 {
		p.Headers = nil
	}
	if len(p.ExpectStatus) == 0 {
		p.ExpectStatus = nil
	}
	if len(p.Ciphers) == 0 {
		p.Ciphers = nil
	}
	if len(p.Pattern.Steps) == 0 {
		p.Pattern.Steps = nil
	}
	p.normalizeGuards()
}

// ParseTarget checks a target URL and returns it parsed: http:// or
// https://, with a host. Messages never show a password.
func ParseTarget(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, bad("target_url is missing")
	}
	shown := redactURL(raw)
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error quotes the whole URL, password included: keep its cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, bad("target_url %q is not a URL: %v", shown, err)
	}
	switch u.Scheme {
	case "http", "https":
	default:
		return nil, bad("target_url %q: want http://HOST[:PORT]/PATH or https://HOST[:PORT]/PATH", shown)
	}
	if u.Hostname() == "" {
		return nil, bad("target_url %q has no host", shown)
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return nil, bad("target_url %q: bad port %q", shown, p)
		}
	}
	return u, nil
}

// Validate reports the first thing wrong with a normalized plan, in one
// line that says what to fix. It is the one bound check for plans from
// files, flags and ZooKeeper alike: every number finite and within the
// bounds in bounds.go, every field used by the pattern it belongs to.
func (p *Plan) Validate() error {
	u, err := ParseTarget(p.TargetURL)
	if err != nil {
		return err
	}
	if u.User != nil {
		if p.hasHeader("Authorization") {
			return bad("target_url has user:password and the plan also sets an Authorization header: give one of them")
		}
		return bad("target_url carries user:password; Normalize moves them into an Authorization header")
	}
	if p.Method == "" {
		return bad("method is missing")
	}
	for _, c := range p.Method {
		if c < 'A' || c > 'Z' {
			return bad("method %q is not an HTTP method", p.Method)
		}
	}
	if err := checkHeaders(p.Headers); err != nil {
		return err
	}
	if err := CheckRate(p.Rate); err != nil {
		return err
	}
	if err := CheckConnections(p.Connections); err != nil {
		return err
	}
	if p.Pipeline < 1 || p.Pipeline > MaxPipeline {
		return bad("pipeline must be between 1 and %d, got %d", MaxPipeline, p.Pipeline)
	}
	if err := checkDur("timeout", p.Timeout, MaxTimeout); err != nil {
		return err
	}
	if err := checkDur("connect_timeout", p.ConnectTimeout, MaxTimeout); err != nil {
		return err
	}
	if err := checkExpectStatus(p.ExpectStatus); err != nil {
		return err
	}
	if p.NoKeepAlive && p.Pipeline > 1 {
		return bad("no_keepalive sends one request per connection: pipeline must be 1, got %d", p.Pipeline)
	}
	if err := p.validateTLS(u.Scheme == "https"); err != nil {
		return err
	}
	if err := p.validateRequests(); err != nil {
		return err
	}
	if err := p.validateRetry(); err != nil {
		return err
	}
	if err := p.validatePattern(); err != nil {
		return err
	}
	if err := p.validateGuards(); err != nil {
		return err
	}
	return checkDur("duration", p.Duration, MaxDuration)
}

// checkExpectStatus: three-digit codes, each once.
func checkExpectStatus(codes []int) error {
	var seen [1000]bool
	for _, c := range codes {
		if c < 100 || c > 999 {
			return bad("expect_status %d is not an HTTP status code (100 to 999)", c)
		}
		if seen[c] {
			return bad("expect_status lists %d twice", c)
		}
		seen[c] = true
	}
	return nil
}

// CheckHeaders checks header names and values as a plan's are checked (a
// live header change's, read from ZooKeeper).
func CheckHeaders(h map[string]string) error { return checkHeaders(h) }

// checkHeaders applies the rules proto/http1's encoder enforces, so a plan
// that passes here is one the engine can send (the coordinator, which
// never links the engine, checks with the same rules).
func checkHeaders(h map[string]string) error {
	// In name order, so the same plan always reports the same header.
	names := make([]string, 0, len(h))
	for name := range h {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		value := h[name]
		if !isToken(name) {
			return bad("header name %q is not a token (letters, digits and !#$%%&'*+-.^_`|~)", name)
		}
		for i := 0; i < len(value); i++ {
			if c := value[i]; c < 0x20 && c != '\t' || c == 0x7f {
				return bad("header %s has a control character in its value", name)
			}
		}
		for _, f := range []string{"Content-Length", "Transfer-Encoding"} {
			if strings.EqualFold(name, f) {
				return bad("header %s is set by barrage itself", name)
			}
		}
		if strings.EqualFold(name, "Connection") {
			// Normalize takes "close" and "keep-alive" out (see
			// moveConnection); any other value is barrage's to write.
			return bad("header Connection: %q: only \"close\" (one request per connection, as --no-keepalive) or \"keep-alive\" (the default) may be given", value)
		}
	}
	return nil
}

// isToken reports whether s is an RFC 9110 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// unused names the first field set that pattern type t does not read, so
// a plan that says "steps:" but forgot "type: steps" is refused instead of
// running a constant load.
func (p *Plan) unused() string {
	pt := &p.Pattern
	set := []struct {
		name string
		on   bool
		used []string
	}{
		{"rate", p.Rate != 0, []string{PatternConstant, PatternSpike}},
		{"from", pt.From != 0, []string{PatternRamp}},
		{"to", pt.To != 0, []string{PatternRamp}},
		{"steps", len(pt.Steps) > 0, []string{PatternSteps}},
		{"spike_rate", pt.SpikeRate != 0, []string{PatternSpike}},
		{"at", pt.At != 0, []string{PatternSpike}},
		{"for", pt.For != 0, []string{PatternSpike}},
	}
	for _, f := range set {
		if f.on && !contains(f.used, pt.Type) {
			return f.name
		}
	}
	return ""
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (p *Plan) validatePattern() error {
	pt := &p.Pattern
	switch pt.Type {
	case PatternConstant, PatternRamp, PatternSteps, PatternSpike:
	default:
		return bad("pattern type %q is not one of constant, ramp, steps, spike", pt.Type)
	}
	if f := p.unused(); f != "" {
		why := ""
		switch {
		case f == "rate" && pt.Type == PatternRamp:
			why = " (a ramp goes from `from` to `to`)"
		case f == "rate" && pt.Type == PatternSteps:
			why = " (each step has its own rate)"
		case f == "steps":
			why = " (did you mean type: steps?)"
		}
		return bad("%s does not apply to a %s pattern%s", f, pt.Type, why)
	}
	switch pt.Type {
	case PatternRamp:
		if err := checkRate("ramp from", pt.From, MaxRate, "the ceiling"); err != nil {
			return err
		}
		if err := checkRate("ramp to", pt.To, MaxRate, "the ceiling"); err != nil {
			return err
		}
		if pt.From == 0 && pt.To == 0 {
			return bad("ramp needs from and/or to rates above 0")
		}
	case PatternSteps:
		if len(pt.Steps) > MaxSteps {
			return bad("steps pattern has %d steps, more than %d", len(pt.Steps), MaxSteps)
		}
		var sum Duration
		for i, s := range pt.Steps {
			n := i + 1
			if err := checkDur(fmt.Sprintf("step %d: duration", n), s.Duration, MaxDuration); err != nil {
				return err
			}
			if err := checkRate(fmt.Sprintf("step %d: rate", n), s.Rate, MaxRate, "the ceiling"); err != nil {
				return err
			}
			if s.Connections < 0 || s.Connections > MaxConnections {
				return bad("step %d: connections must be between 1 and %d (or 0 for the plan's), got %d", n, MaxConnections, s.Connections)
			}
			// A rate-0 step in a plan whose other steps have a rate is a
			// pause, not a switch to the closed model.
			sum += s.Duration
			if sum.D() > MaxDuration {
				return bad("steps last more than %s", MaxDuration)
			}
		}
		if sum != p.Duration {
			return bad("steps last %s but duration is %s (leave duration out to use the steps' sum)", sum, p.Duration)
		}
	case PatternSpike:
		if err := checkRate("spike_rate", pt.SpikeRate, MaxRate, "the ceiling"); err != nil {
			return err
		}
		if p.Rate <= 0 || pt.SpikeRate <= 0 {
			return bad("spike needs rate (the base) and spike_rate above 0")
		}
		// Each bounded before the sum, which then cannot wrap.
		if pt.For <= 0 || pt.At < 0 || pt.At.D() > MaxDuration || pt.For.D() > MaxDuration || pt.At+pt.For > p.Duration {
			return bad("spike at %s for %s must fit inside duration %s", pt.At, pt.For, p.Duration)
		}
	}
	return nil
}

// Open reports whether the plan uses the open model (a paced arrival rate)
// rather than the closed model (as fast as the target answers).
func (p *Plan) Open() bool {
	if p.Rate > 0 {
		return true
	}
	switch p.Pattern.Type {
	case PatternRamp:
		return true
	case PatternSteps:
		for _, s := range p.Pattern.Steps {
			if s.Rate > 0 {
				return true
			}
		}
	}
	return false
}

// Segment is one piece of a schedule: for Duration from Start (both from the
// test's start) the rate goes linearly from From to To requests per second
// (0 in the closed model) with Connections connections. Step numbers the
// report row the segment belongs to.
type Segment struct {
	Start       time.Duration `json:"start"`
	Duration    time.Duration `json:"duration"`
	From        float64       `json:"from"`
	To          float64       `json:"to"`
	Connections int           `json:"connections"`
	Step        int           `json:"step"`
}

// End is the segment's end time from the test's start.
func (s Segment) End() time.Duration { return s.Start + s.Duration }

// Schedule turns a normalized, valid plan into its segments.
func (p *Plan) Schedule() []Segment {
	d := p.Duration.D()
	switch p.Pattern.Type {
	case PatternRamp:
		return []Segment{{Duration: d, From: p.Pattern.From, To: p.Pattern.To, Connections: p.Connections}}
	case PatternSteps:
		var out []Segment
		var at time.Duration
		for i, s := range p.Pattern.Steps {
			c := s.Connections
			if c == 0 {
				c = p.Connections
			}
			out = append(out, Segment{Start: at, Duration: s.Duration.D(), From: s.Rate, To: s.Rate, Connections: c, Step: i})
			at += s.Duration.D()
		}
		return out
	case PatternSpike:
		at, dur := p.Pattern.At.D(), p.Pattern.For.D()
		var out []Segment
		step := 0
		if at > 0 {
			out = append(out, Segment{Duration: at, From: p.Rate, To: p.Rate, Connections: p.Connections, Step: step})
			step++
		}
		out = append(out, Segment{Start: at, Duration: dur, From: p.Pattern.SpikeRate, To: p.Pattern.SpikeRate, Connections: p.Connections, Step: step})
		step++
		if rest := d - at - dur; rest > 0 {
			out = append(out, Segment{Start: at + dur, Duration: rest, From: p.Rate, To: p.Rate, Connections: p.Connections, Step: step})
		}
		return out
	}
	return []Segment{{Duration: d, From: p.Rate, To: p.Rate, Connections: p.Connections}}
}

// StepLabel names segment s of a schedule for the report.
func StepLabel(s Segment) string {
	if s.From == s.To {
		if s.From == 0 {
			return fmt.Sprintf("%s closed c=%d", s.Duration, s.Connections)
		}
		return fmt.Sprintf("%s @%g/s c=%d", s.Duration, s.From, s.Connections)
	}
	return fmt.Sprintf("%s %g→%g/s c=%d", s.Duration, s.From, s.To, s.Connections)
}
