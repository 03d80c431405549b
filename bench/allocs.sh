#!/usr/bin/env bash
# Goal 2 — allocations in the steady state (make bench-allocs). barrage
# run --debug-stats (CPU 0, one loop) against barrage target (CPU 1), 10 s
# each: the closed model keep-alive and pipelined, and the open model at
# 20000 and 2000 req/s; then the same four with a templated request mix
# (two requests 1:3, a JSON body with three variables, a bearer token from
# a CSV data file); then over HTTPS (TLS 1.3 and 1.2) against
# barrage target --tls. --debug-stats prints the Go heap allocations per
# response and the GC cycles after the first interval; the goal is < 0.01
# allocations per response and at most a few GC cycles.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
dur=${ALLOCS_DURATION:-10s}
record_to allocs
header "allocations in the steady state (--debug-stats)"
start_target
# The mix: users.csv and a plan whose target is the one started above
# (flags override its connections, rate and pipeline).
mkdir -p "$work/mix"
{ echo "user_id,token"; for i in $(seq 1 1000); do echo "u$i,tok-$i"; done; } >"$work/mix/users.csv"
cat >"$work/mix/plan.yaml" <<PLAN
target_url: $target_url
headers: {Authorization: "Bearer {{users.token}}"}
data: {users: {file: users.csv}}
requests:
  - {name: buy, weight: 1, method: POST, path: /buy, headers: {Content-Type: application/json},
     body: '{"product":{{randInt 1 5000}},"quantity":{{randInt 1 5}},"user":"{{users.user_id}}"}'}
  - {name: browse, weight: 3, path: '/product/{{randInt 1 5000}}'}
PLAN
start_tls_target
tls13="--tls-min 1.3 --cacert $tls_target_ca $tls_target_url"
start_tls_target --tls-max 1.2
tls12="--cacert $tls_target_ca $tls_target_url"
fail=0
for args in "-c 64 -p 1 $target_url" "-c 64 -p 16 $target_url" "-c 1000 -r 20000 $target_url" "-c 1000 -r 2000 $target_url" \
            "-f $work/mix/plan.yaml -c 64 -p 1" "-f $work/mix/plan.yaml -c 64 -p 16" \
            "-f $work/mix/plan.yaml -c 1000 -r 20000" "-f $work/mix/plan.yaml -c 1000 -r 2000" \
  "-c 64 -p 1 $tls13" "-c 64 -p 16 $tls13" "-c 1000 -r 20000 $tls13" "-c 64 -p 1 $tls12" "-c 64 -p 16 $tls12"; do
  cmd=(taskset -c "$gen_cpu" "$barrage" run -q --debug-stats --cores 1 $args -d "$dur")
  echo "\$ ${cmd[*]}"
  line=$("${cmd[@]}" 2>&1 >/dev/null | grep '^debug-stats:') || { echo "allocs.sh: no debug-stats line" >&2; exit 1; }
  echo "  $line"
  per=$(sed -n 's/.*= \([0-9.]*\) allocations per response.*/\1/p' <<<"$line")
  gcs=$(sed -n 's/.*; \([0-9]*\) GC cycles.*/\1/p' <<<"$line")
  if awk -v p="$per" -v g="$gcs" 'BEGIN { exit !(p >= 0.01 || g > 3) }'; then
    echo "  ^ over the goal (< 0.01 allocations per response, at most 3 GC cycles)"; fail=1
  fi
done
echo "written to $out"
exit $fail
