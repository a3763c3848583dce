"""The protobuf batch/v1 Job and CronJob kubectl's typed generators post (`kubectl create job`,
`create job --from=cronjob`, `create cronjob`), built here by hand with a tiny encoder and
read back as the JSON the rest of fargo takes; what fargo does not read is refused by name."""

from __future__ import annotations

import pytest

from fargo.api.kube import protobuf

pytestmark = pytest.mark.pure


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = b""
    while True:
        b, n = n & 0x7F, n >> 7
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


def f(num: int, value: int | bytes | str) -> bytes:
    """One field: an int as a varint, bytes or a str length-delimited."""
    if isinstance(value, int):  # a bool too
        return _varint(num << 3) + _varint(int(value))
    data = value.encode() if isinstance(value, str) else value
    return _varint(num << 3 | 2) + _varint(len(data)) + data


def entry(num: int, key: str, value: str) -> bytes:
    return f(num, f(1, key) + f(2, value))


def envelope(api_version: str, kind: str, body: bytes) -> bytes:
    return protobuf.MAGIC + f(1, f(1, api_version) + f(2, kind)) + f(2, body)


def pod_template(restart: str, *command: str) -> bytes:
    """As Go marshals one: the zero plain fields are there too (empty strings, false)."""
    container = (f(1, "main") + f(2, "busybox:1") + b"".join(f(3, c) for c in command)
                 + f(5, "") + f(8, b"") + f(13, "") + f(14, "") + f(16, 0))
    spec = f(2, container) + f(3, restart) + f(6, "") + f(8, "") + f(11, False)
    return f(1, f(8, b"")) + f(2, spec)


TEMPLATE_JSON = {"metadata": {}, "spec": {
    "containers": [{"name": "main", "image": "busybox:1", "command": ["date"],
                    "resources": {}}],
    "restartPolicy": "Never"}}


def test_create_job_with_an_image() -> None:
    # kubectl create job once --image=busybox:1 -- date: an empty status comes along
    meta = f(1, "once") + f(3, "batch") + f(8, b"")
    body = f(1, meta) + f(2, f(6, pod_template("Never", "date"))) + f(3, b"")
    assert protobuf.decode(envelope("batch/v1", "Job", body)) == {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "once", "namespace": "batch"},
        "spec": {"template": TEMPLATE_JSON}}


def test_job_from_a_cronjob_keeps_every_spec_field() -> None:
    owner = (f(1, "CronJob") + f(3, "nightly") + f(4, "u-1") + f(5, "batch/v1")
             + f(6, True))
    meta = (f(1, "by-hand") + f(3, "batch") + entry(11, "app", "nightly")
            + entry(12, "cronjob.kubernetes.io/instantiate", "manual") + f(13, owner))
    spec = (f(1, 1) + f(2, 1) + f(3, 600) + f(7, 6) + f(8, 0) + f(9, "NonIndexed")
            + f(10, False) + f(14, "TerminatingOrFailed") + f(5, False)
            + f(4, entry(1, "job", "x")) + f(6, pod_template("Never", "date")))
    status = f(4, 3) + f(1, f(1, "Complete") + f(2, "True"))  # the server's: dropped
    got = protobuf.decode(envelope("batch/v1", "Job", f(1, meta) + f(2, spec) + f(3, status)))
    assert got == {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "by-hand", "namespace": "batch", "labels": {"app": "nightly"},
                     "annotations": {"cronjob.kubernetes.io/instantiate": "manual"},
                     "ownerReferences": [{"kind": "CronJob", "name": "nightly", "uid": "u-1",
                                          "apiVersion": "batch/v1", "controller": True}]},
        # pointers: their zeros are kept (ttlSecondsAfterFinished 0, suspend false)
        "spec": {"parallelism": 1, "completions": 1, "activeDeadlineSeconds": 600,
                 "backoffLimit": 6, "ttlSecondsAfterFinished": 0,
                 "completionMode": "NonIndexed", "suspend": False,
                 "podReplacementPolicy": "TerminatingOrFailed", "manualSelector": False,
                 "selector": {"matchLabels": {"job": "x"}}, "template": TEMPLATE_JSON}}


