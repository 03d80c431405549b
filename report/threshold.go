package report

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/barrage-load/barrage/proto"
)

// Thresholds are pass/fail criteria on a test's merged results, written
// as one expression each:
//
//	MEASURE[{KEY=VALUE,...}] OP LIMIT
//
// MEASURE is one of
//
//	p50, p99, p99.9, p99.99 ...  a latency percentile (any pNN[.N...], 0 < NN <= 100)
//	mean, min, max               the latency's mean, least, greatest
//	service.p99, service.max ... the same on the service time (from the actual send)
//	errors                       errors as the report counts them (error_rate is the same)
//	status_429, status_5xx       responses with that status code, or class
//	rps                          responses per second
//
// The latency is the one the report leads with: in the open model from
// each request's intended send time, in the closed model corrected for
// coordinated omission; service. selects the time from the actual send.
//
// The selector narrows what is measured: step=N (the report's step N),
// kind=K (errors of one kind: connect, tls, timeout, reset, protocol,
// http_4xx, http_5xx, http_other), request=NAME (one request of the
// plan's mix, by its name; "quoted" when it holds a space, a comma or a
// brace). A request's latency is the one its report row shows (from the
// intended send in the open model, from the actual send in the closed
// one), so service. and rps's share of the target do not combine with
// request=. OP is <, <=, > or >=. LIMIT is
//
//	a duration for latencies:            250ms, 1s, 500us
//	a share (%) or a count for errors and statuses:
//	                                     errors < 1%   errors{kind=timeout} < 10
//	a share of the responses for status: status_429 > 10%
//	a rate, or a share of the rate asked (open model), for rps:
//	                                     rps >= 5000   rps >= 99% target
//
// The share of errors is over the requests that completed (answered or
// failed: responses + failed); a share of a status is over the responses.
// Examples: "p99 < 250ms", "p99.9{step=2} < 1s", "errors < 1%",
// "errors{kind=timeout} < 0.1%", "status_429 > 10%", "rps >= 99% target",
// "service.p99 < 20ms".
//
// A threshold without step= is judged on the whole run (its value in each
// step is shown beside it, for information); one with step=N on that step.

// Metric is what a threshold measures.
type Metric int

// Metrics.
const (
	MetricLatency Metric = iota // a percentile, the mean, min or max of a latency
	MetricErrors                // errors: a share of the requests completed, or a count
	MetricStatus                // responses with a code or class: a share of the responses, or a count
	MetricRPS                   // responses per second, or their share of the rate asked
)

// Op compares a threshold's value with its limit.
type Op int

// Comparisons.
const (
	OpLess Op = iota
	OpLessEq
	OpGreater
	OpGreaterEq
)

var opText = [...]string{"<", "<=", ">", ">="}

func (o Op) String() string { return opText[o] }

// Holds reports whether v op limit.
func (o Op) Holds(v, limit float64) bool {
	switch o {
	case OpLess:
		return v < limit
	case OpLessEq:
		return v <= limit
	case OpGreater:
		return v > limit
	}
	return v >= limit
}

// Latency statistics a threshold reads besides a percentile.
const (
	StatMean = -1
	StatMin  = -2
	StatMax  = -3
)

// Threshold is one parsed expression.
type Threshold struct {
	// Expr is the expression as written (spaces trimmed).
	Expr   string
	Metric Metric
	// Service selects the service time (latency thresholds).
	Service bool
	// Quantile is the percentile (0 < q <= 100), or StatMean, StatMin,
	// StatMax.
	Quantile float64
	// Kind narrows errors to one kind ("" for all).
	Kind string
	// Status is a code (100..599), or a class (1..5) when Class.
	Status int
	Class  bool
	// Step is the report step it is judged on (from 1); 0 for the whole
	// run.
	Step int
	// Request narrows the measure to one request of a mix, by name ("":
	// all); req is its index in the plan, set by ParseThresholds (-1
	// until then).
	Request string
	req     int
	Op      Op
	// Limit is in microseconds (latency), a fraction (Share, OfTarget),
	// a count (errors, status) or requests per second (rps).
	Limit float64
	// Share: the errors or statuses are a share, not a count.
	Share bool
	// OfTarget: rps is compared with a share of the rate asked.
	OfTarget bool
}

