"""Dashboards as code: push the configured dashboard files to Grafana, roll them back.

`push` validates every file matching `grafana.dashboards`, skips dashboards Grafana
already has unchanged (ignoring `id` and `version`), saves the others with overwrite
into `grafana.folder_uid` with a message naming the deployment and commit, and records
each version change in the history store. A bad file is reported and skipped while
the others are still pushed. `rollback` restores each dashboard a deployment changed
to the version it had before (Grafana saves the restore as a new version).
"""

from __future__ import annotations

import glob
import importlib
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safeship.config import GrafanaSettings
from safeship.grafana.client import (
    GrafanaClient,
    GrafanaConflictError,
    GrafanaError,
    GrafanaIdenticalVersionError,
    GrafanaUnavailableError,
    SavedDashboard,
)
from safeship.metrics.names import GRAFANA_UPDATE_TOTAL
from safeship.store.interface import CounterIncrement, DashboardVersionRecord, Store

# Fields Grafana sets itself: a dashboard is unchanged if everything else is equal.
_VOLATILE = ("id", "version")

Validator = Callable[[object, str], list[str]]


@dataclass(frozen=True)
class DashboardResult:
    """What happened to one dashboard file (or one dashboard, for rollbacks).

    status: created | updated | unchanged | invalid | failed | restored | skipped
    """

    source: str
    status: str
    uid: str | None = None
    title: str | None = None
    version_before: int | None = None
    version_after: int | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status not in ("invalid", "failed")


@dataclass(frozen=True)
class LoadedDashboard:
    source: str
    dashboard: dict[str, Any]


def _validator() -> Validator:
    """`safeship.grafana.dashboards.validate_dashboard` when present, else a minimal check."""
    try:
        module = importlib.import_module("safeship.grafana.dashboards")
    except ImportError:
        return minimal_validate
    found = getattr(module, "validate_dashboard", None)
    return found if callable(found) else minimal_validate


def minimal_validate(data: object, source: str) -> list[str]:
    """The least a dashboard needs to be pushed: a JSON object with a uid and a title."""
    if not isinstance(data, dict):
        return [f"{source}: a dashboard must be a JSON object"]
    problems = []
    for key in ("uid", "title"):
        value = data.get(key)
        if not isinstance(value, str) or not value.strip():
            problems.append(f"{source}: `{key}` is missing or empty")
    return problems


def dashboard_files(patterns: Iterable[str], base: Path) -> list[Path]:
    """Files matching the globs (relative ones under `base`), sorted, each once."""
    found: dict[str, Path] = {}
    for pattern in patterns:
        full = pattern if Path(pattern).is_absolute() else str(base / pattern)
        for name in glob.glob(full, recursive=True):
            path = Path(name)
            if path.is_file():
                found.setdefault(str(path.resolve()), path)
    return sorted(found.values())


def load_dashboards(
    paths: Iterable[Path], validate: Validator | None = None
) -> tuple[list[LoadedDashboard], list[DashboardResult]]:
    """Parse and validate each file: the valid dashboards, and a result per invalid file."""
    validate = validate or _validator()
    loaded: list[LoadedDashboard] = []
    invalid: list[DashboardResult] = []
    seen: dict[str, str] = {}
    for path in paths:
        source = str(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            detail = f"{source}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}"
            invalid.append(DashboardResult(source, "invalid", detail=detail))
            continue
        except (OSError, UnicodeDecodeError) as exc:
            invalid.append(
                DashboardResult(source, "invalid", detail=f"{source}: cannot read: {exc}")
            )
            continue
        problems = validate(data, source)
        if problems:
            invalid.append(DashboardResult(source, "invalid", detail="; ".join(problems)))
            continue
        assert isinstance(data, dict)
        uid = str(data["uid"])
        if uid in seen:
            detail = f"{source}: uid {uid!r} is also the uid of {seen[uid]}"
            invalid.append(DashboardResult(source, "invalid", uid=uid, detail=detail))
            continue
        seen[uid] = source
        loaded.append(LoadedDashboard(source, data))
    return loaded, invalid


def _comparable(dashboard: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in dashboard.items() if k not in _VOLATILE}, sort_keys=True)


def _save(
    client: GrafanaClient,
    uid: str,
    dashboard: dict[str, Any],
    version: int | None,
    folder_uid: str | None,
    message: str,
) -> SavedDashboard:
    """Save over `version` (the one just read), never with overwrite: with it, Grafana's
    SQL store would save a dashboard over another of the same title in the folder, taking
    that one's uid. A change made in Grafana in between (version-mismatch) is read again
    once; a title clash is refused (name-exists) and said so."""
    body = {k: v for k, v in dashboard.items() if k not in ("id", "version")}
    for attempt in range(2):
        if version is not None:
            body["version"] = version
        try:
            return client.save_dashboard(body, folder_uid, message, overwrite=False)
        except GrafanaConflictError as exc:
            if exc.reason != "version-mismatch" or attempt:
                raise
            current = client.get_dashboard(uid)
            version = _opt_int(current[0].get("version")) if current else None
    raise AssertionError("unreachable")  # pragma: no cover


