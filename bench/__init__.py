"""Benchmarks: fargo's start latency, launch rate, density, API and cold pull, each beside podman
and bare runc measured in the same run. Run with `python -m bench` (root)."""
