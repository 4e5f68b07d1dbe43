"""`GrafanaDouble`: an in-process Grafana HTTP API for tests (and users' tests).

A real HTTP server on 127.0.0.1 (a free port) answering the parts of the Grafana
HTTP API safeship uses, as documented in "Grafana HTTP API" (grafana.com/docs/
grafana/latest/developers/http_api/): the Health API, the Dashboard API, the
Dashboard Versions API and the Annotations API. Each handler cites the section it
follows. State is kept in plain attributes so tests can inspect and change it:

    with GrafanaDouble(version="11.6") as grafana:
        client = GrafanaClient(grafana.url, grafana.token)
        ...
        grafana.dashboards["uid"]["versions"]      # every version, oldest first
        grafana.health_status = 503                 # health (and all calls) fail
        grafana.fail_next(2, status=502)            # the next 2 API calls fail
        grafana.stop()                              # connections are refused
"""

from __future__ import annotations

import base64
import copy
import json
import re
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from safeship.testing_http import LoopbackDouble

VersionsShape = Literal["array", "object-by-start", "object-by-token"]


@dataclass(frozen=True)
class GrafanaBehaviour:
    """Where Grafana releases differ in what safeship calls (read in Grafana's pkg/api,
    pkg/services/dashboardversion and pkg/services/dashboards at those releases)."""

    #: GET .../versions: a bare array paged by `start` (<= 11.5); an object with an empty
    #: `continueToken`, still paged by `start` (11.6, SQL storage); an object paged by
    #: `continueToken`, `start` ignored (12, unified storage).
    versions: VersionsShape
    #: POST .../restore of the version shown: 400 "Current dashboard is identical to the
    #: specified version" (11.3+), or an identical new version (before).
    refuses_identical_restore: bool
    #: A save with overwrite whose title another dashboard of the folder has: the SQL store
    #: adopts that dashboard's id, uid and version and overwrites it (<= 11.6); unified
    #: storage looks up no title (12).
    title_lookup: bool
    #: The save reply carries `folderUid` (10+).
    folder_uid_in_reply: bool


BEHAVIOURS: dict[str, GrafanaBehaviour] = {
    "9.5": GrafanaBehaviour("array", False, True, False),
    "10.4": GrafanaBehaviour("array", False, True, True),
    "11.2": GrafanaBehaviour("array", False, True, True),
    "11.6": GrafanaBehaviour("object-by-start", True, True, True),
    "12.0": GrafanaBehaviour("object-by-token", True, False, True),
}
_UID_PATH = re.compile(r"^/api/dashboards/uid/([^/]+)$")
_VERSIONS_PATH = re.compile(r"^/api/dashboards/uid/([^/]+)/versions$")
_VERSION_PATH = re.compile(r"^/api/dashboards/uid/([^/]+)/versions/(\d+)$")
_RESTORE_PATH = re.compile(r"^/api/dashboards/uid/([^/]+)/restore$")
_ANNOTATION_PATH = re.compile(r"^/api/annotations/(\d+)$")


