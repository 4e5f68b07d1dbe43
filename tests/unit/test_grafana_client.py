"""The Grafana client against GrafanaDouble and httpx.MockTransport; sync, annotations and
the dashboard-version records of the store (migration 0003)."""

from __future__ import annotations

import json
import sqlite3
import urllib.parse
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy
from alembic import command
from alembic.script import ScriptDirectory

from safeship.config import GrafanaSettings
from safeship.errors import ConfigError, PermanentError, TransientError
from safeship.grafana.annotations import finish_region, start_region
from safeship.grafana.client import (
    GrafanaClient,
    GrafanaConflictError,
    GrafanaError,
    GrafanaIdenticalVersionError,
    GrafanaNotFoundError,
    GrafanaUnavailableError,
)
from safeship.grafana.sync import push, rollback
from safeship.store import migrations, open_store
from safeship.store.interface import DashboardVersionRecord, DeploymentRecord, Store
from safeship.testing import MemoryStore
from safeship.testing_grafana import BEHAVIOURS, GrafanaDouble

TOKEN = "glsa_canary_T0KEN_must_never_show_4f2a9c"


def board(uid: str, title: str | None = None, **extra: Any) -> dict[str, Any]:
    """The least dashboard push accepts (Grafana's schema requires the last three keys)."""
    shown = f"Board {uid}" if title is None else title
    required = {"schemaVersion": 39, "templating": {"list": []}, "annotations": {"list": []}}
    return {"uid": uid, "title": shown, "panels": [], **required, **extra}


@pytest.fixture(params=sorted(BEHAVIOURS))
def grafana(request: pytest.FixtureRequest) -> Iterator[GrafanaDouble]:
    with GrafanaDouble(token=TOKEN, version=request.param, viewer_token="viewer") as g:
        yield g


def client_for(url: str, token: str | None = TOKEN, **kwargs: Any) -> GrafanaClient:
    sleeps: list[float] = []
    kwargs.setdefault("sleep", sleeps.append)
    return GrafanaClient(url, token, timeout=2.0, **kwargs)


# --- against the double -------------------------------------------------------------------


def test_health_then_save_get_and_versions_in_both_shapes_across_pages(
    grafana: GrafanaDouble,
) -> None:
    with client_for(grafana.url) as client:
        assert client.health().database == "ok"
        assert client.get_dashboard("a") is None
        for n in range(5):
            saved = client.save_dashboard(board("a", panels=[n]), "safeship", f"m{n}")
            assert saved.version == n + 1
        found = client.get_dashboard("a")
        assert found is not None
        assert found[0]["panels"] == [4]
        versions = client.versions("a")
    assert [v.version for v in versions] == [5, 4, 3, 2, 1]
    assert versions[0].message == "m4"
    # page size 2: five versions took at least three requests
    assert sum(1 for _, p in grafana.requests if p.endswith("/versions")) >= 3


def test_get_version_has_the_data_and_restore_creates_a_new_version(
    grafana: GrafanaDouble,
) -> None:
    with client_for(grafana.url) as client:
        client.save_dashboard(board("a", panels=["old"]), None, "one")
        client.save_dashboard(board("a", panels=["new"]), None, "two")
        old = client.get_version("a", 1)
        assert old.data is not None
        assert old.data["panels"] == ["old"]
        assert client.restore("a", 1) == 3
        restored = client.get_version("a", 3)
        with pytest.raises(GrafanaNotFoundError):
            client.restore("a", 42)
    assert restored.restored_from == 1
    assert restored.data is not None
    assert restored.data["panels"] == ["old"]


