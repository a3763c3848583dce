"""metrics.k8s.io's figures (model/podmetrics.py)."""

from __future__ import annotations

import pytest

from fargo.model import podmetrics as m

pytestmark = pytest.mark.pure


def test_usage_over_the_window_since_the_sampler_or_the_start():
    now = m.Reading(110.0, 5_000_000_000, 4096)
    # Since the sampler's reading 10 s before: 4 s of CPU in 10 s.
    assert m.usage(m.Reading(100.0, 1_000_000_000, None), 50.0, now) == m.Usage(
        400_000_000, 4096, 10.0)
    # That reading is under a second old, or of an earlier run (its counter was higher):
    # since the start.
    assert m.usage(m.Reading(109.5, 1, None), 60.0, now).window == 50.0
    assert m.usage(m.Reading(100.0, 9_000_000_000, None), 100.0, now).nanocores == 500_000_000
    assert m.usage(None, None, now) is None
    assert m.usage(None, 100.0, m.Reading(110.0, None, 1)) is None


def test_working_sets_share_the_inactive_cache():
    assert m.working_sets({"a": 300, "b": 100}, 200) == {"a": 150, "b": 50}
    assert m.working_sets({"a": 100}, 500) == {"a": 0}
    assert m.working_sets({"a": None}, None) == {"a": 0}


def test_words():
    assert m.go_duration(20.064) == "20.064s"
    assert m.go_duration(60.5) == "1m0.5s"
    assert m.go_duration(3600) == "1h0m0s"
    assert m.go_duration(0) == "0s"
    assert m.cpu_quantity(1234) == "1234n" and m.memory_quantity(10240) == "10Ki"
    pod = {"metadata": {"name": "p", "namespace": "n", "labels": {"a": "b"}}}
    out = m.pod_metrics(pod, {"app": m.Usage(5, 2048, 2.0)}, "T1", "T2")
    assert out == {"kind": "PodMetrics", "apiVersion": "metrics.k8s.io/v1beta1",
                   "metadata": {"name": "p", "namespace": "n", "creationTimestamp": "T2",
                                "labels": {"a": "b"}},
                   "timestamp": "T1", "window": "2s",
                   "containers": [{"name": "app", "usage": {"cpu": "5n", "memory": "2Ki"}}]}