// ThresholdError is a threshold that does not parse: it says where. It
// matches proto.ErrBadPlan (the command exits 2).
type ThresholdError struct {
	Expr string
	// Col is the column (from 1) of the byte where the error is.
	Col int
	Msg string
}

func (e *ThresholdError) Error() string {
	return fmt.Sprintf("threshold %q: column %d: %s", e.Expr, e.Col, e.Msg)
}

// Unwrap makes the error match proto.ErrBadPlan.
func (e *ThresholdError) Unwrap() error { return proto.ErrBadPlan }

// ErrorKinds lists the kinds errors{kind=...} takes, in the report's
// order.
func ErrorKinds() []string { return append([]string(nil), errorKindOrder...) }

// ParseThresholds parses a plan's thresholds against the plan: a share of
// the rate asked needs the open model, and request= must name one of the
// plan's requests.
func ParseThresholds(exprs []string, p *proto.Plan) ([]*Threshold, error) {
	out := make([]*Threshold, 0, len(exprs))
	for _, e := range exprs {
		t, err := ParseThreshold(e)
		if err != nil {
			return nil, err
		}
		if t.OfTarget && !p.Open() {
			return nil, &ThresholdError{Expr: t.Expr, Col: strings.Index(t.Expr, "%") + 1,
				Msg: "a share of the rate asked needs the open model (give a rate, -r); in the closed model compare rps with a number"}
		}
		if t.Request != "" {
			var names []string
			for i, r := range p.Requests {
				names = append(names, strconv.Quote(r.Name))
				if r.Name == t.Request {
					t.req = i
				}
			}
			if t.req < 0 {
				msg := fmt.Sprintf("no request named %q in the plan", t.Request)
				if len(names) == 0 {
					msg += " (it lists no requests: request= needs a mix, requests: in a plan or --targets)"
				} else {
					msg += " (it has " + strings.Join(names, ", ") + ")"
				}
				return nil, &ThresholdError{Expr: t.Expr, Col: strings.Index(t.Expr, "request") + 1, Msg: msg}
			}
		}
		out = append(out, t)
	}
	return out, nil
}

// thParser reads one expression.
type thParser struct {
	s   string
	pos int
}

func (p *thParser) fail(at int, format string, args ...any) error {
	return &ThresholdError{Expr: p.s, Col: at + 1, Msg: fmt.Sprintf(format, args...)}
}

func (p *thParser) space() {
	for p.pos < len(p.s) && (p.s[p.pos] == ' ' || p.s[p.pos] == '\t') {
		p.pos++
	}
}

// word reads [A-Za-z0-9_.µ%]+ (a name, a number with its unit).
func (p *thParser) word() (string, int) {
	p.space()
	return p.run(func(c byte) bool {
		return c == '_' || c == '.' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
	})
}

// run reads the bytes ok takes, and µ, from p.pos on: the text and where
// it starts.
func (p *thParser) run(ok func(c byte) bool) (string, int) {
	start := p.pos
	for p.pos < len(p.s) {
		if ok(p.s[p.pos]) {
			p.pos++
			continue
		}
		if strings.HasPrefix(p.s[p.pos:], "µ") {
			p.pos += len("µ")
			continue
		}
		break
	}
	return p.s[start:p.pos], start
}

