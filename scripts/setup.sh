#!/usr/bin/env bash
# Installs everything fargo needs on a fresh Debian/Ubuntu machine (run as root), then fargo
# itself in editable mode. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
need=(runc runsc conmon docker-registry nftables haproxy busybox-static skopeo iproute2 iputils-ping curl
      e2fsprogs util-linux gcc libc6-dev
      awscli)  # Debian's AWS CLI v2 at /usr/bin/aws: `aws logs tail` (pip's v1 lacks it)
missing=()
for pkg in "${need[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
python3 -m pip install -q --disable-pip-version-check -e '.[test]' 2>&1 | grep -v -e "Running pip as the 'root'" -e "is ignored: it is neither" || true
python3 -c 'import fargo, aiohttp, pyroute2, boto3' 
