// Package tmpl compiles the per-request variables of a request's path,
// headers and body once, at plan load, and renders them into a caller's
// buffer for every request without allocating.
//
// The syntax is one action per pair of double braces:
//
//	{{seq}}                 the request's number, unique over the whole test
//	{{uuid}}                a random UUID (version 4)
//	{{now_ms}}              the send time, Unix milliseconds
//	{{randInt 1 5}}         a random integer from 1 to 5, both included
//	{{randString 8}}        8 random characters from A-Za-z0-9
//	{{randString 8 abc}}    8 random characters from the ones given
//	{{users.token}}         column token of data file users (one row per request)
//	{{"{{"}}                a quoted string, written as it is (here a literal "{{")
//
// Everything outside the braces is sent as written. Each random action
// draws afresh; {{seq}}, {{now_ms}} and a data file's row are the same for
// every use within one request. Unknown names and bad arguments are
// errors at compile time with a line and a column (Error).
//
// Hazard: a program's output goes onto the wire as it is. Compile refuses
// what would break the request line or a header in the context it is
// given (Path, Header): a quoted string or an alphabet with a space or a
// control character; data cells are checked when they are loaded, for
// every context their column is used in (Program.Uses).
package tmpl

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Bounds of what a template may ask for.
const (
	// MaxRandString bounds {{randString N}}: longer random strings are a
	// body's job (body_file), not a variable's.
	MaxRandString = 4096
	// MaxAlphabet bounds a randString alphabet.
	MaxAlphabet = 256
	// MaxActions bounds the actions of one template, so a plan cannot make
	// one request cost unbounded work.
	MaxActions = 1024
	// MaxSource bounds the text of one template (1 MiB, the plan's own
	// bound).
	MaxSource = 1 << 20
	// DefaultAlphabet is randString's alphabet when none is given.
	DefaultAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
)

// ErrTemplate occurs when a template does not compile; every *Error
// matches it with errors.Is.
var ErrTemplate = errors.New("tmpl: bad template")

// Error is a compile error at a line and column of the template's text
// (both from 1; the column counts bytes).
type Error struct {
	Line, Col int
	Msg       string
}

func (e *Error) Error() string { return fmt.Sprintf("line %d, column %d: %s", e.Line, e.Col, e.Msg) }

// Unwrap makes an *Error match ErrTemplate.
func (e *Error) Unwrap() error { return ErrTemplate }

// Context says where a program's output goes, and so what it may contain.
type Context uint8

// Contexts.
const (
	// Body: any bytes.
	Body Context = iota
	// Header: a header's value; no control character but tab.
	Header
	// Path: the request line's target; no space and no control character.
	Path
)

// String names the context for messages.
func (c Context) String() string {
	switch c {
	case Header:
		return "header"
	case Path:
		return "path"
	}
	return "body"
}

// Allows reports whether byte b may appear in c's output.
func (c Context) Allows(b byte) bool {
	switch c {
	case Header:
		return b >= 0x20 && b != 0x7f || b == '\t'
	case Path:
		return b > 0x20 && b != 0x7f
	}
	return true
}

// TableSpec names a data file's columns for Compile.
type TableSpec struct {
	Name    string
	Columns []string
}

// Env is what a template may refer to besides the built-in variables: the
// plan's data files, in the order their rows are kept in State.
type Env struct {
	Tables []TableSpec
}

type opKind uint8

const (
	opLit opKind = iota
	opSeq
	opUUID
	opNowMS
	opRandInt
	opRandString
	opField
)

// op is one step of a program. lit: lit[a:b]; randInt: a + [0, b)
// (b == 0: the whole int64 range); randString: b characters from lit[c:d];
// field: table a, column b.
type op struct {
	kind opKind
	a, b int64
	c, d int32
}

// Use is one data column a program reads, in the context it writes it to.
type Use struct {
	Table, Col int
	Ctx        Context
}

// Program is a compiled template. It is immutable once compiled and may
// be shared by any number of goroutines, each rendering with its own
// State.
type Program struct {
	ops  []op
	lit  []byte
	uses []Use
	// seq and now: the program reads State.Seq and State.NowMS.
	seq, now bool
}