def test_a_stale_save_without_overwrite_is_a_conflict_explained_in_words(
    grafana: GrafanaDouble,
) -> None:
    with client_for(grafana.url) as client:
        client.save_dashboard(board("a"), None, "one")
        client.save_dashboard(board("a", panels=[1]), None, "changed in the UI")
        with pytest.raises(GrafanaConflictError) as caught:
            client.save_dashboard(board("a", version=1), None, "stale", overwrite=False)
        assert caught.value.reason == "version-mismatch"
        if not grafana.behaviour.title_lookup:  # Grafana 12: 409, and no title lookup
            assert caught.value.status == 409
            assert "Use overwrite flag to update" in str(caught.value)
            client.save_dashboard(board("b", title="Board a"), None, "same title", overwrite=False)
            return
        with pytest.raises(GrafanaConflictError, match="same title already exists") as clash:
            client.save_dashboard(board("b", title="Board a"), None, "clash", overwrite=False)
    assert "changed in Grafana since" in str(caught.value)
    assert "version-mismatch" in str(caught.value)
    assert caught.value.status == 412
    assert clash.value.reason == "name-exists"


def test_every_version_is_listed_in_every_paging_shape(grafana: GrafanaDouble) -> None:
    """150 versions, pages of up to 100: all 150 come back, newest first, each once."""
    grafana.page_size = 100
    with client_for(grafana.url) as client:
        for n in range(150):
            client.save_dashboard(board("a", panels=[n]), None, f"save {n}")
        listed = client.versions("a")
    assert [v.version for v in listed] == list(range(150, 0, -1))
    pages = [p for m, p in grafana.requests if p == "/api/dashboards/uid/a/versions"]
    assert len(pages) <= 3


def test_a_missing_version_is_not_found_and_not_retried(grafana: GrafanaDouble) -> None:
    """Grafana answers GET of a missing version with 500 "Dashboard version N not found"."""
    with client_for(grafana.url) as client:
        client.save_dashboard(board("a"), None, "one")
        before = len(grafana.requests)
        with pytest.raises(GrafanaNotFoundError, match="Dashboard version 9 not found"):
            client.get_version("a", 9)
    assert len(grafana.requests) == before + 1


def test_restoring_the_version_shown_is_refused_by_newer_grafana_only(
    grafana: GrafanaDouble,
) -> None:
    with client_for(grafana.url) as client:
        client.save_dashboard(board("a", panels=["old"]), None, "one")
        client.save_dashboard(board("a", panels=["new"]), None, "two")
        assert client.restore("a", 1) == 3
        if grafana.behaviour.refuses_identical_restore:
            with pytest.raises(GrafanaIdenticalVersionError, match="identical"):
                client.restore("a", 1)
            assert grafana.version_numbers("a") == [1, 2, 3]
        else:
            assert client.restore("a", 1) == 4


def test_an_annotation_on_an_unknown_dashboard_is_kept(grafana: GrafanaDouble) -> None:
    with client_for(grafana.url) as client:
        annotation = client.create_annotation(dashboard_uid="gone", time_ms=1, text="deploy")
    assert next(grafana.annotation_list())["id"] == annotation


def test_the_save_reply_is_read_with_or_without_folder_uid(grafana: GrafanaDouble) -> None:
    with client_for(grafana.url) as client:
        saved = client.save_dashboard(board("a"), "safeship", "one")
    assert (saved.uid, saved.version) == ("a", 1)
    assert saved.url == "/d/a/board-a"


def test_refusals_are_permanent_and_not_retried(grafana: GrafanaDouble) -> None:
    with client_for(grafana.url) as client:
        client.health()
        before = len(grafana.requests)
        with pytest.raises(GrafanaError, match="title cannot be empty"):
            client.save_dashboard(board("a", title=""), None, "m")
        with pytest.raises(GrafanaNotFoundError, match="Folder not found"):
            client.save_dashboard(board("a"), "no-such-folder", "m")
        assert len(grafana.requests) == before + 2
    unauthorized_client = client_for(grafana.url, token="wrong-token-value")
    with pytest.raises(GrafanaError, match="401") as unauthorized:
        unauthorized_client.get_dashboard("a")
    unauthorized_client.close()
    viewer = client_for(grafana.url, token="viewer")
    with pytest.raises(GrafanaError, match="403"):
        viewer.save_dashboard(board("a"), None, "m")
    viewer.close()
    assert isinstance(unauthorized.value, PermanentError)


