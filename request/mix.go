// Package request turns a plan's requests into what the engine sends: a
// mix of compiled requests picked by weight, their variables rendered into
// a connection's output buffer with no allocation per request, and the
// data files they draw from. It also reads vegeta's targets format
// (ParseTargets) and header files (HeaderFile).
//
// It knows nothing of event loops or ZooKeeper: the engine drives a
// Renderer per loop; the coordinator calls Check (it never reads data
// files); run and coord call Inspect when they load a plan.
package request

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/barrage-load/barrage/proto"
	"github.com/barrage-load/barrage/proto/http1"
	"github.com/barrage-load/barrage/proto/tmpl"
)

// Options say which generator a mix is built for.
type Options struct {
	// Slice is this generator's part of every data file not marked
	// shared; nil: every row.
	Slice *proto.Slice
	// Part and Parts number this generator among the test's (an agent of
	// a fleet; 0 of 1 alone): each draws its own random stream from the
	// seed, and {{seq}} counts in its own residue class.
	Part, Parts int
	// Source locates the plan file's fields for messages (may be nil).
	Source *proto.Source
}

// compiled is one request of the mix, ready to render.
type compiled struct {
	// static is the whole request when nothing in it varies.
	static []byte
	// prog writes the request; with body set, up to "Content-Length: ",
	// and the length, tail and body follow.
	prog *tmpl.Program
	tail []byte
	body *tmpl.Program
	// tables are the data files the request reads a row of.
	tables []int
}

// Mix is a plan's requests compiled for one generator. It is immutable
// and shared by every loop; each loop renders with its own Renderer.
type Mix struct {
	plan  *proto.Plan
	reqs  []compiled
	cum   []uint64 // pick thresholds of requests 0..n-2
	named bool
	head  bool
	seed  uint64
	part  int
	parts int
	// The data files, this generator's slice of each, and their orders.
	names  []string
	tables []*tmpl.Table
	random []bool
	sample int // the longest request rendered once: a buffer hint
}

// Len counts the requests of the mix.
func (m *Mix) Len() int { return len(m.reqs) }

// Named reports whether the report breaks figures down by request (the
// plan lists its requests).
func (m *Mix) Named() bool { return m.named }

// Head reports whether the mix sends HEAD requests (then all of them do).
func (m *Mix) Head() bool { return m.head }

// Plan is the plan the mix was built from (not to be changed).
func (m *Mix) Plan() *proto.Plan { return m.plan }

// SizeHint is the length of the longest request as rendered once.
func (m *Mix) SizeHint() int { return m.sample }

// Static returns the request's bytes when the mix is one request that
// never varies.
func (m *Mix) Static() ([]byte, bool) {
	if len(m.reqs) == 1 && m.reqs[0].static != nil {
		return m.reqs[0].static, true
	}
	return nil, false
}

// env is what the mix's templates may refer to.
func env(names []string, cols [][]string) *tmpl.Env {
	e := &tmpl.Env{}
	for i, n := range names {
		e.Tables = append(e.Tables, tmpl.TableSpec{Name: n, Columns: cols[i]})
	}
	return e
}

// Check compiles every template of p against the columns the plan
// recorded (Inspect), reading no file: the coordinator's check. An error
// matches proto.ErrBadPlan and points at the field (with a line and a
// column when src knows the file).
func Check(p *proto.Plan, src *proto.Source) error {
	names := p.DataNames()
	cols := make([][]string, len(names))
	for i, n := range names {
		cols[i] = p.Data[n].Columns
	}
	_, err := compile(p, env(names, cols), src)
	return err
}

// Build reads the plan's data files from this box (each must match what
// the plan recorded), keeps this generator's slice of each, and compiles
// the requests. An error matches proto.ErrBadPlan.
func Build(p *proto.Plan, o Options) (*Mix, error) {
	p = p.Clone()
	names := p.DataNames()
	files := make([]*file, len(names))
	cols := make([][]string, len(names))
	for i, n := range names {
		f, err := readData(n, p.Data[n])
		if err != nil {
			return nil, err
		}
		if err := f.check(); err != nil {
			return nil, err
		}
		d := p.Data[n]
		d.Columns, d.Rows, d.SHA256 = f.columns, len(f.rows), f.sha
		p.Data[n] = d
		files[i], cols[i] = f, f.columns
	}
	reqs, err := compile(p, env(names, cols), o.Source)
	if err != nil {
		return nil, err
	}
	var uses []tmpl.Use
	for _, c := range reqs {
		uses = append(uses, c.uses()...)
	}
	m := newMix(p, reqs, o)
	for i, f := range files {
		lo, hi := 0, len(f.rows)
		if !f.spec.Shared && o.Slice != nil {
			lo, hi = o.Slice.Rows(len(f.rows))
		}
		if lo >= hi {
			return nil, proto.BadPlanf("data %s: this generator's slice of %s is empty (rows %d to %d of %d): give the file more rows than generators, or shared: true",
				f.name, f.spec.File, lo, hi, len(f.rows))
		}
		t, err := f.table(lo, hi, uses, i)
		if err != nil {
			return nil, err
		}
		m.names = append(m.names, f.name)
		m.tables = append(m.tables, t)
		m.random = append(m.random, f.spec.Order == proto.OrderRandom)
	}
	m.measure()
	return m, nil
}

