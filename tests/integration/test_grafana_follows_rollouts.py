"""Grafana follows a rollout: a region annotation for its span, dashboards restored on failure.

The controller runs in virtual time; Grafana is the API double over real HTTP.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from safeship.clock import VirtualClock
from safeship.config import (
    CanaryStrategy,
    EnvironmentConfig,
    GrafanaSettings,
    Hooks,
    LocalRouterSettings,
    ScrapeProviderSettings,
    SecretRef,
    StoreSettings,
)
from safeship.grafana.client import GrafanaClient
from safeship.grafana.follow import DashboardFollower
from safeship.grafana.sync import push
from safeship.rollout.controller import RolloutController, RolloutEvent
from safeship.rollout.machine import Outcome
from safeship.testing import FakeRouter, MemoryStore, SyntheticProvider, Traffic
from safeship.testing_grafana import GrafanaDouble

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
UID = "safeship-deployment-overview"


@pytest.fixture
def grafana() -> Iterator[GrafanaDouble]:
    with GrafanaDouble() as double:
        yield double


def settings() -> EnvironmentConfig:
    return EnvironmentConfig(
        service="checkout",
        environment="production",
        canary=CanaryStrategy(),
        router=LocalRouterSettings(),
        provider=ScrapeProviderSettings(),
        smoke_tests=(),
        hooks=Hooks(),
        store=StoreSettings(),
    )


def run_rollout(
    grafana: GrafanaDouble, dashboards: Path, canary: Traffic
) -> tuple[Outcome | None, MemoryStore]:
    grafana_settings = GrafanaSettings(
        url=grafana.url, token=SecretRef(env="GRAFANA_TOKEN"), dashboards=(str(dashboards),)
    )
    client = GrafanaClient.from_settings(grafana_settings, environ={"GRAFANA_TOKEN": grafana.token})
    assert client is not None
    store = MemoryStore()
    push(grafana_settings, client, store, service="checkout", deployment_id="d0", commit=None)
    # The change being deployed also edits the dashboard.
    data = json.loads(dashboards.read_text())
    data["title"] = "Deployment overview (new)"
    dashboards.write_text(json.dumps(data))
    push(grafana_settings, client, store, service="checkout", deployment_id="d1", commit="abc")
    follower = DashboardFollower(client, grafana_settings, store)

    def on_event(event: RolloutEvent) -> None:
        if event.kind == "started":
            assert follower.started(event.state) == []
        elif event.kind == "finished":
            assert follower.finished(event.state) == []

    clock = VirtualClock()
    router = FakeRouter()
    controller = RolloutController(
        settings(),
        store=store,
        router=router,
        provider=SyntheticProvider(router, clock, canary=canary),
        clock=clock,
        on_event=on_event,
    )
    state = controller.start("v2", deployment_id="d1")
    client.close()
    return state.outcome, store


def test_a_rolled_back_rollout_restores_its_dashboards_and_closes_its_annotation(
    grafana: GrafanaDouble, tmp_path: Path
) -> None:
    dashboards = tmp_path / "deployment-overview.json"
    shutil.copy(ROOT / "dashboards" / "deployment-overview.json", dashboards)
    outcome, store = run_rollout(grafana, dashboards, Traffic(error_ratio=0.05))
    assert outcome is Outcome.ROLLED_BACK
    assert (
        grafana.current(UID)["title"] == "Deployment Overview"
        or "(new)" not in (grafana.current(UID)["title"])
    )
    assert grafana.version_numbers(UID)[-1] == 3  # v1 pushed, v2 pushed, v3 = restore of v1
    [annotation] = grafana.annotations.values()
    assert "deploy" in annotation["tags"]
    assert "environment:production" in annotation["tags"]
    assert annotation["timeEnd"] > annotation["time"]
    assert "rolled back" in annotation["text"]
    restores = [r for r in store.dashboard_versions("d1") if r.action == "rollback"]
    assert [r.uid for r in restores] == [UID]


def test_a_promoted_rollout_keeps_the_new_dashboards(
    grafana: GrafanaDouble, tmp_path: Path
) -> None:
    dashboards = tmp_path / "deployment-overview.json"
    shutil.copy(ROOT / "dashboards" / "deployment-overview.json", dashboards)
    outcome, _ = run_rollout(grafana, dashboards, Traffic())
    assert outcome is Outcome.PROMOTED
    assert grafana.current(UID)["title"] == "Deployment overview (new)"
    [annotation] = grafana.annotations.values()
    assert "promoted" in annotation["text"]
