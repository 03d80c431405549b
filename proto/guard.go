package proto

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// What a plan asks of the results beside the load: thresholds (pass/fail
// criteria judged on the merged intervals; their syntax is the report
// package's, see report.ParseThreshold), aborting on a failed threshold,
// and graceful degradation. proto only bounds them: it cannot parse a
// threshold (it imports nothing of the project), so the command line
// parses them right after loading the plan and refuses a bad one with its
// position (exit 2).

// Bounds and defaults of thresholds and degradation.
const (
	// MaxThresholds bounds a plan's thresholds; MaxThresholdLen one
	// expression's length in bytes.
	MaxThresholds   = 100
	MaxThresholdLen = 256
	// DefaultAbortGrace is abort_on_fail's grace when none is given: a
	// threshold must fail over the last 10 s of merged intervals (and the
	// test must have run that long) before the test is stopped.
	DefaultAbortGrace = 10 * time.Second
	// DefaultDegradeFor is how long the error rate must stay above
	// degrade's limit before the load is lowered; DefaultDegradeFactor,
	// what the rate (or the connections) is multiplied by.
	DefaultDegradeFor    = 5 * time.Second
	DefaultDegradeFactor = 0.5
	// MaxDegradeReductions bounds degrade's max_reductions.
	MaxDegradeReductions = 1000
)

// Share is a fraction from 0 to 1 that a plan writes as "50%" or 0.5 (a
// bare number above 1 is refused: "50" could mean either). It is written
// back as the number.
type Share float64