// newMix sets the mix's picking thresholds and identity.
func newMix(p *proto.Plan, reqs []compiled, o Options) *Mix {
	m := &Mix{plan: p, reqs: reqs, named: p.Named(), seed: p.Seed, part: o.Part, parts: max(o.Parts, 1)}
	mix := p.Mix()
	m.head = len(mix) > 0 && mix[0].Method == "HEAD"
	var total float64
	for _, r := range mix {
		total += r.Weight
	}
	var acc float64
	for i := 0; i+1 < len(mix); i++ {
		acc += mix[i].Weight
		f := acc / total * (1 << 64)
		if f >= 1<<64 {
			m.cum = append(m.cum, math.MaxUint64)
		} else {
			m.cum = append(m.cum, uint64(f))
		}
	}
	return m
}

// measure renders each request once for a buffer size hint.
func (m *Mix) measure() {
	r := m.NewRenderer(0, 1)
	var buf []byte
	for i := range m.reqs {
		buf = m.render(buf[:0], r, i, 0)
		m.sample = max(m.sample, len(buf))
	}
}

// Rebuild compiles plan p for the same generator with the same data
// (nothing is read again): a live header change. p must list the same
// requests (names, in order) and the same data files.
func (m *Mix) Rebuild(p *proto.Plan) (*Mix, error) {
	old, mix := m.plan.Mix(), p.Mix()
	if len(old) != len(mix) {
		return nil, proto.BadPlanf("a live change cannot change the requests (%d, not %d)", len(mix), len(old))
	}
	for i := range mix {
		if mix[i].Name != old[i].Name {
			return nil, proto.BadPlanf("a live change cannot rename request %q", old[i].Name)
		}
	}
	if strings.Join(p.DataNames(), ",") != strings.Join(m.names, ",") {
		return nil, proto.BadPlanf("a live change cannot change the data files")
	}
	cols := make([][]string, len(m.names))
	for i, n := range m.names {
		cols[i] = m.plan.Data[n].Columns
	}
	p = p.Clone()
	p.Data = m.plan.Data
	reqs, err := compile(p, env(m.names, cols), nil)
	if err != nil {
		return nil, err
	}
	for _, c := range reqs {
		for _, u := range c.uses() {
			if err := checkCells(m.names[u.Table], m.tables[u.Table], u); err != nil {
				return nil, err
			}
		}
	}
	n := newMix(p, reqs, Options{Part: m.part, Parts: m.parts})
	n.names, n.tables, n.random = m.names, m.tables, m.random
	n.measure()
	return n, nil
}

// WithHeader is Rebuild with header name set to value on every request.
func (m *Mix) WithHeader(name, value string) (*Mix, error) {
	p := m.plan.Clone()
	p.SetHeader(name, value)
	return m.Rebuild(p)
}

// checkCells checks a column's cells (already in a table) for a context.
func checkCells(name string, t *tmpl.Table, u tmpl.Use) error {
	if u.Ctx == tmpl.Body {
		return nil
	}
	for r := 0; r < t.Rows(); r++ {
		cell := t.Cell(r, u.Col)
		for i := 0; i < len(cell); i++ {
			if !u.Ctx.Allows(cell[i]) {
				return proto.BadPlanf("data %s: a value has byte %q, which a %s cannot carry", name, cell[i], u.Ctx)
			}
		}
	}
	return nil
}

func (c *compiled) uses() []tmpl.Use {
	var out []tmpl.Use
	if c.prog != nil {
		out = append(out, c.prog.Uses()...)
	}
	if c.body != nil {
		out = append(out, c.body.Uses()...)
	}
	return out
}

// compiler compiles the requests of one plan.
type compiler struct {
	p   *proto.Plan
	env *tmpl.Env
	src *proto.Source
}

