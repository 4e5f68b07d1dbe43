"""Pushing deployment metrics: the grouping key, and a failed push that only warns."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry

from safeship.config import PushgatewaySettings
from safeship.metrics import DeploymentMetrics
from safeship.metrics.push import push_or_warn
from safeship.testing import MemoryStore

Pushed = list[tuple[str, str, dict[str, str]]]


def capture(pushed: Pushed) -> Callable[..., Callable[[], None]]:
    def handler(
        url: str,
        method: str,
        timeout: float | None,
        headers: list[tuple[str, str]],
        data: bytes,
    ) -> Callable[[], None]:
        return lambda: pushed.append((url, method, dict(headers)))

    return handler


def failing(*_: object, **__: object) -> Callable[[], None]:
    def fail() -> None:
        raise OSError("connection refused")

    return fail


def metrics() -> DeploymentMetrics:
    return DeploymentMetrics(CollectorRegistry(), MemoryStore(), service="checkout")


def test_no_pushgateway_configured_pushes_nothing() -> None:
    pushed: Pushed = []
    assert push_or_warn(PushgatewaySettings(), metrics(), "production", capture(pushed)) is None
    assert pushed == []


def test_push_groups_by_job_service_and_environment_never_the_deployment() -> None:
    pushed: Pushed = []
    settings = PushgatewaySettings(url="http://pgw.test:9091", job="ci")
    assert push_or_warn(settings, metrics(), "production", capture(pushed)) is None
    [(url, method, _)] = pushed
    base, _, key = url.partition("/metrics/")
    parts = key.split("/")
    assert base == "http://pgw.test:9091"
    assert dict(zip(parts[::2], parts[1::2], strict=True)) == {
        "job": "ci",
        "service": "checkout",
        "environment": "production",
    }
    assert method == "PUT"


def test_failed_push_is_a_warning_without_credentials(caplog: pytest.LogCaptureFixture) -> None:
    settings = PushgatewaySettings(url="http://ci:hunter2@pgw.test:9091")
    warning = push_or_warn(settings, metrics(), "production", failing)
    assert warning is not None
    assert "could not push metrics" in warning
    assert "hunter2" not in warning
    assert "hunter2" not in caplog.text
