//go:build !race

package tmpl

import "testing"

// Rendering allocates nothing once the destination has room.
func TestRenderAllocations(t *testing.T) {
	p, err := Compile(`{"id":"{{uuid}}","n":{{randInt 1 5000}},"s":"{{randString 8}}","u":"{{users.token}}","q":{{seq}},"t":{{now_ms}}}`, users, Body)
	if err != nil {
		t.Fatal(err)
	}
	s := NewState(1, 2, usersTables(t))
	buf := make([]byte, 0, 1024)
	n := testing.AllocsPerRun(1000, func() {
		s.Seq++
		buf = p.Append(buf[:0], s)
	})
	if n != 0 {
		t.Fatalf("%.1f allocations per render", n)
	}
}
