package chaos

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Tolerances of the invariants.
const (
	// overPlan bounds what the target may serve over a whole row: the
	// plan + 2%.
	overPlan = 0.02
	// overRate bounds any window once a fault is handled: the planned
	// rate + 5% (plus catchUp and the requests in flight).
	overRate = 0.05
)

// result is one row's outcome: the figures of the table and what broke.
type result struct {
	row      *row
	began    time.Time
	took     time.Duration
	timedOut bool
	attempt  int      // 1, or more when a failure came with a pause of the machine
	pause    pause    // the longest pause of a CPU during the (last) attempt
	fails    []string // "(a) ...": one per broken invariant
	notes    []string

	served  uint64  // the target's count over the row
	planned float64 // what the row's plans asked for
	// maxOver is the highest window count over its planned rate, as a
	// ratio (1.0 = on plan), among windows judged by (b) with a rate
	// planned; unplanned counts what was served in windows with none.
	maxOver   float64
	haveOver  bool
	unplanned uint64
	reports   []string // "report vs target" cells
	codes     []string // "coord 1 (want 0)"
}

// check judges the row's invariants on the target's count, the reports
// and the exit codes.
func (e *env) check() {
	res := e.res
	if e.tgt == nil {
		e.fail("setup", "no target: nothing to judge")
		return
	}
	samples := e.tgt.snapshot()
	res.served = e.tgt.total()
	var t0 time.Time
	for _, s := range e.segs {
		res.planned += s.plan.total()
		if t0.IsZero() && !s.start.IsZero() {
			t0 = s.start
		}
	}
	if t0.IsZero() {
		t0 = res.began
	}
	rel := func(t time.Time) string { return fmt.Sprintf("t0%+.1fs", t.Sub(t0).Seconds()) }

	// (a) the target never serves more than the plan + 2% over the row.
	if float64(res.served) > res.planned*(1+overPlan) {
		e.fail("a", "the target served %d, %.1f%% over the %.0f planned (allowed +%.0f%%)",
			res.served, 100*(float64(res.served)/res.planned-1), res.planned, 100*overPlan)
	}

	// (b) every 2-second window outside the faults' settle windows is
	// within the planned rate + 5% (+ catch-up and in-flight slack). Two
	// of the target's 1-second lines make a window: a line printed late
	// on a busy machine moves counts between neighbouring seconds, not in
	// or out of a pair.
	//
	// An open-model fleet starved of CPU (or facing a stalled target)
	// owes the requests it could not send and sends them when it runs
	// again: that is the schedule, not an excess. So a window may also
	// repay the backlog accrued since the last fault settled (planned
	// minus served since then); a fault's own shortfall is never carried
	// past it, so a lost agent's share cannot excuse a later excess.
	inFlight := e.row.plan.inFlight()
	var bad []string
	for i := 2; i < len(samples); i++ {
		w := window{samples[i-2].at, samples[i].at}
		count := float64(samples[i].total - samples[i-2].total)
		if slices.ContainsFunc(e.faults, w.overlaps) {
			continue
		}
		// The planned rate around the window: a second either side, for
		// the uncertainty of t0 and of the target's line times.
		wide := window{w.from.Add(-time.Second), w.to.Add(time.Second)}
		rate := 0.0
		for _, c := range e.ceilings {
			if c.overlaps(wide) {
				rate = math.Max(rate, c.rate)
			}
		}
		since := samples[0].at
		for _, f := range e.faults {
			if !f.to.After(w.from) && f.to.After(since) {
				since = f.to
			}
		}
		backlog := math.Max(0, e.plannedBetween(since, w.from)-(servedAt(samples, w.from)-servedAt(samples, since)))
		d := w.to.Sub(w.from).Seconds()
		allowed := rate*d*(1+overRate) + catchUp*rate + inFlight + backlog
		if rate > 0 {
			r := count / (rate * d)
			if !res.haveOver || r > res.maxOver {
				res.maxOver, res.haveOver = r, true
			}
		} else if count > inFlight {
			res.unplanned += uint64(count)
		}
		if count > allowed {
			bad = append(bad, fmt.Sprintf("%.0f in %.1fs at %s (planned %.0f req/s, backlog %.0f)", count, d, rel(w.to), rate, backlog))
		}
	}
	if len(bad) > 0 {
		worst := bad
		if len(worst) > 3 {
			worst = worst[:3]
		}
		e.fail("b", "%d windows over the planned rate +%.0f%% outside the settle windows: %s",
			len(bad), 100*overRate, strings.Join(worst, "; "))
	}

	// (c) each report's total equals what the target served for its test,
	// within the requests in flight (and an agent's unpublished interval
	// when one was killed or stopped); (f) the load ran.
	for _, s := range e.segs {
		served := float64(s.to) - float64(s.from)
		label := ""
		if len(e.segs) > 1 {
			label = s.name + ": "
		}
		if s.wantReport {
			var rep map[string]any
			err := errors.New("no process reports it")
			from := "?"
			if s.reporter != nil {
				rep, err = jsonReport(s.reporter)
				from = s.reporter.label
			}
			if err != nil {
				res.reports = append(res.reports, fmt.Sprintf("%snone vs %.0f", label, served))
				e.fail("c", "%s: no report from %s (%v); the target served %.0f", s.name, from, err, served)
			} else {
				got, _ := rep["requests"].(float64)
				diff := got - served
				tol := s.plan.inFlight() + s.lost
				res.reports = append(res.reports, fmt.Sprintf("%s%.0f vs %.0f (%+.0f)", label, got, served, diff))
				if math.Abs(diff) > tol {
					e.fail("c", "%s: %s's report says %.0f responses, the target served %.0f (%+.0f, allowed ±%.0f)",
						s.name, from, got, served, diff, tol)
				}
			}
		}
		if min := s.minServed * s.plan.total(); served < min {
			e.fail("f", "%s: the target served %.0f of the %.0f planned (want at least %.0f%%): the load did not run",
				s.name, served, s.plan.total(), 100*s.minServed)
		}
	}

	// (d) exit codes, from the row's table.
	type group struct {
		codes []string
		ok    bool
		want  []int
	}
	groups := map[string]*group{}
	var order []string
	for _, p := range e.procs {
		want, ok := e.row.want[p.role]
		switch {
		case p.faultKilled:
			want = []int{killed}
		case ok:
		case p.role == "agent":
			want = []int{0, 130}
		case p.role == "target":
			want = []int{0}
		default:
			e.fail("d", "BUG: row %s has no expected exit code for role %q", e.row.name, p.role)
		}
		code := p.code()
		good := slices.Contains(want, code) || p.forced // a forced kill is (e)'s failure
		if !good {
			e.fail("d", "%s exited %s, want %s", p.label, codeString(code), codesString(want))
		}
		key := p.role
		if p.role == "set" {
			key = p.label
		}
		if p.faultKilled {
			key = p.role + " (fault)"
		}
		g := groups[key]
		if g == nil {
			g = &group{ok: true, want: want}
			groups[key] = g
			order = append(order, key)
		}
		g.codes = append(g.codes, codeString(code))
		g.ok = g.ok && good
	}
	for _, k := range order {
		g := groups[k]
		if (k == "agent" || k == "target") && g.ok {
			continue // the normal case; shown only when wrong
		}
		cell := k + " " + strings.Join(g.codes, ",")
		if !g.ok {
			cell += " (want " + codesString(g.want) + ")"
		}
		res.codes = append(res.codes, cell)
	}
}

