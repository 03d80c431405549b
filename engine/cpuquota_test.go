package engine

import (
	"testing"
	"testing/fstest"
)

func TestCgroupQuota(t *testing.T) {
	v1info := "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n" +
		"33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct\n" +
		"41 31 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
	v2info := "29 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  float64
	}{
		{"v1, 40% in the process's cgroup", map[string]string{
			"proc/self/cgroup":                         "2:cpuacct:/\n1:cpu:/load\n0::/\n",
			"proc/self/mountinfo":                      v1info,
			"sys/fs/cgroup/cpu/load/cpu.cfs_quota_us":  "40000\n",
			"sys/fs/cgroup/cpu/load/cpu.cfs_period_us": "100000\n",
			"sys/fs/cgroup/cpu/cpu.cfs_quota_us":       "-1\n",
			"sys/fs/cgroup/cpu/cpu.cfs_period_us":      "100000\n",
		}, 0.4},
		{"v1, combined cpu,cpuacct, no quota", map[string]string{
			"proc/self/cgroup":                            "1:cpu,cpuacct:/\n",
			"proc/self/mountinfo":                         "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n",
			"sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us":  "-1\n",
			"sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": "100000\n",
		}, 0},
		{"v2, the pod's limit binds its container's", map[string]string{
			"proc/self/cgroup":                        "0::/kubepods/pod1/ctr\n",
			"proc/self/mountinfo":                     v2info,
			"sys/fs/cgroup/kubepods/pod1/ctr/cpu.max": "max 100000\n",
			"sys/fs/cgroup/kubepods/pod1/cpu.max":     "150000 100000\n",
			"sys/fs/cgroup/kubepods/cpu.max":          "max 100000\n",
		}, 1.5},
		{"v2 in a cgroup namespace (root /)", map[string]string{
			"proc/self/cgroup":      "0::/\n",
			"proc/self/mountinfo":   v2info,
			"sys/fs/cgroup/cpu.max": "50000 100000\n",
		}, 0.5},
		{"garbage", map[string]string{
			"proc/self/cgroup":                         "1:cpu:/load\n",
			"proc/self/mountinfo":                      v1info,
			"sys/fs/cgroup/cpu/load/cpu.cfs_quota_us":  "lots\n",
			"sys/fs/cgroup/cpu/load/cpu.cfs_period_us": "0\n",
		}, 0},
		{"nothing readable", map[string]string{}, 0},
	} {
		fsys := fstest.MapFS{}
		for p, c := range tc.files {
			fsys[p] = &fstest.MapFile{Data: []byte(c)}
		}
		if got := cgroupQuota(fsys); got != tc.want {
			t.Errorf("%s: %v CPUs, want %v", tc.name, got, tc.want)
		}
	}
	for _, tc := range []struct {
		q    float64
		n    int
		want float64
	}{{0, 2, 1}, {0.4, 1, 0.4}, {1.5, 2, 0.75}, {3, 2, 1}} {
		if got := loopShare(tc.q, tc.n); got != tc.want {
			t.Errorf("loopShare(%v, %d) = %v, want %v", tc.q, tc.n, got, tc.want)
		}
	}
}