def push_message(deployment_id: str, commit: str | None) -> str:
    message = f"safeship deployment {deployment_id}"
    return f"{message} (commit {commit})" if commit else message


def push(
    settings: GrafanaSettings,
    client: GrafanaClient,
    store: Store,
    *,
    service: str,
    deployment_id: str,
    commit: str | None,
    base: Path | None = None,
    clock: Callable[[], float] = time.time,
) -> list[DashboardResult]:
    """Push every configured dashboard file; one result per file, invalid ones included.

    A dashboard Grafana refuses (4xx) fails alone; Grafana becoming unreachable raises
    `GrafanaUnavailableError` (the versions pushed until then are recorded).
    """
    paths = dashboard_files(settings.dashboards, base or Path.cwd())
    loaded, results = load_dashboards(paths)
    try:
        client.health()
    except (GrafanaError, GrafanaUnavailableError):
        count_updates(store, service, "push", ["failed"] * len(paths))
        raise
    message = push_message(deployment_id, commit)
    for item in loaded:
        dashboard = item.dashboard
        uid = str(dashboard["uid"])
        title = str(dashboard.get("title", ""))
        try:
            current = client.get_dashboard(uid)
            before: int | None = None
            if current is not None:
                data, meta = current
                before = _opt_int(data.get("version")) or _opt_int(meta.get("version"))
                same_folder = (meta.get("folderUid") or "") == (settings.folder_uid or "")
                if same_folder and _comparable(data) == _comparable(dashboard):
                    results.append(
                        DashboardResult(item.source, "unchanged", uid, title, before, before)
                    )
                    continue
            saved = _save(client, uid, dashboard, before, settings.folder_uid, message)
        except GrafanaError as exc:
            results.append(DashboardResult(item.source, "failed", uid, title, detail=str(exc)))
            continue
        store.add_dashboard_version(
            DashboardVersionRecord(deployment_id, uid, before, saved.version, clock(), "push")
        )
        status = "created" if before is None else "updated"
        results.append(DashboardResult(item.source, status, uid, title, before, saved.version))
    count_updates(store, service, "push", [r.status for r in results])
    return results


def rollback(
    client: GrafanaClient,
    store: Store,
    *,
    service: str,
    deployment_id: str | None = None,
    uid: str | None = None,
    to_version: int | None = None,
    clock: Callable[[], float] = time.time,
) -> list[DashboardResult]:
    """Restore dashboards: every one `deployment_id` pushed, to its version before that
    deployment; or one dashboard `uid` to `to_version`. Each restore is recorded."""
    targets: list[tuple[str, int | None, str]] = []  # uid, version, recorded under
    if deployment_id is not None:
        first: dict[str, DashboardVersionRecord] = {}
        for record in store.dashboard_versions(deployment_id):
            if record.action == "push":
                first.setdefault(record.uid, record)
        targets = [(r.uid, r.version_before, deployment_id) for r in first.values()]
    elif uid is not None and to_version is not None:
        targets = [(uid, to_version, f"manual:{uid}")]
    else:
        raise ValueError("give deployment_id, or uid and to_version")
    try:
        client.health()
    except (GrafanaError, GrafanaUnavailableError):
        count_updates(store, service, "rollback", ["failed"] * len(targets))
        raise
    results: list[DashboardResult] = []
    for target_uid, version, recorded_under in targets:
        source = f"dashboard {target_uid}"
        if version is None:
            detail = "created by this deployment: left in place (nothing to restore)"
            results.append(DashboardResult(source, "skipped", target_uid, detail=detail))
            continue
        try:
            current = client.get_dashboard(target_uid)
            before = _opt_int(current[0].get("version")) if current else None
            restored = client.restore(target_uid, version)
        except GrafanaIdenticalVersionError:
            detail = f"already shows version {version}'s content: nothing to restore"
            results.append(
                DashboardResult(source, "unchanged", target_uid, None, before, before, detail)
            )
            continue
        except GrafanaError as exc:
            results.append(DashboardResult(source, "failed", target_uid, detail=str(exc)))
            continue
        store.add_dashboard_version(
            DashboardVersionRecord(
                recorded_under, target_uid, before, restored, clock(), "rollback"
            )
        )
        detail = f"restored version {version} as version {restored}"
        results.append(
            DashboardResult(source, "restored", target_uid, None, before, restored, detail)
        )
    count_updates(store, service, "rollback", [r.status for r in results])
    return results


def count_updates(store: Store, service: str, action: str, statuses: list[str]) -> None:
    """Add each dashboard's update to `grafana_update_total{action,result}` in the store.

    A dashboard left alone (unchanged, nothing to restore) was not an update attempt;
    one refused, invalid or not reached because Grafana was down is a failed one.
    """
    tally = {"success": 0, "failed": 0}
    for status in statuses:
        if status in ("created", "updated", "restored"):
            tally["success"] += 1
        elif status in ("failed", "invalid"):
            tally["failed"] += 1
    increments = [
        CounterIncrement(service, "", GRAFANA_UPDATE_TOTAL, {"action": action, "result": r}, n)
        for r, n in tally.items()
        if n
    ]
    if increments:
        store.add_to_counters(increments)


def _opt_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
