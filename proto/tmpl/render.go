package tmpl

import (
	"fmt"
	"math/bits"
	"math/rand/v2"
	"strconv"
)

// State is one renderer's per-request inputs and its random generator. It
// belongs to one goroutine (an event loop): nothing in it is shared.
type State struct {
	rng rand.PCG
	// Seq is the request's number ({{seq}}), NowMS its send time in Unix
	// milliseconds ({{now_ms}}): the caller sets both before rendering.
	Seq   uint64
	NowMS int64
	// Tables are the data files a program's {{DATA.COLUMN}} reads, indexed
	// as in the Env the program was compiled with, and Rows the row of
	// each that the request uses: the caller picks them.
	Tables []*Table
	Rows   []int
}

// NewState returns a state whose generator starts from (seed1, seed2):
// the same pair gives the same sequence of random values. Tables may be
// nil when no program reads data.
func NewState(seed1, seed2 uint64, tables []*Table) *State {
	s := &State{Tables: tables, Rows: make([]int, len(tables))}
	s.rng.Seed(seed1, seed2)
	return s
}

// Uint64 returns 64 random bits.
func (s *State) Uint64() uint64 { return s.rng.Uint64() }

// Below returns a uniform random integer in [0, n); n == 0 returns any 64
// bits. It is Lemire's multiply-and-reject: one multiplication, and a
// rejection with probability below n/2^64.
func (s *State) Below(n uint64) uint64 {
	x := s.rng.Uint64()
	if n == 0 {
		return x
	}
	hi, lo := bits.Mul64(x, n)
	if lo < n {
		thresh := -n % n
		for lo < thresh {
			hi, lo = bits.Mul64(s.rng.Uint64(), n)
		}
	}
	return hi
}

// Append renders p for one request onto dst and returns the extended
// slice. It allocates only when dst must grow.
func (p *Program) Append(dst []byte, s *State) []byte {
	for i := range p.ops {
		o := &p.ops[i]
		switch o.kind {
		case opLit:
			dst = append(dst, p.lit[o.a:o.b]...)
		case opSeq:
			dst = strconv.AppendUint(dst, s.Seq, 10)
		case opNowMS:
			dst = strconv.AppendInt(dst, s.NowMS, 10)
		case opRandInt:
			dst = strconv.AppendInt(dst, o.a+int64(s.Below(uint64(o.b))), 10)
		case opRandString:
			alpha := p.lit[o.c:o.d]
			n := int(o.b)
			// One growth, then fill in place (the compiler turns
			// append(make) into a clear, with no allocation).
			dst = append(dst, make([]byte, n)...)
			out := dst[len(dst)-n:]
			k := uint64(len(alpha))
			for j := range out {
				out[j] = alpha[s.Below(k)]
			}
		case opUUID:
			dst = appendUUID(dst, s.rng.Uint64(), s.rng.Uint64())
		case opField:
			dst = append(dst, s.Tables[o.a].Cell(s.Rows[o.a], int(o.b))...)
		}
	}
	return dst
}

const hexDigits = "0123456789abcdef"

// appendUUID writes a version 4 (random) UUID made of hi and lo.
func appendUUID(dst []byte, hi, lo uint64) []byte {
	hi = hi&^(0xf<<12) | 0x4<<12 // version 4
	lo = lo&^(0x3<<62) | 0x2<<62 // variant 10
	var b [36]byte
	j := 0
	for i := 0; i < 16; i++ {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b[j] = '-'
			j++
		}
		var v byte
		if i < 8 {
			v = byte(hi >> (56 - 8*i))
		} else {
			v = byte(lo >> (56 - 8*(i-8)))
		}
		b[j], b[j+1] = hexDigits[v>>4], hexDigits[v&15]
		j += 2
	}
	return append(dst, b[:]...)
}

// Table is a data file's rows held in memory: every cell in one byte
// slice, found through one offset per cell. It is immutable once built
// and shared by every loop that renders from it.
type Table struct {
	cols, rows int
	buf        []byte
	off        []uint32
}

// NewTable returns an empty table of cols columns.
func NewTable(cols int) *Table { return &Table{cols: cols, off: []uint32{0}} }

// MaxTableBytes bounds the cells a table holds (its offsets are 32-bit).
const MaxTableBytes = 1<<32 - 1

// Add appends one row; it fails when the row has the wrong number of
// cells or the table would pass MaxTableBytes.
func (t *Table) Add(cells []string) error {
	if len(cells) != t.cols {
		return tableErr("a row of %d cells in a table of %d columns", len(cells), t.cols)
	}
	for _, c := range cells {
		if uint64(len(t.buf))+uint64(len(c)) > MaxTableBytes {
			return tableErr("more than %d bytes of data", uint64(MaxTableBytes))
		}
		t.buf = append(t.buf, c...)
		t.off = append(t.off, uint32(len(t.buf)))
	}
	t.rows++
	return nil
}

// Rows counts the table's rows; Cols its columns.
func (t *Table) Rows() int { return t.rows }

// Cols counts the table's columns.
func (t *Table) Cols() int { return t.cols }

// Cell returns row r's cell in column c (valid as long as the table).
func (t *Table) Cell(r, c int) []byte {
	i := r*t.cols + c
	return t.buf[t.off[i]:t.off[i+1]]
}

func tableErr(format string, a ...any) error { return fmt.Errorf("tmpl: "+format, a...) }
