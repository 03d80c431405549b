package request

import (
	"bytes"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"strings"

	"github.com/barrage-load/barrage/proto"
	"github.com/barrage-load/barrage/proto/tmpl"
)

// MaxDataBytes bounds a data file: every generator holds its slice in
// memory, and reads (and hashes) the whole file at the start.
const MaxDataBytes = 1 << 30

// file is a data file as read: its columns, its rows (cells, and the line
// each starts on, for messages) and its digest.
type file struct {
	name    string
	spec    proto.Data
	columns []string
	rows    [][]string
	lines   []int
	sha     string
}

// readData reads and parses data file name of the plan.
func readData(name string, d proto.Data) (*file, error) {
	f, err := os.Open(d.File)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, proto.BadPlanf("data %s: cannot read %s: %v (a data file is read on every generator's own box, at the same path)", name, d.File, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxDataBytes+1))
	if err != nil {
		return nil, proto.BadPlanf("data %s: cannot read %s: %v", name, d.File, err)
	}
	if len(b) > MaxDataBytes {
		return nil, proto.BadPlanf("data %s: %s is larger than %d bytes", name, d.File, MaxDataBytes)
	}
	sum := sha256.Sum256(b)
	out := &file{name: name, spec: d, sha: hex.EncodeToString(sum[:])}
	switch d.Format {
	case proto.FormatCSV:
		err = out.parseCSV(b)
	default:
		out.parseLines(b)
	}
	if err != nil {
		return nil, err
	}
	if len(out.rows) == 0 {
		return nil, proto.BadPlanf("data %s: %s has no rows", name, d.File)
	}
	return out, nil
}

func (f *file) parseCSV(b []byte) error {
	r := csv.NewReader(bytes.NewReader(b))
	r.ReuseRecord = false
	head, err := r.Read()
	if err == io.EOF {
		return proto.BadPlanf("data %s: %s is empty (a CSV file starts with a header row naming its columns)", f.name, f.spec.File)
	}
	if err != nil {
		return proto.BadPlanf("data %s: %s: %v", f.name, f.spec.File, err)
	}
	if len(head) > proto.MaxDataColumns {
		return proto.BadPlanf("data %s: %s has %d columns, more than %d", f.name, f.spec.File, len(head), proto.MaxDataColumns)
	}
	seen := map[string]bool{}
	for i, c := range head {
		c = strings.TrimSpace(strings.TrimPrefix(c, "\ufeff"))
		if !proto.ValidColumn(c) {
			return proto.BadPlanf("data %s: %s: header column %d %q is not a name (letters, digits, _ and -)", f.name, f.spec.File, i+1, clip(c))
		}
		if seen[c] {
			return proto.BadPlanf("data %s: %s: the header names column %q twice", f.name, f.spec.File, c)
		}
		seen[c] = true
		head[i] = c
	}
	f.columns = head
	for {
		rec, err := r.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			// csv's errors say "record on line N: wrong number of fields".
			return proto.BadPlanf("data %s: %s: %v", f.name, f.spec.File, err)
		}
		line, _ := r.FieldPos(0)
		f.rows = append(f.rows, rec)
		f.lines = append(f.lines, line)
	}
}

// parseLines reads one value a line; blank lines are skipped, a trailing
// \r is dropped.
func (f *file) parseLines(b []byte) {
	f.columns = []string{proto.LinesColumn}
	line := 0
	for len(b) > 0 {
		line++
		var l []byte
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			l, b = b[:i], b[i+1:]
		} else {
			l, b = b, nil
		}
		l = bytes.TrimSuffix(l, []byte("\r"))
		if len(bytes.TrimSpace(l)) == 0 {
			continue
		}
		f.rows = append(f.rows, []string{string(l)})
		f.lines = append(f.lines, line)
	}
}

// Inspect reads every data file of the plan and records in it what an
// agent checks its own copy against: columns, row count and SHA-256. The
// process that loads a plan (run, coord) calls it; an error names the
// file and what is wrong (a missing file, an empty one, a bad header).
func Inspect(p *proto.Plan) error {
	for _, name := range p.DataNames() {
		d := p.Data[name]
		f, err := readData(name, d)
		if err != nil {
			return err
		}
		d.Columns, d.Rows, d.SHA256 = f.columns, len(f.rows), f.sha
		p.Data[name] = d
	}
	return nil
}

// check compares a file read on this box with what the plan recorded.
func (f *file) check() error {
	d := f.spec
	if d.SHA256 != "" && d.SHA256 != f.sha {
		return proto.BadPlanf("data %s: %s on this box is not the file the plan was loaded with (sha256 %.12s…, the plan's %.12s…): copy the same file to every generator", f.name, d.File, f.sha, d.SHA256)
	}
	if d.Columns != nil && strings.Join(d.Columns, ",") != strings.Join(f.columns, ",") {
		return proto.BadPlanf("data %s: %s has columns %s, the plan's has %s", f.name, d.File, strings.Join(f.columns, ", "), strings.Join(d.Columns, ", "))
	}
	return nil
}

// table keeps rows [lo, hi) of the file, checking each cell of a column
// some program writes into a header or a path.
func (f *file) table(lo, hi int, uses []tmpl.Use, idx int) (*tmpl.Table, error) {
	t := tmpl.NewTable(len(f.columns))
	for r := lo; r < hi; r++ {
		for _, u := range uses {
			if u.Table != idx || u.Ctx == tmpl.Body {
				continue
			}
			cell := f.rows[r][u.Col]
			for i := 0; i < len(cell); i++ {
				if !u.Ctx.Allows(cell[i]) {
					return nil, proto.BadPlanf("data %s: %s line %d, column %s: byte %q, which a %s cannot carry", f.name, f.spec.File, f.lines[r], f.columns[u.Col], cell[i], u.Ctx)
				}
			}
		}
		if err := t.Add(f.rows[r]); err != nil {
			return nil, proto.BadPlanf("data %s: %v", f.name, err)
		}
	}
	return t, nil
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
