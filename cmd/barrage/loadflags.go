package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/barrage-load/barrage/proto"
)

// loadFlags are the flags that describe a load: shared by run and coord.
type loadFlags struct {
	connections    int
	duration       time.Duration
	rate           float64
	pipeline       int
	method         string
	headers        []string
	body           string
	bodyFile       string
	timeout        time.Duration
	connectTimeout time.Duration
	plan           string
}

func (lf *loadFlags) register(fs *pflag.FlagSet) {
	fs.IntVarP(&lf.connections, "connections", "c", proto.DefaultConnections, "connections to keep open (over all cores, or all agents)")
	fs.DurationVarP(&lf.duration, "duration", "d", proto.DefaultDuration, "how long to run")
	fs.Float64VarP(&lf.rate, "rate", "r", 0, "requests per second (open model, latency from the intended send time); 0 = closed model, as fast as the target answers")
	fs.IntVarP(&lf.pipeline, "pipeline", "p", proto.DefaultPipeline, "requests in flight per connection (HTTP pipelining)")
	fs.StringVarP(&lf.method, "method", "m", proto.DefaultMethod, "HTTP method")
	fs.StringArrayVarP(&lf.headers, "header", "H", nil, `request header "Name: value" (repeatable)`)
	fs.StringVar(&lf.body, "body", "", "request body")
	fs.StringVar(&lf.bodyFile, "body-file", "", "read the request body from this file")
	fs.DurationVar(&lf.timeout, "timeout", proto.DefaultTimeout, "per-request timeout, from send to the end of the response")
	fs.DurationVar(&lf.connectTimeout, "connect-timeout", proto.DefaultConnectTimeout, "connect timeout")
	fs.StringVarP(&lf.plan, "plan", "f", "", "plan file (YAML or JSON: target_url, rate, connections, pattern: {type: constant|ramp|steps|spike, ...}); flags given explicitly override it")
}

// errBadURL marks a target URL that cannot be used (exit 1, not 2).
var errBadURL = errors.New("bad URL")

// build makes the plan from the flags, the plan file and the URL argument.
func (lf *loadFlags) build(fs *pflag.FlagSet, args []string) (*proto.Plan, error) {
	var p proto.Plan
	if lf.plan != "" {
		lp, err := proto.LoadPlan(lf.plan)
		if err != nil {
			return nil, err
		}
		p = *lp
	}
	set := func(name string) bool { return lf.plan == "" || fs.Changed(name) }
	if len(args) > 1 {
		return nil, fmt.Errorf("%w: want one URL, got %d arguments: %s", proto.ErrBadPlan, len(args), strings.Join(args, " "))
	}
	if len(args) == 1 {
		p.TargetURL = args[0]
	}
	if p.TargetURL == "" {
		return nil, fmt.Errorf("%w: no target URL (give one, e.g. http://127.0.0.1:8080/, or -f plan.yaml)", proto.ErrBadPlan)
	}
	if _, err := proto.ParseTarget(p.TargetURL); err != nil {
		return nil, fmt.Errorf("%w: %v", errBadURL, err)
	}
	if set("connections") {
		p.Connections = lf.connections
	}
	if set("duration") {
		p.Duration = proto.Duration(lf.duration)
		if lf.plan != "" && p.Pattern.Type == proto.PatternSteps {
			return nil, fmt.Errorf("%w: -d cannot change a steps plan's duration (it is the steps' sum)", proto.ErrBadPlan)
		}
	}
	if set("rate") {
		p.Rate = lf.rate
	}
	if set("pipeline") {
		p.Pipeline = lf.pipeline
	}
	if set("method") {
		p.Method = lf.method
	}
	if set("timeout") {
		p.Timeout = proto.Duration(lf.timeout)
	}
	if set("connect-timeout") {
		p.ConnectTimeout = proto.Duration(lf.connectTimeout)
	}
	for _, h := range lf.headers {
		name, value, ok := strings.Cut(h, ":")
		if !ok || strings.TrimSpace(name) == "" {
			return nil, fmt.Errorf("%w: header %q is not \"Name: value\"", proto.ErrBadPlan, h)
		}
		if p.Headers == nil {
			p.Headers = map[string]string{}
		}
		p.Headers[strings.TrimSpace(name)] = strings.TrimSpace(value)
	}
	if fs.Changed("body") && fs.Changed("body-file") {
		return nil, fmt.Errorf("%w: give --body or --body-file, not both", proto.ErrBadPlan)
	}
	if fs.Changed("body") {
		p.Body = lf.body
	}
	if fs.Changed("body-file") {
		b, err := os.ReadFile(lf.bodyFile)
		if err != nil {
			return nil, fmt.Errorf("%w: --body-file: %v", proto.ErrBadPlan, err)
		}
		p.Body = string(b)
	}
	if lf.timeout <= 0 || lf.connectTimeout <= 0 {
		return nil, fmt.Errorf("%w: timeouts must be positive", proto.ErrBadPlan)
	}
	p.Normalize()
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

// newFlagSet makes a flag set that reports errors instead of exiting, with
// a usage text that explains the command.
func newFlagSet(name, synopsis, about string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SortFlags = false
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: barrage %s %s\n\n%s\n\nFlags:\n%s", name, synopsis, about, fs.FlagUsages())
	}
	return fs
}

// parseFlags parses args; it returns an exit code >= 0 when the command
// must end now (help asked, or bad flags).
func parseFlags(fs *pflag.FlagSet, args []string) int {
	fs.SetOutput(devNull{})
	err := fs.Parse(args)
	if errors.Is(err, pflag.ErrHelp) {
		fs.SetOutput(os.Stdout)
		fs.Usage()
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "barrage %s: %v (see barrage %s --help)\n", fs.Name(), err, fs.Name())
		return exitBadInput
	}
	return -1
}

type devNull struct{}

func (devNull) Write(p []byte) (int, error) { return len(p), nil }
