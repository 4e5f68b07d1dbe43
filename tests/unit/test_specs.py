"""The spec checks themselves: they pass what the APIs accept and name what they refuse.

A check that cannot fail proves nothing: each schema is shown a broken object.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from tests import specs

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"


def _manifests() -> list[dict[str, object]]:
    found = []
    for path in sorted(DEPLOY.glob("*.yaml")):
        found += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return found


def test_the_example_manifests_are_what_their_apis_accept() -> None:
    checked = 0
    for doc in _manifests():
        if specs.kubernetes_schema(str(doc["apiVersion"]), str(doc["kind"])) is None:
            continue  # Roles, Services, ...: no fixture, the double does not serve them
        assert specs.kubernetes_problems(doc) == [], doc["kind"]
        checked += 1
    assert checked >= 5


@pytest.mark.parametrize(
    ("kind", "break_it", "named"),
    [
        ("HTTPRoute", lambda o: o["spec"]["rules"][0]["backendRefs"][0].update(weight=-1),
         "backendRefs.0.weight: -1 is less than the minimum of 0"),
        ("VirtualService", lambda o: o["spec"]["http"][0]["route"][0].update(weight="ten"),
         "route.0.weight: 'ten' is not of type 'integer'"),
        ("TrafficSplit", lambda o: o["spec"].pop("service"), "'service' is a required property"),
        ("Deployment", lambda o: o["spec"].update(replicas="3"), "replicas: '3' is not of type"),
    ],
)  # fmt: skip
def test_each_schema_names_what_is_wrong(kind: str, break_it: object, named: str) -> None:
    doc = next(d for d in _manifests() if d["kind"] == kind)
    assert callable(break_it)
    break_it(doc)
    problems = specs.kubernetes_problems(doc)
    assert any(named in p for p in problems), problems


def test_an_smi_version_without_a_crd_schema_is_checked_by_its_go_types() -> None:
    split = {
        "apiVersion": "split.smi-spec.io/v1alpha1",
        "kind": "TrafficSplit",
        "metadata": {"name": "s"},
        "spec": {"service": "s", "backends": [{"service": "a", "weight": "500m"}]},
    }
    assert specs.kubernetes_problems(split) == []
    split["spec"]["backends"][0]["weight"] = "half"  # type: ignore[index]
    assert specs.kubernetes_problems(split)


def test_grafana_requests_and_replies_are_checked_by_its_models() -> None:
    ok = {"dashboardUID": "a", "time": 1, "text": "deploy", "tags": ["deploy"]}
    assert (
        specs.grafana_problems("POST", "/api/annotations", ok, 200, {"id": 1, "message": "m"}) == []
    )
    no_text = {"dashboardUID": "a", "time": 1}
    assert specs.grafana_problems(
        "POST", "/api/annotations", no_text, 200, {"id": 1, "message": "m"}
    )
    versions = [{"version": "7", "uid": "a"}]
    assert specs.grafana_problems("GET", "/api/dashboards/uid/a/versions", None, 200, versions)
    reply = {"status": "success", "version": 2, "id": 1, "uid": "a", "url": "/d/a"}
    problems = specs.grafana_problems("POST", "/api/dashboards/db", {"dashboard": {}}, 200, reply)
    assert any("'slug' is a required property" in p for p in problems)
    assert specs.grafana_problems("GET", "/api/dashboards/uid/a", None, 404, {"msg": "x"})
