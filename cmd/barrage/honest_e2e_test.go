package main

import (
	"math"
	"strings"
	"testing"
)

// checkHonest asserts, on a JSON report, what a loaded 2-CPU machine
// still guarantees about an open-model run: the requests asked (counted
// as they come due, whatever the CPU) are the schedule's within 1%; the
// step rows add up to the totals; and the verdict agrees with the counts:
// a run that sent less than 99% of what was asked is NOT VALID for a
// reason that names the generator, or its notes explain it (the target
// did not keep up, an agent was lost). Counts that depend on free CPU
// are never asserted: tests pass with a CPU-heavy process beside them.
func checkHonest(t *testing.T, rep map[string]any, asked float64) {
	t.Helper()
	checkAccounting(t, rep)
	if got := num(t, rep, "scheduled"); math.Abs(got-asked) > 0.01*asked {
		t.Fatalf("asked %v, the schedule says %.0f", got, asked)
	}
	checkStepsSum(t, rep)
	sent := num(t, rep, "sent")
	if sent > asked {
		t.Fatalf("sent %v, more than the %.0f asked", sent, asked)
	}
	if sent >= 0.99*asked {
		return
	}
	why := reasons(rep)
	if rep["valid"] == true && !strings.Contains(why, "target did not keep up") && !strings.Contains(why, "lost") {
		t.Fatalf("sent %v of %.0f asked, yet valid with no reason: %s", sent, asked, why)
	}
	t.Logf("sent %v of %.0f asked (loaded machine): %s", sent, asked, why)
}

// checkStepsSum asserts that the step rows add up to the totals.
func checkStepsSum(t *testing.T, rep map[string]any) {
	t.Helper()
	steps, _ := rep["steps"].([]any)
	var sent, got float64
	for _, s := range steps {
		m := s.(map[string]any)
		sent += num(t, m, "sent")
		got += num(t, m, "requests")
	}
	if sent != num(t, rep, "sent") || got != num(t, rep, "requests") {
		t.Fatalf("step rows sum to %v sent, %v answered; totals %v, %v", sent, got, rep["sent"], rep["requests"])
	}
}

func reasons(rep map[string]any) string {
	var out []string
	for _, k := range []string{"invalid_reasons", "notes"} {
		l, _ := rep[k].([]any)
		for _, x := range l {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
	}
	return strings.Join(out, "; ")
}
