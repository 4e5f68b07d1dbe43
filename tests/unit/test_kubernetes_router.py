"""KubernetesRouter (all four modes) against the in-process Kubernetes API double.

The objects are the examples in deploy/kubernetes/, so the examples are checked to
be valid and usable too; the RBAC manifests there are checked against the verbs
the router really calls.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from safeship.config import KubernetesRouterSettings
from safeship.errors import RouterError
from safeship.routers import build_router
from safeship.routers.kubernetes import RBAC_VERBS, STABLE_SLOT, KubernetesRouter
from safeship.testing_kubernetes import KubernetesApiDouble

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
TOKEN = "kubetoken-sekrit-9f8e7d6c5b4a"
NS = "shop"

# mode -> (example file, plural, object name, slots)
ROUTES: dict[str, tuple[str, str, str, tuple[str, str]]] = {
    "gateway-api": (
        "httproute.yaml",
        "httproutes",
        "checkout",
        ("checkout-blue", "checkout-green"),
    ),
    "istio": ("virtualservice.yaml", "virtualservices", "checkout", ("blue", "green")),
    "smi": ("trafficsplit.yaml", "trafficsplits", "checkout", ("checkout-blue", "checkout-green")),
}
MODES = [*ROUTES, "replicas"]
SEEDED = {"Deployment", "HTTPRoute", "VirtualService", "TrafficSplit"}


def manifests(name: str) -> list[dict[str, Any]]:
    with (DEPLOY / name).open() as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc]


@pytest.fixture
def api() -> Iterator[KubernetesApiDouble]:
    with KubernetesApiDouble(token=TOKEN) as double:
        for name in (
            "deployments.yaml",
            "httproute.yaml",
            "virtualservice.yaml",
            "trafficsplit.yaml",
        ):
            for doc in manifests(name):
                if doc["kind"] in SEEDED:
                    double.put_object(doc)
        yield double


RouterFactory = Callable[..., KubernetesRouter]


@pytest.fixture
def make_router(api: KubernetesApiDouble, tmp_path: Path) -> Iterator[RouterFactory]:
    kubeconfig = api.kubeconfig(tmp_path / "kubeconfig", namespace=NS)
    made: list[KubernetesRouter] = []

    def make(mode: str, **overrides: Any) -> KubernetesRouter:
        fields: dict[str, Any] = {"mode": mode, "namespace": NS, "kubeconfig": str(kubeconfig)}
        if mode == "replicas":
            fields.update(slots=("checkout-blue", "checkout-green"), replicas=10)
        else:
            _, _, name, slots = ROUTES[mode]
            fields.update(name=name, slots=slots)
        fields.update(overrides)
        router = build_router(KubernetesRouterSettings(**fields))
        assert isinstance(router, KubernetesRouter)
        made.append(router)
        return router

    yield make
    for router in made:
        router.close()


def slot_weights(api: KubernetesApiDouble, mode: str) -> dict[str, int]:
    """The weights as stored in the API (replicas: pods), keyed by slot."""
    if mode == "replicas":
        return {
            name: api.get_object("deployments", name, NS)["spec"]["replicas"]
            for name in ("checkout-blue", "checkout-green")
        }
    _, plural, name, _ = ROUTES[mode]
    spec = api.get_object(plural, name, NS)["spec"]
    if mode == "gateway-api":
        return {ref["name"]: ref["weight"] for ref in spec["rules"][0]["backendRefs"]}
    if mode == "istio":
        return {r["destination"]["subset"]: r["weight"] for r in spec["http"][0]["route"]}
    return {b["service"]: b["weight"] for b in spec["backends"]}


def annotations(api: KubernetesApiDouble, mode: str) -> dict[str, str]:
    if mode == "replicas":
        found: dict[str, str] = api.get_object("deployments", "checkout-blue", NS)["metadata"].get(
            "annotations", {}
        )
        return found
    _, plural, name, _ = ROUTES[mode]
    stored: dict[str, str] = api.get_object(plural, name, NS)["metadata"].get("annotations", {})
    return stored


# --- weights ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", list(ROUTES))
def test_route_weights_follow_the_steps_and_back(
    api: KubernetesApiDouble, make_router: RouterFactory, mode: str
) -> None:
    router = make_router(mode)
    stable, canary = ROUTES[mode][3]
    for weight in (10, 50, 100, 0):
        router.set_weight(weight)
        assert router.get_weight() == weight
        assert slot_weights(api, mode) == {stable: 100 - weight, canary: weight}
    assert annotations(api, mode)[STABLE_SLOT] == stable


def test_replicas_weights_are_pod_counts(
    api: KubernetesApiDouble, make_router: RouterFactory
) -> None:
    router = make_router("replicas")
    for weight, canary_pods in ((10, 1), (50, 5), (100, 10), (0, 0)):
        router.set_weight(weight)
        assert router.get_weight() == router.achievable_weight(weight) == weight
        assert slot_weights(api, "replicas") == {
            "checkout-blue": 10 - canary_pods,
            "checkout-green": canary_pods,
        }


def test_replicas_reports_the_achievable_weight(
    api: KubernetesApiDouble, make_router: RouterFactory
) -> None:
    router = make_router("replicas", replicas=3)
    router.set_weight(10)
    # One pod of three is the nearest split that still gives the canary traffic.
    assert slot_weights(api, "replicas") == {"checkout-blue": 2, "checkout-green": 1}
    assert router.achievable_weight(10) == router.get_weight() == 33
    router.set_weight(90)
    assert slot_weights(api, "replicas") == {"checkout-blue": 1, "checkout-green": 2}
    assert router.get_weight() == 67
    # Someone scales by hand: the weight asked for is no longer in force.
    with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        path = f"{api.url}/apis/apps/v1/namespaces/{NS}/deployments/checkout-green/scale"
        scale = client.get(path).json()
        scale["spec"]["replicas"] = 3
        assert client.put(path, json=scale).status_code == 200
    assert router.get_weight() == 75  # 3 of 4 pods


@pytest.mark.parametrize("mode", list(ROUTES))
def test_routes_achieve_every_weight_exactly(make_router: RouterFactory, mode: str) -> None:
    router = make_router(mode)
    assert [router.achievable_weight(w) for w in (0, 15, 33, 100)] == [0, 15, 33, 100]


def test_replicas_needs_two_pods(make_router: RouterFactory) -> None:
    with pytest.raises(ValueError, match="replicas"):
        make_router("replicas", replicas=1)


def test_replicas_scales_up_before_down(
    api: KubernetesApiDouble, make_router: RouterFactory
) -> None:
    router = make_router("replicas")
    router.set_weight(50)
    scale_writes = [w for w in api.writes if w.path.endswith("/scale")]
    assert [w.name for w in scale_writes] == ["checkout-green", "checkout-blue"]


# --- promotion -------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_promote_swaps_slots_and_is_idempotent(
    api: KubernetesApiDouble, make_router: RouterFactory, mode: str
) -> None:
    router = make_router(mode)
    first, second = router.slot_names
    assert router.slots().canary.name == second
    router.set_weight(100)
    router.promote(second)
    assert annotations(api, mode)[STABLE_SLOT] == second
    assert router.get_weight() == 0
    assert (router.slots().stable.name, router.slots().canary.name) == (second, first)
    writes = len(api.writes)
    router.promote(second)  # a repeat (a resumed promotion): nothing to change, no swap back
    assert len(api.writes) == writes
    assert router.slots().stable.name == second
    # The next rollout sends traffic to the old stable slot, which is now the canary.
    router.set_weight(10)
    full = 10 if mode == "replicas" else 100
    expected = {second: full - 10 * full // 100, first: 10 * full // 100}
    assert slot_weights(api, mode) == expected
    # A fresh router (another CI runner) sees the same state on the object.
    assert make_router(mode).slots().canary.name == first
    with pytest.raises(RouterError, match="cannot promote 'purple'"):
        router.promote("purple")


def test_canary_slot_addresses(make_router: RouterFactory) -> None:
    assert make_router("gateway-api").slots().canary.address == (
        "checkout-green.shop.svc.cluster.local"
    )
    assert make_router("smi").slots().stable.address == "checkout-blue.shop.svc.cluster.local"
    assert make_router("istio").slots().canary.address is None
    assert make_router("replicas").slots().canary.address is None


def test_rollback_is_weight_zero(api: KubernetesApiDouble, make_router: RouterFactory) -> None:
    router = make_router("gateway-api")
    router.set_weight(50)
    router.promote(router.slots().stable.name)  # a rollback
    assert router.get_weight() == 0


# --- object shapes ---------------------------------------------------------------------


def test_other_backend_refs_are_untouched(
    api: KubernetesApiDouble, make_router: RouterFactory
) -> None:
    route = api.get_object("httproutes", "checkout", NS)
    route["spec"]["rules"][0]["backendRefs"].append({"name": "mirror", "port": 80, "weight": 7})
    api.put_object(route)
    router = make_router("gateway-api")
    router.set_weight(50)
    refs = api.get_object("httproutes", "checkout", NS)["spec"]["rules"][0]["backendRefs"]
    assert [(r["name"], r["weight"]) for r in refs] == [
        ("checkout-blue", 50),
        ("checkout-green", 50),
        ("mirror", 7),
    ]


@pytest.mark.parametrize("mode", list(ROUTES))
def test_missing_slot_names_what_exists(make_router: RouterFactory, mode: str) -> None:
    router = make_router(mode, slots=(ROUTES[mode][3][0], "purple"))
    with pytest.raises(RouterError, match=r"purple.*entries are named") as caught:
        router.set_weight(10)
    assert ROUTES[mode][3][1] in str(caught.value)


def test_rule_out_of_range(make_router: RouterFactory) -> None:
    with pytest.raises(RouterError, match=r"1 rule\(s\).*rule 3"):
        make_router("gateway-api", rule=3).get_weight()


def test_istio_refuses_when_other_destinations_hold_weight(
    api: KubernetesApiDouble, make_router: RouterFactory
) -> None:
    service = api.get_object("virtualservices", "checkout", NS)
    route = service["spec"]["http"][0]["route"]
    route[0]["weight"] = 90
    route.append({"destination": {"host": "checkout", "subset": "legacy"}, "weight": 10})
    api.put_object(service)
    with pytest.raises(RouterError, match=r"weight/\(sum of all weights\).*take a share"):
        make_router("istio").set_weight(10)


def test_relative_weights_written_by_others_are_read_as_shares(
    api: KubernetesApiDouble, make_router: RouterFactory
) -> None:
    """Istio, Gateway API and SMI weights are relative: 1 and 3 is a 75% canary."""
    for mode, (_, plural, name, (_stable, canary)) in ROUTES.items():
        obj = api.get_object(plural, name, NS)
        spec = obj["spec"]
        entries = (
            spec["backends"]
            if mode == "smi"
            else spec["rules" if mode == "gateway-api" else "http"][0][
                "backendRefs" if mode == "gateway-api" else "route"
            ]
        )
        for entry in entries:
            entry["weight"] = 3 if canary in str(entry) else 1
        api.put_object(obj)
        assert make_router(mode).get_weight() == 75, mode


def test_the_istio_webhook_takes_relative_weights_and_refuses_what_istio_refuses(
    api: KubernetesApiDouble,
) -> None:
    service = api.get_object("virtualservices", "checkout", NS)
    route = service["spec"]["http"][0]["route"]
    path = f"{api.url}/apis/networking.istio.io/v1/namespaces/{NS}/virtualservices/checkout"
    with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        for weights, refusal in (((1, 3), None), ((0, 0), "total destination weight = 0"),
                                 ((-1, 101), "weight -1 < 0")):  # fmt: skip
            route[0]["weight"], route[1]["weight"] = weights
            service["metadata"] = client.get(path).json()["metadata"]
            answer = client.put(path, json=service)
            if refusal is None:
                assert answer.status_code == 200, answer.text
            else:
                assert answer.status_code == 400
                assert refusal in answer.json()["message"]


@pytest.mark.parametrize("version", ["v1alpha1", "v1alpha2", "v1alpha3", "v1alpha4"])
def test_smi_at_the_version_the_cluster_serves(
    api: KubernetesApiDouble, make_router: RouterFactory, version: str
) -> None:
    api.smi_versions = (version,)
    if version == "v1alpha1":  # quantities, as v1alpha1 wrote them
        split = api.get_object("trafficsplits", "checkout", NS)
        split["apiVersion"] = f"split.smi-spec.io/{version}"
        split["spec"]["backends"][0]["weight"] = "900m"
        split["spec"]["backends"][1]["weight"] = "100m"
        api.put_object(split)
    router = make_router("smi", smi_version=version)
    assert router.get_weight() == (10 if version == "v1alpha1" else 0)
    router.set_weight(50)
    assert router.get_weight() == 50
    written = api.writes_to("trafficsplits", "checkout")[-1]
    assert [b["weight"] for b in written["spec"]["backends"]] == [50, 50]
    assert api.requests[-1][1].startswith(f"/apis/split.smi-spec.io/{version}/")


def test_smi_at_a_version_the_cluster_does_not_serve_says_so(
    make_router: RouterFactory,
) -> None:
    """SMI's own CRD serves only v1alpha4: v1alpha2 is a 404 on every call."""
    with pytest.raises(RouterError, match=r"split.smi-spec.io/v1alpha2 CRD is not installed"):
        make_router("smi", smi_version="v1alpha2").get_weight()