// Literal returns the program that writes s.
func Literal(s string) *Program {
	p := &Program{}
	p.addLit(s)
	return p
}

func (p *Program) addLit(s string) {
	if s == "" {
		return
	}
	// Adjacent literals merge: a fixed header line after a fixed request
	// line is one copy.
	if n := len(p.ops); n > 0 && p.ops[n-1].kind == opLit && p.ops[n-1].b == int64(len(p.lit)) {
		p.lit = append(p.lit, s...)
		p.ops[n-1].b = int64(len(p.lit))
		return
	}
	a := int64(len(p.lit))
	p.lit = append(p.lit, s...)
	p.ops = append(p.ops, op{kind: opLit, a: a, b: int64(len(p.lit))})
}

// Concat returns a program that writes each of ps in turn.
func Concat(ps ...*Program) *Program {
	out := &Program{}
	for _, p := range ps {
		if p == nil {
			continue
		}
		for _, o := range p.ops {
			switch o.kind {
			case opLit:
				out.addLit(string(p.lit[o.a:o.b]))
			case opRandString:
				c := int32(len(out.lit))
				out.lit = append(out.lit, p.lit[o.c:o.d]...)
				o.c, o.d = c, int32(len(out.lit))
				out.ops = append(out.ops, o)
			default:
				out.ops = append(out.ops, o)
			}
		}
		out.uses = append(out.uses, p.uses...)
		out.seq = out.seq || p.seq
		out.now = out.now || p.now
	}
	return out
}

// Static reports whether the program writes the same bytes every time,
// and returns them.
func (p *Program) Static() ([]byte, bool) {
	var out []byte
	for _, o := range p.ops {
		if o.kind != opLit {
			return nil, false
		}
		out = append(out, p.lit[o.a:o.b]...)
	}
	return out, true
}

// Uses lists the data columns the program reads, with their contexts.
func (p *Program) Uses() []Use { return p.uses }

// Tables lists the data files the program reads (each once, in order).
func (p *Program) Tables() []int {
	var out []int
	seen := map[int]bool{}
	for _, u := range p.uses {
		if !seen[u.Table] {
			seen[u.Table] = true
			out = append(out, u.Table)
		}
	}
	return out
}

// Actions counts the program's variable parts.
func (p *Program) Actions() int {
	n := 0
	for _, o := range p.ops {
		if o.kind != opLit {
			n++
		}
	}
	return n
}

// parser walks one template's text.
type parser struct {
	src     string
	pos     int
	env     *Env
	ctx     Context
	p       *Program
	actions int
}

// where turns a byte offset into a line and a column (both from 1).
func (ps *parser) where(off int) (line, col int) {
	line = 1 + strings.Count(ps.src[:off], "\n")
	start := strings.LastIndexByte(ps.src[:off], '\n') + 1
	return line, off - start + 1
}

func (ps *parser) errAt(off int, format string, a ...any) error {
	line, col := ps.where(off)
	return &Error{Line: line, Col: col, Msg: fmt.Sprintf(format, a...)}
}

// Compile compiles src for context ctx against env. A nil env knows no
// data files.
func Compile(src string, env *Env, ctx Context) (*Program, error) {
	if env == nil {
		env = &Env{}
	}
	ps := &parser{src: src, env: env, ctx: ctx, p: &Program{}}
	if len(src) > MaxSource {
		return nil, &Error{Line: 1, Col: 1, Msg: fmt.Sprintf("the template is %d bytes, more than %d", len(src), MaxSource)}
	}
	for ps.pos < len(src) {
		i := strings.Index(src[ps.pos:], "{{")
		end := ps.pos + i
		if i < 0 {
			end = len(src)
		}
		if err := ps.checkOutput(ps.pos, src[ps.pos:end], "the text"); err != nil {
			return nil, err
		}
		ps.p.addLit(src[ps.pos:end])
		if i < 0 {
			break
		}
		ps.pos += i
		if err := ps.action(); err != nil {
			return nil, err
		}
	}
	return ps.p, nil
}

// A "}}" outside an action is literal text: JSON bodies are full of them
// ({"a":{"b":1}}), so only "{{" opens an action.

