package proto

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Retries and the circuit breaker: what a plan says about them, how their
// failure kinds are spelt, and the counters they add to Stats (stats.go).

// Defaults of a plan's retry and breaker sections, applied by Normalize to
// every zero field of a section that is present.
const (
	DefaultRetryBackoff  = BackoffExponential
	DefaultRetryBase     = 50 * time.Millisecond
	DefaultRetryMaxDelay = 2 * time.Second
	DefaultRetryJitter   = JitterFull

	DefaultBreakerWindow   = 10 * time.Second
	DefaultBreakerMinCalls = 20
	DefaultBreakerRate     = 0.5
	DefaultBreakerOpenFor  = 5 * time.Second
	DefaultBreakerProbes   = 5

	// MaxAttempts bounds retry.max: past a handful, retries only multiply
	// the load on a target that is failing.
	MaxAttempts = 10
	// MaxRetryDelay bounds retry.base and retry.max_delay.
	MaxRetryDelay = time.Hour
	// MinBreakerWindow bounds breaker.window from below: the breaker
	// decides on a tick of a twentieth of its window, at least 10 ms.
	MinBreakerWindow = 100 * time.Millisecond
	// MaxBreakerProbes bounds breaker.half_open_probes.
	MaxBreakerProbes = 1000
	// MaxBreakerMinCalls bounds breaker.min_calls.
	MaxBreakerMinCalls = 1 << 30
	// MaxBreakerEvents bounds the breaker's transitions one snapshot may
	// carry (the breaker decides at most 100 times a second).
	MaxBreakerEvents = 1024
)

// Backoff shapes.
const (
	BackoffExponential = "exponential" // base, 2*base, 4*base, ... capped at max_delay
	BackoffConstant    = "constant"    // base every time
)

// Jitter kinds: how a retry's delay d is randomized (from each event
// loop's own deterministic stream, seeded from the plan's seed).
const (
	JitterFull  = "full"  // uniform in [0, d]
	JitterEqual = "equal" // d/2 plus uniform in [0, d/2]
	JitterNone  = "none"  // d exactly
)

// DefaultFailOn is what retries are made for, and what the breaker counts
// as failures, when the plan does not say.
var DefaultFailOn = []string{"connect", "timeout", "reset", "5xx", "429"}

// Jitter is a retry's jitter kind: "full", "equal" or "none"; a plan may
// also write true (full) or false (none).
type Jitter string

// UnmarshalYAML reads a kind or a boolean.
func (j *Jitter) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("jitter: want full, equal, none, true or false")
	}
	*j = jitterOf(n.Value)
	return nil
}

// UnmarshalJSON reads a kind or a boolean.
func (j *Jitter) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	switch x := v.(type) {
	case bool:
		*j = jitterOf(strconv.FormatBool(x))
	case string:
		*j = jitterOf(x)
	default:
		return fmt.Errorf("jitter: want full, equal, none, true or false")
	}
	return nil
}

func jitterOf(s string) Jitter {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "yes":
		return JitterFull
	case "false", "no":
		return JitterNone
	}
	return Jitter(strings.ToLower(strings.TrimSpace(s)))
}

// FailOn lists failure kinds: "connect", "timeout", "reset", "protocol",
// "4xx", "5xx", or a status code (e.g. 429, 503). A plan may write the
// codes as numbers.
type FailOn []string

// UnmarshalJSON reads a list of names and numbers.
func (f *FailOn) UnmarshalJSON(b []byte) error {
	var vs []any
	if err := json.Unmarshal(b, &vs); err != nil {
		return fmt.Errorf("on: want a list of failure kinds, e.g. [timeout, 5xx, 429]")
	}
	out := FailOn{}
	for _, v := range vs {
		switch x := v.(type) {
		case string:
			out = append(out, x)
		case float64:
			out = append(out, strconv.FormatFloat(x, 'f', -1, 64))
		default:
			return fmt.Errorf("on: %v is no failure kind", v)
		}
	}
	*f = out
	return nil
}

