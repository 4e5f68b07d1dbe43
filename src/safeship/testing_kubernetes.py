"""`KubernetesApiDouble`: an in-process Kubernetes API server double for tests.

This is a double, not an API server: a real HTTP server on 127.0.0.1 (a free
port) answering the REST paths a client such as lightkube uses to read and write
the objects safeship's `kubernetes` router changes, with the API server's status
codes and `Status` bodies:

    /apis/apps/v1/namespaces/{ns}/deployments/{name}            GET PUT PATCH
    /apis/apps/v1/namespaces/{ns}/deployments/{name}/scale      GET PUT
    /apis/gateway.networking.k8s.io/v1/namespaces/{ns}/httproutes/{name}     GET PUT PATCH
    /apis/networking.istio.io/v1/namespaces/{ns}/virtualservices/{name}     GET PUT PATCH
    /apis/split.smi-spec.io/{version}/namespaces/{ns}/trafficsplits/{name}  GET PUT PATCH

What it enforces, as the API server does ("API Concepts", "Kubernetes API
conventions" and each kind's schema):

* optimistic concurrency: a PUT must carry `metadata.resourceVersion` (422 without),
  and a PUT or a merge PATCH whose resourceVersion is not the stored one is 409
  Conflict; every write bumps a cluster-wide resourceVersion (and `generation` when
  the spec changed); the scale subresource shares its Deployment's resourceVersion;
* 404 NotFound for missing objects and unknown paths, 400 BadRequest for a body whose
  name or namespace is not the URL's, 415 for patch types other than merge-patch;
* the schema of the fields the router uses, with 422 Invalid and one cause per field:
  HTTPRoute (Gateway API v1 CRD) rules and backendRefs at most 16 each, backendRef
  `name` required, `weight` an integer 0..1000000, `port` 1..65535, and the CRD's CEL
  rule a weight change can meet: a Service backendRef (the default group and kind)
  needs a `port`; SMI TrafficSplit `service` and `backends` required, backend `service`
  a string and `weight` a non-negative integer (a quantity in v1alpha1), `matches`
  from v1alpha3, served only at the versions in `smi_versions` (SMI's CRD serves
  v1alpha4 alone; the others are 404 as unserved versions are); Deployment and Scale
  `spec.replicas` a non-negative int32; annotations string to string. Istio's checks
  are its validating webhook's, so they answer 400 like a webhook denial: destination
  host required, no negative weight and, with more than one destination, not all zero
  (weights are relative: each destination gets weight/sum);
* an optional bearer token (401 Unauthorized without it) and per-verb RBAC: with
  `grants` set, a verb not granted on a resource (`deployments/scale` for the
  subresource) is 403 Forbidden with the API server's message.

What it does not do: list, watch, create, delete, server-side apply, strategic or
JSON patch, admission beyond the checks above, field managers, defaulting, pods or
controllers (a Deployment's status mirrors its spec at once: every replica is
ready), TLS and client certificates. Tests also get: `requests` (every call),
`writes` (every accepted write with the object after it), `conflict_next(n)` (the
next n writes meet a concurrent writer's change) and `put_object`/`get_object`:

    with KubernetesApiDouble(token="t") as api:
        api.put_object(httproute)
        api.kubeconfig(tmp_path / "kubeconfig")
        api.grants = {"httproutes": {"get"}}          # update is now 403
"""

from __future__ import annotations

import copy
import json
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import yaml

from safeship.testing_http import LoopbackDouble

Obj = dict[str, Any]
# (field path, value, what is wrong)
Problem = tuple[str, Any, str]

_PATH = re.compile(
    r"^/apis/(?P<group>[^/]+)/(?P<version>[^/]+)/namespaces/(?P<ns>[^/]+)/"
    r"(?P<plural>[^/]+)/(?P<name>[^/]+)(?:/(?P<sub>[^/]+))?$"
)
_VERBS = {"GET": "get", "PUT": "update", "PATCH": "patch", "POST": "create", "DELETE": "delete"}
_INT32 = 2**31 - 1