func parseShare(s string) (Share, error) {
	s = strings.TrimSpace(s)
	if p, ok := strings.CutSuffix(s, "%"); ok {
		f, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || !finite(f) || f < 0 || f > 100 {
			return 0, fmt.Errorf("%q is not a share (want e.g. 50%% or 0.5)", s)
		}
		return Share(f / 100), nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || !finite(f) || f < 0 || f > 1 {
		return 0, fmt.Errorf("%q is not a share (want e.g. 50%% or 0.5)", s)
	}
	return Share(f), nil
}

// ParseShare reads "50%" or "0.5".
func ParseShare(s string) (Share, error) {
	v, err := parseShare(s)
	if err != nil {
		return 0, bad("%v", err)
	}
	return v, nil
}

// String writes the share as a percentage.
func (s Share) String() string { return strconv.FormatFloat(float64(s)*100, 'g', -1, 64) + "%" }

// UnmarshalJSON reads "50%" or 0.5.
func (s *Share) UnmarshalJSON(b []byte) error {
	var str string
	if err := json.Unmarshal(b, &str); err == nil {
		v, err := parseShare(str)
		*s = v
		return err
	}
	v, err := parseShare(string(b))
	*s = v
	return err
}

// UnmarshalYAML reads "50%" or 0.5.
func (s *Share) UnmarshalYAML(n *yaml.Node) error {
	v, err := parseShare(n.Value)
	*s = v
	return err
}

// MarshalYAML writes the number (it reads back exactly).
func (s Share) MarshalYAML() (any, error) { return float64(s), nil }

// AbortOnFail stops a test as soon as a threshold fails live: judged on
// the merged intervals of the last Grace, once the test has run Grace.
type AbortOnFail struct {
	Grace Duration `json:"grace,omitempty" yaml:"grace,omitempty"`
}

// Degrade is graceful degradation: when the share of errors over the last
// For stays above ErrorRate, the rate (open model) or the connections
// (closed model) is multiplied by Factor, as a live change of its own
// (at most MaxReductions times; 0: no limit), and the next decision waits
// for For of the lowered load; when it stays above StopAbove, the test is
// stopped (the command exits 1). Either limit may be left out (0).
type Degrade struct {
	ErrorRate     Share    `json:"error_rate,omitempty" yaml:"error_rate,omitempty"`
	For           Duration `json:"for,omitempty" yaml:"for,omitempty"`
	Factor        float64  `json:"factor,omitempty" yaml:"factor,omitempty"`
	StopAbove     Share    `json:"stop_above,omitempty" yaml:"stop_above,omitempty"`
	MaxReductions int      `json:"max_reductions,omitempty" yaml:"max_reductions,omitempty"`
}

// normalizeGuards fills the defaults of abort_on_fail and degrade.
func (p *Plan) normalizeGuards() {
	if len(p.Thresholds) == 0 {
		p.Thresholds = nil
	}
	if a := p.AbortOnFail; a != nil && a.Grace == 0 {
		a.Grace = Duration(DefaultAbortGrace)
	}
	if d := p.Degrade; d != nil {
		if d.For == 0 {
			d.For = Duration(DefaultDegradeFor)
		}
		if d.Factor == 0 {
			d.Factor = DefaultDegradeFactor
		}
	}
}

// validateGuards bounds thresholds, abort_on_fail and degrade.
func (p *Plan) validateGuards() error {
	if len(p.Thresholds) > MaxThresholds {
		return bad("%d thresholds, more than %d", len(p.Thresholds), MaxThresholds)
	}
	for i, t := range p.Thresholds {
		if strings.TrimSpace(t) == "" {
			return bad("threshold %d is empty", i+1)
		}
		if len(t) > MaxThresholdLen {
			return bad("threshold %d is longer than %d bytes", i+1, MaxThresholdLen)
		}
	}
	if a := p.AbortOnFail; a != nil {
		if len(p.Thresholds) == 0 {
			return bad("abort_on_fail needs thresholds")
		}
		if err := checkDur("abort_on_fail: grace", a.Grace, MaxDuration); err != nil {
			return err
		}
	}
	if d := p.Degrade; d != nil {
		if err := d.Validate(); err != nil {
			return err
		}
	}
	return nil
}

// Validate checks a normalized degrade section.
func (d *Degrade) Validate() error {
	for _, s := range []struct {
		name string
		v    Share
	}{{"error_rate", d.ErrorRate}, {"stop_above", d.StopAbove}} {
		if !finite(float64(s.v)) || s.v < 0 || s.v > 1 {
			return bad("degrade: %s %g is not a share from 0%% to 100%%", s.name, float64(s.v))
		}
	}
	if d.ErrorRate == 0 && d.StopAbove == 0 {
		return bad("degrade: give error_rate (lower the load above it) and/or stop_above (stop the test above it)")
	}
	if d.ErrorRate > 0 && d.StopAbove > 0 && d.StopAbove <= d.ErrorRate {
		return bad("degrade: stop_above %s must be above error_rate %s", d.StopAbove, d.ErrorRate)
	}
	if err := checkDur("degrade: for", d.For, MaxDuration); err != nil {
		return err
	}
	if !finite(d.Factor) || d.Factor <= 0 || d.Factor >= 1 {
		return bad("degrade: factor %g must be between 0 and 1 (0.5 halves the load)", d.Factor)
	}
	if d.MaxReductions < 0 || d.MaxReductions > MaxDegradeReductions {
		return bad("degrade: max_reductions %d must be between 0 (no limit) and %d", d.MaxReductions, MaxDegradeReductions)
	}
	return nil
}

// ParseDegrade reads the command line's compact form of a degrade
// section: "error_rate=50%,for=5s,factor=0.5,stop_above=80%,max_reductions=1"
// (any subset; the defaults fill the rest). It is normalized, not
// validated.
func ParseDegrade(s string) (*Degrade, error) {
	d := &Degrade{}
	for _, kv := range strings.Split(s, ",") {
		kv = strings.TrimSpace(kv)
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, bad("degrade %q: %q is not key=value", s, kv)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		var err error
		switch k {
		case "error_rate":
			d.ErrorRate, err = parseShare(v)
		case "stop_above":
			d.StopAbove, err = parseShare(v)
		case "for":
			d.For, err = parseDuration(v)
		case "factor":
			d.Factor, err = strconv.ParseFloat(v, 64)
		case "max_reductions":
			d.MaxReductions, err = strconv.Atoi(v)
		default:
			return nil, bad("degrade %q: unknown key %q (want error_rate, for, factor, stop_above, max_reductions)", s, k)
		}
		if err != nil {
			return nil, bad("degrade %q: %s: %v", s, k, err)
		}
	}
	if d.For == 0 {
		d.For = Duration(DefaultDegradeFor)
	}
	if d.Factor == 0 {
		d.Factor = DefaultDegradeFactor
	}
	return d, nil
}
