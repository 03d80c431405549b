package report

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/barrage-load/barrage/proto"
)

// Retries is what users need to judge a run's retries (plan.Retry).
type Retries struct {
	// Attempts counts every request written to the target; Logical the
	// requests sent for the first time (Attempts - Retries). In the open
	// model, the schedule's requests are Logical: the retries are extra
	// load on top of it ("N scheduled + M retries").
	Attempts uint64 `json:"attempts"`
	Logical  uint64 `json:"logical"`
	Retries  uint64 `json:"retries"`
	// ByCause splits Retries by the failure they retried.
	ByCause map[string]uint64 `json:"by_cause"`
	// SucceededAfterRetry counts requests answered with a success only
	// after at least one retry; Exhausted, those whose last allowed
	// attempt failed too.
	SucceededAfterRetry uint64 `json:"succeeded_after_retry"`
	Exhausted           uint64 `json:"exhausted"`
	// Dropped counts retries called for and never sent, by why: the
	// circuit was open, the retry waited for a connection past the
	// timeout, the loop's queue was full, or the run ended first.
	Dropped map[string]uint64 `json:"dropped"`
	// EndToEnd is each request's latency over all its attempts and
	// backoffs (what a caller sees); the report's Latency stays per
	// attempt.
	EndToEnd *Latency `json:"end_to_end_us"`
}

// retriesOf is the retry section of a run's totals, nil without retries.
func retriesOf(t *proto.Stats) *Retries {
	if t.EndToEnd == nil && t.TotalRetries() == 0 && t.Requeued == 0 {
		return nil
	}
	r := &Retries{Attempts: t.Sent, Logical: t.Logical(), Retries: t.TotalRetries(),
		ByCause: map[string]uint64{}, Dropped: map[string]uint64{},
		SucceededAfterRetry: t.RetriedOK, Exhausted: t.Exhausted, EndToEnd: Summarize(t.EndToEnd)}
	for c := proto.RetryCause(0); c < proto.NumRetryCauses; c++ {
		if t.Retries[c] > 0 {
			r.ByCause[c.String()] = t.Retries[c]
		}
	}
	for d := proto.RetryDrop(0); d < proto.NumRetryDrops; d++ {
		if t.RetryDropped[d] > 0 {
			r.Dropped[d.String()] = t.RetryDropped[d]
		}
	}
	return r
}

// breakerEvents turns a merged interval's breaker transitions into the
// report's events: "circuit open (12 of 20 calls failed)" and so on,
// prefixed by the agent in a fleet.
func BreakerEvents(s *proto.Stats) []Event {
	var out []Event
	for _, e := range s.Breaker {
		var text string
		switch e.State {
		case proto.BreakerOpen:
			text = fmt.Sprintf("circuit open (%d of %d calls failed)", e.Failed, e.Calls)
		case proto.BreakerHalfOpen:
			text = "circuit half-open (probing)"
		case proto.BreakerClosed:
			text = fmt.Sprintf("circuit closed (%d probes succeeded)", e.Calls)
		default:
			text = "circuit " + e.State
		}
		if e.Agent != "" {
			text = e.Agent + ": " + text
		}
		out = append(out, Event{At: e.At.Seconds(), Kind: EventBreaker, Text: text})
	}
	return out
}

// retryCauses lists r's retries by cause: "5xx 12, timeout 3".
func joinCounts(m map[string]uint64, names []string) string {
	var parts []string
	for _, k := range names {
		if n := m[k]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, n))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func causeNames() []string {
	var out []string
	for c := proto.RetryCause(0); c < proto.NumRetryCauses; c++ {
		out = append(out, c.String())
	}
	return out
}

func dropNames() []string {
	var out []string
	for d := proto.RetryDrop(0); d < proto.NumRetryDrops; d++ {
		out = append(out, d.String())
	}
	return out
}

// writeRetries prints the retry lines and the circuit's transitions.
func (r *Report) writeRetries(b *strings.Builder) {
	if x := r.Retries; x != nil {
		fmt.Fprintf(b, "Retries     %d attempts = %d requests + %d retries (%s); %d succeeded only after a retry, %d exhausted, %d retries not sent (%s)\n",
			x.Attempts, x.Logical, x.Retries, joinCounts(x.ByCause, causeNames()), x.SucceededAfterRetry, x.Exhausted,
			sumCounts(x.Dropped), joinCounts(x.Dropped, dropNames()))
	}
	var evs []string
	for _, e := range r.Events {
		if e.Kind == EventBreaker {
			evs = append(evs, fmt.Sprintf("%.2fs %s", e.At, e.Text))
		}
	}
	if len(evs) > 0 {
		const show = 8
		more := ""
		if len(evs) > show {
			more = fmt.Sprintf(", ... %d more in the JSON events", len(evs)-show)
			evs = evs[:show]
		}
		what := fmt.Sprintf("%d shed (circuit open)", r.Shed[proto.ShedCircuit.String()])
		if r.Model != "open" {
			// Nothing comes due in the closed model: the connections
			// wait instead of sending.
			what = "sending paused while open (closed model: nothing due, nothing shed)"
		}
		fmt.Fprintf(b, "Circuit     %s; %s%s\n", what, strings.Join(evs, "; "), more)
	}
}

func sumCounts(m map[string]uint64) uint64 {
	var n uint64
	for _, v := range m {
		n += v
	}
	return n
}

// endToEndRow adds the end-to-end latency row under the per-attempt ones.
func (r *Report) endToEndRow(w *tabwriter.Writer) {
	if r.Retries != nil && r.Retries.EndToEnd != nil && r.Retries.EndToEnd.Count > 0 {
		latencyRow(w, "end to end (retries)", r.Retries.EndToEnd)
	}
}