def test_5xx_is_retried_with_backoff_then_succeeds(grafana: GrafanaDouble) -> None:
    sleeps: list[float] = []
    with client_for(grafana.url, sleep=sleeps.append, retries=3) as client:
        client.health()
        grafana.fail_next(2, status=502)
        assert client.save_dashboard(board("a"), None, "m").version == 1
    assert len(sleeps) == 2


def test_a_failing_grafana_gives_up_after_the_retries(grafana: GrafanaDouble) -> None:
    grafana.health_status = 503
    sleeps: list[float] = []
    client = client_for(grafana.url, sleep=sleeps.append, retries=2)
    with pytest.raises(GrafanaUnavailableError, match=grafana.url):
        client.save_dashboard(board("a"), None, "m")
    client.close()
    assert len(sleeps) == 2
    assert grafana.requests == [("GET", "/api/health")] * 3


def test_a_stopped_grafana_is_unreachable_naming_the_url() -> None:
    grafana = GrafanaDouble(token=TOKEN).start()
    url = grafana.url
    grafana.stop()
    client = client_for(url, retries=1)
    with pytest.raises(GrafanaUnavailableError, match=f"Grafana at {url} is unreachable"):
        client.health()
    client.close()


def test_annotation_regions_open_and_close(grafana: GrafanaDouble) -> None:
    ticks = iter([100.0, 160.5])
    with client_for(grafana.url) as client:
        client.save_dashboard(board("overview"), None, "m")
        regions = start_region(
            client,
            ["overview", "missing"],
            service="checkout",
            environment="prod",
            version="v2",
            deployment_id="D1",
            clock=lambda: next(ticks),
        )
        assert list(regions.ids) == ["overview"]
        assert len(regions.warnings) == 1
        assert "missing" in regions.warnings[0]
        warnings = finish_region(
            client,
            regions,
            outcome="rolled_back",
            reason="error ratio 5% > 1%",
            clock=lambda: next(ticks),
        )
    assert warnings == []
    (annotation,) = list(grafana.annotation_list())
    assert annotation["dashboardUID"] == "overview"
    assert annotation["time"] == 100_000
    assert annotation["timeEnd"] == 160_500
    assert annotation["tags"] == ["deploy", "environment:prod", "service:checkout", "version:v2"]
    assert annotation["text"].endswith("rolled back (error ratio 5% > 1%)")


# --- against MockTransport: retries, connection errors, redaction -------------------------


def _transport(status: int, calls: list[str], echo: bool = True) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if request.url.path == "/api/health":
            return httpx.Response(200, json={"database": "ok", "version": "11.6.0"})
        auth = request.headers.get("authorization", "")
        message = f"rejected {auth}" if echo else "no"
        body = {"message": message, "status": "version-mismatch"}
        return httpx.Response(status, json=body)

    return httpx.MockTransport(handle)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 412, 422])
def test_no_retry_on_4xx_and_the_token_is_never_in_the_message(status: int) -> None:
    calls: list[str] = []
    client = client_for("http://grafana.test", transport=_transport(status, calls))
    with pytest.raises(GrafanaError) as caught:
        client.save_dashboard(board("a"), None, "m")
    assert calls == ["/api/health", "/api/dashboards/db"]
    assert TOKEN not in str(caught.value)
    assert TOKEN not in repr(caught.value.__cause__ or "")


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429])
def test_5xx_and_429_are_retried_and_the_token_is_never_in_the_message(status: int) -> None:
    calls: list[str] = []
    sleeps: list[float] = []
    client = client_for(
        "http://grafana.test", transport=_transport(status, calls), sleep=sleeps.append, retries=3
    )
    with pytest.raises(GrafanaUnavailableError) as caught:
        client.versions("a")
    assert calls.count("/api/dashboards/uid/a/versions") == 4
    assert len(sleeps) == 3
    assert TOKEN not in str(caught.value)
    assert isinstance(caught.value, TransientError)


def test_connection_errors_are_retried_transient_and_never_show_the_token() -> None:
    calls: list[str] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        raise httpx.ConnectError(f"refused (sent {request.headers['authorization']})")

    client = client_for(
        f"http://admin:{TOKEN}@grafana.test:3000",
        None,
        transport=httpx.MockTransport(refuse),
        retries=2,
    )
    with pytest.raises(GrafanaUnavailableError) as caught:
        client.health()
    assert len(calls) == 3
    assert "grafana.test:3000 is unreachable" in str(caught.value)
    assert TOKEN not in str(caught.value)
    assert caught.value.__cause__ is None


