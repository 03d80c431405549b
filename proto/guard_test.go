package proto

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestGuardPlan(t *testing.T) {
	p, err := ParsePlan([]byte(`
target_url: http://127.0.0.1:8080/
rate: 1500
thresholds: ["p99 < 5s", "status_429 > 10%"]
abort_on_fail: {grace: 3s}
degrade: {error_rate: 50%, for: 5s, factor: 0.5, stop_above: 0.8, max_reductions: 1}
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Thresholds) != 2 || p.AbortOnFail.Grace.D() != 3*time.Second {
		t.Fatalf("thresholds %v abort %+v", p.Thresholds, p.AbortOnFail)
	}
	if d := p.Degrade; d.ErrorRate != 0.5 || d.StopAbove != 0.8 || d.For.D() != 5*time.Second || d.Factor != 0.5 || d.MaxReductions != 1 {
		t.Fatalf("degrade %+v", d)
	}
	// Defaults.
	p, err = ParsePlan([]byte("target_url: http://h/\nthresholds: [p99 < 1s]\nabort_on_fail: {}\ndegrade: {stop_above: 90%}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if p.AbortOnFail.Grace.D() != DefaultAbortGrace || p.Degrade.For.D() != DefaultDegradeFor || p.Degrade.Factor != DefaultDegradeFactor {
		t.Fatalf("defaults: %+v %+v", p.AbortOnFail, p.Degrade)
	}
	// The wire to the agents and YAML carry them unchanged.
	js, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var q Plan
	if err := json.Unmarshal(js, &q); err != nil || !reflect.DeepEqual(&q, p) {
		t.Fatalf("JSON round trip (%v): %s", err, js)
	}
	ym, err := yaml.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := ParsePlan(ym); err != nil || !reflect.DeepEqual(r, p) {
		t.Fatalf("YAML round trip (%v):\n%s", err, ym)
	}
}

func TestGuardPlanErrors(t *testing.T) {
	for _, tc := range []struct{ plan, want string }{
		{"abort_on_fail: {grace: 3s}\n", "abort_on_fail needs thresholds"},
		{"thresholds: [p99 < 1s]\nabort_on_fail: {grace: -1s}\n", "grace must be positive"},
		{"thresholds: ['  ']\n", "threshold 1 is empty"},
		{"thresholds: [" + strings.Repeat("x", MaxThresholdLen+1) + "]\n", "longer than"},
		{"degrade: {factor: 0.5}\n", "give error_rate"},
		{"degrade: {error_rate: 50}\n", "not a share"},
		{"degrade: {error_rate: 150%}\n", "not a share"},
		{"degrade: {error_rate: 50%, stop_above: 40%}\n", "must be above error_rate"},
		{"degrade: {error_rate: 50%, factor: 1}\n", "factor 1 must be between 0 and 1"},
		{"degrade: {error_rate: 50%, for: -2s}\n", "for must be positive"},
		{"degrade: {error_rate: 50%, max_reductions: -1}\n", "max_reductions"},
		{"degrade: {error_rate: 50%, within: 2s}\n", "within not found in degrade"},
	} {
		_, err := ParsePlan([]byte("target_url: http://h/\nrate: 100\n" + tc.plan))
		if err == nil || !errors.Is(err, ErrBadPlan) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.plan, err, tc.want)
		}
	}
}

func TestParseDegrade(t *testing.T) {
	d, err := ParseDegrade("error_rate=50%, for=3s,factor=0.25,stop_above=0.8,max_reductions=2")
	if err != nil {
		t.Fatal(err)
	}
	if d.ErrorRate != 0.5 || d.For.D() != 3*time.Second || d.Factor != 0.25 || d.StopAbove != 0.8 || d.MaxReductions != 2 {
		t.Fatalf("%+v", d)
	}
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	d, err = ParseDegrade("stop_above=90%")
	if err != nil || d.For.D() != DefaultDegradeFor || d.Factor != DefaultDegradeFactor {
		t.Fatalf("defaults: %+v %v", d, err)
	}
	for _, s := range []string{"error_rate", "rate=5", "for=soon", "error_rate=2"} {
		if _, err := ParseDegrade(s); !errors.Is(err, ErrBadPlan) {
			t.Errorf("%q: %v", s, err)
		}
	}
}
