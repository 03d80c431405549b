// Command fleetsim measures the coordinator against a simulated fleet:
// fake agents register in a real ZooKeeper, acknowledge their budgets and
// publish one realistic snapshot per interval each (histograms of a
// log-normal latency around 1 ms with the agent's share of the rate), with
// no load sent anywhere. It runs `barrage coord` as a child and prints the
// coordinator's CPU time, max RSS and how long after the planned end its
// report was out, as one JSON line.
//
//	fleetsim -barrage bin/barrage -zk 127.0.0.1:2181 -agents 1000 -duration 60s
package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/rand"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/barrage-load/barrage/fleet"
	"github.com/barrage-load/barrage/proto"
	"github.com/barrage-load/barrage/schedule"
)

type result struct {
	Agents         int     `json:"agents"`
	DurationS      float64 `json:"duration_s"`
	Rate           float64 `json:"rate"`
	CoordUserS     float64 `json:"coord_user_s"`
	CoordSysS      float64 `json:"coord_sys_s"`
	CoordCores     float64 `json:"coord_cores"` // CPU time over the test's wall time
	CoordMaxRSSMB  float64 `json:"coord_max_rss_mb"`
	ReportAfterEnd float64 `json:"report_after_end_s"`
	Published      int64   `json:"snapshots_published"`
	PublishLate    int64   `json:"snapshots_late"` // published more than one interval late
	SnapshotBytes  int     `json:"snapshot_bytes"`
	ReportRequests float64 `json:"report_requests"`
	Expected       int64   `json:"expected_requests"`
	ExitCode       int     `json:"coord_exit"`
}

func main() {
	bin := flag.String("barrage", "bin/barrage", "the barrage binary")
	zkAddr := flag.String("zk", "", "ZooKeeper address (required)")
	root := flag.String("root", "/fleetsim", "znode root")
	agents := flag.Int("agents", 100, "fake agents")
	perSession := flag.Int("per-session", 20, "fake agents sharing one ZooKeeper session")
	dur := flag.Duration("duration", 30*time.Second, "test length")
	rate := flag.Float64("rate", 0, "the test's rate (default 100 req/s per agent)")
	flag.Parse()
	if *zkAddr == "" {
		fmt.Fprintln(os.Stderr, "fleetsim: -zk is required")
		os.Exit(2)
	}
	if *rate == 0 {
		*rate = 100 * float64(*agents)
	}
	sim := &sim{root: *root, interval: time.Second}
	// Register the fleet.
	var sessions []*fleet.Session
	for i := 0; i < *agents; i += *perSession {
		s, err := fleet.Dial(fleet.DialOptions{Hosts: *zkAddr, SessionTimeout: 10 * time.Second})
		if err != nil {
			fail(err)
		}
		sessions = append(sessions, s)
	}
	p := fleet.Paths{Root: *root}
	for _, d := range []string{p.Agents(), p.Assigns(), p.Tests()} {
		if _, err := sessions[0].Ensure(d); err != nil {
			fail(err)
		}
	}
	for i := 0; i < *agents; i++ {
		s := sessions[i / *perSession]
		info, _ := json.Marshal(fleet.AgentInfo{Name: fmt.Sprintf("sim%d", i), Host: "sim", Cores: 1, Version: fleet.Version,
			MaxRate: proto.DefaultAgentMaxRate, MaxConnections: proto.DefaultAgentMaxConnections})
		path, err := s.Create(p.Agent("agent-"), info, zk.FlagEphemeral|zk.FlagSequence)
		if err != nil {
			fail(err)
		}
		sim.agents = append(sim.agents, &fake{id: path[strings.LastIndexByte(path, '/')+1:], s: s, rng: rand.New(rand.NewSource(int64(i)))})
	}
	// The coordinator, as a child.
	out, err := os.CreateTemp("", "fleetsim-*.json")
	if err != nil {
		fail(err)
	}
	out.Close()
	defer os.Remove(out.Name())
	cmd := exec.Command(*bin, "coord", "-q", "--zk", *zkAddr, "--zk-root", *root, "--agents", fmt.Sprint(*agents),
		"-r", fmt.Sprint(*rate), "-c", fmt.Sprint(*agents), "-d", dur.String(), "--json", out.Name(), "http://127.0.0.1:9/")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		fail(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if !strings.Contains(sc.Text(), "warning:") {
				fmt.Fprintln(os.Stderr, "coord:", sc.Text())
			}
		}
	}()
	var wg sync.WaitGroup
	for _, a := range sim.agents {
		wg.Add(1)
		go func(a *fake) { defer wg.Done(); sim.run(a) }(a)
	}
	_ = cmd.Wait()
	exited := time.Now()
	wg.Wait()
	for _, s := range sessions {
		s.Close()
	}
	r := result{Agents: *agents, DurationS: dur.Seconds(), Rate: *rate, ExitCode: cmd.ProcessState.ExitCode(),
		Published: sim.published, PublishLate: sim.late, SnapshotBytes: sim.size}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.CoordUserS = time.Duration(ru.Utime.Nano()).Seconds()
		r.CoordSysS = time.Duration(ru.Stime.Nano()).Seconds()
		r.CoordMaxRSSMB = float64(ru.Maxrss) / 1024
	}
	if !sim.end.IsZero() {
		r.ReportAfterEnd = exited.Sub(sim.end).Seconds()
		r.CoordCores = (r.CoordUserS + r.CoordSysS) / dur.Seconds()
	}
	if b, err := os.ReadFile(out.Name()); err == nil {
		var rep map[string]any
		if json.Unmarshal(b, &rep) == nil {
			r.ReportRequests, _ = rep["requests"].(float64)
		}
	}
	r.Expected = sim.expected
	b, _ := json.Marshal(r)
	fmt.Println(string(b))
}

