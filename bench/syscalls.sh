#!/usr/bin/env bash
# Goal 6 — syscalls per request (make bench-syscalls): strace -c -f counts
# every syscall of barrage and of wrk (pinned to CPU 0, one loop/thread, 64
# connections, against nginx on CPU 1) in the keep-alive and the pipelined
# (depth 16) runs; divided by the completed requests. strace slows both
# tools alike, so read the counts per request, not the rates.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
dur=${SYSCALLS_DURATION:-5s}
out=$root/bench/results/syscalls-latest.txt
mkdir -p "$root/bench/results"
command -v strace >/dev/null || { apt-get update -qq && apt-get install -y -qq strace >/dev/null; }
bash "$root/scripts/install-deps.sh" wrk
exec > >(tee "$out") 2>&1
header "syscalls per request"
start_nginx
summary() { # strace-file requests label
  # strace -c rows: % time, seconds, usecs/call, calls, [errors,] syscall.
  awk -v n="$2" -v l="$3" '
    $1 ~ /^[0-9.]+$/ && $4 ~ /^[0-9]+$/ { calls[$NF] = $4 }
    END {
      total = calls["total"]
      printf "  %-20s %9d requests  %9d syscalls = %.3f per request:", l, n, total, total / n
      for (k in calls) if (k != "total" && calls[k] / n >= 0.001) printf " %s %.3f", k, calls[k] / n
      printf "\n"
    }' "$1"
}
for mode in keepalive pipeline16; do
  p=1; lua=(); [ $mode = pipeline16 ] && { p=16; lua=(-s "$root/bench/pipeline.lua"); }
  strace -c -f -o "$work/b.st" taskset -c "$gen_cpu" "$barrage" run --cores 1 -c 64 -p $p -d "$dur" -q --json "$work/b.json" "$nginx_url" >/dev/null
  n=$(sed -n 's/^  "requests": \([0-9]*\),$/\1/p' "$work/b.json")
  summary "$work/b.st" "$n" "barrage $mode"
  strace -c -f -o "$work/w.st" taskset -c "$gen_cpu" wrk -t1 -c64 -d"$dur" "${lua[@]}" "$nginx_url" >"$work/w.out"
  n=$(awk '/requests in/ {print $1}' "$work/w.out")
  summary "$work/w.st" "$n" "wrk $mode"
done
echo "written to $out"
