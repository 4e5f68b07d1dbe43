"""The public specs the test doubles and safeship's requests are checked against.

Grafana and the Kubernetes API cannot run here, so their doubles are written from
the docs; these checks hold the doubles, and what safeship sends them, to the
projects' own schemas (tests/fixtures/specs/README.md names each source):
Gateway API's HTTPRoute CRD, Istio's VirtualService CRD, SMI's TrafficSplit CRDs,
Kubernetes' apps/v1 Deployment and autoscaling/v1 Scale, and Grafana's OpenAPI
models. `tests/conftest.py` runs them on every request and reply of every double
in every test.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

SPECS = Path(__file__).parent / "fixtures" / "specs"


@cache
def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SPECS / name).read_text(encoding="utf-8"))
    return data


def kubernetes_schema(api_version: str, kind: str) -> dict[str, Any] | None:
    """The schema of `kind` at `api_version`, or None when no fixture has it."""
    version = api_version.rpartition("/")[2]
    if (api_version, kind) == ("gateway.networking.k8s.io/v1", "HTTPRoute"):
        return _load("gateway-api-httproute-v1.json")
    if api_version.startswith("networking.istio.io/") and kind == "VirtualService":
        found = _load("istio-virtualservice.json")["versions"].get(version)
        return found["openAPIV3Schema"] if found else None
    if api_version.startswith("split.smi-spec.io/") and kind == "TrafficSplit":
        entry = _load("smi-trafficsplit.json")["versions"].get(version) or {}
        crd = entry.get("head_crd") or {}
        schema: dict[str, Any] | None = crd.get("openAPIV3Schema") or entry.get(
            "x-derived-from-go-types"
        )
        return schema
    if (api_version, kind) == ("apps/v1", "Deployment"):
        return _load("kubernetes-apps-v1-deployment.json")
    if (api_version, kind) == ("autoscaling/v1", "Scale"):
        return _load("kubernetes-autoscaling-v1-scale.json")
    return None


def _problems(schema: dict[str, Any], value: object, what: str) -> list[str]:
    return [
        f"{what} {'.'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
        for error in Draft202012Validator(schema).iter_errors(value)
    ]


def kubernetes_problems(obj: object, where: str = "") -> list[str]:
    """What the object's own schema says is wrong with it (every field, nested)."""
    if not isinstance(obj, dict):
        return [f"{where} not an object: {obj!r}"]
    api_version, kind = str(obj.get("apiVersion", "")), str(obj.get("kind", ""))
    schema = kubernetes_schema(api_version, kind)
    if schema is None:
        return [f"{where} no schema for {api_version} {kind}"]
    return _problems(schema, obj, f"{where} {kind}".strip())


# --- Grafana --------------------------------------------------------------------------------

_REQUESTS = {
    ("POST", re.compile(r"^/api/dashboards/db$")): "SaveDashboardCommand",
    ("POST", re.compile(r"^/api/annotations$")): "PostAnnotationsCmd",
    ("POST", re.compile(r"^/api/dashboards/uid/[^/]+/restore$")): "RestoreDashboardVersionCommand",
}
_REPLIES = {
    (
        "GET",
        re.compile(r"^/api/dashboards/uid/[^/]+$"),
    ): "#/components/schemas/DashboardFullWithMeta",
    ("GET", re.compile(r"^/api/dashboards/uid/[^/]+/versions/\d+$")): (
        "#/components/schemas/DashboardVersionMeta"
    ),
    ("POST", re.compile(r"^/api/dashboards/db$")): "x-actualPostDashboardReply",
    ("POST", re.compile(r"^/api/dashboards/uid/[^/]+/restore$")): "x-actualPostDashboardReply",
    ("POST", re.compile(r"^/api/annotations$")): "postAnnotationResponse",
}
_VERSIONS = re.compile(r"^/api/dashboards/uid/[^/]+/versions$")


def _grafana(ref: str) -> dict[str, Any]:
    """A schema of Grafana's spec by `#/components/...` path or response name, its $refs
    resolved in the same document."""
    spec = _load("grafana-openapi-subset.json")
    if not ref.startswith("#"):
        content = spec["components"]["responses"][ref]["content"]
        schema: dict[str, Any] = content["application/json"]["schema"]
        return {**schema, "components": spec["components"]}
    return {"$ref": ref, "components": spec["components"]}


def grafana_problems(method: str, path: str, body: object, status: int, reply: object) -> list[str]:
    """What Grafana's OpenAPI models say is wrong with a request or its reply."""
    problems: list[str] = []
    for (verb, pattern), name in _REQUESTS.items():
        if method == verb and pattern.match(path) and body is not None:
            problems += _problems(_grafana(f"#/components/schemas/{name}"), body, f"{path} request")
    if path == "/api/health":
        return problems  # not in Grafana's spec
    if status >= 400:
        return problems + _problems(
            _grafana("#/components/schemas/ErrorResponseBody"), reply, f"{path} HTTP {status} reply"
        )
    if method == "GET" and _VERSIONS.match(path):
        item = "#/components/schemas/DashboardVersionMeta"
        items = reply if isinstance(reply, list) else (reply or {}).get("versions")
        if not isinstance(reply, list):
            problems += _problems(
                _grafana("#/components/schemas/DashboardVersionResponseMeta"), reply, path
            )
        for entry in items if isinstance(items, list) else []:
            problems += _problems(_grafana(item), entry, f"{path} version")
        return problems
    for (verb, pattern), ref in _REPLIES.items():
        if method == verb and pattern.match(path):
            problems += _problems(_grafana(ref), reply, f"{path} reply")
    return problems
