"""The Kubernetes API calls the router makes, through lightkube, and what their failures mean.

Every write is a read-modify-write bound to the `metadata.resourceVersion` that
was read: when someone else changed the object in between, the API server
answers 409 Conflict and the change is recomputed from a fresh read, up to
`conflict_retries` times. Every failure becomes a `RouterError` naming the
object, the HTTP status, the API server's message and what to do about it; the
credentials (bearer token, client key) never appear in one.
"""

from __future__ import annotations

import copy
import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import httpx2
import yaml
from lightkube import ApiError, Client, ConfigError
from lightkube.config.kubeconfig import KubeConfig, SingleConfig
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.apps_v1 import Deployment, DeploymentScale
from lightkube.types import PatchType

from safeship.config import KubernetesRouterSettings
from safeship.deadlines import DeadlineExceeded, call_with_deadline
from safeship.errors import RouterError
from safeship.redact import redact_text

Mode = Literal["replicas", "gateway-api", "istio", "smi"]
Obj = dict[str, Any]


@dataclass(frozen=True)
class Kind:
    """One API resource the router reads and writes, with the verb it writes with."""

    kind: str
    group: str
    version: str
    plural: str
    write_verb: Literal["update", "patch"]
    subresource: str | None = None

    @property
    def rbac_resource(self) -> str:
        """The name a Role's `resources` list uses (`deployments/scale` for a subresource)."""
        return f"{self.plural}/{self.subresource}" if self.subresource else self.plural

    @property
    def verbs(self) -> tuple[str, str]:
        return ("get", self.write_verb)

    def describe(self, namespace: str, name: str) -> str:
        sub = f"/{self.subresource}" if self.subresource else ""
        return f"{self.kind} {namespace}/{name}{sub}"


# networking.istio.io/v1 is Istio's stable API (Istio >= 1.22); v1beta1 has the same
# schema. SMI's own TrafficSplit CRD serves only split.smi-spec.io/v1alpha4 (v1alpha1 to
# v1alpha3 are listed unserved); older meshes may serve an older one (`smi_version`).
HTTPROUTE = Kind("HTTPRoute", "gateway.networking.k8s.io", "v1", "httproutes", "update")
VIRTUALSERVICE = Kind("VirtualService", "networking.istio.io", "v1", "virtualservices", "update")
TRAFFICSPLITS = {
    version: Kind("TrafficSplit", "split.smi-spec.io", version, "trafficsplits", "update")
    for version in ("v1alpha1", "v1alpha2", "v1alpha3", "v1alpha4")
}
TRAFFICSPLIT = TRAFFICSPLITS["v1alpha4"]
# Deployments are only patched (their annotations): a PUT of a whole Deployment through a
# client-side model could drop fields the model does not know.
DEPLOYMENT = Kind("Deployment", "apps", "v1", "deployments", "patch")
DEPLOYMENT_SCALE = Kind("Deployment", "apps", "v1", "deployments", "update", "scale")

KINDS_BY_MODE: dict[Mode, tuple[Kind, ...]] = {
    "replicas": (DEPLOYMENT, DEPLOYMENT_SCALE),
    "gateway-api": (HTTPROUTE,),
    "istio": (VIRTUALSERVICE,),
    "smi": (TRAFFICSPLIT,),
}

_GENERIC = {
    kind: create_namespaced_resource(kind.group, kind.version, kind.kind, kind.plural)
    for kind in (HTTPROUTE, VIRTUALSERVICE, *TRAFFICSPLITS.values())
}


def _load_config(settings: KubernetesRouterSettings) -> SingleConfig:
    """The settings' kubeconfig, else in-cluster config, else $KUBECONFIG / ~/.kube/config."""
    if settings.kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        config = KubeConfig.from_service_account().get()
    else:
        path = settings.kubeconfig or (
            os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or "~/.kube/config"
        )
        config = KubeConfig.from_file(Path(path).expanduser()).get(settings.context)
    if config is None:
        raise ConfigError("the kubeconfig has no context")
    return config


def _secrets_of(config: SingleConfig) -> list[str]:
    """Credential values to scrub from any message, whatever a library put in it."""
    user = config.user
    if user is None:
        return []
    values = [user.token, user.password, user.client_key_data]
    return [v for v in values if v]


