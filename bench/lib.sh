# Shared helpers for the bench scripts (sourced, not run).
# Servers go to CPU $srv_cpu, generators to CPU $gen_cpu; all are stopped
# by PID on exit.
gen_cpu=${GEN_CPU:-0}
srv_cpu=${SRV_CPU:-1}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
barrage=${BARRAGE:-$root/bin/barrage}
work=$(mktemp -d -t barrage-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
[ -x "$barrage" ] || { echo "bench: $barrage not built (make build)" >&2; exit 1; }
(cd "$root" && go build -o "$work/cpurun" ./bench/cpurun && go build -o "$work/repstat" ./bench/repstat)

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
    echo $(( 20000 + RANDOM % 30000 ))
}

wait_port() { for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return; sleep 0.05; done; echo "bench: port $1 not up" >&2; exit 1; }

# start_nginx: one worker on $srv_cpu returning "ok"; sets nginx_url.
start_nginx() {
  bash "$root/scripts/install-deps.sh" nginx
  local port; port=$(free_port)
  mkdir -p "$work/nginx"
  cat >"$work/nginx/nginx.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
worker_rlimit_nofile 65536;
events { worker_connections 65536; }
http {
  access_log off;
  client_body_temp_path $work/nginx/cb; proxy_temp_path $work/nginx/p; fastcgi_temp_path $work/nginx/f;
  uwsgi_temp_path $work/nginx/u; scgi_temp_path $work/nginx/s;
  keepalive_requests 100000000; keepalive_timeout 65;
  server { listen 127.0.0.1:$port backlog=8192; location / { default_type text/plain; return 200 "ok"; } }
}
CONF
  taskset -c "$srv_cpu" "$(command -v nginx || echo /usr/sbin/nginx)" -c "$work/nginx/nginx.conf" &
  pids+=($!)
  wait_port "$port"
  nginx_url="http://127.0.0.1:$port/"
}

# start_nginx_tls: one worker on $srv_cpu returning "ok" over TLS (1.2
# and 1.3) with a self-signed ECDSA P-256 certificate for 127.0.0.1 made
# by openssl; sets nginx_tls_url and nginx_ca (the certificate's file).
# Session tickets and the session cache are off, so every connection of
# either tool makes a full handshake (wrk reuses sessions when it can).
start_nginx_tls() {
  bash "$root/scripts/install-deps.sh" nginx
  local port; port=$(free_port)
  mkdir -p "$work/nginx-tls"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=127.0.0.1 -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" -addext basicConstraints=critical,CA:TRUE \
    -keyout "$work/nginx-tls/key.pem" -out "$work/nginx-tls/cert.pem" 2>/dev/null
  nginx_ca=$work/nginx-tls/cert.pem
  cat >"$work/nginx-tls/nginx.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
pid $work/nginx-tls/nginx.pid;
error_log $work/nginx-tls/error.log;
worker_rlimit_nofile 65536;
events { worker_connections 65536; }
http {
  access_log off;
  client_body_temp_path $work/nginx-tls/cb; proxy_temp_path $work/nginx-tls/p; fastcgi_temp_path $work/nginx-tls/f;
  uwsgi_temp_path $work/nginx-tls/u; scgi_temp_path $work/nginx-tls/s;
  keepalive_requests 100000000; keepalive_timeout 65;
  ssl_certificate $work/nginx-tls/cert.pem; ssl_certificate_key $work/nginx-tls/key.pem;
  ssl_protocols TLSv1.2 TLSv1.3; ssl_session_tickets off; ssl_session_cache off;
  server { listen 127.0.0.1:$port ssl backlog=8192; location / { default_type text/plain; return 200 "ok"; } }
}
CONF
  taskset -c "$srv_cpu" "$(command -v nginx || echo /usr/sbin/nginx)" -c "$work/nginx-tls/nginx.conf" &
  pids+=($!)
  wait_port "$port"
  nginx_tls_url="https://127.0.0.1:$port/"
}

# start_target ARGS...: barrage target with one loop on $srv_cpu; sets target_url.
start_target() {
  taskset -c "$srv_cpu" "$barrage" target --listen 127.0.0.1:0 --loops 1 -q "$@" >"$work/target.out" &
  pids+=($!)
  for _ in $(seq 1 100); do grep -q '^listening on ' "$work/target.out" 2>/dev/null && break; sleep 0.05; done
  target_url="http://$(sed -n 's/^listening on //p' "$work/target.out")/"
}

# start_tls_target ARGS...: barrage target --tls (its self-signed
# certificate) with one loop on $srv_cpu; sets tls_target_url and
# tls_target_ca.
start_tls_target() {
  taskset -c "$srv_cpu" "$barrage" target --tls --listen 127.0.0.1:0 --loops 1 -q "$@" >"$work/tls-target.out" 2>"$work/tls-target.err" &
  pids+=($!)
  for _ in $(seq 1 100); do grep -q '^listening on ' "$work/tls-target.out" 2>/dev/null && break; sleep 0.05; done
  tls_target_url="https://$(sed -n 's/^listening on //p' "$work/tls-target.out")/"
  tls_target_ca=$(sed -n 's/^certificate \(.*\) (use --cacert)$/\1/p' "$work/tls-target.err")
}

# wait_quiet: the machine is shared (other jobs' tests and benchmarks):
# before a run, wait until all CPUs together were less than
# ${BENCH_QUIET_PCT:-15}% busy over half a second, for at most
# ${BENCH_QUIET_MAX:-120} s; prints how long it waited when it did, and
# "not quiet" when it gave up. BENCH_QUIET_MAX=0 turns it off.
wait_quiet() {
  local max=${BENCH_QUIET_MAX:-120} pct=${BENCH_QUIET_PCT:-15} waited=0
  [ "$max" = 0 ] && return 0
  while :; do
    local a b
    a=($(head -1 /proc/stat)); sleep 0.5; b=($(head -1 /proc/stat))
    local busy
    busy=$(awk -v u1="${a[1]}" -v n1="${a[2]}" -v s1="${a[3]}" -v i1="${a[4]}" -v w1="${a[5]}" -v q1="${a[6]}" -v r1="${a[7]}" -v t1="${a[8]}" \
      -v u2="${b[1]}" -v n2="${b[2]}" -v s2="${b[3]}" -v i2="${b[4]}" -v w2="${b[5]}" -v q2="${b[6]}" -v r2="${b[7]}" -v t2="${b[8]}" 'BEGIN {
        busy = (u2-u1)+(n2-n1)+(s2-s1)+(q2-q1)+(r2-r1)+(t2-t1); idle = (i2-i1)+(w2-w1)
        pct = 0; if (busy + idle > 0) pct = 100 * busy / (busy + idle)
        printf "%d", pct }')
    if [ "$busy" -lt "$pct" ]; then
      [ "$waited" -gt 0 ] && echo "  (waited about $((waited / 2))s for the machine to be quiet)"
      return 0
    fi
    waited=$((waited + 1))
    if [ "$waited" -ge $((2 * max)) ]; then echo "  (not quiet after about ${max}s: $busy% busy; running anyway)"; return 0; fi
  done
}

# record_to NAME: from here on, everything printed also goes to
# bench/results/NAME-latest.txt (its path is in $out).
record_to() {
  out=$root/bench/results/$1-latest.txt
  mkdir -p "$root/bench/results"
  exec > >(tee "$out") 2>&1
}

header() {
  echo "# $1 — $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), nproc $(nproc), kernel $(uname -r), $(go env GOVERSION)"
  echo "generator: taskset -c $gen_cpu, one event loop (--cores 1); server: taskset -c $srv_cpu, one worker/loop"
  echo
}
