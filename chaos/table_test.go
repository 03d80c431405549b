package chaos

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

// Markers of the generated part of RELIABILITY.md: `make chaos` replaces
// what lies between them, and leaves the rest of the file alone.
const (
	beginMark = "<!-- chaos:begin (written by make chaos; edit outside these markers) -->"
	endMark   = "<!-- chaos:end -->"
)

// formatTable renders the results as a Markdown table, followed by what
// broke in each failed row.
func formatTable(results []*result) string {
	var b strings.Builder
	b.WriteString("| row | result | target served / plan | max 2 s window vs plan | report vs target | exit codes | time | worst CPU pause |\n")
	b.WriteString("| --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, r := range results {
		verdict := "PASS"
		if len(r.fails) > 0 {
			verdict = "FAIL (" + r.letters() + ")"
		}
		served := fmt.Sprintf("%d / %.0f", r.served, r.planned)
		if r.planned > 0 {
			served += fmt.Sprintf(" (%+.1f%%)", 100*(float64(r.served)/r.planned-1))
		}
		over := "-"
		if r.haveOver {
			over = fmt.Sprintf("%+.1f%%", 100*(r.maxOver-1))
		}
		if r.unplanned > 0 {
			over += fmt.Sprintf("; %d with none planned", r.unplanned)
		}
		reports := strings.Join(r.reports, "; ")
		if reports == "" {
			reports = "-"
		}
		codes := strings.Join(r.codes, "; ")
		took := fmt.Sprintf("%.0f s", r.took.Seconds())
		if r.attempt > 1 {
			took += fmt.Sprintf(" (attempt %d)", r.attempt)
		}
		pause := "-"
		if r.pause.len > 0 {
			pause = fmt.Sprintf("%.2f s (CPU %d)", r.pause.len.Seconds(), r.pause.cpu)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", r.row.name, verdict, served, over,
			strings.ReplaceAll(reports, "|", "/"), strings.ReplaceAll(codes, "|", " or "), took, pause)
	}
	for _, r := range results {
		if len(r.fails) == 0 && len(r.notes) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n**%s** (%s):\n", r.row.name, r.row.about)
		for _, f := range r.fails {
			fmt.Fprintf(&b, "- %s\n", f)
		}
		for _, n := range r.notes {
			fmt.Fprintf(&b, "- note: %s\n", n)
		}
	}
	return b.String()
}

// machine is the line that says where the table was measured.
func machine() string {
	cpu := "unknown CPU"
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	kernel := "unknown kernel"
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = "Linux " + strings.TrimSpace(string(b))
	}
	return fmt.Sprintf("%s, %d cores, %s, %s", cpu, runtime.NumCPU(), kernel, runtime.Version())
}

// commit names the code under test: the commit, "+dirty" with local changes.
func commit() string {
	out, err := exec.Command("git", "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return "unknown commit"
	}
	c := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(strings.TrimSpace(string(st))) > 0 {
		c += "+dirty"
	}
	return c
}

// writeReliability puts the table between the markers of path (appending
// them if the file has none).
func writeReliability(path string, results []*result) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	sel := os.Getenv("CHAOS")
	if sel == "" {
		sel = "fast rows"
	}
	pass := 0
	for _, r := range results {
		if len(r.fails) == 0 {
			pass++
		}
	}
	var b strings.Builder
	b.WriteString(beginMark + "\n")
	fmt.Fprintf(&b, "Run %s on commit %s (CHAOS=%s): %d of %d rows pass.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), commit(), sel, pass, len(results))
	_, pin := agentCPU()
	fmt.Fprintf(&b, "Machine: %s; %s.\n\n", machine(), pin)
	b.WriteString(formatTable(results))
	b.WriteString(endMark)
	gen := b.String()
	text := string(old)
	i, j := strings.Index(text, beginMark), strings.Index(text, endMark)
	if i >= 0 && j > i {
		text = text[:i] + gen + text[j+len(endMark):]
	} else {
		if text != "" && !strings.HasSuffix(text, "\n") {
			text += "\n"
		}
		text += "\n" + gen + "\n"
	}
	return os.WriteFile(path, []byte(text), 0o644)
}