// ParseThreshold parses one expression (see the syntax above).
func ParseThreshold(expr string) (*Threshold, error) {
	p := &thParser{s: strings.TrimSpace(expr)}
	t := &Threshold{Expr: p.s}
	if p.s == "" {
		return nil, p.fail(0, "empty threshold (want e.g. p99 < 250ms)")
	}
	name, at := p.word()
	if err := p.measure(t, name, at); err != nil {
		return nil, err
	}
	p.space()
	if p.pos < len(p.s) && p.s[p.pos] == '{' {
		if err := p.selector(t); err != nil {
			return nil, err
		}
	}
	p.space()
	if err := p.op(t); err != nil {
		return nil, err
	}
	if err := p.limit(t); err != nil {
		return nil, err
	}
	p.space()
	if p.pos < len(p.s) {
		return nil, p.fail(p.pos, "unexpected %q after the limit", p.s[p.pos:])
	}
	if t.Request != "" && t.OfTarget {
		return nil, p.fail(strings.Index(p.s, "%"), "the rate asked is not split by request: compare a request's rps with a number")
	}
	return t, nil
}

const measures = "p99, p99.9, mean, max, service.p99, errors, status_429, status_5xx or rps"

func (p *thParser) measure(t *Threshold, name string, at int) error {
	if name == "" {
		if p.pos < len(p.s) {
			return p.fail(p.pos, "want a measure (%s), not %q", measures, p.s[p.pos:p.pos+1])
		}
		return p.fail(p.pos, "want a measure (%s)", measures)
	}
	if rest, ok := strings.CutPrefix(name, "service."); ok {
		t.Service = true
		name = rest
		at += len("service.")
		if !latencyName(name) {
			return p.fail(at, "service. takes a latency (p99, p99.9, mean, min, max), not %q", name)
		}
	}
	switch {
	case name == "mean":
		t.Metric, t.Quantile = MetricLatency, StatMean
	case name == "min":
		t.Metric, t.Quantile = MetricLatency, StatMin
	case name == "max":
		t.Metric, t.Quantile = MetricLatency, StatMax
	case len(name) > 1 && name[0] == 'p' && (name[1] >= '0' && name[1] <= '9'):
		q, err := strconv.ParseFloat(name[1:], 64)
		if err != nil || q <= 0 || q > 100 || strings.Trim(name[1:], "0123456789.") != "" {
			return p.fail(at, "%q is not a percentile (want p50, p99, p99.9, ... from p0.001 to p100)", name)
		}
		t.Metric, t.Quantile = MetricLatency, q
	case name == "errors" || name == "error_rate":
		t.Metric = MetricErrors
	case strings.HasPrefix(name, "status_"):
		code := name[len("status_"):]
		t.Metric = MetricStatus
		switch {
		case len(code) == 3 && code[0] >= '1' && code[0] <= '5' && (code[1:] == "xx" || code[1:] == "XX"):
			t.Status, t.Class = int(code[0]-'0'), true
		default:
			n, err := strconv.Atoi(code)
			if err != nil || len(code) != 3 || n < 100 || n > 599 {
				return p.fail(at+len("status_"), "%q is not a status code from 100 to 599 or a class (1xx to 5xx)", code)
			}
			t.Status = n
		}
	case name == "rps":
		t.Metric = MetricRPS
	default:
		return p.fail(at, "unknown measure %q (want %s)", name, measures)
	}
	return nil
}

func latencyName(name string) bool {
	if name == "mean" || name == "min" || name == "max" {
		return true
	}
	return len(name) > 1 && name[0] == 'p' && name[1] >= '0' && name[1] <= '9'
}