// fail turns a template error into a plan error that points at field.
func (c *compiler) fail(field, label string, err error) error {
	var te *tmpl.Error
	if !errors.As(err, &te) {
		return proto.BadPlanf("%s: %v", label, err)
	}
	if line, col, ok := c.src.Position(field, te.Line, te.Col); ok {
		return proto.BadPlanf("%s:%d:%d: %s: %s", c.src.File, line, col, label, te.Msg)
	}
	if te.Line == 1 {
		return proto.BadPlanf("%s, column %d: %s", label, te.Col, te.Msg)
	}
	return proto.BadPlanf("%s, line %d, column %d: %s", label, te.Line, te.Col, te.Msg)
}

func compile(p *proto.Plan, e *tmpl.Env, src *proto.Source) ([]compiled, error) {
	c := &compiler{p: p, env: e, src: src}
	u, err := proto.ParseTarget(p.TargetURL)
	if err != nil {
		return nil, err
	}
	var out []compiled
	for i, r := range p.Mix() {
		cr, err := c.request(i, &r, u.Host)
		if err != nil {
			return nil, err
		}
		out = append(out, cr)
	}
	return out, nil
}

// prog compiles one value, or takes it as written for a raw request.
func (c *compiler) prog(raw bool, text string, ctx tmpl.Context, field, label string) (*tmpl.Program, error) {
	if raw {
		return tmpl.Literal(text), nil
	}
	pr, err := tmpl.Compile(text, c.env, ctx)
	if err != nil {
		return nil, c.fail(field, label, err)
	}
	return pr, nil
}

// request compiles request i: its line and headers as http1 encodes them
// (Host, User-Agent unless given, the headers by name, Content-Length,
// Connection: keep-alive), with its variables.
func (c *compiler) request(i int, r *proto.Request, host string) (compiled, error) {
	named := c.p.Named()
	label := func(what string) string {
		if named {
			return fmt.Sprintf("request %q %s", r.Name, what)
		}
		return what
	}
	field := func(what string) string {
		if named {
			return fmt.Sprintf("requests[%d].%s", i, what)
		}
		return what
	}
	path, err := c.prog(r.Raw || !named, r.Path, tmpl.Path, field("path"), label("path"))
	if err != nil {
		return compiled{}, err
	}
	hdrs := c.p.RequestHeaders(r)
	names := make([]string, 0, len(hdrs))
	for k := range hdrs {
		names = append(names, k)
	}
	sort.Strings(names)
	hostProg, ua := tmpl.Literal(host), true
	var hparts []*tmpl.Program
	var plain []http1.Header
	for _, k := range names {
		f := "headers." + k
		if _, own := r.Headers[k]; own && named {
			f = field(f)
		}
		hp, err := c.prog(r.Raw, hdrs[k], tmpl.Header, f, label("header "+k))
		if err != nil {
			return compiled{}, err
		}
		plain = append(plain, http1.Header{Name: k, Value: hdrs[k]})
		switch {
		case strings.EqualFold(k, "Host"):
			hostProg = hp
			continue
		case strings.EqualFold(k, "User-Agent"):
			ua = false
		}
		hparts = append(hparts, tmpl.Literal(k+": "), hp, tmpl.Literal("\r\n"))
	}
	body, err := c.prog(r.Raw, r.Body, tmpl.Body, field("body"), label("body"))
	if err != nil {
		return compiled{}, err
	}
	m := r.Method
	parts := []*tmpl.Program{tmpl.Literal(m + " "), path, tmpl.Literal(" HTTP/1.1\r\nHost: "), hostProg, tmpl.Literal("\r\n")}
	if ua {
		parts = append(parts, tmpl.Literal("User-Agent: barrage\r\n"))
	}
	head := tmpl.Concat(append(parts, hparts...)...)
	// The bytes a request with nothing variable sends are http1's own.
	ps, pok := path.Static()
	_, hok := head.Static()
	bs, bok := body.Static()
	if pok && hok && bok {
		req := http1.Request{Method: m, Host: host, Path: string(ps), Headers: plain, Body: bs, Close: c.p.NoKeepAlive}
		if err := req.Validate(); err != nil {
			return compiled{}, proto.BadPlanf("%s: %v", label("request"), err)
		}
		return compiled{static: http1.AppendRequest(nil, &req)}, nil
	}
	// Something varies: the literal parts were checked by Compile for
	// their context (no space in the path, no control character in a
	// header), and proto's Validate checked method and header names.
	cr := compiled{tables: tablesOf(head, body)}
	needCL := r.Body != "" || m == "POST" || m == "PUT" || m == "PATCH"
	conn := "Connection: keep-alive\r\n\r\n"
	if c.p.NoKeepAlive {
		conn = "Connection: close\r\n\r\n"
	}
	switch {
	case !needCL:
		cr.prog = tmpl.Concat(head, tmpl.Literal(conn))
	case bok:
		cr.prog = tmpl.Concat(head, tmpl.Literal("Content-Length: "+strconv.Itoa(len(bs))+"\r\n"+conn), body)
	default:
		cr.prog = tmpl.Concat(head, tmpl.Literal("Content-Length: "))
		cr.tail = []byte("\r\n" + conn)
		cr.body = body
	}
	return cr, nil
}

