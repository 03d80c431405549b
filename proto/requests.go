package proto

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"unicode/utf8"
)

// Bounds of a request mix and its data files.
const (
	// MaxRequests bounds the requests of a mix. Each has its own counters
	// and latency histogram in every loop and in every snapshot (a
	// histogram is ~140 KB in memory), so a mix is a handful of request
	// kinds, not a list of every URL.
	MaxRequests = 64
	// MaxRequestName bounds a request's name (a report row's label).
	MaxRequestName = 64
	// MaxData bounds the data files of a plan.
	MaxData = 16
	// MaxDataColumns bounds a data file's columns.
	MaxDataColumns = 256
	// MaxWeight bounds a request's weight.
	MaxWeight = 1e9
)

// Data file formats and orders.
const (
	FormatCSV   = "csv"   // a header row names the columns
	FormatLines = "lines" // one value a line, in column "line"
	OrderSeq    = "sequential"
	OrderRandom = "random"
	// LinesColumn is the one column of a FormatLines file.
	LinesColumn = "line"
)

// Request is one request of a mix: what to send and how often, relative
// to the others. Path, header values and body may hold variables
// ({{randInt 1 5}}, {{users.token}}: see proto/tmpl), unless Raw is set.
type Request struct {
	// Name labels the request's row in the report; default "METHOD PATH".
	Name string `json:"name,omitempty" yaml:"name,omitempty"`
	// Weight is the request's share of the mix relative to the others'
	// weights; default 1.
	Weight float64 `json:"weight,omitempty" yaml:"weight,omitempty"`
	// Method defaults to the plan's method (GET).
	Method string `json:"method,omitempty" yaml:"method,omitempty"`
	// Path is the path and query, on the target's origin; default the
	// target URL's. A full URL of the same origin is accepted.
	Path string `json:"path,omitempty" yaml:"path,omitempty"`
	// Headers add to (and override) the plan's headers.
	Headers map[string]string `json:"headers,omitempty" yaml:"headers,omitempty"`
	Body    string            `json:"body,omitempty" yaml:"body,omitempty"`
	// BodyFile is read into Body by LoadPlan (a path relative to the plan).
	BodyFile string `json:"body_file,omitempty" yaml:"body_file,omitempty"`
	// Raw sends path, headers and body as written: no variables.
	Raw bool `json:"raw,omitempty" yaml:"raw,omitempty"`
}

// requestFields is Request without its JSON methods.
type requestFields Request

// requestWire carries a binary body as base64 (see planWire).
type requestWire struct {
	requestFields
	BodyBase64 string `json:"body_base64,omitempty"`
}

// MarshalJSON encodes the request, a binary body as body_base64.
func (r Request) MarshalJSON() ([]byte, error) {
	w := requestWire{requestFields: requestFields(r)}
	if !utf8.ValidString(r.Body) {
		w.Body, w.BodyBase64 = "", base64.StdEncoding.EncodeToString([]byte(r.Body))
	}
	return json.Marshal(&w)
}

// UnmarshalJSON decodes what MarshalJSON writes.
func (r *Request) UnmarshalJSON(b []byte) error {
	var w requestWire
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	if w.BodyBase64 != "" {
		if w.Body != "" {
			return bad("request %q: give body or body_base64, not both", w.Name)
		}
		body, err := base64.StdEncoding.DecodeString(w.BodyBase64)
		if err != nil {
			return bad("request %q: body_base64: %v", w.Name, err)
		}
		w.Body = string(body)
	}
	*r = Request(w.requestFields)
	return nil
}

// Data is a data file whose columns requests use as variables
// ({{NAME.COLUMN}}), one row per request.
//
// The file is read where the load is generated: by `run`, and by every
// agent from its own disk at the same path (an absolute path once the plan
// is loaded). It never travels through ZooKeeper: data files are often
// large and often hold credentials. The loading process records its
// columns, row count and SHA-256 in the plan; an agent whose copy differs
// refuses the test.
type Data struct {
	File string `json:"file" yaml:"file"`
	// Format is csv (a header row names the columns) or lines (one value a
	// line, column "line"); default by the file's extension (.csv: csv).
	Format string `json:"format,omitempty" yaml:"format,omitempty"`
	// Order is sequential (each generator walks its rows in order and
	// wraps) or random (uniform over its rows); default sequential.
	Order string `json:"order,omitempty" yaml:"order,omitempty"`
	// Shared gives every agent all the rows; by default each agent of a
	// fleet gets its own disjoint slice (Budget.Data).
	Shared bool `json:"shared,omitempty" yaml:"shared,omitempty"`
	// Columns, Rows and SHA256 describe the file as the process that
	// loaded the plan read it (filled at load; agents check their copy).
	Columns []string `json:"columns,omitempty" yaml:"columns,omitempty"`
	Rows    int      `json:"rows,omitempty" yaml:"rows,omitempty"`
	SHA256  string   `json:"sha256,omitempty" yaml:"sha256,omitempty"`
}

