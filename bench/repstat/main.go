// Command repstat summarizes barrage JSON reports (barrage run --json) for
// the bench scripts: achieved rate against the target, the spread of the
// per-second rate, latency, service time and send lateness percentiles.
//
//	repstat [-label L] FILE...
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
)

type lat struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`
}

type report struct {
	Requests   float64 `json:"requests"`
	Sent       float64 `json:"sent"`
	Errors     float64 `json:"errors"`
	Duration   float64 `json:"duration_seconds"`
	RPS        float64 `json:"rps"`
	TargetRate float64 `json:"target_rate"`
	Valid      bool    `json:"valid"`
	Reasons    []string
	Latency    *lat `json:"latency_us"`
	Service    *lat `json:"service_time_us"`
	Lateness   *lat `json:"send_lateness_us"`
	Timeline   []struct {
		Start    float64 `json:"start_seconds"`
		End      float64 `json:"end_seconds"`
		Requests float64 `json:"requests"`
	} `json:"timeline"`
	InvalidReasons []string `json:"invalid_reasons"`
}

func (l *lat) String() string {
	if l == nil {
		return "-"
	}
	return fmt.Sprintf("p50 %.0f p90 %.0f p99 %.0f p99.9 %.0f max %.0f µs", l.P50, l.P90, l.P99, l.P999, l.Max)
}

func main() {
	label := flag.String("label", "", "label printed before each line")
	goal := flag.Bool("goal", false, "exit 3 unless every report meets issue 4's goal 3: sent rate within 0.5% of the target rate, per-second stdev under 1% of it, verdict valid")
	flag.Parse()
	missed := false
	for _, f := range flag.Args() {
		b, err := os.ReadFile(f)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		var r report
		if err := json.Unmarshal(b, &r); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", f, err)
			os.Exit(1)
		}
		// Per-second rate over whole intervals (responses per interval).
		var xs []float64
		for _, p := range r.Timeline {
			if d := p.End - p.Start; d > 0.999 {
				xs = append(xs, p.Requests/d)
			}
		}
		mean, sd := 0.0, 0.0
		for _, x := range xs {
			mean += x
		}
		if len(xs) > 0 {
			mean /= float64(len(xs))
			for _, x := range xs {
				sd += (x - mean) * (x - mean)
			}
			sd = math.Sqrt(sd / float64(len(xs)))
		}
		sentRate := r.Sent / r.Duration
		fmt.Printf("%s%s\n", *label, f)
		fmt.Printf("  target %.0f/s  sent %.0f (%.1f/s, %+.3f%%)  responses %.0f (%.1f/s)  errors %.0f  valid %v %v\n",
			r.TargetRate, r.Sent, sentRate, 100*(sentRate-r.TargetRate)/math.Max(r.TargetRate, 1), r.Requests, r.RPS, r.Errors, r.Valid, r.InvalidReasons)
		if r.TargetRate > 0 {
			fmt.Printf("  per-second rate: mean %.1f stdev %.1f (%.3f%% of target) over %d intervals\n", mean, sd, 100*sd/r.TargetRate, len(xs))
		}
		fmt.Printf("  latency   %v\n  service   %v\n  lateness  %v\n", r.Latency, r.Service, r.Lateness)
		if r.TargetRate > 0 && (math.Abs(sentRate-r.TargetRate) > 0.005*r.TargetRate || sd >= 0.01*r.TargetRate || !r.Valid) {
			missed = true
			fmt.Printf("  goal 3    missed (sent within 0.5%%, per-second stdev under 1%%, valid)\n")
		}
	}
	if *goal && missed {
		os.Exit(3)
	}
}
