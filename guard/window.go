package guard

import (
	"time"

	"github.com/barrage-load/barrage/proto"
	"github.com/barrage-load/barrage/report"
)

// window holds the merged intervals of the last span of a test, copied
// (a consumer may not keep the pipeline's intervals). Its memory is a few
// histograms per interval held: the copies dropped are reused.
type window struct {
	span time.Duration
	ivs  []*proto.Stats // oldest first
	free []*proto.Stats
	sum  *proto.Stats // scratch for merged
}

// add copies iv into the window and drops what is older than span
// before iv's end.
func (w *window) add(iv *proto.Stats) {
	var c *proto.Stats
	if n := len(w.free); n > 0 {
		c = w.free[n-1]
		w.free = w.free[:n-1]
		c.Reset()
	} else {
		c = proto.NewStats(iv.Open())
	}
	c.Merge(iv)
	c.Seq, c.Step, c.Start, c.End = iv.Seq, iv.Step, iv.Start, iv.End
	w.ivs = append(w.ivs, c)
	w.dropBefore(iv.End - w.span)
}

// dropBefore drops the intervals that start before t.
func (w *window) dropBefore(t time.Duration) {
	keep := w.ivs[:0]
	for _, s := range w.ivs {
		if s.Start < t {
			w.free = append(w.free, s)
			continue
		}
		keep = append(keep, s)
	}
	clear(w.ivs[len(keep):])
	w.ivs = keep
}

// sample merges the intervals held for which keep is true (nil: all):
// the sample, and how much of the test it covers.
func (w *window) sample(keep func(*proto.Stats) bool, expect report.Expect) (report.Span, time.Duration) {
	if len(w.ivs) == 0 {
		return report.Span{}, 0
	}
	if w.sum == nil {
		w.sum = proto.NewStats(w.ivs[0].Open())
	}
	w.sum.Reset()
	var covered time.Duration
	for _, s := range w.ivs {
		if keep != nil && !keep(s) {
			continue
		}
		w.sum.Merge(s)
		covered += s.End - s.Start
	}
	smp := report.Span{Stats: w.sum, Seconds: covered.Seconds(), Expect: expect}
	if w.sum.Open() {
		// What came due: the rate asked over the window.
		smp.Asked = float64(w.sum.Scheduled)
	}
	return smp, covered
}

// from is the start of the oldest interval held.
func (w *window) from() time.Duration {
	if len(w.ivs) == 0 {
		return 0
	}
	return w.ivs[0].Start
}
