#!/usr/bin/env bash
# Goal 6 — syscalls per request (make bench-syscalls). The kernel's syscall
# tracepoints count every syscall of barrage and of wrk (pinned to CPU 0,
# one loop/thread, 64 connections) in the keep-alive and the pipelined
# (depth 16) runs, against nginx and against barrage target (each on CPU 1);
# divided by the completed requests.
#
# perf stat counts in the kernel without stopping the traced process.
# strace -c (the first version of this script) stops it at every syscall;
# the generator then falls behind, more responses queue per read, and the
# counts come out several times too low for both tools.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
dur=${SYSCALLS_DURATION:-5s}
if ! perf stat -e raw_syscalls:sys_enter -- true >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq linux-perf >/dev/null
  perf stat -e raw_syscalls:sys_enter -- true >/dev/null 2>&1 ||
    { echo "syscalls.sh: perf cannot read the syscall tracepoints (root and tracefs needed)" >&2; exit 1; }
fi
bash "$root/scripts/install-deps.sh" wrk
record_to syscalls
header "syscalls per request (perf stat, syscall tracepoints)"
start_nginx
start_target
names="read write readv writev epoll_wait epoll_pwait epoll_ctl futex nanosleep sched_yield"
events=raw_syscalls:sys_enter
for s in $names; do events+=",syscalls:sys_enter_$s"; done

summary() { # perf-csv requests label
  awk -F, -v n="$2" -v l="$3" '
    $3 == "raw_syscalls:sys_enter" { total = $1 }
    $3 ~ /^syscalls:sys_enter_/ { k = substr($3, 20); calls[k] = $1 }
    END {
      printf "  %-28s %9d requests %9d syscalls = %.3f per request:", l, n, total, total / n
      for (k in calls) if (calls[k] / n >= 0.001) printf " %s %.3f", k, calls[k] / n
      printf "\n"
    }' "$1"
}

for server in nginx target; do
  url=$nginx_url; [ $server = target ] && url=$target_url
  echo "== against $server ($url)"
  for mode in keepalive pipeline16; do
    p=1; lua=(); [ $mode = pipeline16 ] && { p=16; lua=(-s "$root/bench/pipeline.lua"); }
    perf stat -x, -o "$work/b.perf" -e "$events" -- \
      taskset -c "$gen_cpu" "$barrage" run --cores 1 -c 64 -p $p -d "$dur" -q --json "$work/b.json" "$url" >/dev/null
    n=$(sed -n 's/^  "requests": \([0-9]*\),$/\1/p' "$work/b.json")
    summary "$work/b.perf" "$n" "barrage $mode"
    perf stat -x, -o "$work/w.perf" -e "$events" -- \
      taskset -c "$gen_cpu" wrk -t1 -c64 -d"$dur" "${lua[@]}" "$url" >"$work/w.out"
    n=$(awk '/requests in/ {print $1}' "$work/w.out")
    summary "$work/w.perf" "$n" "wrk $mode"
  done
done
echo "written to $out"
