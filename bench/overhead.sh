#!/usr/bin/env bash
# Goal 4 — measurement overhead (make bench-overhead):
#  1. barrage target --delay 10ms at 5000 req/s: the reported p50 should sit
#     within 0.3 ms of 10 ms and p99 within 1 ms;
#  2. --stall-every 2s --stall-for 200ms at 5000 req/s for 10 s: a correct,
#     coordinated-omission-free measurement puts a request arriving during a
#     stall at a wait uniform over 0..200 ms. Stalls cover 4 of 2-s periods
#     (at 2, 4, 6, 8 s) = 0.8 s of 10 s = 8% of requests, so the expected
#     p99 is 200 ms x (1 - 0.01/0.08) = 175 ms and p99.9 = 197.5 ms; the
#     closed model's service time shows almost none of it.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
record_to overhead
header "measurement overhead"
start_target --delay 10ms
cmd=(taskset -c "$gen_cpu" "$barrage" run --cores 1 -c 100 -r 5000 -d 10s -q --json "$work/d.json" "$target_url")
echo "== delay 10ms"; echo "\$ ${cmd[*]}"
"${cmd[@]}" >/dev/null
"$work/repstat" -label "delay 10ms @ 5000/s: " "$work/d.json"
kill "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true; pids=()
start_target --stall-every 2s --stall-for 200ms
cmd=(taskset -c "$gen_cpu" "$barrage" run --cores 1 -c 100 -r 5000 -d 10s -q --json "$work/s.json" "$target_url")
echo; echo "== stall 200ms every 2s (expected p99 175 ms, p99.9 197.5 ms)"; echo "\$ ${cmd[*]}"
"${cmd[@]}" >/dev/null
"$work/repstat" -label "stall, open model @ 5000/s: " "$work/s.json"
cmd=(taskset -c "$gen_cpu" "$barrage" run --cores 1 -c 100 -d 10s -q --json "$work/c.json" "$target_url")
echo "\$ ${cmd[*]}"
"${cmd[@]}" >/dev/null
"$work/repstat" -label "stall, closed model: " "$work/c.json"
sed -n 's/^  "corrected_latency_us": {/  closed model, CO-corrected:/p' "$work/c.json"
grep -A 12 '"corrected_latency_us"' "$work/c.json" | grep -E '"p99"|"p999"|"max"' | tr -d ' ,' | sed 's/^/    /'
echo "written to $out"