class GrafanaDouble(LoopbackDouble):
    """Grafana's HTTP API in memory over real HTTP.

    `version` picks the Grafana release it behaves like (a key of `BEHAVIOURS`: the
    versions list's shape and paging, restores, title clashes, reply fields); at most
    `page_size` versions per answer, so paging is exercised.
    `viewer_token` is a token that may read but not write (403). `basic_auth` is a
    (user, password) pair accepted as HTTP Basic, with the token's rights, as Grafana
    accepts a user's credentials when `auth.basic` is on (its default).
    """

    def __init__(
        self,
        *,
        token: str | None = None,
        version: str = "11.6",
        page_size: int = 2,
        folders: tuple[str, ...] = ("safeship",),
        viewer_token: str | None = None,
        basic_auth: tuple[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.token = token or f"glsa_double_{secrets.token_hex(12)}"
        self.viewer_token = viewer_token
        self.basic_auth = basic_auth
        if version not in BEHAVIOURS:
            raise ValueError(f"Grafana version {version!r}: one of {sorted(BEHAVIOURS)}")
        self.version = version
        self.behaviour = BEHAVIOURS[version]
        self.page_size = page_size
        self.folders = set(folders)
        self.health_status = 200
        #: uid -> {"id", "uid", "folderUid", "current": dashboard JSON, "versions": [...]}
        self.dashboards: dict[str, dict[str, Any]] = {}
        self.annotations: dict[int, dict[str, Any]] = {}
        #: (method, path) of every request received, health included
        self.requests: list[tuple[str, str]] = []
        #: how many requests were refused 401 (wrong or missing credentials)
        self.unauthorized = 0
        self._failures: list[int] = []
        self._lock = threading.Lock()
        self._next_id = 1

    # --- lifecycle ----------------------------------------------------------------------

    def handler(self) -> type[BaseHTTPRequestHandler]:
        double = self

        class Handler(_Handler):
            grafana = double

        return Handler

    def fail_next(self, count: int, status: int = 503) -> None:
        """The next `count` non-health requests answer `status`."""
        with self._lock:
            self._failures.extend([status] * count)

    # --- helpers for tests --------------------------------------------------------------

    def current(self, uid: str) -> dict[str, Any]:
        return copy.deepcopy(self.dashboards[uid]["current"])

    def version_numbers(self, uid: str) -> list[int]:
        return [v["version"] for v in self.dashboards[uid]["versions"]]

    def version_data(self, uid: str, version: int) -> dict[str, Any]:
        for v in self.dashboards[uid]["versions"]:
            if v["version"] == version:
                return copy.deepcopy(v["data"])
        raise KeyError(version)

    def annotation_list(self) -> Iterator[dict[str, Any]]:
        return iter(copy.deepcopy(list(self.annotations.values())))

    # --- the API, called by the handler under the lock ----------------------------------

    def _id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    def handle(
        self, method: str, path: str, query: dict[str, list[str]], auth: str, body: Any
    ) -> tuple[int, Any]:
        with self._lock:
            self.requests.append((method, path))
            # Health API: GET /api/health needs no authentication; 200 with the database
            # status and version, 503 when the database check fails.
            if path == "/api/health" and method == "GET":
                if self.health_status != 200:
                    return self.health_status, {"database": "failing", "version": self.version}
                return 200, {"database": "ok", "version": f"{self.version}.0", "commit": "double"}
            if self.health_status != 200:
                return 503, {"message": "database is failing"}
            if self._failures:
                return self._failures.pop(0), {"message": "injected failure"}
            # Authentication: "Authorization: Bearer <service account token>", or Basic
            # with a user's name and password; anything else is 401 Unauthorized.
            writers = {f"Bearer {self.token}"}
            if self.basic_auth is not None:
                pair = ":".join(self.basic_auth).encode()
                writers.add(f"Basic {base64.b64encode(pair).decode()}")
            accepted = writers | ({f"Bearer {self.viewer_token}"} if self.viewer_token else set())
            if auth not in accepted:
                self.unauthorized += 1
                return 401, {"message": "Unauthorized"}
            writer = auth in writers
            if method != "GET" and not writer:
                return 403, {"message": "Access denied", "status": "forbidden"}
            return self._route(method, path, query, body)

    def _route(
        self, method: str, path: str, query: dict[str, list[str]], body: Any
    ) -> tuple[int, Any]:
        if path == "/api/dashboards/db" and method == "POST":
            return self._save(body)
        if (m := _UID_PATH.match(path)) and method == "GET":
            return self._get(m.group(1))
        if (m := _VERSIONS_PATH.match(path)) and method == "GET":
            return self._versions(m.group(1), query)
        if (m := _VERSION_PATH.match(path)) and method == "GET":
            return self._version(m.group(1), int(m.group(2)))
        if (m := _RESTORE_PATH.match(path)) and method == "POST":
            return self._restore(m.group(1), body)
        if path == "/api/annotations" and method == "POST":
            return self._annotate(body)
        if (m := _ANNOTATION_PATH.match(path)) and method == "PATCH":
            return self._patch_annotation(int(m.group(1)), body)
        return 404, {"message": "Not found"}

    def _save(self, body: Any) -> tuple[int, Any]:
        # Dashboard API, "Create / Update dashboard": POST /api/dashboards/db with
        # {dashboard, folderUid, message, overwrite}.
        if not isinstance(body, dict) or not isinstance(body.get("dashboard"), dict):
            return 400, {"message": "bad request data"}
        dashboard = copy.deepcopy(body["dashboard"])
        overwrite = bool(body.get("overwrite", False))
        folder = body.get("folderUid") or ""
        title = str(dashboard.get("title") or "").strip()
        # 400: "Dashboard title cannot be empty".
        if not title:
            return 400, {"message": "Dashboard title cannot be empty", "status": "empty-name"}
        # 404 when the folder does not exist ("Folder not found").
        if folder and folder not in self.folders:
            return 404, {"message": "Folder not found", "status": "not-found"}
        uid = str(dashboard.get("uid") or "") or secrets.token_hex(5)
        existing = self.dashboards.get(uid)
        given_id = dashboard.get("id")
        # 400 when the id names another dashboard than the uid ("uid and id mismatch").
        if given_id is not None:
            owner = next((d for d in self.dashboards.values() if d["id"] == given_id), None)
            if owner is None or owner["uid"] != uid:
                return 400, {"message": "Dashboard id and uid mismatch", "status": "uid-mismatch"}
        # The SQL store looks the title up in the folder (getExistingDashboardByTitleAndFolder):
        # without overwrite a clash is 412 name-exists; with overwrite the save adopts the
        # other dashboard's id, uid and version and replaces it. Unified storage does not.
        clash = next(
            (
                d
                for d in self.dashboards.values()
                if d["uid"] != uid
                and d["folderUid"] == folder
                and d["current"].get("title") == title
            ),
            None,
        )
        if clash is not None and self.behaviour.title_lookup:
            if not overwrite:
                return 412, {
                    "status": "name-exists",
                    "message": "A dashboard with the same name in the folder already exists",
                }
            uid, existing, given_id = clash["uid"], clash, None
        # Without overwrite, `version` must be the stored one: 412 version-mismatch from the
        # SQL store, 409 from unified storage.
        if (
            existing is not None
            and not overwrite
            and dashboard.get("version") != existing["current"]["version"]
        ):
            if not self.behaviour.title_lookup:
                return 409, {"message": "Dashboard already exists. Use overwrite flag to update."}
            return 412, {
                "status": "version-mismatch",
                "message": "The dashboard has been changed by someone else",
            }
        if existing is None:
            existing = {
                "id": self._id(),
                "uid": uid,
                "folderUid": folder,
                "current": {},
                "versions": [],
            }
            self.dashboards[uid] = existing
        existing["folderUid"] = folder
        version = self._add_version(existing, dashboard, str(body.get("message") or ""), None)
        return 200, self._saved(existing, version)

    def _add_version(
        self,
        entry: dict[str, Any],
        dashboard: dict[str, Any],
        message: str,
        restored_from: int | None,
    ) -> int:
        # Each save creates a version numbered one above the last (Dashboard Versions API).
        parent = entry["versions"][-1]["version"] if entry["versions"] else 0
        version = parent + 1
        data = {**dashboard, "id": entry["id"], "uid": entry["uid"], "version": version}
        entry["current"] = data
        entry["versions"].append(
            {
                "id": self._id(),
                "dashboardId": entry["id"],
                "uid": entry["uid"],
                "parentVersion": parent,
                "restoredFrom": restored_from or 0,
                "version": version,
                "created": "2026-12-11T00:00:00Z",
                "createdBy": "safeship-double",
                "message": message,
                "data": copy.deepcopy(data),
            }
        )
        return version

    def _saved(self, entry: dict[str, Any], version: int) -> dict[str, Any]:
        slug = re.sub(r"[^a-z0-9]+", "-", str(entry["current"].get("title", "")).lower()).strip("-")
        reply = {
            "id": entry["id"],
            "uid": entry["uid"],
            "url": f"/d/{entry['uid']}/{slug}",
            "status": "success",
            "version": version,
            "slug": slug,
        }
        if self.behaviour.folder_uid_in_reply:
            reply["folderUid"] = entry["folderUid"]
        return reply

    def _get(self, uid: str) -> tuple[int, Any]:
        # Dashboard API, "Get dashboard by uid": {"dashboard": ..., "meta": ...}; 404 if absent.
        entry = self.dashboards.get(uid)
        if entry is None:
            return 404, {"message": "Dashboard not found"}
        meta = {"folderUid": entry["folderUid"], "version": entry["current"]["version"], "slug": ""}
        return 200, {"dashboard": copy.deepcopy(entry["current"]), "meta": meta}

    def _versions(self, uid: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        # Dashboard Versions API, "Get all dashboards versions": newest first, `limit`,
        # in the shape and paging of `behaviour.versions`.
        entry = self.dashboards.get(uid)
        if entry is None:
            return 404, {"message": "Dashboard not found"}
        limit = min(int(query.get("limit", ["0"])[0] or 0) or self.page_size, self.page_size)
        items = [{k: v for k, v in e.items() if k != "data"} for e in reversed(entry["versions"])]
        shape = self.behaviour.versions
        if shape == "object-by-token":
            token = query.get("continueToken", [""])[0]
            start = int(token) if token.isdigit() else 0
        else:
            start = int(query.get("start", ["0"])[0] or 0)
        page = items[start : start + limit]
        if shape == "array":
            return 200, page
        following = start + limit
        more = shape == "object-by-token" and following < len(items)
        return 200, {"continueToken": str(following) if more else "", "versions": page}

    def _version(self, uid: str, version: int) -> tuple[int, Any]:
        # Dashboard Versions API, "Get dashboard version by uid": the entry plus `data`.
        entry = self.dashboards.get(uid)
        found = next(
            (v for v in (entry or {}).get("versions", []) if v["version"] == version), None
        )
        if found is None:
            # GetDashboardVersion answers a missing version with 500, not 404.
            dashboard_id = entry["id"] if entry else 0
            return 500, {
                "message": f"Dashboard version {version} not found for dashboardId {dashboard_id}"
            }
        return 200, copy.deepcopy(found)

    def _restore(self, uid: str, body: Any) -> tuple[int, Any]:
        # Dashboard Versions API, "Restore dashboard by uid": POST {"version": N} saves
        # version N's data as a new version; 404 when N does not exist.
        entry = self.dashboards.get(uid)
        wanted = body.get("version") if isinstance(body, dict) else None
        found = next((v for v in (entry or {}).get("versions", []) if v["version"] == wanted), None)
        if entry is None or found is None or not isinstance(wanted, int):
            return 404, {"message": "Dashboard version not found"}
        data = {k: v for k, v in found["data"].items() if k not in ("id", "version")}
        shown = {k: v for k, v in entry["current"].items() if k not in ("id", "version")}
        if self.behaviour.refuses_identical_restore and data == shown:
            return 400, {"message": "Current dashboard is identical to the specified version"}
        version = self._add_version(entry, data, f"Restored from version {wanted}", wanted)
        return 200, self._saved(entry, version)

    def _annotate(self, body: Any) -> tuple[int, Any]:
        # Annotations API, "Create Annotation": {dashboardUID, panelId, time, timeEnd,
        # tags, text} -> {"message": "Annotation added", "id": N}.
        if not isinstance(body, dict) or not body.get("text"):
            return 400, {"message": "bad request data"}
        # An unknown dashboardUID is not an error: the lookup's failure is ignored and the
        # annotation kept with dashboardId 0 (an organization annotation).
        uid = body.get("dashboardUID")
        dashboard_id = self.dashboards[uid]["id"] if uid in self.dashboards else 0
        annotation_id = self._id()
        self.annotations[annotation_id] = {
            **copy.deepcopy(body),
            "id": annotation_id,
            "dashboardId": dashboard_id,
        }
        return 200, {"message": "Annotation added", "id": annotation_id}

    def _patch_annotation(self, annotation_id: int, body: Any) -> tuple[int, Any]:
        # Annotations API, "Patch Annotation": only the given fields change; 404 if absent.
        if annotation_id not in self.annotations:
            return 404, {"message": "Annotation not found"}
        if isinstance(body, dict):
            allowed = {"time", "timeEnd", "text", "tags"}
            self.annotations[annotation_id].update({k: v for k, v in body.items() if k in allowed})
        return 200, {"message": "Annotation patched"}


class _Handler(BaseHTTPRequestHandler):
    grafana: GrafanaDouble
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            self._reply(400, {"message": "bad request data"})
            return
        status, payload = self.grafana.handle(
            self.command,
            split.path,
            parse_qs(split.query),
            self.headers.get("Authorization", ""),
            body,
        )
        self._reply(status, payload)

    def _reply(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = _serve
    do_POST = _serve
    do_PATCH = _serve