@dataclass(frozen=True)
class _Resource:
    group: str
    version: str
    kind: str
    plural: str
    validate: Callable[[Obj], list[Problem]]
    webhook: Callable[[Obj], list[str]] | None = None
    scale: bool = False

    @property
    def qualified(self) -> str:
        """`httproutes.gateway.networking.k8s.io`, as the API server names resources."""
        return f"{self.plural}.{self.group}"


@dataclass(frozen=True)
class Write:
    """One accepted write: what was called and the stored object after it."""

    method: str
    path: str
    plural: str
    namespace: str
    name: str
    object: Obj


def _int_field(value: Any, field: str, low: int, high: int) -> list[Problem]:
    if isinstance(value, bool) or not isinstance(value, int):
        return [(field, value, f"{field} in body must be of type integer: {_type(value)!r}")]
    if value < low:
        return [(field, value, f"{field} in body should be greater than or equal to {low}")]
    if value > high:
        return [(field, value, f"{field} in body should be less than or equal to {high}")]
    return []


def _type(value: Any) -> str:
    names = {str: "string", bool: "boolean", dict: "object", list: "array", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _list_field(value: Any, field: str, max_items: int | None = None) -> list[Problem]:
    if not isinstance(value, list):
        return [(field, value, f"{field} in body must be of type array: {_type(value)!r}")]
    if max_items is not None and len(value) > max_items:
        return [(field, len(value), f"must have at most {max_items} items")]
    return []


def _validate_metadata(obj: Obj) -> list[Problem]:
    annotations = (obj.get("metadata") or {}).get("annotations")
    if annotations is None:
        return []
    if not isinstance(annotations, dict):
        return [("metadata.annotations", annotations, "must be a map of string to string")]
    return [
        (f"metadata.annotations[{key}]", value, "must be a string")
        for key, value in annotations.items()
        if not isinstance(value, str)
    ]


def _validate_deployment(obj: Obj) -> list[Problem]:
    spec = obj.get("spec") or {}
    problems = [
        (f"spec.{field}", None, "Required value")
        for field in ("selector", "template")
        if not isinstance(spec.get(field), dict)
    ]
    return problems + _int_field(spec.get("replicas", 1), "spec.replicas", 0, _INT32)


def _validate_httproute(obj: Obj) -> list[Problem]:
    # Gateway API v1 HTTPRoute CRD: spec.rules maxItems 16; backendRefs maxItems 16;
    # weight int32 minimum 0 maximum 1000000 (default 1); port 1..65535; name required.
    rules = (obj.get("spec") or {}).get("rules", [])
    problems = _list_field(rules, "spec.rules", 16)
    if problems:
        return problems
    for i, rule in enumerate(rules):
        refs = rule.get("backendRefs", []) if isinstance(rule, dict) else None
        where = f"spec.rules[{i}].backendRefs"
        found = _list_field(refs, where, 16)
        problems += found
        if found or refs is None:
            continue
        for j, ref in enumerate(refs):
            at = f"{where}[{j}]"
            if not isinstance(ref, dict) or not isinstance(ref.get("name"), str) or not ref["name"]:
                problems.append((f"{at}.name", None, "Required value"))
                continue
            if "weight" in ref:
                problems += _int_field(ref["weight"], f"{at}.weight", 0, 1_000_000)
            if "port" in ref:
                problems += _int_field(ref["port"], f"{at}.port", 1, 65535)
            # CEL: (size(self.group) == 0 && self.kind == 'Service') ? has(self.port) : true,
            # after the defaults group "" and kind Service.
            service = ref.get("group", "") == "" and ref.get("kind", "Service") == "Service"
            if service and "port" not in ref:
                problems.append((at, None, "Must have port for Service reference"))
    return problems


def _validate_trafficsplit(version: str) -> Callable[[Obj], list[Problem]]:
    """SMI's TrafficSplit schema at `version` (smi-sdk-go crds/split.yaml and its types):
    `spec.service` and `spec.backends` required; a backend's `service` a string, its
    `weight` an integer (v1alpha2+) or a quantity (v1alpha1); `matches` from v1alpha3,
    each a `{kind: HTTPRouteGroup, name}` (an unknown field is pruned before)."""

    def validate(obj: Obj) -> list[Problem]:
        spec = obj.get("spec") or {}
        problems: list[Problem] = []
        if not isinstance(spec.get("service"), str):
            problems.append(("spec.service", None, "Required value"))
        if version in ("v1alpha1", "v1alpha2"):
            spec.pop("matches", None)  # not in the schema: pruned
        for i, match in enumerate(spec.get("matches") or []):
            if not isinstance(match, dict) or match.get("kind") != "HTTPRouteGroup":
                problems.append((f"spec.matches[{i}].kind", None, "must be HTTPRouteGroup"))
            elif not isinstance(match.get("name"), str):
                problems.append((f"spec.matches[{i}].name", None, "Required value"))
        backends = spec.get("backends")
        if not isinstance(backends, list):
            return [*problems, *_list_field(backends, "spec.backends")]
        for i, backend in enumerate(backends):
            at = f"spec.backends[{i}]"
            if not isinstance(backend, dict) or not isinstance(backend.get("service"), str):
                problems.append((f"{at}.service", None, "Required value"))
                continue
            weight = backend.get("weight")
            if version == "v1alpha1":
                if not _QUANTITY.match(str(weight)) or isinstance(weight, bool):
                    problems.append((f"{at}.weight", weight, "must be a quantity"))
            else:
                problems += _int_field(weight, f"{at}.weight", 0, _INT32)
        return problems

    return validate


_QUANTITY = re.compile(r"^([0-9]+(\.[0-9]*)?|\.[0-9]+)(m|k|M|G)?$")
SMI_VERSIONS = ("v1alpha1", "v1alpha2", "v1alpha3", "v1alpha4")


def _validate_virtualservice_schema(obj: Obj) -> list[Problem]:
    http = (obj.get("spec") or {}).get("http", [])
    problems = _list_field(http, "spec.http")
    for i, rule in enumerate(http if not problems else []):
        route = rule.get("route", []) if isinstance(rule, dict) else None
        problems += _list_field(route, f"spec.http[{i}].route")
    return problems


def _istio_webhook(obj: Obj) -> list[str]:
    # Istio's validation webhook (pkg/config/validation, validateWeight and
    # validateHTTPRouteDestinations): a destination with a host, no negative weight and,
    # with more than one destination, not every weight 0. Weights are relative: each
    # destination gets weight/(sum of all weights) of the requests.
    errors: list[str] = []
    for rule in (obj.get("spec") or {}).get("http", []):
        routes = rule.get("route", [])
        total = 0
        for route in routes:
            destination = route.get("destination")
            if not isinstance(destination, dict) or not destination.get("host"):
                errors.append("destination is required")
            weight = route.get("weight", 0)
            if isinstance(weight, bool) or not isinstance(weight, int):
                errors.append(f"weight {weight!r} is not an integer")
                continue
            if weight < 0:
                errors.append(f"weight {weight} < 0")
            total += weight
        if len(routes) > 1 and total == 0:
            errors.append("total destination weight = 0")
    return errors


_RESOURCES = {
    (r.group, r.version, r.plural): r
    for r in (
        _Resource("apps", "v1", "Deployment", "deployments", _validate_deployment, scale=True),
        _Resource(
            "gateway.networking.k8s.io", "v1", "HTTPRoute", "httproutes", _validate_httproute
        ),
        _Resource(
            "networking.istio.io",
            "v1",
            "VirtualService",
            "virtualservices",
            _validate_virtualservice_schema,
            webhook=_istio_webhook,
        ),
        *(
            _Resource(
                "split.smi-spec.io",
                version,
                "TrafficSplit",
                "trafficsplits",
                _validate_trafficsplit(version),
            )
            for version in SMI_VERSIONS
        ),
    )
}
_BY_KIND = {(f"{r.group}/{r.version}", r.kind): r for r in _RESOURCES.values()}


def _status(code: int, reason: str, message: str, details: Obj | None = None) -> Obj:
    body: Obj = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details is not None:
        body["details"] = details
    return body


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: maps merge, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


class KubernetesApiDouble(LoopbackDouble):
    """The Kubernetes API paths safeship's router uses, in memory over real HTTP.

    `token`: when set, requests must carry `Authorization: Bearer <token>` (else 401).
    `grants`: None allows everything; else resource (`httproutes`, `deployments/scale`)
    -> the verbs allowed (`get`, `update`, `patch`); anything else is 403.
    `user`: the identity 403 messages name.
    """

    def __init__(
        self,
        *,
        token: str | None = None,
        grants: dict[str, set[str]] | None = None,
        user: str = "system:serviceaccount:default:safeship",
        smi_versions: tuple[str, ...] = ("v1alpha4",),
    ) -> None:
        super().__init__()
        self.smi_versions = smi_versions
        self.token = token
        self.grants = grants
        self.user = user
        #: (method, path) of every request received
        self.requests: list[tuple[str, str]] = []
        self.writes: list[Write] = []
        self._objects: dict[tuple[str, str, str], Obj] = {}
        self._revision = 1000
        self._conflicts = 0
        self._lock = threading.Lock()

    # --- lifecycle ----------------------------------------------------------------------

    def handler(self) -> type[BaseHTTPRequestHandler]:
        double = self

        class Handler(_Handler):
            api = double

        return Handler

    # --- helpers for tests --------------------------------------------------------------

    def kubeconfig(self, path: str | Path, namespace: str = "default") -> Path:
        """Write a kubeconfig whose current context points at this double (with the token)."""
        user: Obj = {"token": self.token} if self.token else {}
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "double", "cluster": {"server": self.url}}],
            "users": [{"name": "double", "user": user}],
            "contexts": [
                {
                    "name": "double",
                    "context": {"cluster": "double", "user": "double", "namespace": namespace},
                }
            ],
            "current-context": "double",
        }
        target = Path(path)
        target.write_text(yaml.safe_dump(config))
        return target

    def put_object(self, obj: Obj, *, validate: bool = True) -> Obj:
        """Store `obj` (a manifest dict) as if created; returns it with server fields set.

        `validate=False` seeds an object today's schema rejects, as one stored before a
        CRD upgrade tightened it: the next write to it is then refused (422).
        """
        resource = _BY_KIND[(obj["apiVersion"], obj["kind"])]
        problems = _validate_metadata(obj) + resource.validate(obj)
        if problems and validate:
            raise ValueError(f"invalid {resource.kind}: {problems}")
        stored = copy.deepcopy(obj)
        metadata = stored.setdefault("metadata", {})
        metadata.setdefault("namespace", "default")
        with self._lock:
            metadata.update(
                uid=str(uuid.uuid4()),
                generation=1,
                creationTimestamp="2026-01-01T00:00:00Z",
                resourceVersion=self._next_revision(),
            )
            self._mirror_status(resource, stored)
            self._objects[(resource.plural, metadata["namespace"], metadata["name"])] = stored
            return copy.deepcopy(stored)

    def get_object(self, plural: str, name: str, namespace: str = "default") -> Obj:
        """The stored object (`plural` as in the API path, e.g. `httproutes`); KeyError if none."""
        with self._lock:
            return copy.deepcopy(self._objects[(plural, namespace, name)])

    def conflict_next(self, count: int = 1) -> None:
        """The next `count` writes find their object changed by someone else (409 Conflict)."""
        with self._lock:
            self._conflicts += count

    def writes_to(self, plural: str, name: str) -> list[Obj]:
        """The object after each accepted write to it, oldest first."""
        with self._lock:
            return [
                copy.deepcopy(w.object) for w in self.writes if (w.plural, w.name) == (plural, name)
            ]

    # --- the API, called by the handler -------------------------------------------------

    def handle(
        self, method: str, path: str, auth: str, content_type: str, raw: bytes
    ) -> tuple[int, Obj]:
        with self._lock:
            self.requests.append((method, path))
            if self.token is not None and auth != f"Bearer {self.token}":
                return 401, _status(401, "Unauthorized", "Unauthorized")
            match = _PATH.match(path)
            resource = match and _RESOURCES.get(
                (match.group("group"), match.group("version"), match.group("plural"))
            )
            unserved = (
                resource is not None
                and resource.group == "split.smi-spec.io"
                and resource.version not in self.smi_versions
            )
            if (
                match is None
                or not resource
                or unserved
                or match.group("sub") not in (None, "scale")
            ):
                return 404, _status(
                    404, "NotFound", "the server could not find the requested resource"
                )
            sub = match.group("sub")
            if sub == "scale" and not resource.scale:
                return 404, _status(
                    404, "NotFound", "the server could not find the requested resource"
                )
            ns, name = match.group("ns"), match.group("name")
            verb = _VERBS.get(method, method.lower())
            denied = self._authorize(verb, resource, sub, ns, name)
            if denied is not None:
                return denied
            stored = self._objects.get((resource.plural, ns, name))
            if stored is None:
                return 404, _status(
                    404,
                    "NotFound",
                    f'{resource.qualified} "{name}" not found',
                    {"name": name, "group": resource.group, "kind": resource.plural},
                )
            if method == "GET":
                return 200, self._scale_of(stored) if sub else self._as(resource, stored)
            if method not in ("PUT", "PATCH") or (sub and method != "PUT"):
                return 405, _status(405, "MethodNotAllowed", f"{method} is not supported here")
            try:
                body = json.loads(raw or b"null")
            except ValueError as exc:
                return 400, _status(400, "BadRequest", f"the body is not JSON: {exc}")
            if not isinstance(body, dict):
                return 400, _status(400, "BadRequest", "the body must be a JSON object")
            if self._conflicts:
                # Another writer got there first: the stored version moves on.
                self._conflicts -= 1
                stored["metadata"]["resourceVersion"] = self._next_revision()
            if method == "PATCH":
                return self._patch(resource, stored, content_type, body, path)
            return self._put(resource, stored, sub, body, path)

    def _authorize(
        self, verb: str, resource: _Resource, sub: str | None, ns: str, name: str
    ) -> tuple[int, Obj] | None:
        target = f"{resource.plural}/{sub}" if sub else resource.plural
        if self.grants is None or verb in self.grants.get(target, set()):
            return None
        message = (
            f'{resource.qualified} "{name}" is forbidden: User "{self.user}" cannot {verb} '
            f'resource "{target}" in API group "{resource.group}" in the namespace "{ns}"'
        )
        details = {"name": name, "group": resource.group, "kind": resource.plural}
        return 403, _status(403, "Forbidden", message, details)

    def _put(
        self, resource: _Resource, stored: Obj, sub: str | None, body: Obj, path: str
    ) -> tuple[int, Obj]:
        metadata = body.get("metadata") or {}
        name = stored["metadata"]["name"]
        if metadata.get("name", name) != name or metadata.get("namespace") not in (
            None,
            stored["metadata"]["namespace"],
        ):
            return 400, _status(
                400,
                "BadRequest",
                f"the name of the object ({metadata.get('name')}) does not match the name "
                f"on the URL ({name})",
            )
        version = metadata.get("resourceVersion")
        if sub is None and not version:
            return self._invalid(
                resource,
                name,
                [("metadata.resourceVersion", 0, "must be specified for an update")],
            )
        if version and version != stored["metadata"]["resourceVersion"]:
            return self._conflict(resource, name)
        if sub == "scale":
            replicas = (body.get("spec") or {}).get("replicas")
            problems = _int_field(replicas, "spec.replicas", 0, _INT32)
            if problems:
                return self._invalid(resource, name, problems, kind="Scale.autoscaling")
            updated = copy.deepcopy(stored)
            updated.setdefault("spec", {})["replicas"] = replicas
            status, answer = self._store(resource, stored, updated, "PUT", path)
            return status, self._scale_of(answer) if status == 200 else answer
        updated = copy.deepcopy(body)
        updated["apiVersion"] = f"{resource.group}/{resource.version}"
        updated["kind"] = resource.kind
        return self._store(resource, stored, updated, "PUT", path)

    def _patch(
        self, resource: _Resource, stored: Obj, content_type: str, body: Obj, path: str
    ) -> tuple[int, Obj]:
        if content_type != "application/merge-patch+json":
            return 415, _status(
                415,
                "UnsupportedMediaType",
                f"the double supports merge patches only, not {content_type}",
            )
        name = stored["metadata"]["name"]
        version = (body.get("metadata") or {}).get("resourceVersion")
        if version and version != stored["metadata"]["resourceVersion"]:
            return self._conflict(resource, name)
        return self._store(resource, stored, _merge_patch(stored, body), "PATCH", path)

    def _store(
        self, resource: _Resource, stored: Obj, updated: Obj, method: str, path: str
    ) -> tuple[int, Obj]:
        """Validate `updated`, keep the server-owned fields, bump the version and log it."""
        name = stored["metadata"]["name"]
        problems = _validate_metadata(updated) + resource.validate(updated)
        if problems:
            return self._invalid(resource, name, problems)
        if resource.webhook is not None and (errors := resource.webhook(updated)):
            message = (
                f'admission webhook "validation.{resource.group}" denied the request: '
                f"configuration is invalid: {'; '.join(errors)}"
            )
            return 400, _status(400, "BadRequest", message)
        metadata = updated.setdefault("metadata", {})
        for key in ("name", "namespace", "uid", "creationTimestamp", "generation"):
            metadata[key] = stored["metadata"][key]
        if updated.get("spec") != stored.get("spec"):
            metadata["generation"] = stored["metadata"]["generation"] + 1
        metadata["resourceVersion"] = self._next_revision()
        if "status" in stored:  # status is a subresource: ordinary writes leave it alone
            updated["status"] = copy.deepcopy(stored["status"])
        self._mirror_status(resource, updated)
        stored.clear()
        stored.update(updated)
        namespace = metadata["namespace"]
        self.writes.append(
            Write(method, path, resource.plural, namespace, name, copy.deepcopy(stored))
        )
        return 200, self._as(resource, stored)

    @staticmethod
    def _as(resource: _Resource, stored: Obj) -> Obj:
        """The object as served at `resource`'s version: a CRD whose versions share one
        schema converts with strategy None, which changes only `apiVersion`."""
        served = copy.deepcopy(stored)
        served["apiVersion"] = f"{resource.group}/{resource.version}"
        return served

    def _mirror_status(self, resource: _Resource, obj: Obj) -> None:
        """A Deployment's pods are ready at once: the double runs no controllers."""
        if resource.scale:
            replicas = (obj.get("spec") or {}).get("replicas", 1)
            obj["status"] = {
                "observedGeneration": obj["metadata"]["generation"],
                "replicas": replicas,
                "readyReplicas": replicas,
                "availableReplicas": replicas,
                "updatedReplicas": replicas,
            }

    def _scale_of(self, deployment: Obj) -> Obj:
        metadata = deployment["metadata"]
        labels = ((deployment.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                key: metadata[key]
                for key in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            },
            "spec": {"replicas": (deployment.get("spec") or {}).get("replicas", 1)},
            "status": {
                "replicas": (deployment.get("status") or {}).get("replicas", 0),
                "selector": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
            },
        }

    def _conflict(self, resource: _Resource, name: str) -> tuple[int, Obj]:
        message = (
            f'Operation cannot be fulfilled on {resource.qualified} "{name}": the object has '
            "been modified; please apply your changes to the latest version and try again"
        )
        details = {"name": name, "group": resource.group, "kind": resource.plural}
        return 409, _status(409, "Conflict", message, details)

    def _invalid(
        self, resource: _Resource, name: str, problems: list[Problem], kind: str | None = None
    ) -> tuple[int, Obj]:
        causes = [
            {
                "reason": "FieldValueInvalid",
                "message": f"Invalid value: {json.dumps(value)}: {detail}",
                "field": field,
            }
            for field, value, detail in problems
        ]
        listed = ", ".join(f"{c['field']}: {c['message']}" for c in causes)
        label = kind or f"{resource.kind}.{resource.group}"
        details = {"name": name, "group": resource.group, "kind": resource.kind, "causes": causes}
        return 422, _status(422, "Invalid", f'{label} "{name}" is invalid: {listed}', details)

    def _next_revision(self) -> str:
        self._revision += 1
        return str(self._revision)


class _Handler(BaseHTTPRequestHandler):
    api: KubernetesApiDouble
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; without this, Nagle's algorithm meets the
    # client's delayed ACK and every keep-alive request waits ~40 ms.
    disable_nagle_algorithm = True

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        path = self.path.split("?", 1)[0]
        content_type = (self.headers.get("Content-Type") or "").split(";", 1)[0].strip()
        status, body = self.api.handle(
            self.command, path, self.headers.get("Authorization") or "", content_type, raw
        )
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_PUT = do_PATCH = do_POST = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read `requests` instead of stderr."""
