#!/usr/bin/env bash
# Set up (as scripts/setup.sh), add what only the benchmark needs (podman for the peer, wrk
# for the load balancer figure, matplotlib for the plot), then run it; arguments go to
# `python -m bench`, e.g. --quick.
# Writes docs/benchmarks.md and docs/benchmarks-start-latency.png unless --out says otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
missing=()
for pkg in podman wrk; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
python3 -m pip install -q --disable-pip-version-check -e '.[test,bench]' 2>&1 | grep -v -e "Running pip as the 'root'" -e "is ignored: it is neither" || true
exec python3 -m bench "$@"
