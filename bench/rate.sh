#!/usr/bin/env bash
# Goal 3 — rate accuracy of the open model (make bench-rate): at 20000 and
# 50000 req/s and at 90% of the highest rate each target sustains on one
# core (measured first with the closed model), against barrage's target and
# nginx: achieved rate vs target over RATE_DURATION, stdev of the
# per-second rate, and the send lateness (actual - intended send time).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
dur=${RATE_DURATION:-10s}
out=$root/bench/results/rate-latest.txt
mkdir -p "$root/bench/results"
exec > >(tee "$out") 2>&1
header "rate accuracy"
start_target
start_nginx
for name in target nginx; do
  url=$target_url; [ $name = nginx ] && url=$nginx_url
  taskset -c "$gen_cpu" "$barrage" run --cores 1 -c 64 -d 5s -q --json "$work/max.json" "$url" >/dev/null
  max=$(sed -n 's/^  "rps": \([0-9.]*\),$/\1/p' "$work/max.json")
  top=$(awk -v m="$max" 'BEGIN {printf "%d", m * 0.9 / 1000 * 1000}')
  echo "== $name: closed-model maximum $max req/s (64 connections); open-model runs at 20000, 50000, $top"
  for rate in 20000 50000 "$top"; do
    cmd=(taskset -c "$gen_cpu" "$barrage" run --cores 1 -c 256 -r "$rate" -d "$dur" -q --json "$work/r.json" "$url")
    echo "\$ ${cmd[*]}"
    "${cmd[@]}" >/dev/null
    "$work/repstat" -label "$name @ $rate/s: " "$work/r.json"
  done
  echo
done
echo "written to $out"