// Slice is the part of every non-shared data file one agent uses: rows
// from From*rows to To*rows (fractions of the file, so that consecutive
// agents' slices meet exactly, whatever the row count).
type Slice struct {
	From float64 `json:"from"`
	To   float64 `json:"to"`
}

// Whole is the slice of a generator that runs alone.
var Whole = Slice{0, 1}

// Rows returns the slice's rows of a file of n rows: [lo, hi).
func (s Slice) Rows(n int) (lo, hi int) {
	lo, hi = int(s.From*float64(n)), int(s.To*float64(n))
	if s.To >= 1 {
		hi = n
	}
	return max(0, min(lo, n)), max(0, min(hi, n))
}

var (
	dataNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)
	columnRE   = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	sha256RE   = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// ValidColumn reports whether s can be a data column's name in a
// variable ({{NAME.COLUMN}}).
func ValidColumn(s string) bool { return columnRE.MatchString(s) }

// Named reports whether the plan lists its requests (a mix, even of one),
// so the report breaks its figures down by request name.
func (p *Plan) Named() bool { return len(p.Requests) > 0 }

// Mix returns the requests the plan sends: its list, or the one request
// its top-level method, headers and body describe.
func (p *Plan) Mix() []Request {
	if len(p.Requests) > 0 {
		return p.Requests
	}
	return []Request{{Weight: 1, Method: p.Method, Path: p.TargetPath(), Body: p.Body, Raw: p.Raw}}
}

// RequestHeaders returns the headers request r sends: the plan's, with
// r's own added and overriding (names compared case-insensitively).
func (p *Plan) RequestHeaders(r *Request) map[string]string {
	out := make(map[string]string, len(p.Headers)+len(r.Headers))
	for k, v := range p.Headers {
		out[k] = v
	}
	for k, v := range r.Headers {
		for o := range out {
			if strings.EqualFold(o, k) {
				delete(out, o)
			}
		}
		out[k] = v
	}
	return out
}

