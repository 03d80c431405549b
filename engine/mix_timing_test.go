package engine

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/barrage-load/barrage/proto"
)

// flashOptions builds the engine options of the flash-sale mix (two
// requests picked 1:3, a JSON body with three variables, a bearer token
// from a data file), or, with fixed, of one request of the same size with
// nothing variable: the pair measures what rendering costs per request.
func flashOptions(b testing.TB, fixed bool) Options {
	b.Helper()
	dir := b.TempDir()
	var sb strings.Builder
	sb.WriteString("user_id,token\n")
	for i := 0; i < 1000; i++ {
		fmt.Fprintf(&sb, "u%06d,tok-%032d\n", i, i)
	}
	os.WriteFile(filepath.Join(dir, "users.csv"), []byte(sb.String()), 0o644)
	plan := `
target_url: http://127.0.0.1:8080/
data: {users: {file: ` + filepath.Join(dir, "users.csv") + `}}
headers: {Authorization: "Bearer {{users.token}}"}
requests:
  - {name: buy, weight: 1, method: POST, path: /buy, headers: {Content-Type: application/json},
     body: '{"product":{{randInt 1 5000}},"quantity":{{randInt 1 5}},"user":"{{users.user_id}}"}'}
  - {name: browse, weight: 3, path: '/product/{{randInt 1 5000}}'}
`
	if fixed {
		plan = `
target_url: http://127.0.0.1:8080/buy
method: POST
headers: {Authorization: "Bearer tok-00000000000000000000000000000042", Content-Type: application/json}
body: '{"product":1234,"quantity":2,"user":"u000042"}'
`
	}
	p, err := proto.ParsePlan([]byte(plan))
	if err != nil {
		b.Fatal(err)
	}
	o, err := FromPlan(p)
	if err != nil {
		b.Fatal(err)
	}
	o.Schedule = []proto.Segment{{Duration: time.Hour, Connections: 64}}
	return o
}

func benchFillMix(b *testing.B, fixed bool) { benchFill(b, flashOptions(b, fixed)) }

// BenchmarkFillFixed: the closed model's per-request path, one fixed
// request of the flash sale's size.
func BenchmarkFillFixed(b *testing.B) { benchFillMix(b, true) }

// BenchmarkFillMix: the same path with the flash-sale mix rendered per
// request (pick, three body variables, a data row, Content-Length, and
// per-request figures). The difference is the cost of rendering.
func BenchmarkFillMix(b *testing.B) { benchFillMix(b, false) }
