"""List operations' pages, as the AWS faces hand them out: nextToken is the index of the
page's first item, as an opaque string; each service words its refusals its own way."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any


def page(items: list[str], token: str | None, size: int, key: str, *,
         invalid: Callable[[str], Exception], bad_token: str) -> dict[str, Any]:
    """items[token:token+size] under key, and the next token if more are left."""
    start = 0
    if token:
        if not re.fullmatch(r"[0-9]{1,9}", token) or int(token) > len(items):
            raise invalid(bad_token)
        start = int(token)
    if not 1 <= size <= 100:
        raise invalid("maxResults must be between 1 and 100.")
    out: dict[str, Any] = {key: items[start:start + size]}
    if start + size < len(items):
        out["nextToken"] = str(start + size)
    return out
