package find

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// model is a fake target and generator: the SLO holds up to capacity;
// the generator is saturated where gen says; late marks the
// rates at which the sends went out late (from outside the loops).
type model struct {
	capacity float64
	gen      func(rate float64) bool // saturated at rate
	late     func(rate float64) bool
	fail     error
	rates    []float64
	flaky    map[float64]int // rate: how many of its first measurements break
}

func (m *model) Measure(_ context.Context, rate float64) (Measurement, error) {
	if m.fail != nil && len(m.rates) == 3 {
		return Measurement{}, m.fail
	}
	m.rates = append(m.rates, rate)
	ms := Measurement{Rate: rate, Achieved: min(rate, m.capacity), Valid: true, SLO: rate <= m.capacity}
	if m.flaky[rate] > 0 {
		m.flaky[rate]--
		ms.SLO = false
	}
	if m.gen != nil && m.gen(rate) {
		ms.Valid, ms.Invalid = false, []string{"generator saturated: its event loops were 99% busy"}
	}
	if m.late != nil && m.late(rate) {
		ms.Lateness = "the sends went out late"
	}
	if !ms.SLO {
		ms.Failed = []string{"p99 < 50ms (2.1s)"}
	}
	return ms, nil
}

func opts() Options {
	o := Options{Min: 1000, Max: 1e6, Step: time.Second, Resolution: 0.02, Growth: 2}
	o.Normalize()
	return o
}

func TestSearchKnee(t *testing.T) {
	m := &model{capacity: 20000}
	res, err := Search(context.Background(), m, opts())
	if err != nil {
		t.Fatal(err)
	}
	// Doubling to the first break, then halving the bracket: every rate
	// tried is in this order.
	want := []float64{1000, 2000, 4000, 8000, 16000, 32000, 24000, 20000, 22000, 21000, 20500, 20250}
	if !equal(m.rates, want) {
		t.Fatalf("rates %v, want %v", m.rates, want)
	}
	if res.Limit != LimitSLO || !res.Found() || res.Sustainable != 20000 || res.Broke != 20250 || len(res.Steps) != len(want) {
		t.Fatalf("result %+v", res)
	}
	if !strings.Contains(res.Reason, "held at 20 000 req/s and broke at 20 250 req/s") {
		t.Fatalf("reason %q", res.Reason)
	}
}

// TestSearchResolution: for knees across the range, the answer is within
// the resolution below the knee, never above it, and the steps stay
// within MaxSteps (which sizes the test's planned duration).
func TestSearchResolution(t *testing.T) {
	for _, o := range []Options{opts(), {Min: 100, Max: 5e5, Resolution: 0.1, Growth: 3}, {Min: 1, Max: 1e8, Resolution: 0.005, Growth: 1.5}} {
		o.Normalize()
		for c := o.Min * 1.3; c < o.Max; c *= 1.77 {
			m := &model{capacity: c}
			res, err := Search(context.Background(), m, o)
			if err != nil {
				t.Fatal(err)
			}
			if res.Limit != LimitSLO || res.Sustainable > c || res.Sustainable < c*(1-o.Resolution)-1 || res.Broke <= c {
				t.Fatalf("%+v capacity %g: %+v", o, c, res)
			}
			if len(m.rates) > o.MaxSteps() {
				t.Fatalf("%+v capacity %g: %d steps, MaxSteps %d", o, c, len(m.rates), o.MaxSteps())
			}
		}
	}
}

// TestSearchConfirm: a break is measured again; one that does not repeat
// is taken back, one that does is believed.
func TestSearchConfirm(t *testing.T) {
	o := opts()
	o.Confirm = 1
	// 16000 breaks once (a stall), then holds: the search goes on up.
	m := &model{capacity: 20000, flaky: map[float64]int{16000: 1}}
	var tries []int
	o.OnStep = func(ms Measurement) { tries = append(tries, ms.Try) }
	res, err := Search(context.Background(), m, o)
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{1000, 2000, 4000, 8000, 16000, 16000, 32000, 32000, 24000, 24000, 20000, 22000, 22000, 21000, 21000, 20500, 20500, 20250, 20250}
	if !equal(m.rates, want) || res.Sustainable != 20000 || res.Limit != LimitSLO {
		t.Fatalf("rates %v, result %+v", m.rates, res)
	}
	if tries[4] != 0 || tries[5] != 1 || res.Steps[5].Try != 1 || !res.Steps[5].SLO {
		t.Fatalf("tries %v", tries)
	}
	if len(m.rates) > o.MaxSteps() {
		t.Fatalf("%d steps, MaxSteps %d", len(m.rates), o.MaxSteps())
	}
	// Confirmed breaks, across the range, stay within MaxSteps.
	o.Confirm = 2
	for c := o.Min * 1.3; c < o.Max; c *= 1.77 {
		m := &model{capacity: c}
		if _, err := Search(context.Background(), m, o); err != nil || len(m.rates) > o.MaxSteps() {
			t.Fatalf("capacity %g: %d steps, MaxSteps %d (%v)", c, len(m.rates), o.MaxSteps(), err)
		}
	}
}