def test_timeouts_are_transient() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("read timed out")

    client = client_for("http://grafana.test", transport=httpx.MockTransport(slow), retries=0)
    with pytest.raises(GrafanaUnavailableError, match="timed out"):
        client.health()


def test_versions_paging_stops_on_a_repeated_continue_token() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/health":
            return httpx.Response(200, json={"database": "ok"})
        item = {"version": 1 if "continueToken" in request.url.params else 2, "uid": "a"}
        return httpx.Response(200, json={"continueToken": "same", "versions": [item]})

    client = client_for("http://grafana.test", transport=httpx.MockTransport(handle))
    assert [v.version for v in client.versions("a")] == [2, 1]


def test_a_user_and_password_in_the_url_are_basic_auth_and_never_shown() -> None:
    password = "pw/with@signs_CANARY_81"
    url_password = urllib.parse.quote(password, safe="")
    with GrafanaDouble(basic_auth=("deployer", password)) as g:
        url = g.url.replace("://", f"://deployer:{url_password}@")
        with client_for(url, None) as client:
            saved = client.save_dashboard(board("a"), None, "first")
            assert saved.version == 1
            assert password not in client.shown_url
            assert url_password not in client.shown_url
        wrong = g.url.replace("://", "://deployer:wrong_password_CANARY@")
        with client_for(wrong, None) as bad, pytest.raises(GrafanaError) as caught:
            bad.save_dashboard(board("b"), None, "denied")
        assert "wrong_password_CANARY" not in str(caught.value)
        assert "401" in str(caught.value)


def test_a_password_in_the_url_and_a_token_are_refused_together() -> None:
    with pytest.raises(ConfigError, match="Grafana takes one of them") as caught:
        client_for(f"http://admin:{TOKEN}@grafana.test", "another-token")
    assert TOKEN not in str(caught.value)
    with pytest.raises(ConfigError, match="token is empty"):
        client_for("http://grafana.test", None)


def test_a_client_from_settings_takes_credentials_from_the_url() -> None:
    settings = GrafanaSettings()
    client = GrafanaClient.from_settings(settings, environ={"GRAFANA_URL": "http://u:p@g:3000"})
    assert client is not None
    assert client.url == "http://g:3000"


def test_a_client_from_settings_needs_url_and_token() -> None:
    settings = GrafanaSettings()
    assert GrafanaClient.from_settings(settings, environ={}) is None
    assert GrafanaClient.from_settings(settings, environ={"GRAFANA_URL": "http://g"}) is None
    client = GrafanaClient.from_settings(
        settings, environ={"GRAFANA_URL": "http://g", "GRAFANA_API_KEY": TOKEN}
    )
    assert client is not None
    assert client.url == "http://g"


# --- sync ---------------------------------------------------------------------------------


def write_boards(directory: Path) -> None:
    directory.mkdir()
    for uid in ("a", "b", "c"):
        (directory / f"{uid}.json").write_text(json.dumps(board(uid)))


