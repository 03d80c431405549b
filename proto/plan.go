// Package proto holds what the coordinator, the agents and the command line
// exchange: the test plan, the per-interval statistics and their wire
// encodings. It imports no other package of the project.
package proto

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

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
	// MaxConnections bounds one plan's connection count.
	MaxConnections = 1 << 20
)

// Pattern types.
const (
	PatternConstant = "constant"
	PatternRamp     = "ramp"
	PatternSteps    = "steps"
	PatternSpike    = "spike"
)

// ErrBadPlan is wrapped by every validation error of a plan.
var ErrBadPlan = errors.New("proto: bad plan")

// Duration is a time.Duration that reads "1.5s"-style strings (and plain
// numbers of seconds) from JSON and YAML, and writes the string form.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String returns the duration in Go's notation.
func (d Duration) String() string { return time.Duration(d).String() }

func parseDuration(s string) (Duration, error) {
	s = strings.TrimSpace(s)
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return Duration(f * float64(time.Second)), nil
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
		*d = Duration(f * float64(time.Second))
		return nil
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
}

// LoadPlan reads a plan from a YAML or JSON file (YAML is a superset of JSON),
// rejecting unknown fields, then normalizes and validates it.
func LoadPlan(path string) (*Plan, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadPlan, err)
	}
	p, err := ParsePlan(b)
	if err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, path)
	}
	if p.BodyFile != "" {
		bf := p.BodyFile
		if !filepath.IsAbs(bf) {
			bf = filepath.Join(filepath.Dir(path), bf)
		}
		body, err := os.ReadFile(bf)
		if err != nil {
			return nil, fmt.Errorf("%w: body_file: %v", ErrBadPlan, err)
		}
		p.Body, p.BodyFile = string(body), ""
	}
	return p, nil
}

// ParsePlan decodes a YAML or JSON plan, then normalizes and validates it.
func ParsePlan(b []byte) (*Plan, error) {
	var p Plan
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadPlan, err)
	}
	p.Normalize()
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

// Normalize fills every zero field with its default.
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
				d += s.Duration
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
}

func bad(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrBadPlan, fmt.Sprintf(format, a...))
}

// ParseTarget checks a target URL and returns it parsed. Only http:// is
// served; the host must be given.
func ParseTarget(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, bad("target_url is missing")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, bad("target_url %q is not a URL: %v", raw, err)
	}
	switch u.Scheme {
	case "http":
	case "https":
		return nil, bad("target_url %q: https is not supported yet (use http://)", raw)
	default:
		return nil, bad("target_url %q: want http://HOST[:PORT]/PATH", raw)
	}
	if u.Hostname() == "" {
		return nil, bad("target_url %q has no host", raw)
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return nil, bad("target_url %q: bad port %q", raw, p)
		}
	}
	return u, nil
}

// Validate reports the first thing wrong with a normalized plan, in words
// that say what to fix.
func (p *Plan) Validate() error {
	if _, err := ParseTarget(p.TargetURL); err != nil {
		return err
	}
	for _, c := range p.Method {
		if c < 'A' || c > 'Z' {
			return bad("method %q is not an HTTP method", p.Method)
		}
	}
	if p.Duration <= 0 {
		return bad("duration must be positive, got %s", p.Duration)
	}
	if p.Rate < 0 {
		return bad("rate must be >= 0 (0 = as fast as the target answers), got %g", p.Rate)
	}
	if p.Connections < 1 || p.Connections > MaxConnections {
		return bad("connections must be between 1 and %d, got %d", MaxConnections, p.Connections)
	}
	if p.Pipeline < 1 || p.Pipeline > MaxPipeline {
		return bad("pipeline must be between 1 and %d, got %d", MaxPipeline, p.Pipeline)
	}
	if p.Timeout < 0 || p.ConnectTimeout < 0 {
		return bad("timeouts must be positive")
	}
	pt := &p.Pattern
	switch pt.Type {
	case PatternConstant:
	case PatternRamp:
		if pt.From < 0 || pt.To < 0 {
			return bad("ramp rates must be >= 0, got from %g to %g", pt.From, pt.To)
		}
		if pt.From == 0 && pt.To == 0 {
			return bad("ramp needs from and/or to rates above 0")
		}
	case PatternSteps:
		if len(pt.Steps) == 0 {
			return bad("steps pattern needs at least one step")
		}
		var sum Duration
		for i, s := range pt.Steps {
			if s.Duration <= 0 {
				return bad("step %d: duration must be positive", i+1)
			}
			if s.Rate < 0 {
				return bad("step %d: rate must be >= 0, got %g", i+1, s.Rate)
			}
			if s.Connections < 0 || s.Connections > MaxConnections {
				return bad("step %d: connections must be between 0 (plan's) and %d", i+1, MaxConnections)
			}
			// A rate-0 step in a plan whose other steps have a rate is a
			// pause, not a switch to the closed model.
			sum += s.Duration
		}
		if sum != p.Duration {
			return bad("steps last %s but duration is %s (leave duration out to use the steps' sum)", sum, p.Duration)
		}
	case PatternSpike:
		if p.Rate <= 0 || pt.SpikeRate <= 0 {
			return bad("spike needs rate (the base) and spike_rate above 0")
		}
		if pt.For <= 0 || pt.At < 0 || pt.At+pt.For > p.Duration {
			return bad("spike at %s for %s must fit inside duration %s", pt.At, pt.For, p.Duration)
		}
	default:
		return bad("pattern type %q is not one of constant, ramp, steps, spike", pt.Type)
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
