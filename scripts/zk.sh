#!/usr/bin/env bash
# A standalone ZooKeeper for local use, with a private config:
#   zk.sh start DIR [PORT]   start (a free port if none given); prints 127.0.0.1:PORT
#   zk.sh stop DIR           stop it (by the PID in DIR/zk.pid)
#   zk.sh addr DIR           print its address
set -euo pipefail

usage() { echo "usage: zk.sh start DIR [PORT] | stop DIR | addr DIR" >&2; exit 2; }
[ $# -ge 2 ] || usage
cmd=$1 dir=$2

free_port() {
  local p
  for _ in $(seq 1 50); do
    p=$(( 20000 + RANDOM % 40000 ))
    if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then echo "$p"; return; fi
  done
  echo "zk.sh: no free port found" >&2; exit 1
}

mode() { # prints the srvr Mode: line's value, or nothing
  local addr=$1 host=${1%:*} port=${1##*:}
  ( exec 3<>/dev/tcp/$host/$port && printf srvr >&3 && timeout 2 cat <&3 ) 2>/dev/null | sed -n 's/^Mode: //p'
}

case "$cmd" in
start)
  mkdir -p "$dir/data"
  dir=$(cd "$dir" && pwd)
  if [ -f "$dir/zk.pid" ] && kill -0 "$(cat "$dir/zk.pid")" 2>/dev/null; then
    echo "zk.sh: already running (PID $(cat "$dir/zk.pid")) at $(cat "$dir/addr")" >&2; exit 1
  fi
  port=${3:-$(free_port)}
  cat > "$dir/zoo.cfg" <<CFG
tickTime=200
dataDir=$dir/data
clientPort=$port
clientPortAddress=127.0.0.1
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr,stat,mntr
minSessionTimeout=400
maxSessionTimeout=20000
maxClientCnxns=0
CFG
  [ -f /usr/share/java/zookeeper.jar ] || { echo "zk.sh: ZooKeeper is not installed; run scripts/install-deps.sh" >&2; exit 1; }
  nohup java -Xms16m -Xmx128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:-UsePerfData \
    -Dzookeeper.log.dir="$dir" -cp /usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar \
    org.apache.zookeeper.server.quorum.QuorumPeerMain "$dir/zoo.cfg" >"$dir/zk.log" 2>&1 </dev/null &
  echo $! > "$dir/zk.pid"
  echo "127.0.0.1:$port" > "$dir/addr"
  for _ in $(seq 1 200); do
    if [ -n "$(mode 127.0.0.1:$port)" ]; then echo "127.0.0.1:$port"; exit 0; fi
    kill -0 "$(cat "$dir/zk.pid")" 2>/dev/null || break
    sleep 0.1
  done
  echo "zk.sh: ZooKeeper did not start; last lines of $dir/zk.log:" >&2
  tail -n 15 "$dir/zk.log" >&2 || true
  kill "$(cat "$dir/zk.pid")" 2>/dev/null || true
  exit 1
  ;;
stop)
  [ -f "$dir/zk.pid" ] || exit 0
  pid=$(cat "$dir/zk.pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$dir/zk.pid"
  ;;
addr)
  cat "$dir/addr"
  ;;
*) usage ;;
esac
