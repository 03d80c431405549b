#!/usr/bin/env bash
# barrage vs wrk, side by side in one run (make bench-peers).
#
# nginx (one worker, pinned to CPU 1) returns a 2-byte body; each generator
# runs pinned to CPU 0 with one event loop / thread and 64 connections, in
# these modes: keep-alive without pipelining, pipelining depth 16 (wrk
# through bench/pipeline.lua), HTTPS keep-alive over TLS 1.3 (tls13), and
# HTTPS with one request per connection (tlsclose: barrage --no-keepalive,
# wrk -H "Connection: close"), where every request pays a full handshake
# (nginx keeps no session cache and sends no ticket, so neither tool
# resumes). Over TLS barrage runs with --insecure, as wrk never verifies
# the server's certificate. The tools alternate, REPS times each. For
# every run: completed requests, req/s, and the generator's CPU time (user
# + sys, from the OS) per completed request; then medians and the ratios
# (for tlsclose also handshakes per second per core: 1e6 / CPU µs).
#
# Mode dashboard is barrage against barrage: keep-alive with --http, its
# live page's event stream read by a client and /metrics scraped once a
# second, against plain keep-alive (the barrage column of keepalive in the
# same run): what watching a test costs the generator.
#
# Knobs: BENCH_DURATION (10s), BENCH_REPS (5), BENCH_CONNECTIONS (64),
# BENCH_MODES ("keepalive pipeline16 tls13 tlsclose"; add dashboard),
# BARRAGE (bin/barrage).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$root"
dur=${BENCH_DURATION:-10s}
reps=${BENCH_REPS:-5}
conns=${BENCH_CONNECTIONS:-64}
modes=${BENCH_MODES:-"keepalive pipeline16 tls13 tlsclose"}
bash scripts/install-deps.sh wrk
start_nginx
case " $modes " in *" tls"*) start_nginx_tls ;; esac
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)

record_to peers

echo "# barrage vs wrk — $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "cpu:      $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
echo "nproc:    $(nproc)   kernel: $(uname -r)   go: $(go env GOVERSION)"
echo "wrk:      $(wrk --version 2>&1 | head -1 | cut -c1-60)"
echo "nginx:    $("$nginx_bin" -v 2>&1)   (1 worker, taskset -c $srv_cpu, 2-byte body; TLS: ECDSA P-256 certificate, no session cache, no tickets)"
echo "openssl:  $(openssl version)   go: $(go env GOVERSION)"
echo "barrage:  $barrage   (taskset -c $gen_cpu, --cores 1 → one event loop, GOMAXPROCS default)"
echo "runs:     $reps per tool per mode, $dur each, $conns connections, alternating"
echo "load:     $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min) at the start"
echo

results=$work/results.tsv
: >"$results"

# url_of MODE: the target of a mode.
url_of() { case "$1" in tls*) echo "$nginx_tls_url" ;; *) echo "$nginx_url" ;; esac; }

run_barrage() { # mode rep
  wait_quiet
  local args=(-p 1)
  case "$1" in
    pipeline16) args=(-p 16) ;;
    tls13) args=(-p 1 --insecure --tls-min 1.3) ;;
    tlsclose) args=(-p 1 --insecure --tls-min 1.3 --no-keepalive) ;;
    dashboard) dport=$(free_port); args=(-p 1 --http "127.0.0.1:$dport") ;;
  esac
  local cmd=(taskset -c $gen_cpu "$barrage" run --cores 1 -c "$conns" "${args[@]}" -d "$dur" -q --json "$work/b.json" "$(url_of "$1")")
  echo "  \$ ${cmd[*]}" >>"$work/commands"
  local watchers=()
  if [ "$1" = dashboard ]; then
    # The watchers run on the server's CPU, not the generator's.
    ( wait_port "$dport"; exec taskset -c $srv_cpu curl -sN "http://127.0.0.1:$dport/api/stream" >"$work/stream.out" ) &
    watchers+=($!)
    ( wait_port "$dport"; while taskset -c $srv_cpu curl -s "http://127.0.0.1:$dport/metrics" >"$work/metrics.out"; do sleep 1; done ) &
    watchers+=($!)
  fi
  "$work/cpurun" -o "$work/cpu.json" "${cmd[@]}" >/dev/null 2>"$work/b.err" || { cat "$work/b.err"; echo "peers.sh: barrage failed" >&2; exit 1; }
  for w in "${watchers[@]}"; do kill "$w" 2>/dev/null || true; wait "$w" 2>/dev/null || true; done
  if [ "$1" = dashboard ]; then
    grep -q '^data:' "$work/stream.out" || { echo "peers.sh: the dashboard's stream sent nothing" >&2; exit 1; }
    grep -q '^barrage_requests_sent_total' "$work/metrics.out" || { echo "peers.sh: /metrics had no barrage_requests_sent_total" >&2; exit 1; }
  fi
  local reqs errs
  reqs=$(sed -n 's/^  "requests": \([0-9]*\),$/\1/p' "$work/b.json")
  errs=$(sed -n 's/^  "errors": \([0-9]*\),$/\1/p' "$work/b.json")
  record barrage "$1" "$2" "$reqs" "$errs"
}

