"""RuntimeClass checks and a pod's tier from its class or its profile, without a server."""

from __future__ import annotations

import pytest

from fargo.model import runtimeclass as rc
from fargo.model.kubeerrors import KubeError


def klass(**body: object) -> dict:
    return {"metadata": {"name": "c"}, **body}


@pytest.mark.parametrize("body, cause", [
    ({}, ("handler", "Required value")),
    ({"handler": "kata"}, ("handler", 'Unsupported value: "kata"')),
    ({"handler": "UPPER"}, ("handler", "Invalid value")),
    ({"handler": 7}, ("handler", "Invalid value")),
    ({"handler": "runsc", "overhead": {}}, ("overhead", "Forbidden")),
    ({"handler": "runc", "scheduling": {}}, ("scheduling", "Forbidden")),
])
def test_refused(body: dict, cause: tuple[str, str]) -> None:
    with pytest.raises(KubeError) as err:
        rc.check_runtime_class(klass(**body), None)
    assert err.value.code == 422
    field, words = cause
    assert any(c["field"] == field and words in c["message"]
               for c in err.value.details["causes"]), err.value.message


def test_taken_and_immutable() -> None:
    rc.check_runtime_class(klass(handler="runsc"), None)
    rc.check_runtime_class(klass(handler="runsc"), klass(handler="runsc"))
    with pytest.raises(KubeError, match="field is immutable"):
        rc.check_runtime_class(klass(handler="runc"), klass(handler="runsc"))


def test_tiers_and_defaults() -> None:
    assert rc.tier(rc.builtin("gvisor")) == "gvisor"
    assert rc.tier(rc.builtin("runc")) == "runc"
    assert rc.profile_default({"tags": {rc.PROFILE_TAG: "gvisor"}}) == "gvisor"
    assert rc.profile_default({"tags": {}}) is None and rc.profile_default(None) is None
    assert rc.class_name({"spec": {"runtimeClassName": "gvisor"}}) == "gvisor"
    assert rc.class_name({"spec": {}}) is None
    err = rc.not_found({"metadata": {"name": "p"}}, "kata")
    assert err.code == 403
    assert err.message == 'pods "p" is forbidden: pod rejected: RuntimeClass "kata" not found'
