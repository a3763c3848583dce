"""`$(VAR)` expansion in pod containers' command, args and env, as kubelet does it."""

from __future__ import annotations

import pytest

from fargo.model.varexpand import container_expansion, expand

pytestmark = pytest.mark.pure


@pytest.mark.parametrize("text,want", [
    ("$(A)", "1"), ("x$(A)y$(B)", "x1y2"), ("$(MISSING)", "$(MISSING)"),
    ("$$(A)", "$(A)"), ("$$", "$"), ("cost $5", "cost $5"), ("$(A", "$(A"), ("end$", "end$"),
    ("$()", "$()"), ("$(A)$(A)", "11"),
])
def test_expand(text, want):
    assert expand(text, {"A": "1", "B": "2"}) == want


def test_env_sees_only_what_comes_before_and_args_see_all():
    c = {"command": ["sh", "-c"], "args": ["echo $(POD_IP) $(LATER)"],
         "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                 {"name": "URL", "value": "http://$(POD_IP):$(LATER)/"},
                 {"name": "LATER", "value": "80"}]}
    env = {"PATH": "/bin", "POD_IP": "10.0.0.5", "URL": "http://$(POD_IP):$(LATER)/",
           "LATER": "80"}
    new_env, argv = container_expansion(c, env, ["sh", "-c", "echo $(POD_IP) $(LATER)"])
    assert new_env["URL"] == "http://10.0.0.5:$(LATER)/"  # LATER is defined after it
    assert argv == ["sh", "-c", "echo 10.0.0.5 80"]


def test_an_images_entrypoint_is_not_expanded():
    c = {"args": ["$(X)"], "env": [{"name": "X", "value": "y"}]}
    _, argv = container_expansion(c, {"X": "y"}, ["/entry", "$(X)", "$(X)"])
    assert argv == ["/entry", "$(X)", "y"]
