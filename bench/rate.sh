#!/usr/bin/env bash
# Goal 3 — rate accuracy of the open model (make bench-rate): at 20000 and
# 50000 req/s and at the highest rate each target sustains on one core,
# against barrage's target and nginx: achieved rate vs target over
# RATE_DURATION, stdev of the per-second rate, and the send lateness
# (actual - intended send time). The highest rate is searched from the top:
# 90% of what the closed model got with 64 connections, then 80%, 70% ...
# down to 40%, until a run meets the goal (sent within 0.5%, per-second stdev under
# 1%, verdict valid); every attempt is printed.
# Each run also prints the CPU both sides used (generator from rusage,
# server from /proc/PID/stat), so a run that falls short shows which side
# ran out of its core. Then the same goal over HTTPS: nginx with TLS 1.3
# at 20000 and 30000 req/s (RATE_TLS_RATES), certificate verified.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
dur=${RATE_DURATION:-10s}
record_to rate
header "rate accuracy"
start_target
start_nginx
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
for name in target nginx; do
  url=$target_url; [ $name = nginx ] && url=$nginx_url
  spid=${pids[0]}; [ $name = nginx ] && spid=${pids[1]}
  taskset -c "$gen_cpu" "$barrage" run --cores 1 -c 64 -d 5s -q --json "$work/max.json" "$url" >/dev/null
  max=$(sed -n 's/^  "rps": \([0-9.]*\),$/\1/p' "$work/max.json")
  echo "== $name: closed-model maximum $max req/s (64 connections); open-model runs at 20000, 50000, then from 90% of it down"
  top=""
  for rate in 20000 50000 top90 top80 top70 top60 top50 top40; do
    if [ "${rate#top}" != "$rate" ]; then
      rate=$(awk -v m="$max" -v f="${rate#top}" 'BEGIN {printf "%d", m * f / 100}')
    fi
    cmd=(taskset -c "$gen_cpu" "$barrage" run --cores 1 -c 256 -r "$rate" -d "$dur" -q --json "$work/r.json" "$url")
    echo "\$ ${cmd[*]}"
    t0=$(cpu_ticks "$spid")
    "$work/cpurun" -o "$work/cpu.json" "${cmd[@]}" >/dev/null
    t1=$(cpu_ticks "$spid")
    held=0
    "$work/repstat" -goal -label "$name @ $rate/s: " "$work/r.json" || held=$?
    [ "$held" = 0 ] || [ "$held" = 3 ] || exit 1
    python3 - "$work/cpu.json" "$t0" "$t1" "$(getconf CLK_TCK)" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); wall = c["wall_s"]
srv = (int(sys.argv[3]) - int(sys.argv[2])) / int(sys.argv[4])
print("  cpu       generator %.0f%% of its core, server %.0f%% of its core" % (100 * (c["user_s"] + c["sys_s"]) / wall, 100 * srv / wall))
PY
    # Past 50000/s, stop at the first rate that holds.
    if [ "$rate" -gt 50000 ] && [ "$held" = 0 ]; then
      echo "  highest rate held against $name: $rate/s"
      top=$rate
      break
    fi
  done
  [ -n "$top" ] || echo "  no rate from 90% down to 40% of the closed-model maximum held against $name"
  echo
done
start_nginx_tls
spid=${pids[-1]}
echo "== nginx over TLS 1.3 ($nginx_tls_url): open-model runs at ${RATE_TLS_RATES:-20000 30000}"
for rate in ${RATE_TLS_RATES:-20000 30000}; do
  cmd=(taskset -c "$gen_cpu" "$barrage" run --cores 1 -c 256 -r "$rate" -d "$dur" -q --tls-min 1.3 --cacert "$nginx_ca" --json "$work/r.json" "$nginx_tls_url")
  echo "\$ ${cmd[*]}"
  t0=$(cpu_ticks "$spid")
  "$work/cpurun" -o "$work/cpu.json" "${cmd[@]}" >/dev/null
  t1=$(cpu_ticks "$spid")
  held=0
  "$work/repstat" -goal -label "nginx-tls @ $rate/s: " "$work/r.json" || held=$?
  [ "$held" = 0 ] || [ "$held" = 3 ] || exit 1
  python3 - "$work/cpu.json" "$t0" "$t1" "$(getconf CLK_TCK)" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); wall = c["wall_s"]
srv = (int(sys.argv[3]) - int(sys.argv[2])) / int(sys.argv[4])
print("  cpu       generator %.0f%% of its core, server %.0f%% of its core" % (100 * (c["user_s"] + c["sys_s"]) / wall, 100 * srv / wall))
PY
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "written to $out"
