#!/usr/bin/env bash
# The chaos matrix: every fault row (or the rows named) against real
# ZooKeeper, with the real binary; prints the table and writes it into
# RELIABILITY.md between its chaos markers.
#   scripts/chaos.sh [all | row,row,...]
# Environment: CHAOS_LOGS=DIR keeps every process's log there (default: a
# new temporary directory), CHAOS_RETRIES (default 2) reruns of a row that
# failed while the machine paused, CHAOS_TRIALS (default 4) standby-race
# trials, CHAOS_AGENT_CPU (default: the last CPU; "none") where agents run.
set -uo pipefail
cd "$(dirname "$0")/.."

rows=${1:-all}
logs=${CHAOS_LOGS:-$(mktemp -d "${TMPDIR:-/tmp}/barrage-chaos.XXXXXX")}
mkdir -p "$logs"
echo "chaos: rows=$rows, logs in $logs" >&2

# Progress on the terminal (one line per row), everything in go-test.log.
CHAOS=$rows CHAOS_REPORT="$PWD/RELIABILITY.md" CHAOS_LOGS="$logs" \
  go test -count=1 -p 1 -timeout 40m -run '^TestChaos$' -v ./chaos/ 2>&1 |
  tee "$logs/go-test.log" | grep --line-buffered -E '^    --- (PASS|FAIL)|^(ok|FAIL|panic)'
rc=${PIPESTATUS[0]}

if grep -q '<!-- chaos:begin' RELIABILITY.md 2>/dev/null; then
  sed -n '/<!-- chaos:begin/,/<!-- chaos:end/p' RELIABILITY.md | sed '1d;$d'
else
  tail -n 40 "$logs/go-test.log"
fi
echo "chaos: exit $rc; the whole log is $logs/go-test.log" >&2
exit "$rc"
