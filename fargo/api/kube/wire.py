"""What the Kubernetes face reads and writes besides objects' meaning: bodies in JSON, YAML or
protobuf, DeleteOptions, the three patch types, and every failure as a `kind: Status`."""

from __future__ import annotations

import json
from typing import Any

import yaml
from aiohttp import web

from ...control.objects import DeleteOptions
from ...model import kubeobj, kubeschema, objmeta, strategic
from ...model.admission import apply_json_patch
from ...model.kubeerrors import KubeError, bad_request, invalid
from ...model.kubeobj import MAX_GRACE
from .. import body
from . import protobuf


def status_response(err: KubeError) -> web.Response:
    return web.json_response(err.status(), status=err.code)


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=json.dumps(body).encode(), status=status,
                        content_type="application/json")


def _no_constant(word: str) -> Any:
    raise ValueError(f"{word} is not JSON")


def _loads(raw: bytes) -> Any:
    """JSON as Go's decoder reads it: NaN and Infinity are not numbers (Python's are, and
    an object holding one would be answered as text no client parses)."""
    return json.loads(raw, parse_constant=_no_constant)


async def _read(request: web.Request) -> bytes:
    try:
        return await body.read_decoded(request)
    except body.BodyError as err:
        reason = {413: "RequestEntityTooLarge", 415: "UnsupportedMediaType"}
        raise KubeError(err.status, reason.get(err.status, "BadRequest"), err.message) from None


async def read_body(request: web.Request) -> Any:
    raw = await _read(request)
    if not raw.strip():
        raise bad_request("the request body is empty")
    ctype = request.content_type
    if ctype == protobuf.CONTENT_TYPE:
        try:
            return protobuf.decode(raw)
        except (ValueError, UnicodeDecodeError, TypeError, IndexError) as err:
            raise KubeError(415, "UnsupportedMediaType", str(err)[:300]) from None
    if "json" not in ctype and "yaml" not in ctype:
        # Protobuf and CBOR clients (kubectl) fall back to JSON on 415.
        raise KubeError(415, "UnsupportedMediaType", f"the body of the request was in an "
                        f"unknown format - accepted media types include: application/json, "
                        f"application/yaml (got {ctype[:80]})")
    try:
        # Duplicated keys are kept aside for fieldValidation (kubeschema.checked_body). YAML
        # is read as the apiserver converts it: as JSON (dates become strings, NaN is
        # refused), and without aliases, whose expansion is a bomb in a small body.
        if "yaml" in request.content_type:
            return kubeschema.loads_yaml(raw)
        return kubeschema.loads(raw)
    except (ValueError, TypeError, yaml.YAMLError, RecursionError, UnicodeDecodeError) as err:
        raise bad_request(f"the body of the request could not be decoded: "
                          f"{str(err)[:200]}") from None


async def delete_options(request: web.Request, dry_run: bool) -> DeleteOptions:
    """A DELETE's options, from its query or its DeleteOptions body: the grace period
    (None: the object's own), propagationPolicy and preconditions (uid, resourceVersion)."""
    body: Any = None
    if request.can_read_body:
        raw = await _read(request)
        if raw.strip():
            try:
                body = _loads(raw)
            except (ValueError, UnicodeDecodeError, RecursionError):
                raise bad_request("the DeleteOptions body could not be decoded") from None
    if body is not None and not isinstance(body, dict):
        raise bad_request("the DeleteOptions body is not an object")
    body = body or {}
    _check_delete_options(body)
    grace = request.query.get("gracePeriodSeconds", body.get("gracePeriodSeconds"))
    propagation = request.query.get("propagationPolicy", body.get("propagationPolicy"))
    if body.get("orphanDependents") is not None or request.query.get("orphanDependents"):
        orphan = body.get("orphanDependents", request.query.get("orphanDependents"))
        if propagation is None:
            propagation = "Orphan" if orphan in (True, "true") else "Background"
    pre = body.get("preconditions") or {}
    if not isinstance(pre, dict) or not all(isinstance(pre.get(k), str | None)
                                            for k in ("uid", "resourceVersion")):
        raise bad_request("DeleteOptions.preconditions must hold strings")
    return DeleteOptions(grace=_grace(grace), propagation=objmeta.propagation(propagation, ""),
                         uid=pre.get("uid"), resource_version=pre.get("resourceVersion"),
                         dry_run=dry_run or bool(body.get("dryRun")))


def _check_delete_options(body: dict[str, Any]) -> None:
    """A DeleteOptions body as the apiserver decodes and validates it: a member of the
    wrong type is a 400; a dryRun other than All, or orphanDependents beside a
    propagationPolicy, a 422 (never a real deletion the client asked to be a dry run)."""
    schema = kubeschema.kind_schema("", "v1", "DeleteOptions")
    found = kubeschema.check(body, schema) if schema is not None else None
    if found is not None and found.types:
        raise bad_request(f"the DeleteOptions body could not be decoded: {found.types[0]}")
    causes = []
    dry = body.get("dryRun") or []
    if any(v != "All" for v in dry):
        causes.append(("dryRun", f"Unsupported value: {str(dry)[:80]}: supported values: "
                       '"All"'))
    if body.get("orphanDependents") is not None and body.get("propagationPolicy"):
        causes.append(("propagationPolicy", f"Invalid value: "
                       f"{str(body['propagationPolicy'])[:40]!r}: orphanDependents and "
                       "deletionPropagation cannot be both set"))
    if causes:
        raise invalid("DeleteOptions.meta.k8s.io", "", causes)


def _grace(grace: Any) -> int | None:
    if grace is None:
        return None
    try:
        seconds = int(grace) if str(grace).lstrip("-").isascii() and not isinstance(
            grace, bool) else int("x")
    except (TypeError, ValueError):
        raise bad_request(f"gracePeriodSeconds must be an integer: {str(grace)[:40]!r}") from None
    return min(max(seconds, 0), MAX_GRACE)


def patched(ctype: str, old: dict[str, Any], patch: Any,
            schema: kubeschema.Schema | None = None) -> Any:
    """`old` with a PATCH body applied, by the patch type its Content-Type names; `schema`
    (kubeschema.kind_schema) says where a strategic merge patch merges lists by key.
    Server-side apply (application/apply-patch+yaml) is ssa.py's, not a patch of this kind."""
    try:
        if ctype == "application/json-patch+json":
            if not isinstance(patch, list):
                raise bad_request("a JSON patch must be a list of operations")
            return apply_json_patch(kubeschema.plain(old), kubeschema.plain(patch))
        if ctype == "application/merge-patch+json":
            return kubeobj.merge_patch(old, kubeschema.plain(patch))
        if ctype == "application/strategic-merge-patch+json":
            return strategic.apply(old, kubeschema.plain(patch), schema)
    except strategic.PatchError as err:
        raise KubeError(err.code, "BadRequest" if err.code == 400 else "Invalid",
                        str(err)[:300]) from None
    except (ValueError, KeyError, IndexError, TypeError) as err:
        raise KubeError(422, "Invalid", f"the patch could not be applied: {str(err)[:200]}"
                        ) from None
    if ctype == "application/apply-patch+yaml":  # verbs.py applies to objects themselves
        raise KubeError(415, "UnsupportedMediaType", "server-side apply to a subresource is "
                        "not supported by fargo: apply to the object, or patch the "
                        "subresource")
    raise KubeError(415, "UnsupportedMediaType", f"the body of the request was in an unknown "
                    f"format - accepted media types include: application/json-patch+json, "
                    f"application/merge-patch+json, application/strategic-merge-patch+json "
                    f"(got {ctype[:60]})")
