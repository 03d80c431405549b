package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/barrage-load/barrage/dashboard"
	"github.com/barrage-load/barrage/live"
	"github.com/barrage-load/barrage/metrics"
	"github.com/barrage-load/barrage/proto"
	"github.com/barrage-load/barrage/report"
)

// viewFlags are run's and coord's --http, --html and --http-linger: the
// live dashboard (with /metrics) and the HTML report, both fed from the
// merged stream by a dashboard.Recorder.
type viewFlags struct {
	http   string
	html   string
	linger time.Duration
	addr   string
}

func (v *viewFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&v.http, "http", "", "serve the live dashboard, its API and /metrics on ADDR (a bare port = 127.0.0.1:PORT; 0.0.0.0:PORT for every interface); the URL and the control token are printed at start")
	fs.StringVar(&v.html, "html", "", "write the report as one self-contained HTML file (charts, steps, agents; opens offline) at the end")
	fs.DurationVar(&v.linger, "http-linger", 0, "keep serving the dashboard this long after the test ended (SIGINT/SIGTERM end it sooner)")
}

// check validates the flags before anything starts: the address, and
// that the HTML file can be written (a test is not run to lose its
// report at the end).
func (v *viewFlags) check(cmd string) int {
	if v.http != "" {
		a, err := dashboard.ParseAddr(v.http)
		if err != nil {
			fmt.Fprintf(os.Stderr, "barrage %s: --http: %v\n", cmd, err)
			return exitBadInput
		}
		v.addr = a
	}
	if v.linger < 0 {
		fmt.Fprintf(os.Stderr, "barrage %s: --http-linger must be >= 0\n", cmd)
		return exitBadInput
	}
	if v.html != "" {
		if v.html == "-" {
			fmt.Fprintf(os.Stderr, "barrage %s: --html needs a file name\n", cmd)
			return exitBadInput
		}
		if err := report.CheckWritable(v.html); err != nil {
			fmt.Fprintf(os.Stderr, "barrage %s: --html: %v\n", cmd, err)
			return exitBadInput
		}
	}
	return -1
}

// view is a running dashboard and/or HTML report.
type view struct {
	cmd string
	f   *viewFlags
	rec *dashboard.Recorder
	srv *dashboard.Server
}

// start makes the recorder (when --http or --html is given) and starts
// the server (--http). ctl is what the page's controls drive.
func (v *viewFlags) start(cmd string, plan *proto.Plan, fleet bool, ctl live.Controller) (*view, int) {
	w := &view{cmd: cmd, f: v}
	if v.http == "" && v.html == "" {
		return w, -1
	}
	w.rec = dashboard.NewRecorder(plan, fleet)
	if v.http == "" {
		return w, -1
	}
	token := dashboard.NewToken()
	srv, err := dashboard.Start(dashboard.Options{Addr: v.addr, Recorder: w.rec, Control: ctl, Token: token, Metrics: metrics.Handler(w.rec)})
	if err != nil {
		fmt.Fprintf(os.Stderr, "barrage %s: %v\n", cmd, err)
		return nil, exitNoStart
	}
	w.srv = srv
	// The token is printed once, here, for the user to paste in the page;
	// it is never logged anywhere else.
	fmt.Fprintf(os.Stderr, "barrage %s: dashboard at %s (metrics at %smetrics); control token: %s\n", cmd, srv.URL(), srv.URL(), token)
	return w, -1
}

// finish hands the final report to the page and the metrics, and writes
// the HTML report.
func (w *view) finish(rep *report.Report) error {
	if w.rec == nil || rep == nil {
		return nil
	}
	w.rec.Finish(rep)
	if w.f.html == "" {
		return nil
	}
	c := w.rec.Charts(rep)
	c.Version = version()
	return report.WriteHTMLFile(w.f.html, c)
}

// close keeps serving for --http-linger (or until a signal), then lets
// the streams send the final report and stops the server.
func (w *view) close() {
	if w == nil || w.srv == nil {
		return
	}
	if w.f.linger > 0 {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		t := time.NewTimer(w.f.linger)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
		stop()
	}
	w.srv.Close(time.Second)
}

// coordControl is the dashboard's controller for coord: the server starts
// before the coordinator is made (so its address is checked first), and
// the controls answer "not yet" until then.
type coordControl struct {
	mu sync.Mutex
	c  live.Controller
}

func (x *coordControl) set(c live.Controller) {
	x.mu.Lock()
	x.c = c
	x.mu.Unlock()
}

func (x *coordControl) get() live.Controller {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.c
}

// Change implements live.Controller.
func (x *coordControl) Change(ctx context.Context, ch live.Change) (time.Duration, error) {
	c := x.get()
	if c == nil {
		return 0, errNoTestYet
	}
	return c.Change(ctx, ch)
}

// Stop implements live.Controller.
func (x *coordControl) Stop(reason string) {
	if c := x.get(); c != nil {
		c.Stop(reason)
	}
}

var errNoTestYet = errors.New("the coordinator has not started the test yet")