// Retry is a plan's retry section: a request whose attempt fails with one
// of the kinds in On is sent again, the same bytes, after a backoff, for
// up to Max attempts in all (the first included, as resilience4j's
// maxAttempts: max 3 is the first send and two retries).
type Retry struct {
	// Max is the most attempts a request makes, the first included (2
	// to MaxAttempts): at most Max-1 retries.
	Max int `json:"max" yaml:"max"`
	// Backoff is "exponential" (the default: Base, 2*Base, 4*Base, ...)
	// or "constant" (Base every time); either is capped at MaxDelay.
	Backoff string `json:"backoff,omitempty" yaml:"backoff,omitempty"`
	// Base is the first retry's delay (default 50ms); MaxDelay caps every
	// delay (default 2s, at least Base).
	Base     Duration `json:"base,omitempty" yaml:"base,omitempty"`
	MaxDelay Duration `json:"max_delay,omitempty" yaml:"max_delay,omitempty"`
	// Jitter randomizes each delay d: "full" (the default, uniform in
	// [0, d]), "equal" (d/2 + uniform in [0, d/2]) or "none".
	Jitter Jitter `json:"jitter,omitempty" yaml:"jitter,omitempty"`
	// On lists the failures retried (default DefaultFailOn). The breaker
	// counts the same kinds as failures.
	On FailOn `json:"on,omitempty" yaml:"on,omitempty"`
}

// Ratio is a share written "50%" or 0.5.
type Ratio float64

// MarshalJSON writes the ratio as a percentage string.
func (r Ratio) MarshalJSON() ([]byte, error) { return json.Marshal(r.String()) }

// MarshalYAML writes the ratio as a percentage string.
func (r Ratio) MarshalYAML() (any, error) { return r.String(), nil }

// String writes the ratio as a percentage ("50%").
func (r Ratio) String() string { return strconv.FormatFloat(float64(r)*100, 'f', -1, 64) + "%" }

// UnmarshalJSON reads "50%" or 0.5.
func (r *Ratio) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	switch x := v.(type) {
	case float64:
		*r = Ratio(x)
		return nil
	case string:
		return r.parse(x)
	}
	return fmt.Errorf("error_rate: want a share, e.g. 50%% or 0.5")
}

// UnmarshalYAML reads "50%" or 0.5.
func (r *Ratio) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("error_rate: want a share, e.g. 50%% or 0.5")
	}
	return r.parse(n.Value)
}

func (r *Ratio) parse(s string) error {
	s = strings.TrimSpace(s)
	pct := strings.HasSuffix(s, "%")
	f, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(s, "%")), 64)
	if err != nil {
		return fmt.Errorf("error_rate %q: want a share, e.g. 50%% or 0.5", s)
	}
	if pct {
		f /= 100
	}
	*r = Ratio(f)
	return nil
}

// Breaker is a plan's circuit breaker, one per generator (each agent's
// engine has its own): it opens when, over the last Window, at least
// MinCalls calls ended and ErrorRate of them or more failed (the kinds of
// the retry section's On, or DefaultFailOn); while open the requests due
// are shed (Stats.Shed[ShedCircuit]) and no retry is made; after OpenFor it
// lets HalfOpenProbes requests through: if they all succeed it closes,
// if one fails it opens again.
type Breaker struct {
	Window         Duration `json:"window,omitempty" yaml:"window,omitempty"`
	MinCalls       int      `json:"min_calls,omitempty" yaml:"min_calls,omitempty"`
	ErrorRate      Ratio    `json:"error_rate,omitempty" yaml:"error_rate,omitempty"`
	OpenFor        Duration `json:"open_for,omitempty" yaml:"open_for,omitempty"`
	HalfOpenProbes int      `json:"half_open_probes,omitempty" yaml:"half_open_probes,omitempty"`
}

// normalizeRetry fills the zero fields of the retry and breaker sections
// that are present.
func (p *Plan) normalizeRetry() {
	if r := p.Retry; r != nil {
		if r.Backoff == "" {
			r.Backoff = DefaultRetryBackoff
		}
		r.Backoff = strings.ToLower(r.Backoff)
		if r.Base == 0 {
			r.Base = Duration(DefaultRetryBase)
		}
		if r.MaxDelay == 0 {
			r.MaxDelay = Duration(max(DefaultRetryMaxDelay, r.Base.D()))
		}
		if r.Jitter == "" {
			r.Jitter = DefaultRetryJitter
		}
		if len(r.On) == 0 {
			r.On = append(FailOn(nil), DefaultFailOn...)
		}
		for i, k := range r.On {
			r.On[i] = strings.ToLower(strings.TrimSpace(k))
		}
	}
	if b := p.Breaker; b != nil {
		if b.Window == 0 {
			b.Window = Duration(DefaultBreakerWindow)
		}
		if b.MinCalls == 0 {
			b.MinCalls = DefaultBreakerMinCalls
		}
		if b.ErrorRate == 0 {
			b.ErrorRate = DefaultBreakerRate
		}
		if b.OpenFor == 0 {
			b.OpenFor = Duration(DefaultBreakerOpenFor)
		}
		if b.HalfOpenProbes == 0 {
			b.HalfOpenProbes = DefaultBreakerProbes
		}
	}
}