func TestSearchLimits(t *testing.T) {
	// The generator saturates first: no answer, a lower bound.
	m := &model{capacity: 50000, gen: func(r float64) bool { return r > 12000 }}
	res, _ := Search(context.Background(), m, opts())
	if res.Limit != LimitGenerator || res.Found() || res.Sustainable != 8000 || len(res.Steps) != 5 ||
		!strings.Contains(res.Reason, "at 16 000 req/s the generator is the limit, not the target: generator saturated") ||
		!strings.Contains(res.Reason, "the SLO held up to 8 000 req/s") {
		t.Fatalf("generator: %+v", res)
	}
	// Saturated during the bisection.
	m = &model{capacity: 20000, gen: func(r float64) bool { return r > 21000 && r < 23000 }}
	res, _ = Search(context.Background(), m, opts())
	if res.Limit != LimitGenerator || res.Sustainable != 20000 || m.rates[len(m.rates)-1] != 22000 {
		t.Fatalf("generator in the bisection: %+v %v", res, m.rates)
	}
	// The SLO broken at the lowest rate.
	res, _ = Search(context.Background(), &model{capacity: 500}, opts())
	if res.Limit != LimitMin || res.Found() || res.Sustainable != 0 || !strings.Contains(res.Reason, "lowest rate, 1 000") {
		t.Fatalf("min: %+v", res)
	}
	// The SLO held at the highest rate.
	o := opts()
	o.Max = 5000
	m = &model{capacity: 1e9}
	res, _ = Search(context.Background(), m, o)
	if res.Limit != LimitMax || !res.Found() || res.Sustainable != 5000 || !equal(m.rates, []float64{1000, 2000, 4000, 5000}) {
		t.Fatalf("max: %+v %v", res, m.rates)
	}
	// Late sends: a step whose SLO held counts; one whose SLO broke is
	// not held against the target.
	m = &model{capacity: 20000, late: func(r float64) bool { return r >= 4000 }}
	res, _ = Search(context.Background(), m, opts())
	if res.Limit != LimitGenerator || res.Sustainable != 16000 || !strings.Contains(res.Reason, "at 32 000 req/s") || !strings.Contains(res.Reason, "sends went out late") {
		t.Fatalf("late: %+v", res)
	}
	// The measurer's error ends the search with the steps so far.
	boom := errors.New("boom")
	res, err := Search(context.Background(), &model{capacity: 20000, fail: boom}, opts())
	if !errors.Is(err, boom) || len(res.Steps) != 3 {
		t.Fatalf("error: %v %+v", err, res)
	}
}

func TestOptions(t *testing.T) {
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{Min: -1}, "--min-rate"},
		{Options{Min: 10, Max: 5}, "--max-rate 5"},
		{Options{Step: time.Millisecond}, "--step"},
		{Options{Resolution: 1.5}, "--resolution"},
		{Options{Growth: 1}, "--growth"},
		{Options{Settle: -time.Second}, "--settle"},
		{Options{Confirm: -1}, "--confirm"},
		{Options{Max: 2e8}, "--max-rate 2e+08 is above the ceiling"},
	} {
		tc.o.Normalize()
		if err := tc.o.Check(time.Second); !errors.Is(err, ErrBadOptions) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.o, err, tc.want)
		}
	}
	o := opts()
	if err := o.Check(time.Second); err != nil {
		t.Fatal(err)
	}
	// 1000..1e6 doubling: 11 steps up; 2% of a doubling: 7 halvings.
	if n := o.MaxSteps(); n != 11+7 {
		t.Fatalf("MaxSteps %d", n)
	}
	if d := o.Duration(time.Second); d != o.Warmup+18*(o.Settle+o.Step+time.Second)+time.Second {
		t.Fatalf("Duration %s", d)
	}
	if fmtRate(41200) != "41 200" || fmtRate(1234567) != "1 234 567" || fmtRate(999) != "999" || fmtRate(12.5) != "12.5" {
		t.Fatal(fmtRate(41200), fmtRate(1234567))
	}
}

func equal(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