// plannedBetween is the requests the row's plans ask for from a to b.
func (e *env) plannedBetween(a, b time.Time) float64 {
	sum := 0.0
	for _, c := range e.ceilings {
		from, to := c.from, c.to
		if a.After(from) {
			from = a
		}
		if b.Before(to) {
			to = b
		}
		if to.After(from) {
			sum += c.rate * to.Sub(from).Seconds()
		}
	}
	return sum
}

// servedAt is the target's running total at instant t, interpolated
// between the lines around it.
func servedAt(s []sample, t time.Time) float64 {
	if len(s) == 0 || !t.After(s[0].at) {
		if len(s) == 0 {
			return 0
		}
		return float64(s[0].total)
	}
	for i := 1; i < len(s); i++ {
		if !t.After(s[i].at) {
			f := t.Sub(s[i-1].at).Seconds() / s[i].at.Sub(s[i-1].at).Seconds()
			return float64(s[i-1].total) + f*float64(s[i].total-s[i-1].total)
		}
	}
	return float64(s[len(s)-1].total)
}

func codesString(c []int) string {
	var s []string
	for _, x := range c {
		s = append(s, codeString(x))
	}
	return strings.Join(s, "|")
}

// letters lists the broken invariants' letters of a result.
func (r *result) letters() string {
	var out []string
	for _, f := range r.fails {
		if i := strings.Index(f, ")"); strings.HasPrefix(f, "(") && i > 0 {
			l := f[1:i]
			if !slices.Contains(out, l) {
				out = append(out, l)
			}
		}
	}
	return strings.Join(out, ",")
}
