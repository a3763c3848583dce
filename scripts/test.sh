#!/usr/bin/env bash
# Set up, then lint, type-check and run the whole test suite (pure tests of the rules and of
# control over an in-memory data plane, and end-to-end ones against a real fargo server,
# registry and runc containers). The pure tests alone, without root, in seconds:
#     python3 -m pytest -m pure -q
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
python3 -m ruff check fargo tests bench
python3 -m mypy  # fargo/, as pyproject.toml configures it
# Two workers, one test file each at a time: e2e files wait on I/O (tasks, kubectl), so
# the suite takes about 10 minutes instead of 16 on 2 cores; each file keeps its own servers.
exec python3 -m pytest -q -n 2 --dist loadfile "$@"
