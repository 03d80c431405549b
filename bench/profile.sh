#!/usr/bin/env bash
# Where the generator's CPU goes (make bench-profile): perf samples barrage
# and wrk (CPU 0, one loop/thread, 64 connections) against nginx (CPU 1)
# with call graphs, and sorts every sample into one bucket by its stack:
# read(2) split into the ACK the kernel sends from inside read and the
# rest, write(2), epoll_wait, the Go scheduler's thread hand-offs, other
# syscalls, interrupts, and user space (HTTP parser, histogram, the rest).
# Each bucket is printed as a share of the samples and as µs of CPU per
# completed request (samples / frequency / requests).
#
# Knobs: PROFILE_DURATION (5s), PROFILE_FREQ (2000 Hz), PROFILE_MODES
# ("pipeline16 keepalive").
set -euo pipefail
source "$(dirname "$0")/lib.sh"
dur=${PROFILE_DURATION:-5s}
freq=${PROFILE_FREQ:-2000}
modes=${PROFILE_MODES:-"pipeline16 keepalive"}
if ! perf record -o /dev/null -F 99 -g -- true >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq linux-perf >/dev/null
  perf record -o /dev/null -F 99 -g -- true >/dev/null 2>&1 ||
    { echo "profile.sh: perf cannot sample (root and perf_event access needed)" >&2; exit 1; }
fi
bash "$root/scripts/install-deps.sh" wrk
record_to profile
header "where the generator's CPU goes (perf record -g, $freq Hz, $dur per run)"
start_nginx

# buckets perf.data requests label: one line per bucket, largest first.
buckets() {
  perf script -i "$1" 2>/dev/null | awk -v n="$2" -v f="$freq" -v l="$3" 'BEGIN { RS = "" }
    {
      s = $0; total++
      if (s ~ /ksys_read/) b = (s ~ /__tcp_transmit_skb/) ? "read(2): the ACK sent from inside read" : "read(2): the rest (copy, socket, entry)"
      else if (s ~ /ksys_write/) b = "write(2)"
      else if (s ~ /do_epoll_wait|do_epoll_pwait/) b = "epoll_wait"
      else if (s ~ /sys_futex|runtime\.(mcall|schedule|findRunnable|stopm|startm|wakep)/) b = "Go scheduler: futex, thread hand-offs"
      else if (s ~ /entry_SYSCALL/) b = "other syscalls"
      else if (s ~ /asm_(sysvec|common_interrupt|exc)/) b = "interrupts, faults"
      else if (s ~ /proto\/http1|http_parser/) b = "user: HTTP parser"
      else if (s ~ /hdrhistogram|hdr_record/) b = "user: histogram"
      else b = "user: the rest (event loop, runtime, libc)"
      c[b]++
    }
    END {
      printf "  %s: %d samples, %d requests, %.3f µs CPU per request\n", l, total, n, total / f / n * 1e6
      for (k in c) printf "%6.1f%%  %6.3f µs/req  %s\n", 100 * c[k] / total, c[k] / f / n * 1e6, k | "sort -rn | sed \"s/^/    /\""
      close("sort -rn | sed \"s/^/    /\"")
    }'
}

for mode in $modes; do
  p=1; lua=(); [ "$mode" = pipeline16 ] && { p=16; lua=(-s "$root/bench/pipeline.lua"); }
  echo "== $mode"
  cmd=(taskset -c "$gen_cpu" "$barrage" run --cores 1 -c 64 -p $p -d "$dur" -q --json "$work/b.json" "$nginx_url")
  echo "  \$ perf record -F $freq -g -- ${cmd[*]}"
  perf record -q -F "$freq" -g -o "$work/b.data" -- "${cmd[@]}" >/dev/null 2>"$work/perf.err" ||
    { cat "$work/perf.err"; exit 1; }
  n=$(sed -n 's/^  "requests": \([0-9]*\),$/\1/p' "$work/b.json")
  buckets "$work/b.data" "$n" barrage
  cmd=(taskset -c "$gen_cpu" wrk -t1 -c64 -d"$dur" "${lua[@]}" "$nginx_url")
  echo "  \$ perf record -F $freq -g -- ${cmd[*]}"
  perf record -q -F "$freq" -g -o "$work/w.data" -- "${cmd[@]}" >"$work/w.out" 2>"$work/perf.err" ||
    { cat "$work/perf.err" "$work/w.out"; exit 1; }
  n=$(awk '/requests in/ {print $1}' "$work/w.out")
  buckets "$work/w.data" "$n" wrk
done
echo "written to $out"
