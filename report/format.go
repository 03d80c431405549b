package report

import (
	"fmt"
	"math"
	"strconv"
	"time"
)

func uitoa(n uint64) string { return strconv.FormatUint(n, 10) }

// FormatUS formats a latency in microseconds with a unit that suits it
// ("870µs", "12.40ms", "1.50s"), as the report writes latencies.
func FormatUS(us int64) string { return fmtUS(us) }

// fmtUS formats a latency in microseconds with a unit that suits it.
func fmtUS(us int64) string {
	d := time.Duration(us) * time.Microsecond
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", us)
	case d < time.Second:
		return fmt.Sprintf("%.2fms", float64(us)/1e3)
	default:
		return fmt.Sprintf("%.2fs", float64(us)/1e6)
	}
}

func fmtBytes(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.2f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// fmtRate formats a rate in requests per second: whole numbers from 1000
// up, four significant digits below, so that a rate of 0.5 never shows
// as 0 and 16666.67 shows as 16667.
func fmtRate(r float64) string {
	if r == 0 || math.IsNaN(r) || math.IsInf(r, 0) {
		return "0"
	}
	if math.Abs(r) >= 1000 {
		return strconv.FormatFloat(math.Round(r), 'f', -1, 64)
	}
	// Round to 4 significant digits, then print the shortest form.
	mag := math.Pow(10, 3-math.Floor(math.Log10(math.Abs(r))))
	return strconv.FormatFloat(math.Round(r*mag)/mag, 'f', -1, 64)
}

// fmtSeconds formats a duration in seconds: "3.2 s", "10 s".
func fmtSeconds(s float64) string {
	return strconv.FormatFloat(math.Round(s*10)/10, 'f', -1, 64) + " s"
}

// plural returns "1 connection", "2 connections".
func plural(n int64, one, many string) string {
	if n == 1 || n == -1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}

// span formats a range of numbers: "5000" when lo == hi, else "5000–8000".
func span(lo, hi float64, f func(float64) string) string {
	if lo == hi {
		return f(lo)
	}
	return f(lo) + "–" + f(hi)
}

func fmtInt(v float64) string { return strconv.Itoa(int(v)) }

// subSat is a - b, or 0 when b > a: counts that disagree never underflow.
func subSat(a, b uint64) uint64 {
	if b > a {
		return 0
	}
	return a - b
}
