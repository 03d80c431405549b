package main

import (
	"strings"
	"testing"
)

// TestThresholdPerRequestName: request=NAME thresholds of a mix are
// judged on that request's own figures, the ones its by_request row shows.
func TestThresholdPerRequestName(t *testing.T) {
	url := startTarget(t)
	plan := writePlan(t, "target_url: "+url+"\nrate: 400\nduration: 2s\nconnections: 8\nseed: 7\n"+
		"requests:\n"+
		"  - {name: browse, path: /items, weight: 3}\n"+
		"  - {name: buy now, method: POST, path: /buy, body: '{\"q\": {{randInt 1 5}}}', weight: 1}\n"+
		"thresholds:\n"+
		"  - 'status_200{request=browse} >= 0'\n"+
		"  - 'status_200{request=\"buy now\"} >= 0'\n"+
		"  - 'p99{request=browse} < 10s'\n"+
		"  - 'p99{request=\"buy now\"} < 1us'\n")
	r := runReport(t, "run", "-q", "--cores", "1", "-f", plan, "--json", "-")
	th := thresholds(t, r.report)
	if r.code != 3 || len(th) != 4 {
		t.Fatalf("exit %d (want 3: p99 < 1us cannot hold), thresholds %v\n%s", r.code, r.report["thresholds"], r.stderr)
	}
	rows, _ := r.report["by_request"].([]any)
	if len(rows) != 2 {
		t.Fatalf("by_request: %v", r.report["by_request"])
	}
	for i, expr := range []string{"status_200{request=browse} >= 0", `status_200{request="buy now"} >= 0`} {
		row := rows[i].(map[string]any)
		n, _ := row["status"].(map[string]any)["200"].(float64)
		if v := num(t, th[expr], "value"); v != n || n == 0 || th[expr]["ok"] != true {
			t.Fatalf("%s: value %v, the %s row has %v responses 200", expr, v, row["name"], n)
		}
	}
	if th["p99{request=browse} < 10s"]["ok"] != true || th[`p99{request="buy now"} < 1us`]["ok"] != false {
		t.Fatalf("latency thresholds: %v", r.report["thresholds"])
	}
	// A name the plan does not have is refused before anything runs.
	bad := barrage(t, "run", "-q", "--cores", "1", "-f", plan, "--threshold", "p99{request=checkout} < 1s")
	if bad.code != 2 || !strings.Contains(bad.stderr, `column 5: no request named "checkout" in the plan (it has "browse", "buy now")`) {
		t.Fatalf("unknown request name: exit %d\n%s", bad.code, bad.stderr)
	}
}
