#!/usr/bin/env bash
# Set up, then run the whole test suite (unit tests, then the end-to-end ones against a real
# fargo server, registry and runc containers).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
python3 -m ruff check fargo tests bench
exec python3 -m pytest -q "$@"
