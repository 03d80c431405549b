package main

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/barrage-load/barrage/proto"
	"github.com/barrage-load/barrage/report"
	"github.com/barrage-load/barrage/request"
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
	expectStatus   []int
	seed           uint64
	targets        string
	secret         []string
	headerFiles    []string
	raw            bool
	noKeepAlive    bool
	insecure       bool
	caCert         string
	cert           string
	key            string
	tlsMin         string
	ciphers        []string
	tlsResume      bool
	retry          int
	retryOn        []string
	retryBase      time.Duration
	retryMaxDelay  time.Duration
	breaker        string
	thresholds     []string
	abortGrace     time.Duration
	degrade        string
	// parsed holds the thresholds of the plan built (guard.go).
	parsed []*report.Threshold
	// oneBox is set for `run`: the whole plan runs on this machine, so
	// it must also fit one box's caps (proto.Caps).
	oneBox bool

	// Set by build: the header files to watch (run), and the names given
	// a literal value with -H.
	watch   []request.HeaderFile
	literal []string
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
	fs.IntSliceVar(&lf.expectStatus, "expect-status", nil, "status codes that count as success, e.g. 200,429 (default: every code below 400)")
	fs.Uint64Var(&lf.seed, "seed", 0, "seed of the random picks and values (the same seed draws the same requests again; 0 = pick one, shown in the report)")
	fs.StringVar(&lf.targets, "targets", "", "vegeta targets file (METHOD URL, header lines, @body-file, a blank line between targets): a mix of equal weights")
	fs.BoolVar(&lf.raw, "raw", false, "send the request's headers and body as written: {{...}} is no variable")
	fs.StringArrayVar(&lf.secret, "secret-header", nil, "a header whose value is a secret, redacted in reports and logs like Authorization (repeatable)")
	fs.BoolVar(&lf.noKeepAlive, "no-keepalive", false, `one request per connection ("Connection: close"), a new connection for each: connect and TLS handshake times are measured and reported on their own`)
	fs.BoolVar(&lf.insecure, "insecure", false, "https: do not verify the server's certificate")
	fs.StringVar(&lf.caCert, "cacert", "", "https: PEM file of the authorities to trust (instead of the system's); a path on the box that runs the load (every agent's)")
	fs.StringVar(&lf.cert, "cert", "", "https: PEM client certificate (chain) for servers that ask for one (mTLS); with --key")
	fs.StringVar(&lf.key, "key", "", "https: PEM private key of --cert (read on the box that runs the load; never sent through ZooKeeper)")
	fs.StringVar(&lf.tlsMin, "tls-min", "", "https: lowest TLS version offered: 1.2 (default) or 1.3")
	fs.StringSliceVar(&lf.ciphers, "ciphers", nil, "https: TLS 1.2 cipher suites offered, by Go name, comma-separated (TLS 1.3's are not configurable)")
	fs.BoolVar(&lf.tlsResume, "tls-resume", false, "https: resume TLS sessions (tickets) on reconnects; by default every connection makes a full handshake")
	fs.IntVar(&lf.retry, "retry", 0, fmt.Sprintf("send a failed request again, the same bytes, after an exponential backoff with full jitter, up to N attempts in all, the first included (2 to %d; 0 = no retries); retries are extra load, reported as such", proto.MaxAttempts))
	fs.StringSliceVar(&lf.retryOn, "retry-on", nil, "with --retry: the failures retried, and the ones the breaker counts: connect, timeout, reset, protocol, 4xx, 5xx or status codes (default "+strings.Join(proto.DefaultFailOn, ",")+")")
	fs.DurationVar(&lf.retryBase, "retry-base", proto.DefaultRetryBase, "with --retry: the first retry's backoff, doubled per retry")
	fs.DurationVar(&lf.retryMaxDelay, "retry-max-delay", proto.DefaultRetryMaxDelay, "with --retry: the longest backoff")
	fs.StringVar(&lf.breaker, "breaker", "", `circuit breaker: "on", or key=value pairs, e.g. "error_rate=50%,min_calls=20,window=10s,open_for=5s,half_open_probes=5" (the defaults); while open, requests due are shed, not sent`)
	fs.StringArrayVar(&lf.thresholds, "threshold", nil, `pass/fail criterion, e.g. "p99 < 250ms", "errors < 1%", "status_429 > 10%", "rps >= 99% target", "p99{step=2} < 100ms" (repeatable; replaces the plan's; a failed one exits 3)`)
	fs.DurationVar(&lf.abortGrace, "abort-on-fail", 0, "also judge the thresholds live over the last GRACE (e.g. 10s) and stop the test when one fails")
	fs.StringVar(&lf.degrade, "degrade", "", `lower the load when errors stay high: "error_rate=50%,for=5s,factor=0.5,stop_above=80%[,max_reductions=N]" (replaces the plan's degrade)`)
	lf.oneBox = fs.Name() == "run"
	if lf.oneBox {
		fs.StringArrayVar(&lf.headerFiles, "header-file", nil, "NAME=FILE: the header's value is FILE's first line, read again whenever FILE changes (a rotated token); repeatable")
	}
}

