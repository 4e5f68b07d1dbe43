"""Rollouts as Grafana region annotations on the configured dashboards.

`start_region` adds a region per dashboard uid in `grafana.annotate` when a rollout
starts (tags deploy, environment, service, version); `finish_region` closes it with
`timeEnd` and the outcome. Annotations must never stop a rollout: failures are
returned as warnings (already redacted), never raised.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from safeship.errors import SafeshipError
from safeship.grafana.client import GrafanaClient


@dataclass(frozen=True)
class Regions:
    """The annotations opened for one rollout: dashboard uid -> annotation id."""

    ids: dict[str, int] = field(default_factory=dict)
    started_ms: int = 0
    text: str = ""
    warnings: tuple[str, ...] = ()


def _now_ms(clock: Callable[[], float]) -> int:
    return int(clock() * 1000)


def region_tags(*, service: str, environment: str, version: str) -> list[str]:
    return ["deploy", f"environment:{environment}", f"service:{service}", f"version:{version}"]


def start_region(
    client: GrafanaClient,
    uids: Iterable[str],
    *,
    service: str,
    environment: str,
    version: str,
    deployment_id: str,
    clock: Callable[[], float] = time.time,
) -> Regions:
    """Open a region annotation on each dashboard; the region's end is its start until
    `finish_region` moves it.

    Each dashboard is looked up first: Grafana accepts an annotation on an unknown
    dashboard uid and keeps it as an organization annotation, shown on every dashboard
    that shows those; a missing dashboard is a warning instead."""
    now = _now_ms(clock)
    text = f"safeship rollout of {service} {version} to {environment} ({deployment_id})"
    tags = region_tags(service=service, environment=environment, version=version)
    ids: dict[str, int] = {}
    warnings: list[str] = []
    for uid in uids:
        try:
            if client.get_dashboard(uid) is None:
                warnings.append(
                    f"annotation on dashboard {uid!r} not added: Grafana has no dashboard "
                    f"{uid!r} (push it first, or fix grafana.annotate)"
                )
                continue
            ids[uid] = client.create_annotation(
                dashboard_uid=uid, time_ms=now, time_end_ms=now, tags=tags, text=text
            )
        except SafeshipError as exc:
            warnings.append(f"annotation on dashboard {uid!r} not added: {client.redact(str(exc))}")
    return Regions(ids, now, text, tuple(warnings))


def finish_region(
    client: GrafanaClient,
    regions: Regions,
    *,
    outcome: str,
    reason: str | None = None,
    clock: Callable[[], float] = time.time,
) -> list[str]:
    """Close every region at now with the outcome ("promoted", "rolled back: <reason>")."""
    end = _now_ms(clock)
    shown = outcome.replace("_", " ")
    text = f"{regions.text}: {shown}" + (f" ({reason})" if reason else "")
    warnings: list[str] = []
    for uid, annotation_id in regions.ids.items():
        try:
            client.patch_annotation(annotation_id, time_end_ms=end, text=text)
        except SafeshipError as exc:
            warnings.append(
                f"annotation on dashboard {uid!r} not closed: {client.redact(str(exc))}"
            )
    return warnings