// token is one word or quoted string of an action.
type token struct {
	off    int
	text   string
	quoted bool
}

// action parses one {{...}} at ps.pos.
func (ps *parser) action() error {
	start := ps.pos
	ps.pos += 2
	ps.actions++
	if ps.actions > MaxActions {
		return ps.errAt(start, "more than %d variables in one template", MaxActions)
	}
	var toks []token
	for {
		for ps.pos < len(ps.src) && (ps.src[ps.pos] == ' ' || ps.src[ps.pos] == '\t') {
			ps.pos++
		}
		if ps.pos >= len(ps.src) {
			return ps.errAt(start, `"{{" is not closed by "}}"`)
		}
		if strings.HasPrefix(ps.src[ps.pos:], "}}") {
			ps.pos += 2
			break
		}
		c := ps.src[ps.pos]
		if c == '\n' || c == '\r' {
			return ps.errAt(start, `"{{" is not closed by "}}" on its line`)
		}
		if len(toks) >= 4 {
			return ps.errAt(ps.pos, "too many arguments")
		}
		if c == '"' {
			t, err := ps.quoted()
			if err != nil {
				return err
			}
			toks = append(toks, t)
			continue
		}
		off := ps.pos
		for ps.pos < len(ps.src) {
			c := ps.src[ps.pos]
			if c == ' ' || c == '\t' || c == '\n' || c == '\r' || strings.HasPrefix(ps.src[ps.pos:], "}}") {
				break
			}
			ps.pos++
		}
		toks = append(toks, token{off: off, text: ps.src[off:ps.pos]})
	}
	if len(toks) == 0 {
		return ps.errAt(start, "an empty {{}}")
	}
	return ps.emit(start, toks)
}

// quoted reads a "..." string: \\ and \" are its only escapes.
func (ps *parser) quoted() (token, error) {
	off := ps.pos
	ps.pos++
	var b strings.Builder
	for {
		if ps.pos >= len(ps.src) || ps.src[ps.pos] == '\n' {
			return token{}, ps.errAt(off, "a quoted string is not closed")
		}
		c := ps.src[ps.pos]
		switch c {
		case '"':
			ps.pos++
			return token{off: off, text: b.String(), quoted: true}, nil
		case '\\':
			if ps.pos+1 >= len(ps.src) || (ps.src[ps.pos+1] != '"' && ps.src[ps.pos+1] != '\\') {
				return token{}, ps.errAt(ps.pos, `a quoted string knows only the escapes \" and \\`)
			}
			b.WriteByte(ps.src[ps.pos+1])
			ps.pos += 2
		default:
			b.WriteByte(c)
			ps.pos++
		}
	}
}

// known lists the built-in variables for messages.
const known = "seq, uuid, now_ms, randInt LO HI, randString N [ALPHABET], or DATA.COLUMN"

// emit compiles one action's tokens.
func (ps *parser) emit(start int, toks []token) error {
	head := toks[0]
	args := toks[1:]
	if head.quoted {
		if len(args) > 0 {
			return ps.errAt(args[0].off, "a quoted string takes no arguments")
		}
		if err := ps.checkOutput(head.off, head.text, "the quoted string"); err != nil {
			return err
		}
		ps.p.addLit(head.text)
		return nil
	}
	noArgs := func() error {
		if len(args) > 0 {
			return ps.errAt(args[0].off, "%s takes no arguments", head.text)
		}
		return nil
	}
	switch head.text {
	case "seq":
		ps.p.seq = true
		ps.p.ops = append(ps.p.ops, op{kind: opSeq})
		return noArgs()
	case "uuid":
		ps.p.ops = append(ps.p.ops, op{kind: opUUID})
		return noArgs()
	case "now_ms":
		ps.p.now = true
		ps.p.ops = append(ps.p.ops, op{kind: opNowMS})
		return noArgs()
	case "randInt":
		return ps.randInt(head, args)
	case "randString":
		return ps.randString(head, args)
	}
	table, col, ok := strings.Cut(head.text, ".")
	if !ok {
		return ps.errAt(head.off, "unknown variable %q (want %s)", clip(head.text), known)
	}
	if err := noArgs(); err != nil {
		return err
	}
	for ti, t := range ps.env.Tables {
		if t.Name != table {
			continue
		}
		for ci, c := range t.Columns {
			if c == col {
				ps.p.ops = append(ps.p.ops, op{kind: opField, a: int64(ti), b: int64(ci)})
				ps.p.uses = append(ps.p.uses, Use{Table: ti, Col: ci, Ctx: ps.ctx})
				return nil
			}
		}
		return ps.errAt(head.off+len(table)+1, "data %q has no column %q (its columns: %s)", table, clip(col), strings.Join(t.Columns, ", "))
	}
	var names []string
	for _, t := range ps.env.Tables {
		names = append(names, t.Name)
	}
	if len(names) == 0 {
		return ps.errAt(head.off, "unknown data %q: the plan has no data files (data: {%s: {file: ...}})", clip(table), clip(table))
	}
	return ps.errAt(head.off, "unknown data %q (the plan's data: %s)", clip(table), strings.Join(names, ", "))
}