func tablesOf(ps ...*tmpl.Program) []int {
	seen := map[int]bool{}
	var out []int
	for _, p := range ps {
		for _, t := range p.Tables() {
			if !seen[t] {
				seen[t] = true
				out = append(out, t)
			}
		}
	}
	sort.Ints(out)
	return out
}

// Renderer is one loop's state for rendering a mix: its random stream,
// its {{seq}} counter, its cursor in each data file, and a scratch buffer
// for bodies. It belongs to one goroutine.
type Renderer struct {
	st        *tmpl.State
	seq, step uint64
	// Per data file: this loop's rows [lo, hi) and its next row (a
	// sequential file); a random file draws from the generator's slice.
	lo, hi, cur []int
	body        []byte
}

// splitmix is SplitMix64's output function: distinct inputs give
// unrelated outputs.
func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// NewRenderer returns loop loop's renderer (of loops loops). Its random
// stream is drawn from the plan's seed, this generator's part and the
// loop: the same seed gives each loop the same sequence of picks and
// values, and no two loops or generators share a stream. Its {{seq}} is
// (k*loops + loop)*parts + part for its k-th request, so that no two
// requests of the test share one. A sequential data file's rows are split
// among the loops (each walks its own and wraps); when the file has fewer
// rows than loops, each loop walks them all from its own start.
func (m *Mix) NewRenderer(loop, loops int) *Renderer {
	loops = max(loops, 1)
	s1 := splitmix(m.seed ^ splitmix(uint64(m.part)+1))
	s2 := splitmix(m.seed + 1 ^ splitmix(uint64(loop)+1<<32))
	r := &Renderer{
		st:   tmpl.NewState(s1, s2, m.tables),
		seq:  uint64(loop)*uint64(m.parts) + uint64(m.part),
		step: uint64(loops) * uint64(m.parts),
	}
	for _, t := range m.tables {
		n := t.Rows()
		lo, hi, cur := 0, n, loop%n
		if n >= loops {
			lo, hi = loop*n/loops, (loop+1)*n/loops
			cur = lo
		}
		r.lo, r.hi, r.cur = append(r.lo, lo), append(r.hi, hi), append(r.cur, cur)
	}
	return r
}

// pick draws a request by weight.
func (m *Mix) pick(r *Renderer) int {
	cum := m.cum
	if len(cum) == 0 {
		return 0
	}
	x := r.st.Uint64()
	if len(cum) <= 8 {
		for i, c := range cum {
			if x < c {
				return i
			}
		}
		return len(cum)
	}
	lo, hi := 0, len(cum)
	for lo < hi {
		h := int(uint(lo+hi) >> 1)
		if x < cum[h] {
			hi = h
		} else {
			lo = h + 1
		}
	}
	return lo
}

// Append picks the next request, renders it onto dst and returns the
// extended buffer and the request's index. nowUnixNS is the send time.
// It allocates only when dst or the renderer's body buffer must grow.
func (r *Renderer) Append(dst []byte, m *Mix, nowUnixNS int64) ([]byte, int) {
	i := m.pick(r)
	return m.render(dst, r, i, nowUnixNS), i
}

func (m *Mix) render(dst []byte, r *Renderer, i int, nowUnixNS int64) []byte {
	c := &m.reqs[i]
	s := r.st
	s.Seq = r.seq
	r.seq += r.step
	if c.static != nil {
		return append(dst, c.static...)
	}
	s.NowMS = nowUnixNS / 1e6
	for _, t := range c.tables {
		if m.random[t] {
			// The table holds only this generator's slice: any row.
			s.Rows[t] = int(s.Below(uint64(m.tables[t].Rows())))
			continue
		}
		row := r.cur[t]
		r.cur[t]++
		if r.cur[t] >= r.hi[t] {
			r.cur[t] = r.lo[t]
		}
		s.Rows[t] = row
	}
	if c.body == nil {
		return c.prog.Append(dst, s)
	}
	// Content-Length precedes the body: the body is rendered first, into
	// the renderer's own buffer.
	r.body = c.body.Append(r.body[:0], s)
	dst = c.prog.Append(dst, s)
	dst = strconv.AppendInt(dst, int64(len(r.body)), 10)
	dst = append(dst, c.tail...)
	return append(dst, r.body...)
}