class KubeApi:
    """Reads and conditionally writes the router's objects in one namespace."""

    def __init__(self, settings: KubernetesRouterSettings) -> None:
        self.settings = settings
        self.namespace = settings.namespace
        self._client: Client | None = None
        self._secrets: list[str] = []

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- reads and writes ----------------------------------------------------------------

    def get(self, kind: Kind, name: str) -> Obj:
        """The object as a plain JSON dict; RouterError when it cannot be read."""
        client = self._connect()
        resource: Any = {DEPLOYMENT: Deployment, DEPLOYMENT_SCALE: DeploymentScale}.get(kind)
        resource = resource or _GENERIC[kind]
        try:
            found = self._within_deadline(
                lambda: client.get(resource, name, namespace=self.namespace), "get", kind, name
            )
        except Exception as exc:
            raise self._error("get", kind, name, exc) from None
        return _plain(found)

    def modify(self, kind: Kind, name: str, change: Callable[[Obj], bool]) -> Obj:
        """Read, let `change` edit the dict in place, write it back bound to the read version.

        `change` returns False when the object already is as wanted (nothing is written).
        A 409 Conflict re-reads and recomputes, up to `conflict_retries` times. Patched
        kinds (Deployments) write only `metadata.annotations`.
        """
        retries = self.settings.conflict_retries
        for _ in range(retries + 1):
            obj = self.get(kind, name)
            if not change(obj):
                return obj
            try:
                written: Obj = self._within_deadline(
                    functools.partial(self._write, kind, name, obj), kind.write_verb, kind, name
                )
                return written
            except ApiError as exc:
                if exc.status.code != 409:
                    raise self._error(kind.write_verb, kind, name, exc) from None
            except Exception as exc:
                raise self._error(kind.write_verb, kind, name, exc) from None
        raise RouterError(
            f"kubernetes router: {kind.write_verb} {kind.describe(self.namespace, name)} failed: "
            f"HTTP 409 Conflict on each of {retries + 1} attempts (another writer keeps "
            "changing it); retry later, find the other writer (a GitOps controller syncing "
            "the object?), or raise conflict_retries"
        )

    def _write(self, kind: Kind, name: str, obj: Obj) -> Obj:
        client = self._connect()
        written: Any
        if kind is DEPLOYMENT:
            metadata = obj["metadata"]
            patch = {
                "metadata": {
                    "resourceVersion": metadata["resourceVersion"],
                    "annotations": metadata.get("annotations") or {},
                }
            }
            written = client.patch(
                Deployment, name, patch, namespace=self.namespace, patch_type=PatchType.MERGE
            )
        elif kind is DEPLOYMENT_SCALE:
            scale = cast(DeploymentScale, DeploymentScale.from_dict(obj))
            written = client.replace(scale, name, namespace=self.namespace)
        else:
            written = client.replace(_GENERIC[kind](**obj))
        return _plain(written)

    # -- connection and errors -----------------------------------------------------------

    def _within_deadline(self, call: Callable[[], Any], verb: str, kind: Kind, name: str) -> Any:
        """`call()` with `timeout` as its deadline: lightkube's own timeout is per read.

        A call given up on keeps its client busy, so the next call gets a new one.
        """
        what = f"{verb} {kind.describe(self.namespace, name)}"
        try:
            return call_with_deadline(call, self.settings.timeout, what)
        except DeadlineExceeded:
            self._client = None
            raise

    def _connect(self) -> Client:
        """The client, created on first use so a bad kubeconfig is a RouterError, not a crash."""
        if self._client is None:
            try:
                config = _load_config(self.settings)
                self._secrets = _secrets_of(config)
                self._client = Client(
                    config,
                    namespace=self.namespace,
                    timeout=httpx2.Timeout(self.settings.timeout),
                    field_manager="safeship",
                )
            except (ConfigError, OSError, KeyError, ValueError, yaml.YAMLError) as exc:
                text = (
                    f"kubernetes router: cannot load the Kubernetes client configuration "
                    f"({type(exc).__name__}: {exc}); set `kubeconfig` (and `context`) in the "
                    "router settings, or run in a pod with a service account"
                )
                raise RouterError(redact_text(text, self._secrets)) from None
        return self._client

    def _error(self, verb: str, kind: Kind, name: str, exc: Exception) -> RouterError:
        what = f"kubernetes router: {verb} {kind.describe(self.namespace, name)}"
        if isinstance(exc, ApiError):
            code = exc.status.code or 0
            reason = exc.status.reason or ""
            advice = self._advice(code, verb, kind, name)
            text = f"{what} failed: HTTP {code} {reason}: {exc.status.message}; {advice}"
        elif isinstance(exc, httpx2.TimeoutException | DeadlineExceeded):
            text = f"{what} timed out after {self.settings.timeout}s; is the API server reachable?"
        elif isinstance(exc, httpx2.HTTPError):
            text = f"{what} failed: API server unreachable ({type(exc).__name__}: {exc})"
        else:
            text = f"{what}: unexpected answer ({type(exc).__name__}: {exc})"
        return RouterError(redact_text(text, self._secrets))

    def _advice(self, code: int, verb: str, kind: Kind, name: str) -> str:
        where = kind.describe(self.namespace, name)
        if code == 401:
            return (
                "the API server refused the credentials: renew the kubeconfig user's token "
                "or certificate (or the pod's service account token)"
            )
        if code == 403:
            group = kind.group or '""'
            return (
                f"the identity lacks RBAC: it needs verbs {list(kind.verbs)} on resource "
                f"{kind.rbac_resource!r} in API group {group} in namespace {self.namespace}; "
                f"apply deploy/kubernetes/rbac-{self.settings.mode}.yaml"
            )
        if code == 404:
            return (
                f"{where} does not exist: create it (deploy/kubernetes/ has examples), or fix "
                "`namespace`, `name` or `slots` in the router settings; a missing kind means "
                f"the {kind.group}/{kind.version} CRD is not installed"
            )
        if code == 422:
            return (
                f"the API server rejected the {verb} as invalid: fix {where} or the router settings"
            )
        if code == 409:
            return "someone else changed the object meanwhile; retry"
        return "see the API server's message"


def _plain(found: Any) -> Obj:
    """A JSON dict copy of what lightkube returned (a generic dict or a typed model)."""
    if isinstance(found, dict):
        return copy.deepcopy(dict(found))
    return cast(Obj, found.to_dict())
