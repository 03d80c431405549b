package engine

import (
	"bufio"

	"io/fs"
	"path"
	"strconv"
	"strings"
	"sync"
)

// A CPU quota (a container's CPU limit: cgroup v2's cpu.max, v1's
// cpu.cfs_quota_us over cpu.cfs_period_us) caps how much CPU the loops
// get without showing in their CPU time: a loop throttled by its quota
// is simply not run, so its busy share (CPU time over wall time) stops at
// the quota's share, far below the 95% that calls it saturated, and its
// sends come out late in bursts. The engine reads the quota once and
// gives each loop its share of it as its capacity (Stats.LoopCapacity),
// so a throttled generator reads as saturated, not as a slow target.

// cgroupQuota returns the CPUs the cgroup of the process allows: the least
// quota along its cgroup's path, from the files of fsys (rooted at "/":
// proc/self/cgroup, proc/self/mountinfo and the cgroup files). 0 means
// no quota, or none that could be read.
func cgroupQuota(fsys fs.FS) float64 {
	cg, err := fs.ReadFile(fsys, "proc/self/cgroup")
	if err != nil {
		return 0
	}
	mi, err := fs.ReadFile(fsys, "proc/self/mountinfo")
	if err != nil {
		return 0
	}
	dir, m, v2 := cpuCgroupDir(string(cg), string(mi))
	if dir == "" {
		return 0
	}
	var least float64
	// From the process's cgroup up to the hierarchy's root (its mount
	// point m): a limit set on a parent (a Kubernetes pod's) binds its
	// children.
	for d := dir; strings.HasPrefix(d, m); d = path.Dir(d) {
		if q := quotaAt(fsys, d, v2); q > 0 && (least == 0 || q < least) {
			least = q
		}
		if d == m || d == "/" {
			break
		}
	}
	return least
}

// quotaAt reads the quota in one cgroup directory d (an absolute path).
func quotaAt(fsys fs.FS, d string, v2 bool) float64 {
	rel := strings.TrimPrefix(d, "/")
	if v2 {
		b, err := fs.ReadFile(fsys, path.Join(rel, "cpu.max"))
		if err != nil {
			return 0
		}
		f := strings.Fields(string(b))
		if len(f) != 2 || f[0] == "max" {
			return 0
		}
		q, err1 := strconv.ParseFloat(f[0], 64)
		p, err2 := strconv.ParseFloat(f[1], 64)
		if err1 != nil || err2 != nil || q <= 0 || p <= 0 {
			return 0
		}
		return q / p
	}
	qb, err1 := fs.ReadFile(fsys, path.Join(rel, "cpu.cfs_quota_us"))
	pb, err2 := fs.ReadFile(fsys, path.Join(rel, "cpu.cfs_period_us"))
	if err1 != nil || err2 != nil {
		return 0
	}
	q, err1 := strconv.ParseFloat(strings.TrimSpace(string(qb)), 64)
	p, err2 := strconv.ParseFloat(strings.TrimSpace(string(pb)), 64)
	if err1 != nil || err2 != nil || q <= 0 || p <= 0 {
		return 0 // -1: no quota
	}
	return q / p
}

// cpuCgroupDir finds the directory of the process's cpu cgroup: on a v1
// hierarchy with the cpu controller if one is mounted (v2 is then only
// the unified leftover), else on the v2 one; and the hierarchy's mount
// point.
func cpuCgroupDir(cgroup, mountinfo string) (dir, mnt string, v2 bool) {
	var v1Path, v2Path string
	have1, have2 := false, false
	sc := bufio.NewScanner(strings.NewReader(cgroup))
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), ":", 3)
		if len(f) != 3 {
			continue
		}
		if f[0] == "0" && f[1] == "" {
			v2Path, have2 = f[2], true
			continue
		}
		for _, c := range strings.Split(f[1], ",") {
			if c == "cpu" {
				v1Path, have1 = f[2], true
			}
		}
	}
	if have1 {
		if m, root := mount(mountinfo, false); m != "" {
			return join(m, root, v1Path), m, false
		}
	}
	if have2 {
		if m, root := mount(mountinfo, true); m != "" {
			return join(m, root, v2Path), m, true
		}
	}
	return "", "", false
}

// join places a cgroup path under its mount point, less the mount's root.
func join(mnt, root, p string) string {
	if root != "/" {
		p = strings.TrimPrefix(p, root)
	}
	return path.Join(mnt, p)
}

// mount finds the cgroup mount (v2, or v1 with the cpu controller) in
// mountinfo: its mount point and the root it shows.
func mount(mountinfo string, v2 bool) (point, root string) {
	sc := bufio.NewScanner(strings.NewReader(mountinfo))
	for sc.Scan() {
		line := sc.Text()
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		f, g := strings.Fields(pre), strings.Fields(post)
		if len(f) < 5 || len(g) < 3 {
			continue
		}
		switch {
		case v2 && g[0] == "cgroup2":
			return f[4], f[3]
		case !v2 && g[0] == "cgroup":
			for _, o := range strings.Split(g[2], ",") {
				if o == "cpu" {
					return f[4], f[3]
				}
			}
		}
	}
	return "", ""
}

// loopShare is the share of a whole CPU each of n loops can have under a
// quota of q CPUs (0: none): at most 1.
func loopShare(q float64, n int) float64 {
	if q <= 0 || n <= 0 || q >= float64(n) {
		return 1
	}
	return q / float64(n)
}

// CPUQuota returns the CPUs this process's cgroup allows (a container's
// CPU limit), or 0 when no quota is set. Read once.
func CPUQuota() float64 {
	quotaOnce.Do(func() { quota = readQuota() })
	return quota
}

var (
	quotaOnce sync.Once
	quota     float64
)
