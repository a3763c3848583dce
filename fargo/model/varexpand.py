"""Kubernetes' `$(VAR)` references in a container's command, args and env values, expanded
as kubelet does: `$(NAME)` becomes the variable's value when it is defined and is left as
written when not; `$$` is a literal `$` (so `$$(NAME)` stays `$(NAME)`). Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def expand(text: str, env: Mapping[str, str]) -> str:
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch != "$" or i + 1 == n:
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "(":
            end = text.find(")", i + 2)
            if end < 0:  # unclosed: kept as written
                out.append(text[i:])
                break
            name = text[i + 2:end]
            out.append(env[name] if name in env else text[i:end + 1])
            i = end + 1
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def container_expansion(c: dict[str, Any], env: dict[str, str],
                        argv: list[str]) -> tuple[dict[str, str], list[str]]:
    """The environment and argv a pod container runs with once its references are expanded:
    each env value against the variables its list defines before it, then the pod's own
    command and args (the argv's tail: an image's ENTRYPOINT is not the pod's) against the
    whole list."""
    env = dict(env)
    defined: dict[str, str] = {}
    for entry in c.get("env") or []:
        name = entry.get("name")
        if not isinstance(name, str) or name not in env:
            continue
        if isinstance(entry.get("value"), str) and "$" in entry["value"]:
            env[name] = expand(entry["value"], defined)
        defined[name] = env[name]
    given = len(c.get("args") or [])
    if c.get("command") is not None:
        given += len(c["command"])
    given = min(given, len(argv))
    head, tail = argv[:len(argv) - given], argv[len(argv) - given:]
    return env, head + [expand(a, defined) for a in tail]
