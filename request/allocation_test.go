//go:build !race

package request

import "testing"

// Rendering the flash-sale mix (two requests, a body with three
// variables, a header from a data file) allocates nothing per request.
func TestAppendAllocations(t *testing.T) {
	m, err := Build(flashPlan(t, t.TempDir(), 100), Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := m.NewRenderer(0, 1)
	buf := make([]byte, 0, 4096)
	for i := 0; i < 100; i++ { // grow the body buffer once
		buf, _ = r.Append(buf[:0], m, 0)
	}
	n := testing.AllocsPerRun(10000, func() {
		buf, _ = r.Append(buf[:0], m, 1700000000000000000)
	})
	if n != 0 {
		t.Fatalf("%.2f allocations per request", n)
	}
}
