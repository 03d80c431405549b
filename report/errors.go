package report

import (
	"strings"

	"github.com/barrage-load/barrage/proto"
)

// Error kinds the report adds to the transport's (proto.ErrKind): a
// response whose status code is not in the plan's success set. Such a
// response was answered, so it counts among the responses and never among
// the requests that failed to get an answer; it is an error all the same.
const (
	// KindHTTP4xx counts error responses with a code in 400..499.
	KindHTTP4xx = "http_4xx"
	// KindHTTP5xx counts error responses with a code in 500..599.
	KindHTTP5xx = "http_5xx"
	// KindHTTPOther counts every other response outside the success set:
	// a code outside 100..599 (the engine counts those in Status[0]), or,
	// when the plan lists its success codes, a 1xx-3xx code it does not
	// list.
	KindHTTPOther = "http_other"
)

// Expect is a plan's success set of status codes (proto.Plan.ExpectStatus).
// Its zero value is the default: every code in 100..399 is a success.
type Expect struct {
	// set marks the codes listed; nil means the default set.
	set *[proto.MaxStatus]bool
	// other is true when a listed code is one the engine counts in
	// Status[0] (600 and above): Status[0] then counts as a success.
	other bool
}

// NewExpect builds the success set from a plan's ExpectStatus list; an
// empty list gives the default (every code below 400).
func NewExpect(codes []int) Expect {
	if len(codes) == 0 {
		return Expect{}
	}
	e := Expect{set: new([proto.MaxStatus]bool)}
	for _, c := range codes {
		if c > 0 && c < proto.MaxStatus {
			e.set[c] = true
		} else {
			e.other = true
		}
	}
	return e
}

// Success reports whether a response with this code (as the engine
// counts it: 0 for a code outside 1..MaxStatus-1) is a success.
func (e Expect) Success(code int) bool {
	if code <= 0 || code >= proto.MaxStatus {
		return e.set != nil && e.other
	}
	if e.set == nil {
		return code >= 100 && code < 400
	}
	return e.set[code]
}

// Errors counts a run's or an interval's errors as users count them: the
// transport's kinds (proto.ErrKind, connect attempts included) and the
// responses with an error status.
type Errors struct {
	Transport                   [proto.NumErrKinds]uint64
	HTTP4xx, HTTP5xx, HTTPOther uint64
}

// CountErrors classifies s's errors and responses against the success set.
func CountErrors(s *proto.Stats, e Expect) Errors {
	out := Errors{Transport: s.Errors}
	for code, n := range s.Status {
		if n == 0 || e.Success(code) {
			continue
		}
		switch {
		case code >= 400 && code < 500:
			out.HTTP4xx += n
		case code >= 500 && code < 600:
			out.HTTP5xx += n
		default:
			out.HTTPOther += n
		}
	}
	return out
}

// HTTP counts the responses with an error status.
func (x Errors) HTTP() uint64 { return x.HTTP4xx + x.HTTP5xx + x.HTTPOther }

// Total counts every error: transport errors (connect attempts included)
// and error responses.
func (x Errors) Total() uint64 {
	n := x.HTTP()
	for _, v := range x.Transport {
		n += v
	}
	return n
}

// Each calls fn for every kind in the report's order: the transport's
// kinds, then http_4xx, http_5xx, http_other.
func (x Errors) Each(fn func(kind string, n uint64)) {
	for k := proto.ErrKind(0); k < proto.NumErrKinds; k++ {
		fn(k.String(), x.Transport[k])
	}
	fn(KindHTTP4xx, x.HTTP4xx)
	fn(KindHTTP5xx, x.HTTP5xx)
	fn(KindHTTPOther, x.HTTPOther)
}

// Kinds returns every kind's count, zeros included (the JSON error_kinds).
func (x Errors) Kinds() map[string]uint64 {
	m := make(map[string]uint64, proto.NumErrKinds+3)
	x.Each(func(k string, n uint64) { m[k] = n })
	return m
}

// nonZero lists the kinds with a count, "kind n" joined by sep.
func (x Errors) nonZero(sep string) string {
	var b strings.Builder
	x.Each(func(k string, n uint64) {
		if n == 0 {
			return
		}
		if b.Len() > 0 {
			b.WriteString(sep)
		}
		b.WriteString(k)
		b.WriteByte(' ')
		b.WriteString(uitoa(n))
	})
	return b.String()
}