run_wrk() { # mode rep
  wait_quiet
  local extra=()
  [ "$1" = pipeline16 ] && extra=(-s "$root/bench/pipeline.lua")
  [ "$1" = tlsclose ] && extra=(-H "Connection: close")
  local cmd=(taskset -c $gen_cpu wrk -t1 -c"$conns" -d"$dur" "${extra[@]}" "$(url_of "$1")")
  echo "  \$ ${cmd[*]}" >>"$work/commands"
  "$work/cpurun" -o "$work/cpu.json" "${cmd[@]}" >"$work/wrk.out" 2>&1 || { cat "$work/wrk.out"; echo "peers.sh: wrk failed" >&2; exit 1; }
  local reqs errs
  reqs=$(awk '/requests in/ {print $1}' "$work/wrk.out")
  [ -n "$reqs" ] || { cat "$work/wrk.out"; echo "peers.sh: no request count from wrk" >&2; exit 1; }
  errs=$(awk '/Non-2xx/ {n+=$NF} /Socket errors/ {gsub(",",""); n+=$4+$6+$8+$10} END {print n+0}' "$work/wrk.out")
  record wrk "$1" "$2" "$reqs" "$errs"
}

record() { # tool mode rep requests errors
  local user sys wall
  user=$(sed -n 's/.*"user_s":\([0-9.e-]*\).*/\1/p' "$work/cpu.json")
  sys=$(sed -n 's/.*"sys_s":\([0-9.e-]*\).*/\1/p' "$work/cpu.json")
  wall=$(sed -n 's/.*"wall_s":\([0-9.e-]*\).*/\1/p' "$work/cpu.json")
  awk -v t="$1" -v m="$2" -v r="$3" -v n="$4" -v e="$5" -v u="$user" -v s="$sys" -v w="$wall" -v d="${dur%s}" 'BEGIN {
    rps = n / d; cpu = (u + s) * 1e6 / n
    printf "%s\t%s\t%d\t%d\t%d\t%.0f\t%.3f\t%.3f\t%.3f\n", t, m, r, n, e, rps, u, s, cpu
  }' >>"$results"
  tail -n1 "$results" | awk -F'\t' '{printf "  %-8s %-11s rep %d: %10d requests %4d errors %10.0f req/s  user %6.2fs sys %6.2fs  %7.3f µs CPU/request\n", $1, $2, $3, $4, $5, $6, $7, $8, $9}'
}

for mode in $modes; do
  echo "== $mode"
  for rep in $(seq 1 "$reps"); do
    if [ "$mode" = dashboard ]; then
      # Against barrage without the dashboard, alternating.
      if [ $((rep % 2)) -eq 1 ]; then run_barrage dashboard "$rep"; run_barrage keepalive-ref "$rep"
      else run_barrage keepalive-ref "$rep"; run_barrage dashboard "$rep"; fi
      continue
    fi
    if [ $((rep % 2)) -eq 1 ]; then run_barrage "$mode" "$rep"; run_wrk "$mode" "$rep"
    else run_wrk "$mode" "$rep"; run_barrage "$mode" "$rep"; fi
  done
done

median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
echo
echo "== medians (req/s, µs of generator CPU per completed request)"
printf "  %-11s %12s %12s %10s %10s %14s %14s\n" mode barrage_rps wrk_rps b_cpu_us w_cpu_us "rps ratio b/w" "cpu ratio b/w"
hs_lines=()
for mode in $modes; do
  if [ "$mode" = dashboard ]; then
    drps=$(awk -F'\t' '$1=="barrage" && $2=="dashboard" {print $6}' "$results" | median)
    rrps=$(awk -F'\t' '$1=="barrage" && $2=="keepalive-ref" {print $6}' "$results" | median)
    dcpu=$(awk -F'\t' '$1=="barrage" && $2=="dashboard" {print $9}' "$results" | median)
    rcpu=$(awk -F'\t' '$1=="barrage" && $2=="keepalive-ref" {print $9}' "$results" | median)
    hs_lines+=("$(awk -v dr="$drps" -v rr="$rrps" -v dc="$dcpu" -v rc="$rcpu" 'BEGIN {
      printf "  dashboard: barrage with --http watched vs without: %.0f vs %.0f req/s, %.3f vs %.3f µs CPU/request, CPU ratio %.4f (%+.2f%%)", dr, rr, dc, rc, dc/rc, 100*(dc/rc-1) }')")
    continue
  fi
  brps=$(awk -F'\t' -v m="$mode" '$1=="barrage" && $2==m {print $6}' "$results" | median)
  wrps=$(awk -F'\t' -v m="$mode" '$1=="wrk" && $2==m {print $6}' "$results" | median)
  bcpu=$(awk -F'\t' -v m="$mode" '$1=="barrage" && $2==m {print $9}' "$results" | median)
  wcpu=$(awk -F'\t' -v m="$mode" '$1=="wrk" && $2==m {print $9}' "$results" | median)
  awk -v m="$mode" -v br="$brps" -v wr="$wrps" -v bc="$bcpu" -v wc="$wcpu" 'BEGIN {
    printf "  %-11s %12.0f %12.0f %10.3f %10.3f %14.3f %14.3f\n", m, br, wr, bc, wc, br/wr, bc/wc }'
  [ "$mode" = tlsclose ] && hs_lines+=("$(awk -v bc="$bcpu" -v wc="$wcpu" 'BEGIN {
    printf "  tlsclose: handshakes per second per core (1e6 / median CPU µs per request): barrage %.0f, wrk %.0f, ratio b/w %.3f", 1e6/bc, 1e6/wc, wc/bc }')")
done
for l in "${hs_lines[@]}"; do echo "$l"; done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "commands (one of each):"
sort -u "$work/commands"
echo
echo "written to $out"
