package report

import (
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/barrage-load/barrage/proto"
)

// RequestInfo describes one request of a named mix for its report row.
type RequestInfo struct {
	Name   string
	Method string
	Path   string
	Weight float64
	// Headers are the request's headers as the report may show them:
	// secret values already redacted (proto.Plan.RequestInfos).
	Headers map[string]string
}

// RequestInfos describes a plan's named mix for the report (nil when the
// plan does not list its requests), secret header values redacted.
func RequestInfos(p *proto.Plan) []RequestInfo {
	if !p.Named() {
		return nil
	}
	var out []RequestInfo
	for i := range p.Requests {
		r := &p.Requests[i]
		h := p.RequestHeaders(r)
		for k, v := range h {
			h[k] = p.Redacted(k, v)
		}
		if len(h) == 0 {
			h = nil
		}
		out = append(out, RequestInfo{Name: r.Name, Method: r.Method, Path: r.Path, Weight: r.Weight, Headers: h})
	}
	return out
}

// RequestRow is one request's row of a named mix. The rows add up to the
// report's totals (sent, answered, failed, unfinished, status codes, error
// kinds); their latencies are the request's own, merged across loops and
// agents as the totals are.
type RequestRow struct {
	Name   string  `json:"name"`
	Method string  `json:"method"`
	Path   string  `json:"path"`
	Weight float64 `json:"weight"`
	// Share is the request's share of the mix as its weight asks;
	// SentShare its share of the requests sent.
	Share     float64           `json:"share"`
	SentShare float64           `json:"sent_share"`
	Headers   map[string]string `json:"headers,omitempty"`
	Sent      uint64            `json:"sent"`
	// Requests counts responses, as the report's own Requests does.
	Requests   uint64            `json:"requests"`
	Failed     uint64            `json:"failed"`
	Unfinished uint64            `json:"unfinished"`
	Errors     uint64            `json:"errors"`
	HTTPErrors uint64            `json:"http_errors"`
	ErrorKinds map[string]uint64 `json:"error_kinds"`
	Status     map[string]uint64 `json:"status"`
	RPS        float64           `json:"rps"`
	Latency    *Latency          `json:"latency_us"`
}

// requestRows builds the rows of a named mix from the merged totals.
func (a *Aggregator) requestRows(t *proto.Stats, elapsed float64) []RequestRow {
	if len(a.requests) == 0 {
		return nil
	}
	var wsum float64
	for _, r := range a.requests {
		wsum += r.Weight
	}
	rows := make([]RequestRow, 0, len(a.requests))
	for i, info := range a.requests {
		row := RequestRow{Name: info.Name, Method: info.Method, Path: info.Path, Weight: info.Weight, Headers: info.Headers,
			ErrorKinds: map[string]uint64{}, Status: map[string]uint64{}}
		if wsum > 0 {
			row.Share = info.Weight / wsum
		}
		if i < len(t.Requests) {
			r := &t.Requests[i]
			s := &proto.Stats{Status: r.Status, Errors: r.Errors}
			errs := CountErrors(s, a.expect)
			row.Sent, row.Requests, row.Failed, row.Unfinished = r.Sent, r.Responses, r.Failed(), r.Unfinished
			row.Errors, row.HTTPErrors, row.ErrorKinds, row.Status = errs.Total(), errs.HTTP(), errs.Kinds(), statusMap(s)
			row.Latency = Summarize(r.Latency)
			if t.Sent > 0 {
				row.SentShare = float64(r.Sent) / float64(t.Sent)
			}
			if elapsed > 0 {
				row.RPS = float64(r.Responses) / elapsed
			}
		}
		if row.Latency == nil {
			row.Latency = &Latency{}
		}
		rows = append(rows, row)
	}
	return rows
}

// writeRequests prints the named mix's rows.
func (r *Report) writeRequests(b *strings.Builder) {
	b.WriteString("\nRequests by name\n")
	w := tabwriter.NewWriter(b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "  name\trequest\tshare\tsent\tanswered\treq/s\tp50\tp99\tmax\terrors\tstatus")
	for _, q := range r.ByRequest {
		l := q.Latency
		share := fmt.Sprintf("%.1f%% (%.1f%%)", 100*q.SentShare, 100*q.Share)
		var st []string
		for _, k := range SortedStatus(q.Status) {
			st = append(st, fmt.Sprintf("%s: %d", k, q.Status[k]))
		}
		fmt.Fprintf(w, "  %s\t%s %s\t%s\t%d\t%d\t%.1f\t%s\t%s\t%s\t%s\t%s\n", q.Name, q.Method, clipPath(q.Path), share, q.Sent, q.Requests, q.RPS,
			fmtUS(l.P50), fmtUS(l.P99), fmtUS(l.Max), rowErrors(q), strings.Join(st, ", "))
	}
	w.Flush()
	b.WriteString("  share: of the requests sent (as the weights ask)\n")
}

// rowErrors is a request's errors with their kinds.
func rowErrors(q RequestRow) string {
	if q.Errors == 0 {
		return "0"
	}
	var kinds []string
	for k, n := range q.ErrorKinds {
		if n > 0 {
			kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
		}
	}
	sort.Strings(kinds)
	return fmt.Sprintf("%d (%s)", q.Errors, strings.Join(kinds, ", "))
}

func clipPath(p string) string {
	if len(p) > 40 {
		return p[:37] + "..."
	}
	return p
}
