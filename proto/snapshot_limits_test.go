package proto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"
)

// frameSnapshot frames a JSON part and raw histogram parts as
// MarshalSnapshot does: the parts given are latency, service, corrected
// and lateness, in that order; empty ones are left out.
func frameSnapshot(js string, parts ...[]byte) []byte {
	b := append([]byte(nil), snapshotMagic...)
	b = binary.AppendUvarint(b, uint64(len(js)))
	b = append(b, js...)
	tags := []string{"latency", "service", "corrected", "lateness"}
	n := 0
	for _, p := range parts {
		if len(p) > 0 {
			n++
		}
	}
	b = binary.AppendUvarint(b, uint64(n))
	for i, p := range parts {
		if len(p) == 0 {
			continue
		}
		b = binary.AppendUvarint(b, uint64(len(tags[i])))
		b = append(b, tags[i]...)
		b = binary.AppendUvarint(b, uint64(len(p)))
		b = append(b, p...)
	}
	return b
}

const goodMeta = `{"agent":"box1","seq":2,"step":0,"start_ns":2000000000,"end_ns":3000000000,"sent":5,"responses":5,"bytes_in":1,"bytes_out":1,"conns_open":1,"conns_wanted":1,"open":false,"status":{"200":5}}`

// TestSnapshotLimits: UnmarshalSnapshot refuses, before decoding, what no
// MarshalSnapshot writes: too many bytes, a JSON part too large, crafted
// status keys, negative fields, trailing bytes.
func TestSnapshotLimits(t *testing.T) {
	none := []byte{}
	if _, err := UnmarshalSnapshot(frameSnapshot(goodMeta, none, none, none, none)); err != nil {
		t.Fatalf("a good snapshot: %v", err)
	}
	// The largest honest snapshot fits: four incompressible histograms.
	s := NewStats(true)
	for i := range s.Status {
		s.Status[i] = ^uint64(0)
	}
	b, err := MarshalSnapshot(&Snapshot{Agent: strings.Repeat("a", 255), Stats: s, FirstSend: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := UnmarshalSnapshot(b); err != nil {
		t.Fatalf("a full status table (%d bytes): %v", len(b), err)
	}

	big := `{"agent":"` + strings.Repeat("x", MaxSnapshotJSON) + `","seq":0,"step":0,"start_ns":0,"end_ns":0,"sent":0,"responses":0,"bytes_in":0,"bytes_out":0,"conns_open":0,"conns_wanted":0,"open":false}`
	huge := frameSnapshot(goodMeta, none, none, none, none)
	huge = append(huge, bytes.Repeat([]byte{0}, MaxSnapshotBytes)...)
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"more than MaxSnapshotBytes", huge},
		{"JSON part over MaxSnapshotJSON", frameSnapshot(big, none, none, none, none)},
		{"status key not a number", frameSnapshot(strings.Replace(goodMeta, `"200":5`, `"abc":5`, 1), none, none, none, none)},
		{"status key spelled twice", frameSnapshot(strings.Replace(goodMeta, `"200":5`, `"200":5,"0200":18446744073709551615`, 1), none, none, none, none)},
		{"status code out of range", frameSnapshot(strings.Replace(goodMeta, `"200":5`, `"600":5`, 1), none, none, none, none)},
		{"negative seq", frameSnapshot(strings.Replace(goodMeta, `"seq":2`, `"seq":-1`, 1), none, none, none, none)},
		{"negative step", frameSnapshot(strings.Replace(goodMeta, `"step":0`, `"step":-7`, 1), none, none, none, none)},
		{"end before start", frameSnapshot(strings.Replace(goodMeta, `"end_ns":3000000000`, `"end_ns":1`, 1), none, none, none, none)},
		{"negative connections", frameSnapshot(strings.Replace(goodMeta, `"conns_open":1`, `"conns_open":-1`, 1), none, none, none, none)},
		{"agent name over 4096 bytes", frameSnapshot(strings.Replace(goodMeta, `"box1"`, `"`+strings.Repeat("<", 4097)+`"`, 1), none, none, none, none)},
		{"trailing bytes", append(frameSnapshot(goodMeta, none, none, none, none), 1, 2, 3)},
	} {
		if _, err := UnmarshalSnapshot(tc.b); !errors.Is(err, ErrBadSnapshot) {
			t.Errorf("%s: error %v, want ErrBadSnapshot", tc.name, err)
		}
	}
}