@pytest.mark.off_spec  # a weight no quantity parser reads
def test_an_smi_quantity_weight_that_is_no_quantity_is_refused(
    api: KubernetesApiDouble, make_router: RouterFactory
) -> None:
    api.smi_versions = ("v1alpha1",)
    split = api.get_object("trafficsplits", "checkout", NS)
    split["apiVersion"] = "split.smi-spec.io/v1alpha1"
    split["spec"]["backends"][0]["weight"] = "1e3"
    api.put_object(split, validate=False)
    with pytest.raises(RouterError, match="must be a quantity such as 100 or 500m, found '1e3'"):
        make_router("smi", smi_version="v1alpha1").get_weight()


# --- API failures ----------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_conflicts_are_retried(
    api: KubernetesApiDouble, make_router: RouterFactory, mode: str
) -> None:
    router = make_router(mode)
    api.conflict_next(2)
    router.set_weight(50)
    assert router.get_weight() == 50


@pytest.mark.parametrize("mode", MODES)
def test_conflicts_exhausted_raise(
    api: KubernetesApiDouble, make_router: RouterFactory, mode: str
) -> None:
    router = make_router(mode, conflict_retries=2)
    api.conflict_next(100)
    with pytest.raises(RouterError, match=r"409 Conflict on each of 3 attempts.*conflict_retries"):
        router.set_weight(50)
    written = [m for m, _ in api.requests if m in ("PUT", "PATCH")]
    assert len(written) == 3


