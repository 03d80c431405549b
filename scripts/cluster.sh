#!/usr/bin/env bash
# A local cluster for trying barrage by hand:
#   cluster.sh start DIR [AGENTS]   ZooKeeper + a target + AGENTS agents (default 2)
#   cluster.sh stop DIR             stop everything started, by PID
# It prints the ZooKeeper address and the target URL; logs go to DIR.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${BARRAGE:-$here/../bin/barrage}

usage() { echo "usage: cluster.sh start DIR [AGENTS] | stop DIR" >&2; exit 2; }
[ $# -ge 2 ] || usage
cmd=$1 dir=$2

case "$cmd" in
start)
  n=${3:-2}
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  [ -x "$bin" ] || { echo "cluster.sh: $bin not built (make build)" >&2; exit 1; }
  zk=$("$here/zk.sh" start "$dir/zk")
  "$bin" target --listen 127.0.0.1:0 -q >"$dir/target.out" 2>"$dir/target.log" &
  echo $! >"$dir/target.pid"
  for _ in $(seq 1 50); do grep -q '^listening on ' "$dir/target.out" 2>/dev/null && break; sleep 0.1; done
  url="http://$(sed -n 's/^listening on //p' "$dir/target.out")/"
  for i in $(seq 1 "$n"); do
    "$bin" agent --zk "$zk" --name "agent$i" --cores 1 >"$dir/agent$i.log" 2>&1 &
    echo $! >"$dir/agent$i.pid"
  done
  echo "$zk" >"$dir/zk.addr"
  echo "$url" >"$dir/target.url"
  echo "zookeeper $zk"
  echo "target    $url"
  ;;
stop)
  for f in "$dir"/agent*.pid "$dir"/target.pid; do
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$f"
  done
  "$here/zk.sh" stop "$dir/zk"
  ;;
*) usage ;;
esac