// selector reads {key=value,...}.
func (p *thParser) selector(t *Threshold) error {
	open := p.pos
	p.pos++ // '{'
	seen := map[string]bool{}
	for {
		key, at := p.word()
		if key == "" {
			return p.fail(p.pos, "want step=N or kind=K inside {...}")
		}
		if seen[key] {
			return p.fail(at, "%s given twice", key)
		}
		seen[key] = true
		p.space()
		if p.pos >= len(p.s) || p.s[p.pos] != '=' {
			return p.fail(p.pos, "want = after %s", key)
		}
		p.pos++
		var val string
		var vat int
		if key == "request" {
			var err error
			if val, vat, err = p.name(); err != nil {
				return err
			}
		} else {
			val, vat = p.word()
		}
		if val == "" {
			return p.fail(vat, "want a value for %s", key)
		}
		switch key {
		case "step":
			n, err := strconv.Atoi(val)
			if err != nil || n < 1 || n > proto.MaxSegments {
				return p.fail(vat, "step %q is not a step number (from 1, as the report numbers them)", val)
			}
			t.Step = n
		case "kind":
			if t.Metric != MetricErrors {
				return p.fail(at, "kind= narrows errors only")
			}
			known := false
			for _, k := range errorKindOrder {
				known = known || k == val
			}
			if !known {
				return p.fail(vat, "unknown error kind %q (want %s)", val, strings.Join(errorKindOrder, ", "))
			}
			t.Kind = val
		case "request":
			if t.Service {
				return p.fail(at, "request= reads the request's own latency (its report row's): service. does not combine with it")
			}
			// Resolved by ParseThresholds against the plan; until then
			// it names no request (nothing to judge).
			t.Request, t.req = val, -1
		default:
			return p.fail(at, "unknown selector %q (want step=N, request=NAME, or kind=K for errors)", key)
		}
		p.space()
		if p.pos >= len(p.s) {
			return p.fail(open, "{ is not closed")
		}
		switch p.s[p.pos] {
		case ',':
			p.pos++
			continue
		case '}':
			p.pos++
			return nil
		}
		return p.fail(p.pos, "want , or } in the selector, not %q", p.s[p.pos:p.pos+1])
	}
}

// name reads a request's name: "quoted" (Go syntax), or the bytes up to
// the next space, comma or closing brace.
func (p *thParser) name() (string, int, error) {
	p.space()
	start := p.pos
	if p.pos < len(p.s) && p.s[p.pos] == '"' {
		q, err := strconv.QuotedPrefix(p.s[p.pos:])
		if err != nil {
			return "", start, p.fail(start, "the quoted request name is not closed")
		}
		p.pos += len(q)
		v, _ := strconv.Unquote(q)
		return v, start, nil
	}
	for p.pos < len(p.s) && !strings.ContainsRune(" \t,}", rune(p.s[p.pos])) {
		p.pos++
	}
	return p.s[start:p.pos], start, nil
}

func (p *thParser) op(t *Threshold) error {
	rest := p.s[p.pos:]
	switch {
	case strings.HasPrefix(rest, "<="):
		t.Op, p.pos = OpLessEq, p.pos+2
	case strings.HasPrefix(rest, ">="):
		t.Op, p.pos = OpGreaterEq, p.pos+2
	case strings.HasPrefix(rest, "<"):
		t.Op, p.pos = OpLess, p.pos+1
	case strings.HasPrefix(rest, ">"):
		t.Op, p.pos = OpGreater, p.pos+1
	case rest == "":
		return p.fail(p.pos, "want a comparison (<, <=, >, >=) and a limit")
	default:
		return p.fail(p.pos, "want a comparison (<, <=, >, >=), not %q", rest[:min(len(rest), 2)])
	}
	return nil
}

// number reads a decimal number.
func (p *thParser) number() (float64, int, error) {
	p.space()
	start := p.pos
	for p.pos < len(p.s) && (p.s[p.pos] >= '0' && p.s[p.pos] <= '9' || p.s[p.pos] == '.') {
		p.pos++
	}
	if start == p.pos {
		if start >= len(p.s) {
			return 0, start, p.fail(start, "want a limit after the comparison")
		}
		return 0, start, p.fail(start, "want a number, not %q", p.s[start:start+1])
	}
	f, err := strconv.ParseFloat(p.s[start:p.pos], 64)
	if err != nil {
		return 0, start, p.fail(start, "%q is not a number", p.s[start:p.pos])
	}
	return f, start, nil
}

