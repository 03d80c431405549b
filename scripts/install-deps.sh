#!/usr/bin/env bash
# Installs what barrage's tests and benchmarks need, only when missing:
#   install-deps.sh [zookeeper] [wrk] [nginx] [chromium] [podman]   (default: zookeeper)
# chromium is Debian's headless-capable browser, for the dashboard's and
# the HTML report's browser tests (driven with chromedp).
# Debian packages, as root, no service is started (zookeeper, not zookeeperd).
set -euo pipefail

want=("$@")
[ ${#want[@]} -eq 0 ] && want=(zookeeper)

missing=()
for w in "${want[@]}"; do
  case "$w" in
    zookeeper) [ -f /usr/share/java/zookeeper.jar ] || missing+=(zookeeper) ;;
    wrk)       command -v wrk >/dev/null 2>&1 || missing+=(wrk) ;;
    nginx)     command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx) ;;
    chromium)  command -v chromium >/dev/null 2>&1 || missing+=(chromium) ;;
    podman)    command -v podman >/dev/null 2>&1 || missing+=(podman) ;;
    *) echo "install-deps.sh: unknown dependency '$w' (want zookeeper, wrk, nginx, chromium, podman)" >&2; exit 2 ;;
  esac
done
if ! command -v java >/dev/null 2>&1; then
  for w in "${want[@]}"; do [ "$w" = zookeeper ] && missing+=(default-jre-headless); done
fi
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "install-deps.sh: need root to apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "install-deps.sh: installing ${missing[*]} from Debian" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
  echo "install-deps.sh: apt-get install ${missing[*]} failed" >&2
  exit 1
fi
echo "install-deps.sh: installed ${missing[*]}" >&2
