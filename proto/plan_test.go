package proto

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParsePlan(t *testing.T) {
	p, err := ParsePlan([]byte(`
target_url: http://127.0.0.1:8080/x?y=1
method: post
headers: {X-A: b}
body: hello
connections: 10
pattern:
  type: steps
  steps:
    - {duration: 2s, rate: 100}
    - {duration: 1.5s, rate: 200, connections: 20}
`))
	if err != nil {
		t.Fatal(err)
	}
	if p.Method != "POST" || p.Duration.D() != 3500*time.Millisecond || p.Pipeline != 1 || !p.Open() {
		t.Fatalf("normalized plan: %+v", p)
	}
	segs := p.Schedule()
	if len(segs) != 2 || segs[1].Start != 2*time.Second || segs[1].Connections != 20 || segs[0].Connections != 10 || segs[1].Step != 1 {
		t.Fatalf("schedule: %+v", segs)
	}
	// JSON is YAML too.
	if _, err := ParsePlan([]byte(`{"target_url": "http://h/", "rate": 5, "duration": "1s"}`)); err != nil {
		t.Fatal(err)
	}
}

func TestPlanErrors(t *testing.T) {
	for _, tc := range []struct{ plan, want string }{
		{`target_url: http://h/` + "\nrate: -5", "rate must be >= 0"},
		{`target_url: ftp://h/`, "want http://"},
		{`target_url: "http://"`, "has no host"},
		{`rate: 5`, "target_url is missing"},
		{`target_url: http://h/` + "\nconnections: -1", "connections must be"},
		{`target_url: http://h/` + "\npipeline: 5000", "pipeline must be"},
		{`target_url: http://h/` + "\nduration: 3 parsecs", "bad duration"},
		{`target_url: http://h/` + "\nratez: 5", "field ratez not found"},
		{`target_url: http://h/` + "\npattern: {type: wave}", "not one of constant"},
		{`target_url: http://h/` + "\nrate: 1\npattern: {type: spike, spike_rate: 10, at: 9s, for: 2s}", "must fit inside"},
		{`target_url: http://h/` + "\nduration: 5s\npattern: {type: steps, steps: [{duration: 1s, rate: 1}]}", "steps last 1s"},
		{`target_url: http://h:99999/`, "bad port"},
	} {
		_, err := ParsePlan([]byte(tc.plan))
		if err == nil || !errors.Is(err, ErrBadPlan) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("plan %q: error %v, want one containing %q", tc.plan, err, tc.want)
		}
	}
}

func TestSpikeAndRampSchedules(t *testing.T) {
	p := &Plan{TargetURL: "http://h/", Rate: 100, Duration: Duration(10 * time.Second),
		Pattern: Pattern{Type: PatternSpike, SpikeRate: 1000, At: Duration(4 * time.Second), For: Duration(2 * time.Second)}}
	p.Normalize()
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	s := p.Schedule()
	if len(s) != 3 || s[1].From != 1000 || s[1].Start != 4*time.Second || s[2].Duration != 4*time.Second || s[2].Step != 2 {
		t.Fatalf("spike: %+v", s)
	}
	r := &Plan{TargetURL: "http://h/", Pattern: Pattern{Type: PatternRamp, From: 10, To: 20}}
	r.Normalize()
	if err := r.Validate(); err != nil || !r.Open() || r.Schedule()[0].To != 20 {
		t.Fatalf("ramp: %v %+v", err, r.Schedule())
	}
}