// validateRetry checks the retry and breaker sections of a normalized plan.
func (p *Plan) validateRetry() error {
	if r := p.Retry; r != nil {
		if r.Max < 2 || r.Max > MaxAttempts {
			return bad("retry.max must be between 2 and %d attempts in all (the first included), got %d (leave retry out for none)", MaxAttempts, r.Max)
		}
		switch r.Backoff {
		case BackoffExponential, BackoffConstant:
		default:
			return bad("retry.backoff %q is not one of exponential, constant", r.Backoff)
		}
		if err := checkDur("retry.base", r.Base, MaxRetryDelay); err != nil {
			return err
		}
		if err := checkDur("retry.max_delay", r.MaxDelay, MaxRetryDelay); err != nil {
			return err
		}
		if r.MaxDelay < r.Base {
			return bad("retry.max_delay %s is shorter than retry.base %s", r.MaxDelay, r.Base)
		}
		switch r.Jitter {
		case JitterFull, JitterEqual, JitterNone:
		default:
			return bad("retry.jitter %q is not one of full (or true), equal, none (or false)", r.Jitter)
		}
		if _, err := ParseFailOn(r.On); err != nil {
			return bad("retry.on: %v", err)
		}
	}
	if b := p.Breaker; b != nil {
		if err := checkDur("breaker.window", b.Window, MaxTimeout); err != nil {
			return err
		}
		if b.Window.D() < MinBreakerWindow {
			return bad("breaker.window %s is shorter than %s", b.Window, MinBreakerWindow)
		}
		if b.MinCalls < 1 || b.MinCalls > MaxBreakerMinCalls {
			return bad("breaker.min_calls must be between 1 and %d, got %d", MaxBreakerMinCalls, b.MinCalls)
		}
		if f := float64(b.ErrorRate); !finite(f) || f <= 0 || f > 1 {
			return bad("breaker.error_rate %s is not a share above 0%% and at most 100%%", b.ErrorRate)
		}
		if err := checkDur("breaker.open_for", b.OpenFor, MaxTimeout); err != nil {
			return err
		}
		if b.HalfOpenProbes < 1 || b.HalfOpenProbes > MaxBreakerProbes {
			return bad("breaker.half_open_probes must be between 1 and %d, got %d", MaxBreakerProbes, b.HalfOpenProbes)
		}
	}
	return nil
}

// FailKinds lists what retries are made for and the breaker counts as
// failures: the retry section's On, or DefaultFailOn.
func (p *Plan) FailKinds() []string {
	if p.Retry != nil && len(p.Retry.On) > 0 {
		return p.Retry.On
	}
	return DefaultFailOn
}

// FailSet is a compiled FailOn: which transport failures and which status
// codes count.
type FailSet struct {
	// Connect: failed connects and TLS handshakes (the breaker counts
	// them; no request fails at connect, see README).
	Connect bool
	Kinds   [NumErrKinds]bool
	Status  [MaxStatus]bool
}

// ParseFailOn compiles a list of failure kinds; it refuses an unknown
// kind, a code outside 100..599 and a kind listed twice.
func ParseFailOn(on []string) (FailSet, error) {
	var fs FailSet
	if len(on) == 0 {
		return fs, fmt.Errorf("an empty list (leave it out for %s)", strings.Join(DefaultFailOn, ", "))
	}
	seen := map[string]bool{}
	for _, raw := range on {
		k := strings.ToLower(strings.TrimSpace(raw))
		if seen[k] {
			return fs, fmt.Errorf("%q is listed twice", raw)
		}
		seen[k] = true
		switch k {
		case "connect":
			fs.Connect = true
		case "timeout":
			fs.Kinds[ErrTimeout] = true
		case "reset":
			fs.Kinds[ErrReset] = true
		case "protocol":
			fs.Kinds[ErrProtocol] = true
		case "4xx", "5xx":
			lo := 400
			if k == "5xx" {
				lo = 500
			}
			for c := lo; c < lo+100; c++ {
				fs.Status[c] = true
			}
		default:
			c, err := strconv.Atoi(k)
			if err != nil || c < 100 || c > 599 {
				return fs, fmt.Errorf("%q is not one of connect, timeout, reset, protocol, 4xx, 5xx or a status code (100 to 599)", raw)
			}
			fs.Status[c] = true
		}
	}
	return fs, nil
}

