#!/usr/bin/env bash
# The main job on one machine: ZooKeeper, a target, two agents and a
# coordinator run a short stepped plan; the merged report is printed and
# everything started is stopped.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${BARRAGE:-$here/../bin/barrage}
dir=$(mktemp -d -t barrage-demo.XXXXXX)
trap '"$here/cluster.sh" stop "$dir" >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT

"$here/cluster.sh" start "$dir" 2
zk=$(cat "$dir/zk.addr")
url=$(cat "$dir/target.url")
cat >"$dir/plan.yaml" <<PLAN
target_url: $url
connections: 32
pattern:
  type: steps
  steps:
    - {duration: 3s, rate: 5000}
    - {duration: 3s, rate: 15000}
    - {duration: 3s, rate: 30000, connections: 64}
PLAN
echo "plan:"; sed 's/^/  /' "$dir/plan.yaml"; echo
"$bin" coord --zk "$zk" --agents 2 -f "$dir/plan.yaml" --json "$dir/report.json"
echo
echo "JSON report: requests $(grep -m1 '"requests"' "$dir/report.json" | tr -dc 0-9), rps $(grep -m1 '"rps"' "$dir/report.json" | tr -dc 0-9.)"
