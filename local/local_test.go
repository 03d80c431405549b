package local

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/barrage-load/barrage/engine"
	"github.com/barrage-load/barrage/live"
	"github.com/barrage-load/barrage/proto"
	"github.com/barrage-load/barrage/report"
	"github.com/barrage-load/barrage/server"
)

func runner(t *testing.T, rate float64, d time.Duration) *Runner {
	t.Helper()
	srv, err := server.Start(server.Options{Listen: "127.0.0.1:0", Loops: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	p := &proto.Plan{TargetURL: "http://" + srv.Addr() + "/", Rate: rate, Connections: 4, Duration: proto.Duration(d)}
	p.Normalize()
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	eo, err := engine.FromPlan(p)
	if err != nil {
		t.Fatal(err)
	}
	eo.CPUs = []int{0}
	r, err := New(Options{Plan: p, Engine: eo})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestLiveChange: a rate changed while run runs takes effect at an
// interval boundary, is its own step row with its own counts, and an
// event; what was asked follows the changed schedule.
func TestLiveChange(t *testing.T) {
	r := runner(t, 200, 4*time.Second)
	var rep *report.Report
	done := make(chan error, 1)
	go func() {
		var err error
		rep, _, err = r.Run(context.Background())
		done <- err
	}()
	for r.Engine().Started().IsZero() {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(1200 * time.Millisecond)
	at, err := r.Change(context.Background(), live.Change{Rate: 600, Reason: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if at != at.Truncate(time.Second) || at < 2*time.Second {
		t.Fatalf("the change takes effect at %s, want an interval boundary after the ask", at)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(rep.Steps) != 2 || rep.Steps[1].TargetRate != 600 || rep.Steps[1].Note == "" {
		t.Fatalf("steps %+v", rep.Steps)
	}
	asked := 200*at.Seconds() + 600*(4-at.Seconds())
	if math.Abs(float64(rep.Scheduled)-asked) > 0.01*asked {
		t.Fatalf("asked %d, the changed schedule says %.0f", rep.Scheduled, asked)
	}
	var changes int
	for _, e := range rep.Events {
		if e.Kind == report.EventChange {
			changes++
		}
	}
	if changes != 1 {
		t.Fatalf("events %+v", rep.Events)
	}
}

// TestStopAndClosedModel: a closed-model run refuses a rate; Stop ends
// the run at once with its reason as the outcome.
func TestStopAndClosedModel(t *testing.T) {
	r := runner(t, 0, 30*time.Second)
	done := make(chan *report.Report, 1)
	go func() {
		rep, _, err := r.Run(context.Background())
		if err != nil {
			t.Error(err)
		}
		done <- rep
	}()
	for r.Engine().Started().IsZero() {
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := r.Change(context.Background(), live.Change{Rate: 100, Reason: "test"}); !errors.Is(err, live.ErrClosedModel) {
		t.Fatalf("a rate on a closed-model run: %v", err)
	}
	t0 := time.Now()
	r.Stop("enough")
	rep := <-done
	if time.Since(t0) > 2*time.Second || rep.Completed() || rep.Outcome == "" {
		t.Fatalf("after %s: outcome %q", time.Since(t0), rep.Outcome)
	}
}
