package tmpl

import (
	"errors"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

var users = &Env{Tables: []TableSpec{{Name: "users", Columns: []string{"user_id", "token"}}, {Name: "words", Columns: []string{"line"}}}}

func usersTables(t testing.TB) []*Table {
	t.Helper()
	u := NewTable(2)
	for _, r := range [][]string{{"u1", "t1"}, {"u2", "t2"}, {"u3", "t3"}} {
		if err := u.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	w := NewTable(1)
	_ = w.Add([]string{"hello"})
	return []*Table{u, w}
}

func render(t testing.TB, src string, ctx Context, s *State) string {
	t.Helper()
	p, err := Compile(src, users, ctx)
	if err != nil {
		t.Fatalf("%q: %v", src, err)
	}
	return string(p.Append(nil, s))
}

func TestRender(t *testing.T) {
	s := NewState(1, 2, usersTables(t))
	s.Seq, s.NowMS = 42, 1700000000123
	s.Rows[0] = 1
	for _, tc := range []struct {
		src, want string
	}{
		{"plain text", "plain text"},
		{"", ""},
		{"{{seq}}", "42"},
		{"/a/{{ seq }}/b", "/a/42/b"},
		{"{{now_ms}}", "1700000000123"},
		{"{{users.user_id}}:{{users.token}}", "u2:t2"},
		{"{{words.line}}", "hello"},
		{`{{"{{"}}x{{"}}"}}`, "{{x}}"},
		{`{{"a \"q\" \\ b"}}`, `a "q" \ b`},
		{`{"a":{"b":1}}`, `{"a":{"b":1}}`}, // "}}" outside an action is text
		{"{{randInt 7 7}}", "7"},
		{"{{randString 5 z}}", "zzzzz"},
	} {
		if got := render(t, tc.src, Body, s); got != tc.want {
			t.Errorf("%q rendered %q, want %q", tc.src, got, tc.want)
		}
	}
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestRandomVariables(t *testing.T) {
	s := NewState(7, 9, nil)
	counts := map[string]int{}
	const n = 50000
	seen := map[string]bool{}
	for i := 0; i < n; i++ {
		counts[render(t, "{{randInt -2 2}}", Body, s)]++
		u := render(t, "{{uuid}}", Body, s)
		if !uuidRE.MatchString(u) || seen[u] {
			t.Fatalf("uuid %q: bad or repeated", u)
		}
		seen[u] = true
		r := render(t, "{{randString 12 abc}}", Body, s)
		if len(r) != 12 || strings.Trim(r, "abc") != "" {
			t.Fatalf("randString %q", r)
		}
		if d := render(t, "{{randString 3}}", Body, s); len(d) != 3 || strings.Trim(d, DefaultAlphabet) != "" {
			t.Fatalf("randString default %q", d)
		}
	}
	// Five values, each 20%: the generator's share of each is within 1.5
	// percentage points (7 standard deviations at n = 50000).
	if len(counts) != 5 {
		t.Fatalf("randInt -2 2 gave %v", counts)
	}
	for v, c := range counts {
		if x, _ := strconv.Atoi(v); x < -2 || x > 2 {
			t.Fatalf("randInt -2 2 gave %s", v)
		}
		if f := float64(c) / n; f < 0.185 || f > 0.215 {
			t.Errorf("randInt -2 2: %s came %.3f of the time", v, f)
		}
	}
	// Full range: no panic, any value.
	_ = render(t, "{{randInt -9223372036854775808 9223372036854775807}}", Body, s)
}

func TestSeedDeterminism(t *testing.T) {
	const src = "{{randInt 1 1000000}}-{{uuid}}-{{randString 8}}"
	a, b, c := NewState(5, 6, nil), NewState(5, 6, nil), NewState(5, 7, nil)
	same, differ := true, false
	for i := 0; i < 100; i++ {
		x, y, z := render(t, src, Body, a), render(t, src, Body, b), render(t, src, Body, c)
		same = same && x == y
		differ = differ || x != z
	}
	if !same || !differ {
		t.Fatalf("same seed same values: %v; another stream differs: %v", same, differ)
	}
}

func TestCompileErrors(t *testing.T) {
	for _, tc := range []struct {
		src       string
		ctx       Context
		line, col int
		want      string
	}{
		{"{{foo}}", Body, 1, 3, `unknown variable "foo"`},
		{"ab\ncd {{ bar }}", Body, 2, 7, `unknown variable "bar"`},
		{"{{users.tokn}}", Body, 1, 9, `no column "tokn"`},
		{"{{people.id}}", Body, 1, 3, `unknown data "people"`},
		{"{{seq", Body, 1, 1, "not closed"},
		{"{{seq\n}}", Body, 1, 1, "on its line"},
		{"{{}}", Body, 1, 1, "empty"},
		{"{{seq 1}}", Body, 1, 7, "takes no arguments"},
		{"{{randInt 1}}", Body, 1, 3, "two integers"},
		{"{{randInt 5 1}}", Body, 1, 11, "above its HI"},
		{"{{randInt 1 x}}", Body, 1, 13, "not an integer"},
		{"{{randInt 1 2 3}}", Body, 1, 15, "two integers"},
		{"{{randString 0}}", Body, 1, 14, "not from 1"},
		{"{{randString 99999}}", Body, 1, 14, "not from 1"},
		{`{{randString 4 "a b"}}`, Path, 1, 16, "cannot carry"},
		{`{{randString 4 "a b"}}`, Header, 0, 0, ""},
		{`{{"x y"}}`, Path, 1, 3, "cannot carry"},
		{`{{"x`, Body, 1, 3, "not closed"},
		{`{{"\n"}}`, Body, 1, 4, "escapes"},
		{"/a b/{{seq}}", Path, 1, 3, "the text has byte ' '"},
		{"v\r\nX-Evil: 1", Header, 1, 2, "cannot carry"},
	} {
		_, err := Compile(tc.src, users, tc.ctx)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%q: %v", tc.src, err)
			}
			continue
		}
		var te *Error
		if !errors.As(err, &te) || !errors.Is(err, ErrTemplate) {
			t.Errorf("%q: error %v, want a *Error", tc.src, err)
			continue
		}
		if te.Line != tc.line || te.Col != tc.col || !strings.Contains(te.Msg, tc.want) {
			t.Errorf("%q: %v, want line %d column %d with %q", tc.src, err, tc.line, tc.col, tc.want)
		}
	}
}

func TestConcatAndStatic(t *testing.T) {
	a, _ := Compile("GET /x?id={{seq}} HTTP/1.1\r\n", nil, Body)
	b, _ := Compile("{{randString 3 q}}", nil, Body)
	p := Concat(a, Literal("X: "), b, Literal("\r\n"))
	s := NewState(1, 1, nil)
	s.Seq = 9
	if got := string(p.Append(nil, s)); got != "GET /x?id=9 HTTP/1.1\r\nX: qqq\r\n" {
		t.Fatalf("concat rendered %q", got)
	}
	if _, ok := p.Static(); ok {
		t.Fatal("a program with variables called static")
	}
	st, ok := Concat(Literal("a"), Literal("b")).Static()
	if !ok || string(st) != "ab" {
		t.Fatalf("static %q %v", st, ok)
	}
	if p.Actions() != 2 {
		t.Fatalf("%d actions", p.Actions())
	}
}

func TestUses(t *testing.T) {
	p, err := Compile("{{users.token}} {{users.user_id}} {{words.line}}", users, Header)
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Tables(); len(got) != 2 || got[0] != 0 || got[1] != 1 {
		t.Fatalf("tables %v", got)
	}
	if u := p.Uses(); len(u) != 3 || u[0] != (Use{0, 1, Header}) {
		t.Fatalf("uses %v", u)
	}
}