def test_job_policies_are_read_for_the_checks_to_refuse_by_name() -> None:
    # values of a repeated int32 come one varint each, or packed
    codes = f(1, "main") + f(2, "In") + f(3, 1) + f(3, 2) + f(3, _varint(3) + _varint(42))
    rule = f(1, "FailJob") + f(2, codes) + f(3, f(1, "DisruptionTarget") + f(2, "True"))
    success = f(1, f(1, "0-2") + f(2, 0))
    spec = (f(6, pod_template("Never", "date")) + f(11, f(1, rule)) + f(12, 2) + f(13, 0)
            + f(15, "kueue.x-k8s.io/multikueue") + f(16, success))
    got = protobuf.decode(envelope("batch/v1", "Job", f(2, spec)))["spec"]
    assert got["podFailurePolicy"] == {"rules": [{
        "action": "FailJob",
        "onExitCodes": {"containerName": "main", "operator": "In", "values": [1, 2, 3, 42]},
        "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}]}
    assert got["successPolicy"] == {"rules": [{"succeededIndexes": "0-2",
                                               "succeededCount": 0}]}
    assert got["backoffLimitPerIndex"] == 2 and got["maxFailedIndexes"] == 0
    assert got["managedBy"] == "kueue.x-k8s.io/multikueue"


def test_create_cronjob() -> None:
    # kubectl create cronjob tick --image=busybox:1 --schedule='*/5 * * * *' -- date
    job_spec = f(6, pod_template("OnFailure", "date"))
    template = f(1, f(1, "tick") + f(8, b"")) + f(2, job_spec)
    spec = (f(1, "*/5 * * * *") + f(3, "") + f(5, template) + f(8, "Europe/Berlin")
            + f(4, True) + f(2, 30) + f(6, 0) + f(7, 1))
    body = f(1, f(1, "tick") + f(3, "batch")) + f(2, spec) + f(3, b"")
    tpl = {**TEMPLATE_JSON, "spec": {**TEMPLATE_JSON["spec"], "restartPolicy": "OnFailure"}}
    assert protobuf.decode(envelope("batch/v1", "CronJob", body)) == {
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": "tick", "namespace": "batch"},
        "spec": {"schedule": "*/5 * * * *", "timeZone": "Europe/Berlin", "suspend": True,
                 "startingDeadlineSeconds": 30, "successfulJobsHistoryLimit": 0,
                 "failedJobsHistoryLimit": 1,
                 "jobTemplate": {"metadata": {"name": "tick"},
                                 "spec": {"template": tpl}}}}
    # a pointer's empty string is kept (and refused by the CronJob's checks, as upstream)
    got = protobuf.decode(envelope("batch/v1", "CronJob", f(2, f(8, ""))))
    assert got["spec"] == {"timeZone": ""}


@pytest.mark.parametrize(("kind", "body", "field"), [
    ("Job", f(2, f(17, b"")), "field 17 of JobSpec"),  # spec.scheduling (alpha)
    ("Job", f(2, f(6, f(2, f(18, b"")))), "field 18 of PodSpec"),  # template's affinity
    ("Job", f(2, f(11, f(1, f(9, "x")))), "field 9 of PodFailurePolicyRule"),
    ("CronJob", f(2, f(9, "x")), "field 9 of CronJobSpec"),
    ("CronJob", f(2, f(5, f(3, b""))), "field 3 of JobTemplateSpec"),
    ("CronJob", f(4, b""), "field 4 of CronJob"),
])
def test_a_field_fargo_does_not_read_is_refused_by_name(kind, body, field) -> None:
    with pytest.raises(ValueError, match=field):
        protobuf.decode(envelope("batch/v1", kind, body))


def test_the_envelope_type_meta_picks_the_messages() -> None:
    body = f(2, f(1, "*/5 * * * *"))
    with pytest.raises(ValueError, match="not batch/v1beta1 CronJob; send JSON"):
        protobuf.decode(envelope("batch/v1beta1", "CronJob", body))
    with pytest.raises(ValueError, match="batch/v1 Job, batch/v1 CronJob, .*not v1 Job"):
        protobuf.decode(envelope("v1", "Job", body))
    assert protobuf.decode(envelope("v1", "Namespace", f(1, f(1, "ns")))) == {
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns"}}


@pytest.mark.parametrize("body", [
    f(2, f(1, "one")),  # parallelism as a string
    f(2, f(6, 5)),  # the template as a varint
    f(2, f(6, b"\x12\xff")),  # a truncated PodSpec
])
def test_a_malformed_job_is_a_value_error(body) -> None:
    with pytest.raises(ValueError):
        protobuf.decode(envelope("batch/v1", "Job", body))