// histTail returns an encoded snapshot's histogram part (after its JSON).
func histTail(b []byte) []byte {
	b = b[4:]
	n, k := binary.Uvarint(b)
	return append([]byte(nil), b[k+int(n):]...)
}

// meta returns the magic and JSON part of a snapshot of st (its
// histograms left out).
func (sm *sim) meta(agent string, st *proto.Stats) []byte {
	b, err := proto.MarshalSnapshot(&proto.Snapshot{Agent: agent, Stats: st})
	if err != nil {
		fail(err)
	}
	n, k := binary.Uvarint(b[4:])
	return b[:4+k+int(n)]
}

func withTail(meta, tail []byte) []byte {
	return append(append([]byte(nil), meta...), tail...)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "fleetsim:", err)
	os.Exit(1)
}

type sim struct {
	root      string
	interval  time.Duration
	agents    []*fake
	mu        sync.Mutex
	published int64
	late      int64
	expected  int64
	size      int
	end       time.Time
}

type fake struct {
	id  string
	s   *fleet.Session
	rng *rand.Rand
}

// run is one fake agent: it waits for its assignment, acks, waits for
// the barrier, publishes a snapshot at every interval end, then its result.
func (sm *sim) run(a *fake) {
	p := fleet.Paths{Root: sm.root}
	var asg *fleet.Assignment
	for asg == nil {
		b, _, err := a.s.Conn.Get(p.Assign(a.id))
		if err == nil {
			asg, _ = fleet.DecodeAssignment(b)
		}
		if asg == nil {
			time.Sleep(100 * time.Millisecond)
		}
	}
	ack, _ := json.Marshal(fleet.Ack{Version: asg.Version, At: time.Now().UnixNano()})
	_ = a.s.SetOrCreate(p.Ack(asg.Test, a.id), ack)
	var start time.Time
	for start.IsZero() {
		b, _, err := a.s.Conn.Get(p.Barrier(asg.Test))
		if err == nil {
			start, _ = fleet.DecodeBarrier(b)
		} else {
			time.Sleep(50 * time.Millisecond)
		}
	}
	s := schedule.New(asg.Budget.Schedule)
	ends := schedule.IntervalEnds(&s, asg.Interval)
	sm.mu.Lock()
	sm.end = start.Add(s.Duration())
	sm.mu.Unlock()
	var sent, got uint64
	prev := time.Duration(0)
	// Encoding three histograms per agent per interval would make the
	// simulator, not the coordinator, the bottleneck: each agent encodes
	// a few realistic intervals once and reuses their histograms, with
	// the counters and interval of each snapshot its own.
	var templates [][]byte
	for v := 0; v < 4; v++ {
		n := uint64(math.Round(s.Hits(ends[0])))
		st := proto.NewStats(true)
		for i := uint64(0); i < n; i++ {
			lat := int64(1000 * math.Exp(0.5*a.rng.NormFloat64()))
			_ = st.Latency.RecordValue(lat)
			_ = st.Service.RecordValue(lat * 9 / 10)
			_ = st.Lateness.RecordValue(int64(20 + a.rng.Intn(50)))
		}
		b, err := proto.MarshalSnapshot(&proto.Snapshot{Agent: a.id, Stats: st})
		if err != nil {
			fail(err)
		}
		templates = append(templates, histTail(b))
	}
	for seq, e := range ends {
		time.Sleep(time.Until(start.Add(e)))
		n := uint64(math.Round(s.Hits(e) - s.Hits(prev)))
		st := &proto.Stats{Lateness: proto.NewHistogram()} // open model; histograms from the template
		st.Seq, st.Start, st.End = seq, prev, e
		st.Sent, st.Responses, st.Scheduled = n, n, n
		st.Status[200] = n
		st.BytesIn, st.BytesOut = n*120, n*80
		st.ConnsOpen, st.ConnsWanted = 1, 1
		st.LoopCPU, st.LoopCapacity = (e-prev)/10, e-prev
		b := withTail(sm.meta(a.id, st), templates[seq%len(templates)])
		_, err := a.s.Create(p.Snap(asg.Test, a.id, seq), b, 0)
		sm.mu.Lock()
		if err == nil {
			sm.published++
			sm.expected += int64(n)
			sm.size = max(sm.size, len(b))
			if time.Since(start.Add(e)) > sm.interval {
				sm.late++
			}
		}
		sm.mu.Unlock()
		sent += n
		got += n
		prev = e
	}
	res, _ := json.Marshal(fleet.AgentResult{Agent: a.id, Name: "sim", Intervals: len(ends), Sent: sent, Responses: got,
		FirstSend: start.UnixNano(), P99: 2000})
	_ = a.s.SetOrCreate(p.Result(asg.Test, a.id), res)
}
