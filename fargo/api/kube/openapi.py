"""Just enough OpenAPI v3 for kubectl: it reads whether PATCH takes `fieldValidation` (so it
leaves validation to the server) and falls back to its built-in types for patch building."""

from __future__ import annotations

from typing import Any

HASH = "fargo1"


def root(prefix: str) -> dict[str, Any]:
    return {"paths": {"api/v1": {"serverRelativeURL": f"{prefix}/openapi/v3/api/v1?hash={HASH}"}}}


def _patch(kind: str) -> dict[str, Any]:
    return {"patch": {
        "operationId": f"patchCore{kind}",
        "x-kubernetes-group-version-kind": {"group": "", "version": "v1", "kind": kind},
        "x-kubernetes-action": "patch",
        "parameters": [{"name": "fieldValidation", "in": "query",
                        "schema": {"type": "string", "uniqueItems": True}},
                       {"name": "dryRun", "in": "query",
                        "schema": {"type": "string", "uniqueItems": True}}],
        "responses": {"200": {"description": "OK"}}}}


def core_v1() -> dict[str, Any]:
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.32.0"},
            "paths": {"/api/v1/namespaces/{namespace}/pods/{name}": _patch("Pod"),
                      "/api/v1/namespaces/{name}": _patch("Namespace"),
                      "/api/v1/nodes/{name}": _patch("Node"),
                      "/api/v1/namespaces/{namespace}/configmaps/{name}": _patch("ConfigMap")},
            "components": {"schemas": {}}}