// RetryCause is why an attempt was retried.
type RetryCause int

// Retry causes.
const (
	RetryTimeout RetryCause = iota
	RetryReset
	RetryProtocol
	Retry429
	// Retry4xx is a listed 4xx other than 429.
	Retry4xx
	Retry5xx
	// RetryStatusOther is a listed code outside 400..599.
	RetryStatusOther
	NumRetryCauses
)

var retryCauseNames = [NumRetryCauses]string{"timeout", "reset", "protocol", "429", "4xx", "5xx", "status_other"}

// String names the cause as the report and the JSON show it.
func (c RetryCause) String() string {
	if c < 0 || c >= NumRetryCauses {
		return "unknown"
	}
	return retryCauseNames[c]
}

// StatusCause is the cause of retrying a response with this code.
func StatusCause(code int) RetryCause {
	switch {
	case code == 429:
		return Retry429
	case code >= 400 && code < 500:
		return Retry4xx
	case code >= 500 && code < 600:
		return Retry5xx
	}
	return RetryStatusOther
}

// KindCause is the cause of retrying a request that failed with k
// (ErrTimeout, ErrReset or ErrProtocol).
func KindCause(k ErrKind) RetryCause {
	switch k {
	case ErrTimeout:
		return RetryTimeout
	case ErrProtocol:
		return RetryProtocol
	}
	return RetryReset
}

// RetryDrop says why a retry that was called for was never sent. Each
// such request ends there (it counts as failed, never as the target's
// latency beyond the wait it had).
type RetryDrop int

// Retry drops.
const (
	// RetryDropCircuit: the circuit breaker was open (or half-open with
	// no probe left) when the retry was called for or came due.
	RetryDropCircuit RetryDrop = iota
	// RetryDropBacklog: the retry came due and waited for a free
	// connection longer than the request timeout.
	RetryDropBacklog
	// RetryDropFull: the loop's retry queue was full (MaxRetryQueue).
	RetryDropFull
	// RetryDropEnd: the retry was still waiting when the run ended.
	RetryDropEnd
	NumRetryDrops
)

var retryDropNames = [NumRetryDrops]string{"circuit", "backlog", "queue_full", "end"}

// String names the drop as the report and the JSON show it.
func (d RetryDrop) String() string {
	if d < 0 || d >= NumRetryDrops {
		return "unknown"
	}
	return retryDropNames[d]
}

// Breaker states, as events name them.
const (
	BreakerClosed   = "closed"
	BreakerOpen     = "open"
	BreakerHalfOpen = "half-open"
)

// BreakerEvent is one transition of a generator's circuit breaker.
type BreakerEvent struct {
	// At is when, from the test's start.
	At time.Duration `json:"at_ns"`
	// State is the state entered: BreakerOpen, BreakerHalfOpen or
	// BreakerClosed.
	State string `json:"state"`
	// Calls and Failed are what decided it: for an opening from closed,
	// the calls that ended in the window and the failures among them;
	// for one from half-open, the probes that failed (Failed) of those
	// answered (Calls); for a closing, the probes that succeeded.
	Calls  uint64 `json:"calls,omitempty"`
	Failed uint64 `json:"failed,omitempty"`
	// Agent names the generator in a fleet (set when the snapshot is
	// folded; empty from `run`).
	Agent string `json:"agent,omitempty"`
}