@pytest.mark.parametrize("mode", MODES)
def test_forbidden_names_the_rbac_needed(
    api: KubernetesApiDouble, make_router: RouterFactory, mode: str
) -> None:
    router = make_router(mode)
    api.grants = {resource: {"get"} for _, resource in RBAC_VERBS[mode]}
    with pytest.raises(RouterError) as caught:
        router.set_weight(10)
    message = str(caught.value)
    assert "HTTP 403 Forbidden" in message
    assert "cannot" in message  # the API server's own words
    assert f"deploy/kubernetes/rbac-{mode}.yaml" in message
    assert "'update'" in message or "'patch'" in message
    assert router.health().ok  # reading is still allowed


def test_not_found(make_router: RouterFactory) -> None:
    router = make_router("gateway-api", name="nope")
    with pytest.raises(RouterError, match=r'HTTP 404 NotFound: .*"nope" not found.*does not exist'):
        router.get_weight()
    health = router.health()
    assert not health.ok
    assert "404" in health.detail


@pytest.mark.off_spec  # an object stored before the CRD tightened its schema
def test_invalid_is_surfaced(api: KubernetesApiDouble, make_router: RouterFactory) -> None:
    route = api.get_object("httproutes", "checkout", NS)
    route["spec"]["rules"][0]["backendRefs"].append(
        {"name": "old", "port": 80, "weight": 2_000_000}
    )
    api.put_object(route, validate=False)
    with pytest.raises(RouterError) as caught:
        make_router("gateway-api").set_weight(10)
    message = str(caught.value)
    assert "HTTP 422 Invalid" in message
    assert "spec.rules[0].backendRefs[2].weight" in message
    assert "less than or equal to 1000000" in message


