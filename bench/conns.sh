#!/usr/bin/env bash
# Goal 5 — connections and memory (make bench-conns):
#  1. 10000 connections against barrage's target at 20000 req/s for 30 s:
#     connections held (timeline) and the generator's RSS (sampled each
#     second, and the OS's max RSS);
#  2. a soak at a fixed rate (CONNS_SOAK, default 3m) with 1000
#     connections: RSS sampled every 10 s must stay flat (±5% after the
#     first 10 s).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
conns=${CONNS:-10000}
soak=${CONNS_SOAK:-3m}
# Raise the file limit to the hard limit (this machine's is 20000; the
# target is another process with its own).
ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -gt $((conns + 100)) ] || { echo "conns.sh: file limit $(ulimit -n) too low for $conns connections" >&2; exit 1; }
record_to conns
header "connections and memory"
echo "file limit: $(ulimit -n)"
start_target

# rss_watch PID INTERVAL FILE: VmRSS in KB every INTERVAL seconds.
rss_watch() {
  while kill -0 "$1" 2>/dev/null; do
    awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null >>"$3" || true
    sleep "$2"
  done
}

cmd=(taskset -c "$gen_cpu" "$barrage" run --cores 1 -c "$conns" -r 20000 -d 30s --connect-timeout 10s -q --json "$work/c.json" "$target_url")
echo "== $conns connections"; echo "\$ ${cmd[*]}"
"$work/cpurun" -o "$work/cpu.json" "${cmd[@]}" >/dev/null &
runner=$!
sleep 0.5
pid=$(pgrep -n -f "barrage run --cores 1 -c $conns" || true)
[ -n "$pid" ] && rss_watch "$pid" 1 "$work/rss1" &
wait "$runner"
"$work/repstat" -label "$conns conns: " "$work/c.json"
held=$(grep -o '"conns_open": [0-9]*' "$work/c.json" | awk '{print $2}' | sort -n | head -1)
echo "  fewest connections open in any interval: $held of $conns"
echo "  RSS samples (MB): $(awk '{printf "%.1f ", $1/1024}' "$work/rss1" 2>/dev/null)"
echo "  max RSS (OS): $(sed -n 's/.*"max_rss_kb":\([0-9]*\).*/\1/p' "$work/cpu.json" | awk '{printf "%.1f MB", $1/1024}')"

cmd=(taskset -c "$gen_cpu" "$barrage" run --cores 1 -c 1000 -r 20000 -d "$soak" -q --json "$work/s.json" "$target_url")
echo; echo "== soak $soak at 20000 req/s, 1000 connections"; echo "\$ ${cmd[*]}"
"${cmd[@]}" >/dev/null &
runner=$!
sleep 0.5
pid=$(pgrep -n -f "barrage run --cores 1 -c 1000 -r 20000" || true)
[ -n "$pid" ] && rss_watch "$pid" 10 "$work/rss2" &
wait "$runner"
"$work/repstat" -label "soak: " "$work/s.json"
echo "  RSS every 10 s (MB): $(awk '{printf "%.1f ", $1/1024}' "$work/rss2")"
awk 'NR > 1 { if (min == "" || $1 < min) min = $1; if ($1 > max) max = $1; sum += $1; n++ }
  END { if (n) printf "  after the first 10 s: min %.1f MB, max %.1f MB, mean %.1f MB, spread %+.1f%% / %+.1f%% of the mean\n",
        min/1024, max/1024, sum/n/1024, 100*(min*n/sum-1), 100*(max*n/sum-1) }' "$work/rss2"
echo "written to $out"