// checkBreakerEvents checks events decoded from a snapshot.
func checkBreakerEvents(evs []BreakerEvent) error {
	if len(evs) > MaxBreakerEvents {
		return fmt.Errorf("%w: %d breaker events, more than %d", ErrBadSnapshot, len(evs), MaxBreakerEvents)
	}
	for _, e := range evs {
		switch e.State {
		case BreakerClosed, BreakerOpen, BreakerHalfOpen:
		default:
			return fmt.Errorf("%w: breaker state %q", ErrBadSnapshot, e.State)
		}
		if e.At < 0 || e.At.Hours() > MaxDuration.Hours()*2 || len(e.Agent) > 256 {
			return fmt.Errorf("%w: breaker event at %d", ErrBadSnapshot, e.At)
		}
	}
	return nil
}

// TotalRetries counts the attempts that were retries.
func (s *Stats) TotalRetries() uint64 {
	var n uint64
	for _, x := range s.Retries {
		n += x
	}
	return n
}

// TotalRetryDropped counts the retries called for and never sent.
func (s *Stats) TotalRetryDropped() uint64 {
	var n uint64
	for _, x := range s.RetryDropped {
		n += x
	}
	return n
}

// Logical counts the requests sent for the first time: every attempt
// that was not a retry. In the open model, Scheduled == Logical() +
// TotalShed() + the tokens still waiting.
func (s *Stats) Logical() uint64 { return s.Sent - min(s.TotalRetries(), s.Sent) }

// RetryAccounting checks the retries' identity, true at the end of a run
// (between intervals retries wait in the queues): every failure that
// called for a retry (Requeued) was retried or dropped. It returns ""
// when it holds, or the sentence that says how it fails.
func (s *Stats) RetryAccounting() string {
	if r, d := s.TotalRetries(), s.TotalRetryDropped(); s.Requeued != r+d {
		return fmt.Sprintf("retries called for %d != retries sent %d + dropped %d", s.Requeued, r, d)
	}
	if s.EndToEnd != nil {
		if n := uint64(s.EndToEnd.TotalCount()); n != s.Logical() {
			return fmt.Sprintf("end-to-end latencies %d != requests sent %d (attempts %d - retries %d)", n, s.Logical(), s.Sent, s.TotalRetries())
		}
	}
	return ""
}

// ParseBreaker reads the --breaker flag: "on" (every field its default)
// or comma-separated key=value pairs of the plan's breaker section, e.g.
// "error_rate=50%,min_calls=20,window=10s,open_for=5s,half_open_probes=5"
// ("probes" is short for half_open_probes). The section it returns is not
// normalized nor validated (Plan.Normalize and Validate do it, as for a
// plan file).
func ParseBreaker(s string) (*Breaker, error) {
	b := &Breaker{}
	s = strings.TrimSpace(s)
	if s == "" || strings.EqualFold(s, "on") || strings.EqualFold(s, "true") {
		return b, nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return nil, bad("--breaker: %q is not key=value (keys: window, min_calls, error_rate, open_for, half_open_probes)", kv)
		}
		k, v = strings.ToLower(strings.TrimSpace(k)), strings.TrimSpace(v)
		var err error
		switch k {
		case "window", "open_for":
			var d time.Duration
			if d, err = time.ParseDuration(v); err == nil {
				if k == "window" {
					b.Window = Duration(d)
				} else {
					b.OpenFor = Duration(d)
				}
			}
		case "min_calls", "half_open_probes", "probes":
			var n int
			if n, err = strconv.Atoi(v); err == nil {
				if k == "min_calls" {
					b.MinCalls = n
				} else {
					b.HalfOpenProbes = n
				}
			}
		case "error_rate":
			err = b.ErrorRate.parse(v)
		default:
			return nil, bad("--breaker: unknown key %q (keys: window, min_calls, error_rate, open_for, half_open_probes)", k)
		}
		if err != nil {
			return nil, bad("--breaker: %s=%q: %v", k, v, err)
		}
	}
	// An explicit zero would read as "the default" after Normalize.
	if b.MinCalls < 0 || b.HalfOpenProbes < 0 || b.Window < 0 || b.OpenFor < 0 || b.ErrorRate < 0 {
		return nil, bad("--breaker: negative value in %q", s)
	}
	for _, kv := range strings.Split(s, ",") {
		if k, v, _ := strings.Cut(kv, "="); strings.TrimSpace(v) == "0" || strings.TrimSpace(v) == "0s" || strings.TrimSpace(v) == "0%" {
			return nil, bad("--breaker: %s must be above 0", strings.TrimSpace(k))
		}
	}
	return b, nil
}