// errBadURL marks a target URL that cannot be used (exit 1, not 2).
var errBadURL = errors.New("bad URL")

// urlError is a bad target URL: it matches errBadURL, and reads as the
// one line that says what is wrong (no "bad URL: proto: bad plan:" chain).
type urlError struct{ err error }

func (e urlError) Error() string        { return e.err.Error() }
func (e urlError) Is(target error) bool { return target == errBadURL }

// flagFields maps the flags whose explicit zero is a mistake to the plan
// fields proto.Plan.CheckGiven knows.
var flagFields = map[string]string{
	"connections": "connections", "pipeline": "pipeline", "duration": "duration",
	"timeout": "timeout", "connect-timeout": "connect_timeout",
}

// build makes the plan from the flags, the plan file and the URL argument.
// Every error reads as one line and matches proto.ErrBadPlan (exit 2) or
// errBadURL (exit 1).
func (lf *loadFlags) build(fs *pflag.FlagSet, args []string) (*proto.Plan, error) {
	// The report's file is checked before anything runs: a typo in its
	// path must not cost a whole test's report.
	if f := fs.Lookup("json"); f != nil {
		if err := checkOutput(f.Value.String()); err != nil {
			return nil, err
		}
	}
	var p proto.Plan
	var src *proto.Source
	if lf.plan != "" {
		lp, s, err := proto.LoadPlanSource(lf.plan)
		if err != nil {
			return nil, err
		}
		p, src = *lp, s
	}
	set := func(name string) bool { return lf.plan == "" || fs.Changed(name) }
	if len(args) > 1 {
		return nil, proto.BadPlanf("want one URL, got %d arguments: %s", len(args), strings.Join(args, " "))
	}
	if len(args) == 1 {
		p.TargetURL = args[0]
	}
	if lf.targets != "" {
		if err := lf.readTargets(&p); err != nil {
			return nil, err
		}
		src = nil // the requests are the targets file's, not the plan's
	}
	if p.TargetURL == "" {
		return nil, proto.BadPlanf("no target URL (give one, e.g. http://127.0.0.1:8080/, or -f plan.yaml)")
	}
	if _, err := proto.ParseTarget(p.TargetURL); err != nil {
		return nil, urlError{err}
	}
	if set("connections") {
		p.Connections = lf.connections
	}
	if set("duration") {
		p.Duration = proto.Duration(lf.duration)
		if lf.plan != "" && p.Pattern.Type == proto.PatternSteps {
			return nil, proto.BadPlanf("-d cannot change a steps plan's duration (it is the steps' sum)")
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
	if fs.Changed("expect-status") {
		p.ExpectStatus = lf.expectStatus
	}
	if set("no-keepalive") {
		p.NoKeepAlive = lf.noKeepAlive
	}
	if fs.Changed("threshold") {
		p.Thresholds = lf.thresholds
	}
	if fs.Changed("abort-on-fail") {
		p.AbortOnFail = &proto.AbortOnFail{Grace: proto.Duration(lf.abortGrace)}
		if lf.abortGrace <= 0 {
			return nil, proto.BadPlanf("--abort-on-fail %s: give the grace, e.g. 10s", lf.abortGrace)
		}
	}
	if fs.Changed("degrade") {
		d, err := proto.ParseDegrade(lf.degrade)
		if err != nil {
			return nil, err
		}
		p.Degrade = d
	}
	if set("insecure") {
		p.Insecure = lf.insecure
	}
	if fs.Changed("cacert") {
		p.CACert = lf.caCert
	}
	if fs.Changed("cert") {
		p.Cert = lf.cert
	}
	if fs.Changed("key") {
		p.Key = lf.key
	}
	if fs.Changed("tls-min") {
		p.TLSMin = lf.tlsMin
	}
	if fs.Changed("ciphers") {
		p.Ciphers = lf.ciphers
	}
	if set("tls-resume") {
		p.TLSResume = lf.tlsResume
	}
	if err := lf.buildRetry(fs, &p); err != nil {
		return nil, err
	}
	hdrs, literal, err := headerValues(lf.headers, os.Stdin)
	if err != nil {
		return nil, err
	}
	lf.literal = literal
	for _, hf := range lf.headerFiles {
		h, err := request.ParseHeaderFile(hf)
		if err != nil {
			return nil, err
		}
		v, err := h.Read()
		if err != nil {
			return nil, err
		}
		hdrs[h.Name] = v
		lf.watch = append(lf.watch, h)
	}
	for name, value := range hdrs {
		// A header given on the command line is every request's: it
		// overrides the plan's and the requests' own.
		p.SetHeader(name, value)
	}
	if fs.Changed("seed") {
		p.Seed = lf.seed
	}
	if fs.Changed("raw") {
		p.Raw = lf.raw
	}
	if p.Seed == 0 {
		p.Seed = newSeed()
	}
	p.Secret = append(p.Secret, lf.secret...)
	if fs.Changed("body") && fs.Changed("body-file") {
		return nil, proto.BadPlanf("give --body or --body-file, not both")
	}
	if fs.Changed("body") {
		p.Body = lf.body
	}
	if fs.Changed("body-file") {
		b, err := os.ReadFile(lf.bodyFile)
		if err != nil {
			return nil, proto.BadPlanf("--body-file: %v", err)
		}
		p.Body = string(b)
	}
	// "-c 0" is a mistake, not a request for the default.
	var given []string
	fs.Visit(func(f *pflag.Flag) {
		if field, ok := flagFields[f.Name]; ok {
			given = append(given, field)
		}
	})
	if err := p.CheckGiven(given...); err != nil {
		return nil, err
	}
	p.Normalize()
	if err := p.Validate(); err != nil {
		return nil, err
	}
	// The data files are read here, on this box (run's, or the
	// coordinator's, which checks what every agent will find at the same
	// path), and every template compiled: an unknown variable, a missing
	// file or column is refused now, with its line and column.
	if err := request.Inspect(&p); err != nil {
		return nil, err
	}
	if err := request.Check(&p, src); err != nil {
		return nil, err
	}
	if p.Insecure {
		fmt.Fprintf(os.Stderr, "barrage %s: warning: --insecure: the target's certificate is not verified\n", fs.Name())
	}
	// Thresholds parse here, so a bad one stops the command before
	// anything runs, with its position (exit 2).
	ts, err := report.ParseThresholds(p.Thresholds, &p)
	if err != nil {
		return nil, err
	}
	lf.parsed = ts
	if lf.oneBox {
		// The whole plan runs here: one box's connection limit applies
		// (the rate is bounded by Validate's ceiling).
		if err := p.CheckCaps(proto.Caps{MaxConnections: proto.DefaultAgentMaxConnections}); err != nil {
			return nil, err
		}
	}
	return &p, nil
}

// buildRetry applies the retry and breaker flags to the plan: --retry
// sets (or, 0, removes) its retry section, the other --retry-* flags
// change the section's fields; --breaker sets its breaker section. The
// plan's validation checks the values, as for a plan file.
func (lf *loadFlags) buildRetry(fs *pflag.FlagSet, p *proto.Plan) error {
	if fs.Changed("retry") {
		switch {
		case lf.retry == 0:
			p.Retry = nil
		case p.Retry == nil:
			p.Retry = &proto.Retry{Max: lf.retry}
		default:
			p.Retry.Max = lf.retry
		}
	}
	for _, name := range []string{"retry-on", "retry-base", "retry-max-delay"} {
		if fs.Changed(name) && p.Retry == nil {
			return proto.BadPlanf("--%s needs --retry N (or a plan with a retry section)", name)
		}
	}
	if fs.Changed("retry-on") {
		p.Retry.On = lf.retryOn
	}
	if fs.Changed("retry-base") {
		if lf.retryBase <= 0 {
			return proto.BadPlanf("--retry-base must be above 0, got %s", lf.retryBase)
		}
		p.Retry.Base = proto.Duration(lf.retryBase)
	}
	if fs.Changed("retry-max-delay") {
		if lf.retryMaxDelay <= 0 {
			return proto.BadPlanf("--retry-max-delay must be above 0, got %s", lf.retryMaxDelay)
		}
		p.Retry.MaxDelay = proto.Duration(lf.retryMaxDelay)
	}
	if fs.Changed("breaker") {
		if v := strings.TrimSpace(lf.breaker); v == "" || strings.EqualFold(v, "off") {
			p.Breaker = nil
			return nil
		}
		b, err := proto.ParseBreaker(lf.breaker)
		if err != nil {
			return err
		}
		p.Breaker = b
	}
	return nil
}

// readTargets makes the plan's requests the targets file's (vegeta's
// format): its first target's URL is the target unless one was given,
// which must then be of the same origin.
func (lf *loadFlags) readTargets(p *proto.Plan) error {
	if len(p.Requests) > 0 {
		return proto.BadPlanf("--targets and a plan that lists requests: give one of them")
	}
	f, err := os.Open(lf.targets)
	if err != nil {
		return proto.BadPlanf("--targets: %v", err)
	}
	defer f.Close()
	target, reqs, err := request.ParseTargets(f, lf.targets, filepath.Dir(lf.targets))
	if err != nil {
		return err
	}
	if p.TargetURL == "" {
		p.TargetURL = target
	} else if o, t := originOf(p.TargetURL), originOf(target); o != t {
		return proto.BadPlanf("--targets: the targets are on %s, the target URL on %s", t, o)
	}
	p.Requests = reqs
	return nil
}

func originOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	port := u.Port()
	if port == "" {
		port = "80"
	}
	return u.Scheme + "://" + strings.ToLower(u.Hostname()) + ":" + port
}

// checkOutput makes sure a report file can be written: its directory
// exists and takes a new file, or the file exists and opens for writing.
// "-" and "" (stdout, none) need no check.
func checkOutput(path string) error {
	if path == "" || path == "-" {
		return nil
	}
	dir := filepath.Dir(path)
	st, err := os.Stat(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return proto.BadPlanf("--json %s: directory %s does not exist", path, dir)
		}
		return proto.BadPlanf("--json %s: %v", path, err)
	}
	if !st.IsDir() {
		return proto.BadPlanf("--json %s: %s is not a directory", path, dir)
	}
	if fi, err := os.Stat(path); err == nil {
		if fi.IsDir() {
			return proto.BadPlanf("--json %s is a directory", path)
		}
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return proto.BadPlanf("--json %s: cannot write it: %v", path, err)
		}
		_ = f.Close()
		return nil
	}
	// Creating (and removing) a file is the only test that holds for
	// every case: permissions, read-only mounts, ACLs, root.
	f, err := os.CreateTemp(dir, ".barrage-json-check-*")
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return proto.BadPlanf("--json %s: cannot write in %s: %v", path, dir, err)
	}
	name := f.Name()
	_ = f.Close()
	_ = os.Remove(name)
	return nil
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
