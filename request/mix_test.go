package request

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/barrage-load/barrage/proto"
	"github.com/barrage-load/barrage/proto/http1"
)

// writeUsers writes a users.csv of n rows: user_id u<i>, token t<i>.
func writeUsers(t testing.TB, dir string, n int) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("user_id,token\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "u%d,t%d\n", i, i)
	}
	path := filepath.Join(dir, "users.csv")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// flashPlan is the flash sale: a POST whose JSON body has three
// variables and a bearer token from users.csv, and a GET of a product.
func flashPlan(t testing.TB, dir string, users int) *proto.Plan {
	t.Helper()
	writeUsers(t, dir, users)
	src := `
target_url: http://127.0.0.1:8080/
seed: 1
headers: {Authorization: "Bearer {{users.token}}"}
data: {users: {file: users.csv}}
requests:
  - name: buy
    weight: 1
    method: POST
    path: /buy
    headers: {Content-Type: application/json}
    body: '{"product":{{randInt 1 5000}},"quantity":{{randInt 1 5}},"user":"{{users.user_id}}"}'
  - name: browse
    weight: 3
    path: /product/{{randInt 1 5000}}
`
	path := filepath.Join(dir, "plan.yaml")
	os.WriteFile(path, []byte(src), 0o644)
	p, err := proto.LoadPlan(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := Inspect(p); err != nil {
		t.Fatal(err)
	}
	return p
}

// readAll parses every request in b with net/http, as a server would.
func readAll(t testing.TB, b []byte) []*http.Request {
	t.Helper()
	br := bufio.NewReader(bytes.NewReader(b))
	var out []*http.Request
	for {
		if _, err := br.Peek(1); err == io.EOF {
			return out
		}
		req, err := http.ReadRequest(br)
		if err != nil {
			t.Fatalf("net/http cannot read request %d: %v\n%q", len(out), err, b)
		}
		body, err := io.ReadAll(req.Body)
		if err != nil {
			t.Fatalf("body: %v", err)
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.ContentLength = int64(len(body))
		out = append(out, req)
	}
}

var bodyRE = regexp.MustCompile(`^\{"product":(\d+),"quantity":(\d+),"user":"u(\d+)"\}$`)

func TestFlashSaleRenders(t *testing.T) {
	p := flashPlan(t, t.TempDir(), 100)
	m, err := Build(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if m.Len() != 2 || !m.Named() {
		t.Fatalf("mix of %d, named %v", m.Len(), m.Named())
	}
	r := m.NewRenderer(0, 1)
	var buf []byte
	var picks []int
	const n = 40000
	for i := 0; i < n; i++ {
		var k int
		buf, k = r.Append(buf, m, 1700000000123456789)
		picks = append(picks, k)
	}
	reqs := readAll(t, buf)
	if len(reqs) != n {
		t.Fatalf("%d requests parsed of %d", len(reqs), n)
	}
	buys := 0
	for i, q := range reqs {
		auth := q.Header.Get("Authorization")
		switch picks[i] {
		case 0:
			buys++
			body, _ := io.ReadAll(q.Body)
			g := bodyRE.FindSubmatch(body)
			if q.Method != "POST" || q.URL.Path != "/buy" || g == nil || q.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("buy %d: %s %s %q %v", i, q.Method, q.URL, body, q.Header)
			}
			prod, _ := strconv.Atoi(string(g[1]))
			qty, _ := strconv.Atoi(string(g[2]))
			if prod < 1 || prod > 5000 || qty < 1 || qty > 5 {
				t.Fatalf("buy %d: values out of range: %s", i, body)
			}
			// One row per request: the token is the user's own.
			if auth != "Bearer t"+string(g[3]) {
				t.Fatalf("buy %d: user u%s with %q", i, g[3], auth)
			}
		case 1:
			if q.Method != "GET" || !strings.HasPrefix(q.URL.Path, "/product/") || q.ContentLength != 0 || !strings.HasPrefix(auth, "Bearer t") {
				t.Fatalf("browse %d: %s %s %v", i, q.Method, q.URL, q.Header)
			}
		}
		if q.Host != "127.0.0.1:8080" || q.Header.Get("User-Agent") != "barrage" || q.Close {
			t.Fatalf("request %d: host %q, headers %v", i, q.Host, q.Header)
		}
	}
	// Weights 1:3; the share of buy within 1 point (8 standard
	// deviations at n = 40000).
	if f := float64(buys) / n; f < 0.24 || f > 0.26 {
		t.Fatalf("buy is %.3f of the mix, want 0.25", f)
	}
}

// A request with nothing variable is sent as proto/http1 encodes it.
func TestStaticMatchesHTTP1(t *testing.T) {
	p, err := proto.ParsePlan([]byte("target_url: http://h:81/x?y=1\nmethod: put\nheaders: {X-B: c, Host: other, User-Agent: me}\nbody: hi\n"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := Build(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got, ok := m.Static()
	want := http1.AppendRequest(nil, &http1.Request{Method: "PUT", Host: "h:81", Path: "/x?y=1", Body: []byte("hi"),
		Headers: []http1.Header{{Name: "Host", Value: "other"}, {Name: "User-Agent", Value: "me"}, {Name: "X-B", Value: "c"}}})
	if !ok || !bytes.Equal(got, want) {
		t.Fatalf("static %v:\n%q\n%q", ok, got, want)
	}
	// A raw request keeps its braces.
	p, _ = proto.ParsePlan([]byte("target_url: http://h/\nraw: true\nbody: '{{not a variable}}'\n"))
	if m, err := Build(p, Options{}); err != nil || !bytes.HasSuffix(must(m.Static()), []byte("{{not a variable}}")) {
		t.Fatalf("raw: %v", err)
	}
}

func must(b []byte, _ bool) []byte { return b }

// Each loop of each generator walks its own rows of a sequential file and
// renders its own {{seq}}: over 2 generators of 2 and 3 loops, no row is
// used by two loops, no seq repeats, and the generators' slices are
// disjoint and cover the file.
func TestSlicesAndSeq(t *testing.T) {
	dir := t.TempDir()
	writeUsers(t, dir, 10)
	p, err := proto.ParsePlan([]byte("target_url: http://h/\ndata: {users: {file: " + filepath.Join(dir, "users.csv") + "}}\nrequests: [{name: a, path: '/{{seq}}/{{users.user_id}}'}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := Inspect(p); err != nil {
		t.Fatal(err)
	}
	owner := map[string]string{}
	seqs := map[string]bool{}
	slices := []proto.Slice{{From: 0, To: 0.4}, {From: 0.4, To: 1}}
	for part, loops := range []int{2, 3} {
		m, err := Build(p, Options{Slice: &slices[part], Part: part, Parts: 2})
		if err != nil {
			t.Fatal(err)
		}
		for loop := 0; loop < loops; loop++ {
			r := m.NewRenderer(loop, loops)
			for i := 0; i < 30; i++ {
				b, _ := r.Append(nil, m, 0)
				path := strings.Fields(string(b))[1]
				seq, user, _ := strings.Cut(path[1:], "/")
				if seqs[seq] {
					t.Fatalf("seq %s twice", seq)
				}
				seqs[seq] = true
				if n, _ := strconv.Atoi(seq); n%2 != part {
					t.Fatalf("generator %d rendered seq %s", part, seq)
				}
				me := fmt.Sprintf("%d/%d", part, loop)
				if o, ok := owner[user]; ok && o != me {
					t.Fatalf("row %s used by loops %s and %s", user, o, me)
				}
				owner[user] = me
			}
		}
	}
	if len(owner) != 10 {
		t.Fatalf("%d rows used of 10: %v", len(owner), owner)
	}
	// Rows 0-3 went to generator 0, 4-9 to generator 1.
	for u, o := range owner {
		n, _ := strconv.Atoi(u[1:])
		if (n < 4) != strings.HasPrefix(o, "0/") {
			t.Fatalf("row %s went to %s", u, o)
		}
	}
}

func TestRandomOrderAndSeed(t *testing.T) {
	dir := t.TempDir()
	writeUsers(t, dir, 50)
	plan := func(seed string) *proto.Plan {
		p, err := proto.ParsePlan([]byte("target_url: http://h/\nseed: " + seed + "\ndata: {users: {file: " + filepath.Join(dir, "users.csv") + ", order: random}}\nrequests: [{name: a, path: '/{{users.user_id}}/{{randInt 1 1000000}}'}, {name: b}]\n"))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	run := func(p *proto.Plan, slice *proto.Slice, loop int) []string {
		m, err := Build(p, Options{Slice: slice})
		if err != nil {
			t.Fatal(err)
		}
		r := m.NewRenderer(loop, 2)
		var out []string
		for i := 0; i < 200; i++ {
			b, k := r.Append(nil, m, 0)
			out = append(out, fmt.Sprint(k)+strings.Fields(string(b))[1])
		}
		return out
	}
	a, b, c, d := run(plan("9"), nil, 0), run(plan("9"), nil, 0), run(plan("10"), nil, 0), run(plan("9"), nil, 1)
	if strings.Join(a, " ") != strings.Join(b, " ") {
		t.Fatal("the same seed and loop gave different requests")
	}
	if strings.Join(a, " ") == strings.Join(c, " ") || strings.Join(a, " ") == strings.Join(d, " ") {
		t.Fatal("another seed or loop gave the same requests")
	}
	// A random file draws only from the generator's slice.
	for _, s := range run(plan("9"), &proto.Slice{From: 0.5, To: 1}, 0) {
		if user, ok := strings.CutPrefix(s, "0/u"); ok {
			n, _ := strconv.Atoi(strings.Split(user, "/")[0])
			if n < 25 {
				t.Fatalf("row u%d outside the slice", n)
			}
		}
	}
}

func TestBuildErrors(t *testing.T) {
	dir := t.TempDir()
	users := writeUsers(t, dir, 3)
	os.WriteFile(filepath.Join(dir, "bad.csv"), []byte("user_id,token\nu1,\"a\nb\"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "empty.csv"), []byte("user_id,token\n"), 0o644)
	for _, tc := range []struct{ plan, want string }{
		{"body: '{{nope}}'", `body, column 3: unknown variable "nope"`},
		{"data: {users: {file: " + users + "}}\nheaders: {X-T: '{{users.tokn}}'}", `header X-T, column 9: data "users" has no column "tokn"`},
		{"data: {users: {file: " + filepath.Join(dir, "missing.csv") + "}}", "data users: cannot read " + filepath.Join(dir, "missing.csv") + ": no such file or directory"},
		{"data: {users: {file: " + filepath.Join(dir, "empty.csv") + "}}", "has no rows"},
		{"data: {users: {file: " + filepath.Join(dir, "bad.csv") + "}}\nheaders: {X-T: '{{users.token}}'}", `bad.csv line 2, column token: byte '\n', which a header cannot carry`},
		{"requests: [{name: buy, path: '/x/{{randInt 2 1}}'}]", `request "buy" path, column 14: randInt's LO 2 is above its HI 1`},
		{"requests: [{name: a, path: '/a b/{{seq}}'}]", `request "a" path, column 3: the text has byte ' '`},
	} {
		p, err := proto.ParsePlan([]byte("target_url: http://h/\n" + tc.plan + "\n"))
		if err == nil {
			_, err = Build(p, Options{})
		}
		if !errors.Is(err, proto.ErrBadPlan) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s:\n  got  %v\n  want %q", tc.plan, err, tc.want)
		}
	}
	// An agent's copy that differs from the coordinator's is refused.
	p, _ := proto.ParsePlan([]byte("target_url: http://h/\ndata: {users: {file: " + users + "}}\n"))
	if err := Inspect(p); err != nil {
		t.Fatal(err)
	}
	writeUsers(t, dir, 4)
	if _, err := Build(p, Options{}); err == nil || !strings.Contains(err.Error(), "is not the file the plan was loaded with") {
		t.Errorf("changed file: %v", err)
	}
	// A slice with no row.
	writeUsers(t, dir, 3)
	p, _ = proto.ParsePlan([]byte("target_url: http://h/\ndata: {users: {file: " + users + "}}\n"))
	if _, err := Build(p, Options{Slice: &proto.Slice{From: 0.1, To: 0.2}}); err == nil || !strings.Contains(err.Error(), "slice") {
		t.Errorf("empty slice: %v", err)
	}
	if _, err := Build(p, Options{Slice: &proto.Slice{From: 0.1, To: 0.2}}); err == nil {
		t.Error("no error")
	}
}

// A template error in a plan file points at the file's line and column.
func TestErrorPosition(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "plan.yaml")
	os.WriteFile(path, []byte("target_url: http://h/\nrequests:\n  - name: buy\n    body: |\n      {\"a\": 1,\n       \"b\": {{randInt 1}}}\n"), 0o644)
	p, src, err := proto.LoadPlanSource(path)
	if err != nil {
		t.Fatal(err)
	}
	err = Check(p, src)
	want := path + `:6:15: request "buy" body: randInt takes two integers`
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("got %v\nwant %s…", err, want)
	}
}

func TestWithHeader(t *testing.T) {
	p := flashPlan(t, t.TempDir(), 10)
	m, err := Build(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := m.NewRenderer(0, 1)
	b1, _ := r.Append(nil, m, 0)
	m2, err := m.WithHeader("Authorization", "Bearer rotated")
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := r.Append(nil, m2, 0)
	if !bytes.Contains(b1, []byte("Authorization: Bearer t")) || !bytes.Contains(b2, []byte("Authorization: Bearer rotated\r\n")) {
		t.Fatalf("before %q\nafter %q", b1, b2)
	}
	if _, err := m.WithHeader("X-Bad", "{{users.nope}}"); err == nil {
		t.Fatal("a bad template accepted")
	}
	q := m.Plan().Clone()
	q.Requests = q.Requests[:1]
	if _, err := m.Rebuild(q); err == nil {
		t.Fatal("a change of the requests accepted")
	}
}
