package request

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/barrage-load/barrage/proto"
)

func TestParseTargets(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "thing.json"), []byte(`{"a":"{{x}}"}`), 0o644)
	src := `# vegeta targets
GET http://goku:9090/path/to/dragon?item=fireball
X-Account-ID: 8675309

DELETE http://goku:9090/path/to/remove
Confirmation-Token: 90215
Authorization: Token DEADBEEF
X-Multi: a
X-Multi: b

POST http://goku:9090/things
@thing.json


GET http://goku:9090/path/to/dragon?item=fireball
`
	target, reqs, err := ParseTargets(strings.NewReader(src), "t.txt", dir)
	if err != nil {
		t.Fatal(err)
	}
	if target != "http://goku:9090/path/to/dragon?item=fireball" || len(reqs) != 4 {
		t.Fatalf("target %q, %d requests", target, len(reqs))
	}
	r := reqs[1]
	if r.Method != "DELETE" || r.Path != "/path/to/remove" || r.Headers["Authorization"] != "Token DEADBEEF" || r.Headers["X-Multi"] != "a, b" || !r.Raw || r.Weight != 1 {
		t.Fatalf("second target %+v", r)
	}
	if reqs[2].Body != `{"a":"{{x}}"}` || reqs[2].Method != "POST" {
		t.Fatalf("third target %+v", reqs[2])
	}
	if reqs[0].Name != "GET /path/to/dragon?item=fireball" || reqs[3].Name != "GET /path/to/dragon?item=fireball #2" {
		t.Fatalf("names %q %q", reqs[0].Name, reqs[3].Name)
	}
	// As a plan: the mix compiles, and the body's braces are sent as
	// written (vegeta has no variables).
	p := &proto.Plan{TargetURL: target, Requests: reqs}
	p.Normalize()
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	m, err := Build(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if m.Len() != 4 {
		t.Fatalf("%d", m.Len())
	}
	for _, tc := range []struct{ src, want string }{
		{"GET http://a/\n\nGET http://b/\n", "t.txt:3: http://b is not on the first target's origin http://a"},
		{"FETCH\n", `t.txt:1: want "METHOD URL"`},
		{"GET ftp://a/\n", "t.txt:1: \"ftp://a/\" is not an http:// URL"},
		{"GET http://a/\nnot a header\n", "t.txt:2: want a header"},
		{"GET http://a/\n@missing.json\n", "t.txt:2: body file"},
		{"# nothing\n\n", "t.txt: no targets"},
	} {
		_, _, err := ParseTargets(strings.NewReader(tc.src), "t.txt", dir)
		if !errors.Is(err, proto.ErrBadPlan) || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.src, err, tc.want)
		}
	}
	var many strings.Builder
	for i := 0; i <= proto.MaxRequests; i++ {
		many.WriteString("GET http://a/\n\n")
	}
	if _, _, err := ParseTargets(strings.NewReader(many.String()), "t.txt", dir); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("too many targets: %v", err)
	}
}