// TargetPath is the target URL's path and query ("/" when it has none).
func (p *Plan) TargetPath() string {
	u, err := url.Parse(p.TargetURL)
	if err != nil {
		return "/"
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	if u.RawQuery != "" {
		path += "?" + u.RawQuery
	}
	return path
}

// DataNames lists the plan's data files in the order their variables are
// numbered (by name).
func (p *Plan) DataNames() []string {
	names := make([]string, 0, len(p.Data))
	for k := range p.Data {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// SetHeader sets header name to value on every request of the plan: in
// the plan's headers, and out of every request's own (which would
// override it). A live header change (a rotated credential) is this.
func (p *Plan) SetHeader(name, value string) {
	if p.Headers == nil {
		p.Headers = map[string]string{}
	}
	for k := range p.Headers {
		if strings.EqualFold(k, name) {
			delete(p.Headers, k)
		}
	}
	p.Headers[name] = value
	for i := range p.Requests {
		r := &p.Requests[i]
		if r.Headers == nil {
			continue
		}
		// The requests are shared with the plan copied from: copy the map
		// before changing it.
		h := make(map[string]string, len(r.Headers))
		for k, v := range r.Headers {
			if !strings.EqualFold(k, name) {
				h[k] = v
			}
		}
		if len(h) == 0 {
			h = nil
		}
		r.Headers = h
	}
}

// Clone returns a copy of p whose maps and lists are its own.
func (p *Plan) Clone() *Plan {
	c := *p
	c.Headers = cloneMap(p.Headers)
	c.ExpectStatus = append([]int(nil), p.ExpectStatus...)
	if p.ExpectStatus == nil {
		c.ExpectStatus = nil
	}
	c.Pattern.Steps = append([]Step(nil), p.Pattern.Steps...)
	if p.Pattern.Steps == nil {
		c.Pattern.Steps = nil
	}
	c.Secret = append([]string(nil), p.Secret...)
	if p.Secret == nil {
		c.Secret = nil
	}
	if p.Requests != nil {
		c.Requests = make([]Request, len(p.Requests))
		for i, r := range p.Requests {
			r.Headers = cloneMap(r.Headers)
			c.Requests[i] = r
		}
	}
	if p.Data != nil {
		c.Data = make(map[string]Data, len(p.Data))
		for k, d := range p.Data {
			d.Columns = append([]string(nil), d.Columns...)
			c.Data[k] = d
		}
	}
	return &c
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// normalizeRequests fills the mix's defaults: weight 1, the plan's
// method, a same-origin URL cut to its path, a name from method and path;
// data formats and orders.
func (p *Plan) normalizeRequests() {
	for i := range p.Requests {
		r := &p.Requests[i]
		if r.Weight == 0 {
			r.Weight = 1
		}
		if r.Method == "" {
			r.Method = p.Method
		}
		r.Method = strings.ToUpper(r.Method)
		if strings.HasPrefix(r.Path, "http://") || strings.HasPrefix(r.Path, "https://") {
			if o, rest, ok := sameOrigin(p.TargetURL, r.Path); ok && o {
				r.Path = rest
			}
		}
		if r.Path == "" {
			r.Path = p.TargetPath()
		}
		if r.Name == "" {
			r.Name = r.Method + " " + r.Path
			if len(r.Name) > MaxRequestName {
				r.Name = r.Name[:MaxRequestName-3] + "..."
				for !utf8.ValidString(r.Name) {
					r.Name = r.Name[:len(r.Name)-4] + "..."
				}
			}
		}
		if len(r.Headers) == 0 {
			r.Headers = nil
		}
	}
	if len(p.Requests) == 0 {
		p.Requests = nil
	}
	for k, d := range p.Data {
		if d.Format == "" {
			d.Format = FormatLines
			if strings.EqualFold(filepath.Ext(d.File), ".csv") {
				d.Format = FormatCSV
			}
		}
		if d.Order == "" {
			d.Order = OrderSeq
		}
		if len(d.Columns) == 0 {
			d.Columns = nil
		}
		p.Data[k] = d
	}
	if len(p.Data) == 0 {
		p.Data = nil
	}
	if len(p.Secret) == 0 {
		p.Secret = nil
	}
}

// sameOrigin reports whether raw has the target's scheme, host and port,
// and returns its path and query.
func sameOrigin(target, raw string) (same bool, path string, ok bool) {
	t, err := url.Parse(target)
	if err != nil {
		return false, "", false
	}
	u, err := url.Parse(raw)
	if err != nil {
		return false, "", false
	}
	port := func(u *url.URL) string {
		if p := u.Port(); p != "" {
			return p
		}
		if u.Scheme == "https" {
			return "443"
		}
		return "80"
	}
	same = u.Scheme == t.Scheme && strings.EqualFold(u.Hostname(), t.Hostname()) && port(u) == port(t) && u.User == nil
	path = u.EscapedPath()
	if path == "" {
		path = "/"
	}
	if u.RawQuery != "" {
		path += "?" + u.RawQuery
	}
	return same, path, true
}

// validateRequests checks the mix and the data files (what needs no
// template parser: the variables are checked by the request package,
// which compiles them).
func (p *Plan) validateRequests() error {
	if len(p.Requests) > MaxRequests {
		return bad("requests lists %d requests, more than %d", len(p.Requests), MaxRequests)
	}
	if len(p.Requests) > 0 && (p.Body != "" || p.BodyFile != "") {
		return bad("body is given for the plan and it lists requests: give each request its own body")
	}
	names := map[string]int{}
	heads := 0
	for i := range p.Requests {
		r := &p.Requests[i]
		n := i + 1
		if r.Name == "" || len(r.Name) > MaxRequestName || !utf8.ValidString(r.Name) || hasControl(r.Name) {
			return bad("request %d: name must be 1 to %d printable characters", n, MaxRequestName)
		}
		if j, dup := names[r.Name]; dup {
			return bad("requests %d and %d are both named %q: give each its own name", j, n, r.Name)
		}
		names[r.Name] = n
		if !finite(r.Weight) || r.Weight <= 0 || r.Weight > MaxWeight {
			return bad("request %q: weight must be above 0 and at most %g, got %g", r.Name, float64(MaxWeight), r.Weight)
		}
		if r.Method == "" || !isUpperToken(r.Method) {
			return bad("request %q: method %q is not an HTTP method", r.Name, r.Method)
		}
		if r.Method == "HEAD" {
			heads++
		}
		if strings.HasPrefix(r.Path, "http://") || strings.HasPrefix(r.Path, "https://") {
			return bad("request %q: path %q is not on the target's origin %s (a mix loads one origin)", r.Name, redactURL(r.Path), redactURL(origin(p.TargetURL)))
		}
		if !strings.HasPrefix(r.Path, "/") {
			return bad("request %q: path %q must start with /", r.Name, r.Path)
		}
		if hasControl(r.Path) {
			return bad("request %q: path has a control character", r.Name)
		}
		if err := checkHeaders(r.Headers); err != nil {
			return bad("request %q: %v", r.Name, err)
		}
	}
	// Hazard: a HEAD response has no body whatever its headers say, and
	// the response parser is told so per connection, not per request.
	if heads > 0 && heads < len(p.Requests) {
		return bad("a mix cannot mix HEAD with other methods (the response parser frames HEAD responses per run)")
	}
	if len(p.Data) > MaxData {
		return bad("data lists %d files, more than %d", len(p.Data), MaxData)
	}
	for _, name := range p.DataNames() {
		d := p.Data[name]
		if !dataNameRE.MatchString(name) {
			return bad("data %q: a name is letters, digits and _ (it is used as {{%s.COLUMN}})", clipName(name), clipName(name))
		}
		if d.File == "" {
			return bad("data %s: file is missing", name)
		}
		if hasControl(d.File) {
			return bad("data %s: file name has a control character", name)
		}
		if d.Format != FormatCSV && d.Format != FormatLines {
			return bad("data %s: format %q is not csv or lines", name, d.Format)
		}
		if d.Order != OrderSeq && d.Order != OrderRandom {
			return bad("data %s: order %q is not sequential or random", name, d.Order)
		}
		if len(d.Columns) > MaxDataColumns {
			return bad("data %s: %d columns, more than %d", name, len(d.Columns), MaxDataColumns)
		}
		for _, c := range d.Columns {
			if !ValidColumn(c) {
				return bad("data %s: column %q is not letters, digits, _ and -", name, clipName(c))
			}
		}
		if d.Rows < 0 {
			return bad("data %s: rows %d", name, d.Rows)
		}
		if d.SHA256 != "" && !sha256RE.MatchString(d.SHA256) {
			return bad("data %s: sha256 is not 64 hex digits", name)
		}
	}
	for _, s := range p.Secret {
		if !isToken(s) {
			return bad("secret_headers: %q is not a header name", clipName(s))
		}
	}
	if len(p.Secret) > 64 {
		return bad("secret_headers lists more than 64 names")
	}
	return nil
}

func origin(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	return u.Scheme + "://" + u.Host
}

func clipName(s string) string {
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}

func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return true
		}
	}
	return false
}

func isUpperToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 'A' || c > 'Z' {
			return false
		}
	}
	return s != ""
}

