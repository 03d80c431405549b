package web

import (
	"strings"
	"testing"
)

// The assets the HTML report inlines must not close their own element
// (a "</script" inside a script would end it early) and must load
// nothing from the network.
func TestAssetsInlineSafely(t *testing.T) {
	for _, name := range []string{"uplot/uPlot.iife.min.js", "charts.js", "report.js", "dashboard.js"} {
		s := strings.ToLower(string(Asset(name)))
		if strings.Contains(s, "</script") || strings.Contains(s, "<!--") {
			t.Errorf("%s contains a closing script tag or a comment opener", name)
		}
		for _, bad := range []string{"https://cdn", "http://cdn", "import(", "fonts.googleapis"} {
			if strings.Contains(s, bad) {
				t.Errorf("%s refers to %q", name, bad)
			}
		}
	}
	for _, name := range []string{"uplot/uPlot.min.css", "style.css"} {
		s := strings.ToLower(string(Asset(name)))
		if strings.Contains(s, "</style") || strings.Contains(s, "@import") || strings.Contains(s, "url(http") {
			t.Errorf("%s is not self-contained", name)
		}
	}
	if !strings.Contains(string(Asset("uplot/LICENSE")), "MIT License") || !strings.Contains(string(Asset("uplot/VERSION")), "1.6.32") {
		t.Error("uPlot's license or version note is missing")
	}
	defer func() {
		if recover() == nil {
			t.Error("a missing asset did not panic")
		}
	}()
	Asset("nope.js")
}