def test_push_records_versions_skips_unchanged_and_rolls_back(
    grafana: GrafanaDouble, tmp_path: Path
) -> None:
    write_boards(tmp_path / "dashboards")
    (tmp_path / "dashboards" / "bad.json").write_text('{\n  "uid": "x",\n  "title": \n}')
    settings = GrafanaSettings(folder_uid="safeship")
    store = MemoryStore()
    with client_for(grafana.url) as client:
        first = push(
            settings,
            client,
            store,
            service="checkout",
            deployment_id="D1",
            commit="abc",
            base=tmp_path,
        )
        assert sorted(r.status for r in first) == ["created", "created", "created", "invalid"]
        (bad,) = [r for r in first if not r.ok]
        assert "bad.json:4:1: not valid JSON" in bad.detail
        again = push(
            settings,
            client,
            store,
            service="checkout",
            deployment_id="D2",
            commit=None,
            base=tmp_path,
        )
        assert sorted(r.status for r in again if r.ok) == ["unchanged"] * 3
        assert store.dashboard_versions("D2") == []
        (tmp_path / "dashboards" / "a.json").write_text(json.dumps(board("a", description="new")))
        third = push(
            settings,
            client,
            store,
            service="checkout",
            deployment_id="D3",
            commit="def",
            base=tmp_path,
        )
        assert next((r.uid, r.version_before, r.version_after) for r in third if r.ok) == (
            "a",
            1,
            2,
        )
        undone = rollback(client, store, service="checkout", deployment_id="D3")
    assert [(r.status, r.uid, r.version_after) for r in undone] == [("restored", "a", 3)]
    assert "description" not in grafana.version_data("a", 3)
    assert (
        grafana.dashboards["a"]["versions"][1]["message"] == "safeship deployment D3 (commit def)"
    )
    assert [r.uid for r in store.dashboard_versions("D1")] == ["a", "b", "c"]
    assert [r.action for r in store.dashboard_versions("D3")] == ["push", "rollback"]
    # Every update attempt counted for the report's "Grafana update success": 3 created,
    # nothing for the unchanged, 1 updated, 1 restored; bad.json failed in each push.
    updates = {
        (c.labels["action"], c.labels["result"]): c.value
        for c in store.counters(service="checkout")
        if c.name == "grafana_update_total"
    }
    assert updates == {
        ("push", "success"): 4.0,
        ("push", "failed"): 3.0,
        ("rollback", "success"): 1.0,
    }


def test_grafana_down_counts_every_dashboard_as_a_failed_update(
    grafana: GrafanaDouble, tmp_path: Path
) -> None:
    write_boards(tmp_path / "dashboards")
    store = MemoryStore()
    grafana.health_status = 503
    with client_for(grafana.url) as client, pytest.raises(GrafanaUnavailableError):
        push(
            GrafanaSettings(),
            client,
            store,
            service="checkout",
            deployment_id="D1",
            commit=None,
            base=tmp_path,
        )
    [counter] = store.counters(service="checkout")
    assert (counter.name, counter.labels, counter.value) == (
        "grafana_update_total",
        {"action": "push", "result": "failed"},
        3.0,
    )


def test_a_push_never_saves_over_another_dashboard_of_the_same_title(
    grafana: GrafanaDouble, tmp_path: Path
) -> None:
    """With overwrite, Grafana's SQL store would save ours over theirs and take its uid."""
    write_boards(tmp_path / "dashboards")
    theirs = board("theirs", title="Board a", panels=["someone else's"])
    with client_for(grafana.url) as client:
        client.save_dashboard(theirs, None, "made by hand")
        results = push(
            GrafanaSettings(),
            client,
            MemoryStore(),
            service="checkout",
            deployment_id="D1",
            commit=None,
            base=tmp_path,
        )
    status = {r.uid: r.status for r in results}
    assert grafana.current("theirs")["panels"] == ["someone else's"]
    assert grafana.version_numbers("theirs") == [1]
    if grafana.behaviour.title_lookup:
        assert status == {"a": "failed", "b": "created", "c": "created"}
        failed = next(r for r in results if r.uid == "a")
        assert "another dashboard with the same title already exists" in (failed.detail or "")
        assert "a" not in grafana.dashboards
    else:  # Grafana 12 keeps two dashboards of one title
        assert status == {"a": "created", "b": "created", "c": "created"}


def test_a_push_over_a_change_made_in_grafana_meanwhile_reads_it_again(
    grafana: GrafanaDouble, tmp_path: Path
) -> None:
    write_boards(tmp_path / "dashboards")
    settings = GrafanaSettings()
    with client_for(grafana.url) as client:
        client.save_dashboard(board("a", panels=["v1"]), None, "one")
        real_get = client.get_dashboard
        calls = []

        def racing_get(uid: str) -> Any:
            found = real_get(uid)
            if uid == "a" and not calls:  # someone saves between our read and our save
                calls.append(uid)
                client.save_dashboard(board("a", panels=["by hand"]), None, "meanwhile")
            return found

        client.get_dashboard = racing_get  # type: ignore[method-assign]
        results = push(
            settings, client, MemoryStore(), service="checkout", deployment_id="D1",
            commit=None, base=tmp_path,
        )  # fmt: skip
    assert {r.uid: r.status for r in results}["a"] == "updated"
    assert grafana.current("a")["panels"] == []
    assert grafana.version_numbers("a") == [1, 2, 3]