// IsSecret reports whether header name's value is a secret in this plan:
// one of the names IsSecretHeader knows, or one the plan marks secret
// (secret_headers, --secret-header).
func (p *Plan) IsSecret(name string) bool {
	if IsSecretHeader(name) {
		return true
	}
	for _, s := range p.Secret {
		if strings.EqualFold(s, name) {
			return true
		}
	}
	return false
}

// fromDataRE matches a value whose only variable part is a data column,
// optionally after a scheme word: "Bearer {{users.token}}".
var fromDataRE = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9-]* )?\{\{ *[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z0-9_-]+ *\}\}$`)

// Redacted is what reports, logs and the JSON show for a header value:
// "[redacted]" for a secret, the value itself otherwise.
func (p *Plan) Redacted(name, value string) string {
	if p.IsSecret(name) {
		return "[redacted]"
	}
	return value
}

// RedactedCopy returns a copy of the plan with every secret header's
// value replaced by "[redacted]": the plan as it may be written down
// (an agent's state dir, a report).
func (p *Plan) RedactedCopy() *Plan {
	c := p.Clone()
	for k, v := range c.Headers {
		c.Headers[k] = p.Redacted(k, v)
	}
	for i := range c.Requests {
		for k, v := range c.Requests[i].Headers {
			c.Requests[i].Headers[k] = p.Redacted(k, v)
		}
	}
	return c
}

// secretValues lists the secret headers whose values the plan itself
// carries. A value taken whole from a data file ("Bearer {{users.token}}")
// carries none: the secret is in the file, on the generator's disk.
func (p *Plan) secretValues() []string {
	seen := map[string]bool{}
	add := func(h map[string]string) {
		for k, v := range h {
			if p.IsSecret(k) && !fromDataRE.MatchString(v) {
				seen[k] = true
			}
		}
	}
	add(p.Headers)
	for i := range p.Requests {
		add(p.Requests[i].Headers)
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