def test_unauthorized_and_the_token_never_shows(
    api: KubernetesApiDouble, make_router: RouterFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    router = make_router("gateway-api")
    texts = [router.health().detail]
    api.grants = {}
    for call in (router.get_weight, lambda: router.set_weight(10)):
        with pytest.raises(RouterError) as caught:
            call()
        texts.append(str(caught.value))
    api.grants = None
    api.token = "rotated-token-0000"
    with pytest.raises(
        RouterError, match=r"HTTP 401 Unauthorized.*refused the credentials"
    ) as caught:
        router.set_weight(10)
    texts += [str(caught.value), router.health().detail, caplog.text]
    assert all(TOKEN not in text for text in texts)


def test_health_never_raises(
    api: KubernetesApiDouble, make_router: RouterFactory, tmp_path: Path
) -> None:
    assert make_router("smi").health().ok
    broken = make_router("smi", kubeconfig=str(tmp_path / "missing"))
    health = broken.health()
    assert not health.ok
    assert "kubeconfig" in health.detail
    router = make_router("istio")
    api.stop()
    health = router.health()
    assert not health.ok
    assert "unreachable" in health.detail


# --- the double itself -----------------------------------------------------------------


def test_double_enforces_versions_and_schema(api: KubernetesApiDouble) -> None:
    path = f"{api.url}/apis/gateway.networking.k8s.io/v1/namespaces/{NS}/httproutes/checkout"
    with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
        route = client.get(path).json()
        stale = dict(route, metadata=dict(route["metadata"], resourceVersion="1"))
        answer = client.put(path, json=stale)
        assert (answer.status_code, answer.json()["reason"]) == (409, "Conflict")
        unversioned = dict(route, metadata={"name": "checkout", "namespace": NS})
        assert client.put(path, json=unversioned).status_code == 422
        route["spec"]["rules"][0]["backendRefs"][0]["weight"] = "50"
        answer = client.put(path, json=route)
        assert answer.status_code == 422
        cause = answer.json()["details"]["causes"][0]
        assert cause["field"] == "spec.rules[0].backendRefs[0].weight"
        route["spec"]["rules"][0]["backendRefs"][0]["weight"] = 50
        answer = client.put(path, json=route)
        assert answer.status_code == 200
        assert int(answer.json()["metadata"]["resourceVersion"]) > int(
            route["metadata"]["resourceVersion"]
        )
        assert client.get(path.replace("checkout", "gone")).status_code == 404
        strategic = {"Content-Type": "application/strategic-merge-patch+json"}
        assert client.patch(path, content=b"{}", headers=strategic).status_code == 415
        vs = f"{api.url}/apis/networking.istio.io/v1/namespaces/{NS}/virtualservices/checkout"
        service = client.get(vs).json()
        service["spec"]["http"][0]["route"][0]["weight"] = -5
        answer = client.put(vs, json=service)
        assert answer.status_code == 400
        assert "weight -5 < 0" in answer.json()["message"]


# --- manifests -------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_rbac_manifest_grants_exactly_what_the_router_calls(mode: str) -> None:
    docs = manifests(f"rbac-{mode}.yaml")
    assert {d["kind"] for d in docs} == {"ServiceAccount", "Role", "RoleBinding"}
    (role,) = [d for d in docs if d["kind"] == "Role"]
    granted: dict[tuple[str, str], tuple[str, ...]] = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                granted[(group, resource)] = tuple(sorted(rule["verbs"]))
    wanted = {key: tuple(sorted(verbs)) for key, verbs in RBAC_VERBS[mode].items()}
    assert granted == wanted
    (binding,) = [d for d in docs if d["kind"] == "RoleBinding"]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]


@pytest.mark.parametrize("mode", MODES)
def test_rbac_manifest_is_enough_for_a_whole_rollout(
    api: KubernetesApiDouble, make_router: RouterFactory, mode: str
) -> None:
    (role,) = [d for d in manifests(f"rbac-{mode}.yaml") if d["kind"] == "Role"]
    api.grants = {
        resource: set(rule["verbs"]) for rule in role["rules"] for resource in rule["resources"]
    }
    router = make_router(mode)
    assert router.health().ok
    for weight in (10, 50, 100):
        router.set_weight(weight)
    router.promote(router.slots().canary.name)
    router.set_weight(10)
    router.promote(router.slots().stable.name)  # a rollback
    assert router.get_weight() == 0
