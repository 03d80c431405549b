package engine

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/barrage-load/barrage/proto"
	reqmix "github.com/barrage-load/barrage/request"
)

// mixTarget is a net/http server that counts what it is sent: requests by
// path prefix and X-Token value. /a/N hangs for 2 s when N is a multiple
// of 40 (a timeout); /b answers 500 to every body with "quantity":5.
type mixTarget struct {
	mu     sync.Mutex
	paths  map[string]int
	tokens map[string]int
	// after counts the "one" tokens seen once "two" was.
	after int
	two   bool
}

func startMixTarget(t *testing.T) (*mixTarget, string) {
	mt := &mixTarget{paths: map[string]int{}, tokens: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		tok := r.Header.Get("X-Token")
		mt.mu.Lock()
		mt.paths[r.URL.Path[:2]]++
		mt.tokens[tok]++
		if tok == "two" {
			mt.two = true
		} else if mt.two {
			mt.after++
		}
		mt.mu.Unlock()
		if n, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/a/")); err == nil && n%40 == 0 {
			select {
			case <-time.After(2 * time.Second):
			case <-r.Context().Done():
			}
			return
		}
		if strings.Contains(string(body), `"quantity":5`) {
			w.WriteHeader(500)
		}
	}))
	t.Cleanup(srv.Close)
	return mt, srv.URL
}

func mixOptions(t *testing.T, url string, rate float64) (Options, *reqmix.Mix) {
	t.Helper()
	p, err := proto.ParsePlan([]byte(`
target_url: ` + url + `/
headers: {X-Token: one}
timeout: 300ms
requests:
  - {name: a, weight: 1, path: '/a/{{seq}}'}
  - {name: b, weight: 3, method: POST, path: /b, body: '{"quantity":{{randInt 1 5}}}'}
`))
	if err != nil {
		t.Fatal(err)
	}
	o, err := FromPlan(p)
	if err != nil {
		t.Fatal(err)
	}
	o.Schedule = []proto.Segment{{Duration: 1500 * time.Millisecond, Connections: 8, From: rate, To: rate}}
	return o, o.Mix
}

// checkPerRequest asserts that a named mix's figures add up to the
// totals: sent, responses, unfinished, each status, each error kind; that
// each request's own accounting holds; and that every latency recorded
// per request is a response's or a censored one's.
func checkPerRequest(t *testing.T, s *proto.Stats) {
	t.Helper()
	var sent, resp, unf uint64
	var status [proto.MaxStatus]uint64
	var errs [proto.NumErrKinds]uint64
	var lat int64
	for i := range s.Requests {
		r := &s.Requests[i]
		sent += r.Sent
		resp += r.Responses
		unf += r.Unfinished
		for c, n := range r.Status {
			status[c] += n
		}
		for k, n := range r.Errors {
			errs[k] += n
		}
		if r.Sent != r.Responses+r.Failed()+r.Unfinished {
			t.Fatalf("request %d: sent %d != %d + %d + %d", i, r.Sent, r.Responses, r.Failed(), r.Unfinished)
		}
		lat += r.Latency.TotalCount()
	}
	errs[proto.ErrConnect] = s.Errors[proto.ErrConnect]
	if sent != s.Sent || resp != s.Responses || unf != s.Unfinished || status != s.Status || errs != s.Errors {
		t.Fatalf("per request: sent %d resp %d unf %d errors %v; totals %d %d %d %v", sent, resp, unf, errs, s.Sent, s.Responses, s.Unfinished, s.Errors)
	}
	if lat != int64(s.Responses+s.Failed()+s.Unfinished) {
		t.Fatalf("per-request latencies %d, want responses %d + failed %d + unfinished %d", lat, s.Responses, s.Failed(), s.Unfinished)
	}
}

// A named mix against a real server, closed and open: the per-request
// figures add up to the totals, timeouts land on the request that timed
// out and 500s on the one that got them, and a live header change
// reaches every request from its instant on.
func TestMixPerRequest(t *testing.T) {
	for _, rate := range []float64{0, 2000} {
		mt, url := startMixTarget(t)
		o, m := mixOptions(t, url, rate)
		o.Interval = 250 * time.Millisecond
		total, ivs := run(t, o, func(e *Engine) {
			time.Sleep(700 * time.Millisecond)
			two, err := m.WithHeader("X-Token", "two")
			if err == nil {
				err = e.SetMix(0, two)
			}
			if err != nil {
				t.Error(err)
			}
		})
		checkAccounting(t, total)
		checkPerRequest(t, total)
		for _, iv := range ivs {
			checkPerRequestSums(t, iv)
		}
		a, b := &total.Requests[0], &total.Requests[1]
		if a.Errors[proto.ErrTimeout] == 0 || b.Errors[proto.ErrTimeout] != 0 || a.Status[500] != 0 || b.Status[500] == 0 {
			t.Fatalf("rate %g: a: timeouts %d, 500s %d; b: timeouts %d, 500s %d", rate, a.Errors[proto.ErrTimeout], a.Status[500], b.Errors[proto.ErrTimeout], b.Status[500])
		}
		// Weights 1:3 (a few thousand requests: within 5 points).
		if f := float64(a.Sent) / float64(total.Sent); f < 0.20 || f > 0.30 {
			t.Fatalf("rate %g: a is %.3f of %d sent", rate, f, total.Sent)
		}
		mt.mu.Lock()
		if mt.tokens["one"] == 0 || mt.tokens["two"] == 0 || mt.after > 8 {
			// A request sent before the change may arrive after one sent
			// after it, one per connection at most.
			t.Fatalf("rate %g: tokens %v, %d old tokens after the first new one", rate, mt.tokens, mt.after)
		}
		mt.mu.Unlock()
		t.Logf("rate %g: sent %d (a %d, b %d), tokens %v", rate, total.Sent, a.Sent, b.Sent, mt.tokens)
	}
}

// checkPerRequestSums: in every interval the requests' counters add up.
func checkPerRequestSums(t *testing.T, s *proto.Stats) {
	t.Helper()
	var sent, resp uint64
	for i := range s.Requests {
		sent += s.Requests[i].Sent
		resp += s.Requests[i].Responses
	}
	if sent != s.Sent || resp != s.Responses {
		t.Fatalf("interval %d: per request sent %d, responses %d; totals %d, %d", s.Seq, sent, resp, s.Sent, s.Responses)
	}
}

func TestSetMixRefusesAnotherMix(t *testing.T) {
	_, url := startMixTarget(t)
	o, _ := mixOptions(t, url, 0)
	e, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := proto.ParsePlan([]byte("target_url: " + url + "/\n"))
	other, err := reqmix.Build(p, reqmix.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.SetMix(0, other); err == nil {
		t.Fatal("a mix of other requests accepted")
	}
}
