#!/usr/bin/env bash
# The coordinator against a simulated fleet (bench/fleetsim): fake agents
# publish one realistic snapshot per interval into a real ZooKeeper, no
# load is sent; the coordinator runs as a child and its CPU time, max RSS
# and how long after the planned end its report was out are measured.
#   FLEET_SIZES ("100 1000"), FLEET_DURATION (60s): the fleet runs
#   MEMORY_SHORT/MEMORY_LONG (20s/120s): 2 agents, short and long, for the
#   "memory does not grow with the test's length" figure.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
record_to fleet
(cd "$root" && go build -o "$work/fleetsim" ./bench/fleetsim)
zk=$("$root/scripts/zk.sh" start "$work/zk")
trap '"$root/scripts/zk.sh" stop "$work/zk"; cleanup' EXIT
echo "# $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, $(uname -r), $(go version | cut -d' ' -f3)"
echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
run() { # name agents duration [per-session]
  local out
  out=$("$work/fleetsim" -barrage "$barrage" -zk "$zk" -root "/fleet-$1" -agents "$2" -duration "$3" -per-session "${4:-20}")
  echo "$1 $out"
}
for d in ${MEMORY_SHORT:-20s} ${MEMORY_LONG:-120s}; do run "memory-2x$d" 2 "$d"; done
for n in ${FLEET_SIZES:-100 1000}; do run "fleet-$n" "$n" "${FLEET_DURATION:-60s}" 25; done
echo "# load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