// unit reads the letters (or %) right after a number, spaces allowed.
func (p *thParser) unit() (string, int) {
	p.space()
	if p.pos < len(p.s) && p.s[p.pos] == '%' {
		p.pos++
		return "%", p.pos - 1
	}
	return p.run(func(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' })
}

var latencyUnits = map[string]time.Duration{
	"ns": time.Nanosecond, "us": time.Microsecond, "µs": time.Microsecond,
	"ms": time.Millisecond, "s": time.Second, "m": time.Minute,
}

func (p *thParser) limit(t *Threshold) error {
	v, at, err := p.number()
	if err != nil {
		return err
	}
	u, uat := p.unit()
	switch t.Metric {
	case MetricLatency:
		d, ok := latencyUnits[u]
		if u == "" {
			return p.fail(uat, "a latency limit needs a unit (ns, us, ms, s, m), e.g. 250ms")
		}
		if !ok {
			return p.fail(uat, "unknown unit %q (want ns, us, ms, s, m)", u)
		}
		t.Limit = v * float64(d) / float64(time.Microsecond)
		if t.Limit > float64(proto.HistMax) {
			return p.fail(at, "%s%s is above the longest latency measured (%s)", p.s[at:uat], u, time.Duration(proto.HistMax)*time.Microsecond)
		}
	case MetricErrors, MetricStatus:
		switch u {
		case "%":
			if v > 100 {
				return p.fail(at, "%g%% is more than 100%%", v)
			}
			t.Limit, t.Share = v/100, true
		case "":
			if v != float64(uint64(v)) {
				return p.fail(at, "a count is a whole number (or give a share: %g%%)", v)
			}
			t.Limit = v
		default:
			return p.fail(uat, "unknown unit %q (want %% for a share, or none for a count)", u)
		}
	case MetricRPS:
		switch u {
		case "%":
			w, wat := p.word()
			if w == "of" {
				w, wat = p.word()
			}
			if w != "target" {
				return p.fail(wat, "a share of a rate is of the target: rps >= %g%% target (or give a rate: rps >= 5000)", v)
			}
			t.Limit, t.OfTarget = v/100, true
		case "", "rps":
			t.Limit = v
		default:
			return p.fail(uat, "unknown unit %q (want a rate such as 5000, or a share of the target: 99%% target)", u)
		}
	}
	return nil
}

// String writes t in its canonical form, which parses back to t: the
// latency limit in microseconds, shares in percent.
func (t *Threshold) String() string {
	var b strings.Builder
	switch t.Metric {
	case MetricLatency:
		if t.Service {
			b.WriteString("service.")
		}
		switch t.Quantile {
		case StatMean:
			b.WriteString("mean")
		case StatMin:
			b.WriteString("min")
		case StatMax:
			b.WriteString("max")
		default:
			b.WriteString("p" + strconv.FormatFloat(t.Quantile, 'f', -1, 64))
		}
	case MetricErrors:
		b.WriteString("errors")
	case MetricStatus:
		if t.Class {
			fmt.Fprintf(&b, "status_%dxx", t.Status)
		} else {
			fmt.Fprintf(&b, "status_%d", t.Status)
		}
	case MetricRPS:
		b.WriteString("rps")
	}
	var sel []string
	if t.Step > 0 {
		sel = append(sel, "step="+strconv.Itoa(t.Step))
	}
	if t.Kind != "" {
		sel = append(sel, "kind="+t.Kind)
	}
	if len(sel) > 0 {
		b.WriteString("{" + strings.Join(sel, ",") + "}")
	}
	b.WriteString(" " + t.Op.String() + " ")
	num := func(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
	switch {
	case t.Metric == MetricLatency:
		b.WriteString(num(t.Limit) + "us")
	case t.OfTarget:
		b.WriteString(num(t.Limit*100) + "% target")
	case t.Share:
		b.WriteString(num(t.Limit*100) + "%")
	default:
		b.WriteString(num(t.Limit))
	}
	return b.String()
}
