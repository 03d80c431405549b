package tmpl

import (
	"errors"
	"strings"
	"testing"
)

// FuzzCompile: the parser never panics; an error is a *Error whose line
// and column lie inside the text; a program renders the same bytes from
// the same state, and nothing its context cannot carry; text without
// "{{" compiles to itself.
func FuzzCompile(f *testing.F) {
	for _, s := range []string{
		"", "plain", "{{seq}}", "{{ uuid }}", "{{now_ms}}", "{{randInt -5 5}}", "{{randString 8 abc}}",
		"{{users.token}}", "{{users.nope}}", `{{"{{"}}`, `{{"a\"b"}}`, "{{", "}}", "{{}}", "{{seq\n}}",
		"/p/{{randInt 1 9}}?q={{users.user_id}}", `{"a":{{randInt 1 2}},"b":{"c":1}}`, "{{randInt 9223372036854775807 9223372036854775807}}",
		"{{randString 4 \"a b\"}}", "x\n{{bad", "{{words.line}}{{words.line}}",
	} {
		f.Add(s, uint8(0))
		f.Add(s, uint8(2))
	}
	tables := func() []*Table {
		u := NewTable(2)
		_ = u.Add([]string{"u1", "tok-1"})
		w := NewTable(1)
		_ = w.Add([]string{"word"})
		return []*Table{u, w}
	}()
	f.Fuzz(func(t *testing.T, src string, c uint8) {
		ctx := Context(c % 3)
		p, err := Compile(src, users, ctx)
		if err != nil {
			var te *Error
			if !errors.As(err, &te) {
				t.Fatalf("%q: error %v is not a *Error", src, err)
			}
			lines := strings.Count(src, "\n") + 1
			if te.Line < 1 || te.Line > lines || te.Col < 1 || te.Col > len(src)+1 {
				t.Fatalf("%q: error at line %d column %d, outside the text", src, te.Line, te.Col)
			}
			return
		}
		if !strings.Contains(src, "{{") {
			if out, ok := p.Static(); !ok || string(out) != src {
				t.Fatalf("%q without actions compiled to %q (static %v)", src, out, ok)
			}
		}
		a, b := NewState(3, 4, tables), NewState(3, 4, tables)
		x, y := p.Append(nil, a), p.Append(nil, b)
		if string(x) != string(y) {
			t.Fatalf("%q: two renders from the same state differ", src)
		}
		// What the program adds (not the text given) must suit its context.
		// Nothing the context cannot carry gets out: the text is checked
		// as well as quoted strings and alphabets (the data cells here
		// are clean).
		for _, ch := range x {
			if !ctx.Allows(ch) {
				t.Fatalf("%q (%s): rendered byte %q", src, ctx, ch)
			}
		}
	})
}