def test_rolling_back_a_deployment_that_created_dashboards_leaves_them(
    grafana: GrafanaDouble, tmp_path: Path
) -> None:
    write_boards(tmp_path / "dashboards")
    store = MemoryStore()
    with client_for(grafana.url) as client:
        push(
            GrafanaSettings(),
            client,
            store,
            service="checkout",
            deployment_id="D1",
            commit=None,
            base=tmp_path,
        )
        results = rollback(client, store, service="checkout", deployment_id="D1")
        manual = rollback(client, store, service="checkout", uid="a", to_version=1)
    assert {r.status for r in results} == {"skipped"}
    if grafana.behaviour.refuses_identical_restore:  # version 1 is what it shows
        assert [(r.status, r.version_after) for r in manual] == [("unchanged", 1)]
        assert manual[0].detail == "already shows version 1's content: nothing to restore"
    else:
        assert [(r.status, r.version_after) for r in manual] == [("restored", 2)]


# --- store: dashboard versions, migration 0003 --------------------------------------------


@pytest.fixture(params=["sql", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    url = f"sqlite:///{tmp_path / 'history.db'}"
    opened: Store = open_store(url) if request.param == "sql" else MemoryStore()
    yield opened
    opened.close()


def test_dashboard_versions_round_trip_per_deployment_in_order(store: Store) -> None:
    records = [
        DashboardVersionRecord("D1", "a", None, 1, 10.0),
        DashboardVersionRecord("D2", "a", 1, 2, 11.0),
        DashboardVersionRecord("D1", "b", 4, 5, 12.0),
        DashboardVersionRecord("D1", "b", 5, 6, 13.0, action="rollback"),
    ]
    for record in records:
        store.add_dashboard_version(record)
    assert store.dashboard_versions("D1") == [records[0], records[2], records[3]]
    assert store.dashboard_versions("none") == []


def _sql(path: Path, statement: str) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(path)) as conn, conn:
        return conn.execute(statement).fetchall()


def _migrate(path: Path, revision: str, *, down: bool = False) -> None:
    engine = sqlalchemy.create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            (command.downgrade if down else command.upgrade)(migrations._config(conn), revision)
            conn.commit()
    finally:
        engine.dispose()


def test_migration_0003_adds_dashboard_versions_to_a_0002_database_and_keeps_rows(
    tmp_path: Path,
) -> None:
    path = tmp_path / "history.db"
    _migrate(path, "0002")
    assert "dashboard_versions" not in {n for (n,) in _sql(path, "SELECT name FROM sqlite_master")}
    _sql(
        path,
        "INSERT INTO deployments (id, service, environment, version, started_at, max_weight)"
        " VALUES ('d1', 'checkout', 'prod', 'v1', 10.0, 0)",
    )
    store = open_store(f"sqlite:///{path}")
    try:
        heads = ScriptDirectory(str(migrations.SCRIPT_LOCATION)).get_heads()
        assert [v for (v,) in _sql(path, "SELECT version_num FROM alembic_version")] == heads
        assert store.get_deployment("d1") == DeploymentRecord(
            id="d1", service="checkout", environment="prod", version="v1", started_at=10.0
        )
        store.add_dashboard_version(DashboardVersionRecord("d1", "a", None, 1, 1.0))
        assert len(store.dashboard_versions("d1")) == 1
    finally:
        store.close()


def test_migration_0003_downgrades_to_0002(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    open_store(f"sqlite:///{path}").close()
    _migrate(path, "0002", down=True)
    tables = {n for (n,) in _sql(path, "SELECT name FROM sqlite_master")}
    assert "dashboard_versions" not in tables
    assert "counters" in tables