// clip shortens what a message quotes from the template.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

func (ps *parser) integer(t token, what string) (int64, error) {
	if t.quoted {
		return 0, ps.errAt(t.off, "%s must be an integer, not a quoted string", what)
	}
	n, err := strconv.ParseInt(t.text, 10, 64)
	if err != nil {
		return 0, ps.errAt(t.off, "%s %q is not an integer from %d to %d", what, clip(t.text), int64(math.MinInt64), int64(math.MaxInt64))
	}
	return n, nil
}

func (ps *parser) randInt(head token, args []token) error {
	if len(args) != 2 {
		at := head.off
		if len(args) > 2 {
			at = args[2].off
		}
		return ps.errAt(at, "randInt takes two integers, LO and HI (e.g. {{randInt 1 100}})")
	}
	lo, err := ps.integer(args[0], "randInt's LO")
	if err != nil {
		return err
	}
	hi, err := ps.integer(args[1], "randInt's HI")
	if err != nil {
		return err
	}
	if lo > hi {
		return ps.errAt(args[0].off, "randInt's LO %d is above its HI %d", lo, hi)
	}
	// hi-lo+1 as uint64; the whole int64 range wraps to 0, which Render
	// reads as "any 64 bits".
	span := uint64(hi) - uint64(lo) + 1
	ps.p.ops = append(ps.p.ops, op{kind: opRandInt, a: lo, b: int64(span)})
	return nil
}

func (ps *parser) randString(head token, args []token) error {
	if len(args) < 1 || len(args) > 2 {
		at := head.off
		if len(args) > 2 {
			at = args[2].off
		}
		return ps.errAt(at, "randString takes a length and an optional alphabet (e.g. {{randString 8}} or {{randString 6 0123456789}})")
	}
	n, err := ps.integer(args[0], "randString's length")
	if err != nil {
		return err
	}
	if n < 1 || n > MaxRandString {
		return ps.errAt(args[0].off, "randString's length %d is not from 1 to %d", n, MaxRandString)
	}
	alpha := DefaultAlphabet
	if len(args) == 2 {
		alpha = args[1].text
		if len(alpha) == 0 || len(alpha) > MaxAlphabet {
			return ps.errAt(args[1].off, "randString's alphabet has %d characters; give 1 to %d", len(alpha), MaxAlphabet)
		}
		if err := ps.checkOutput(args[1].off, alpha, "randString's alphabet"); err != nil {
			return err
		}
	}
	c := int32(len(ps.p.lit))
	ps.p.lit = append(ps.p.lit, alpha...)
	ps.p.ops = append(ps.p.ops, op{kind: opRandString, b: n, c: c, d: int32(len(ps.p.lit))})
	return nil
}

// checkOutput refuses bytes the context cannot carry; the error points at
// the first (in literal text) or at the string that holds it.
func (ps *parser) checkOutput(off int, s, what string) error {
	for i := 0; i < len(s); i++ {
		if !ps.ctx.Allows(s[i]) {
			at := off
			if what == "the text" {
				at = off + i
			}
			return ps.errAt(at, "%s has byte %q, which a %s cannot carry", what, s[i], ps.ctx)
		}
	}
	return nil
}
