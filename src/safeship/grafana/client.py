"""A small Grafana HTTP API client: health, dashboards, dashboard versions, annotations.

Every call goes through `safeship.http` (timeouts, retries with backoff on 5xx, 429 and
connection errors; none on other 4xx). Errors say what failed in words, name the
Grafana URL (redacted) and never contain the token: every message passes through
`redact_text` with the token as a known secret.

    GrafanaUnavailableError (TransientError)  Grafana did not answer, or answered 5xx
    GrafanaError (PermanentError)             Grafana answered and refused (4xx)
    ├── GrafanaNotFoundError                  404: no such dashboard, version or folder
    └── GrafanaConflictError                  412: changed in Grafana, name exists, plugin
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx

from safeship.config import GRAFANA_TOKEN_ENV, GRAFANA_URL_ENV, GrafanaSettings, http_url
from safeship.errors import ConfigError, PermanentError, TransientError
from safeship.http import RetryPolicy, make_client, retry_after_seconds, with_retries
from safeship.redact import basic_credential_forms, redact_text, redact_url, shown

TOKEN_ENV = GRAFANA_TOKEN_ENV
URL_ENV = GRAFANA_URL_ENV
# Versions asked for per request; Grafana may answer fewer (and pages with continueToken).
VERSIONS_PAGE = 100
_MAX_PAGES = 1000


class GrafanaUnavailableError(TransientError):
    """Grafana could not be reached, timed out or answered 5xx/429: may succeed later."""


class GrafanaError(PermanentError):
    """Grafana answered and refused the request; retrying the same request will not help."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class GrafanaNotFoundError(GrafanaError):
    """404: the dashboard, version, folder or annotation does not exist."""


class GrafanaConflictError(GrafanaError):
    """412 (or 409 from Grafana 12): the save would lose a change made in Grafana, or
    clashes with another dashboard's name or a plugin's; `reason` is Grafana's status
    word (`version-mismatch`, `name-exists`, `plugin-dashboard`) where it gave one."""

    def __init__(self, message: str, status: int | None = None, reason: str = "") -> None:
        super().__init__(message, status)
        self.reason = reason


class GrafanaIdenticalVersionError(GrafanaError):
    """400 from Grafana 11.3+ on a restore: the dashboard already is that version."""


# Grafana answers a missing dashboard version with HTTP 500 ("Dashboard version 7 not
# found for dashboardId 3"), and refuses to restore the version it already shows with 400.
_MISSING_VERSION = re.compile(r"^Dashboard version \d+ not found", re.IGNORECASE)
_IDENTICAL = "Current dashboard is identical to the specified version"


@dataclass(frozen=True)
class Health:
    version: str
    database: str


@dataclass(frozen=True)
class SavedDashboard:
    uid: str
    version: int
    id: int | None = None
    url: str = ""


@dataclass(frozen=True)
class DashboardVersion:
    """One entry of a dashboard's version history; `data` only from `get_version`."""

    version: int
    uid: str = ""
    id: int | None = None
    parent_version: int | None = None
    restored_from: int | None = None
    created: str = ""
    created_by: str = ""
    message: str = ""
    data: dict[str, Any] | None = field(default=None, compare=False)

    @classmethod
    def from_api(cls, item: Mapping[str, Any], uid: str) -> DashboardVersion:
        data = item.get("data")
        return cls(
            version=int(item.get("version") or 0),
            uid=str(item.get("uid") or uid),
            id=_opt_int(item.get("id")),
            parent_version=_opt_int(item.get("parentVersion")),
            restored_from=_opt_int(item.get("restoredFrom")),
            created=str(item.get("created") or ""),
            created_by=str(item.get("createdBy") or ""),
            message=str(item.get("message") or ""),
            data=data if isinstance(data, dict) else None,
        )


def _opt_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def resolve_url(
    settings: GrafanaSettings, url: str | None = None, environ: Mapping[str, str] | None = None
) -> str | None:
    """The Grafana URL: an explicit one, else the config's, else $GRAFANA_URL.

    A flag or variable is checked as the config's URL is when the file loads (a URL the
    HTTP client cannot parse would fail quoting part of it, password included).
    """
    environ = os.environ if environ is None else environ
    chosen = url or settings.url or environ.get(URL_ENV) or None
    if chosen is not None and chosen != settings.url:
        try:
            http_url(chosen)
        except ValueError as exc:
            where = f"--url / {URL_ENV}" if url else URL_ENV
            raise ConfigError(f"{where}: the Grafana URL {exc}") from None
    return chosen


def resolve_token(
    settings: GrafanaSettings, environ: Mapping[str, str] | None = None
) -> str | None:
    """The token: the config's `grafana.token` secret, else $GRAFANA_API_KEY; None if neither.

    A configured secret that cannot be read raises `ConfigError` (it names where it looked).
    """
    environ = os.environ if environ is None else environ
    if settings.token is not None:
        return settings.token.reveal(environ)
    return environ.get(TOKEN_ENV) or None


def url_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    """`url` without its user-info, and the user name and password it held (decoded).

    Grafana takes a user's name and password as HTTP Basic authentication; httpx would
    send user-info that way too, but silently in place of the token's header.
    """
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, host = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    bare = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return bare, (unquote(user), unquote(password))


def has_url_credentials(url: str | None) -> bool:
    return bool(url) and url_credentials(url or "")[1] is not None


class GrafanaClient:
    """Grafana's HTTP API with a service-account token (`Authorization: Bearer`), or with a
    user's name and password written in the URL (`http://user:password@grafana:3000`,
    HTTP Basic, for a Grafana with `auth.basic` on, its default).

    The first call checks `/api/health`, so an unreachable or failing Grafana is reported
    as such before anything is written.
    """

    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        timeout: float = 10.0,
        retries: int = 3,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        policy: RetryPolicy | None = None,
    ) -> None:
        bare, basic = url_credentials(url)
        if basic is not None and token:
            raise ConfigError(
                f"the Grafana URL {redact_url(url)} carries a user and password and a token is"
                f" set too ({TOKEN_ENV} or grafana.token): Grafana takes one of them; remove"
                " the user-info from the URL or unset the token"
            )
        if basic is None and not token:
            raise ConfigError(
                f"Grafana token is empty (set {TOKEN_ENV} or grafana.token, or write"
                " user:password in the URL)"
            )
        self.url = bare.rstrip("/")
        self.shown_url = redact_url(self.url)
        self._token = token or ""
        self._basic = basic
        self._policy = policy or RetryPolicy(retries=retries)
        self._sleep = sleep
        self._checked = False
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = make_client(
            self.url, timeout=timeout, headers=headers, auth=basic, transport=transport
        )

    @classmethod
    def from_settings(
        cls,
        settings: GrafanaSettings,
        *,
        url: str | None = None,
        environ: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> GrafanaClient | None:
        """A client from the config (and flag/environment overrides); None without URL or token."""
        base = resolve_url(settings, url, environ)
        token = resolve_token(settings, environ)
        if not base or not (token or has_url_credentials(base)):
            return None
        return cls(
            base,
            token,
            timeout=settings.timeout,
            retries=settings.retries,
            transport=transport,
            sleep=sleep,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> GrafanaClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # --- plumbing -------------------------------------------------------------------------

    def redact(self, text: str) -> str:
        """`text` without the token or password (and with URL user-info masked): fit to show."""
        return redact_text(text, self._secrets())

    def _secrets(self) -> list[str]:
        """What Grafana (or a proxy before it) may quote back of the credentials sent."""
        known = [self._token, f"Bearer {self._token}"] if self._token else []
        if self._basic is not None:
            user, password = self._basic
            known += [password, *basic_credential_forms(user, password)] if password else []
        return known

    def _request(
        self,
        method: str,
        path: str,
        what: str,
        *,
        body: object = None,
        params: Mapping[str, str | int] | None = None,
        check: bool = True,
    ) -> Any:
        if check and not self._checked:
            self.health()

        def attempt() -> Any:
            try:
                response = self._http.request(method, path, json=body, params=params)
            except httpx.TimeoutException as exc:
                raise GrafanaUnavailableError(
                    self.redact(f"Grafana at {self.shown_url}: {what}: timed out ({exc})")
                ) from None
            except httpx.TransportError as exc:
                raise GrafanaUnavailableError(
                    self.redact(f"Grafana at {self.shown_url} is unreachable: {what}: {exc}")
                ) from None
            return self._decode(response, what)

        return with_retries(attempt, self._policy, sleep=self._sleep)

    def _decode(self, response: httpx.Response, what: str) -> Any:
        status = response.status_code
        try:
            payload: Any = response.json() if response.content else None
        except ValueError:
            payload = None
        detail = ""
        if isinstance(payload, dict) and payload.get("message"):
            detail = str(payload["message"])
        elif payload is None and response.text:
            detail = shown(response.text, self._secrets())
        where = f"Grafana at {self.shown_url}: {what}"
        if status == 500 and _MISSING_VERSION.match(detail):
            raise GrafanaNotFoundError(self.redact(f"{where}: not found ({detail})"), status)
        if status >= 500 or status == 429:
            raise GrafanaUnavailableError(
                self.redact(f"{where}: HTTP {status} {detail}".rstrip()),
                retry_after=retry_after_seconds(response),
            )
        if status == 401:
            raise GrafanaError(
                self.redact(
                    f"{where}: HTTP 401, the token was not accepted "
                    f"(check {TOKEN_ENV} or grafana.token)"
                ),
                status,
            )
        if status == 403:
            raise GrafanaError(
                self.redact(
                    f"{where}: HTTP 403, the token's service account lacks permission "
                    f"({detail or 'forbidden'})"
                ),
                status,
            )
        if status == 404:
            raise GrafanaNotFoundError(
                self.redact(f"{where}: not found ({detail or 'HTTP 404'})"), status
            )
        if status == 412:
            reason = payload.get("status") if isinstance(payload, dict) else None
            raise GrafanaConflictError(
                self.redact(f"{where}: {_explain_412(payload, detail)}"),
                status,
                reason if isinstance(reason, str) else "",
            )
        if status == 409:  # Grafana 12: a save without overwrite of a changed dashboard
            raise GrafanaConflictError(
                self.redact(f"{where}: HTTP 409 {detail or 'conflict'}"), status, "version-mismatch"
            )
        if status == 400 and detail == _IDENTICAL:
            raise GrafanaIdenticalVersionError(self.redact(f"{where}: {detail}"), status)
        if status >= 400:
            raise GrafanaError(
                self.redact(f"{where}: HTTP {status} {detail or 'bad request'}"), status
            )
        if status >= 300:
            raise GrafanaError(self.redact(f"{where}: unexpected redirect (HTTP {status})"), status)
        return payload

    # --- API ------------------------------------------------------------------------------

    def health(self) -> Health:
        """`GET /api/health`; a failing database (503) is `GrafanaUnavailableError`."""
        payload = self._request("GET", "/api/health", "health check", check=False)
        if not isinstance(payload, dict):
            raise GrafanaError(
                self.redact(f"Grafana at {self.shown_url}: health check: not a Grafana answer")
            )
        database = str(payload.get("database", ""))
        if database != "ok":
            raise GrafanaUnavailableError(
                self.redact(
                    f"Grafana at {self.shown_url}: health check: "
                    f"database is {database or 'unknown'}"
                )
            )
        self._checked = True
        return Health(version=str(payload.get("version", "")), database=database)

    def get_dashboard(self, uid: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """The dashboard JSON and its meta, or None when Grafana has no dashboard `uid`."""
        try:
            payload = self._request(
                "GET", f"/api/dashboards/uid/{uid}", f"reading dashboard {uid!r}"
            )
        except GrafanaNotFoundError:
            return None
        if not isinstance(payload, dict) or not isinstance(payload.get("dashboard"), dict):
            raise GrafanaError(
                self.redact(f"Grafana at {self.shown_url}: dashboard {uid!r}: unexpected answer")
            )
        meta = payload.get("meta")
        return payload["dashboard"], meta if isinstance(meta, dict) else {}

    def save_dashboard(
        self,
        dashboard: Mapping[str, Any],
        folder_uid: str | None,
        message: str,
        overwrite: bool = True,
    ) -> SavedDashboard:
        """`POST /api/dashboards/db`: create or update; returns the new version."""
        uid = str(dashboard.get("uid", ""))
        body: dict[str, Any] = {
            "dashboard": dict(dashboard),
            "message": message,
            "overwrite": overwrite,
        }
        if folder_uid:
            body["folderUid"] = folder_uid
        payload = self._request(
            "POST", "/api/dashboards/db", f"saving dashboard {uid!r}", body=body
        )
        if not isinstance(payload, dict) or "version" not in payload:
            raise GrafanaError(
                self.redact(
                    f"Grafana at {self.shown_url}: saving dashboard {uid!r}: unexpected answer"
                )
            )
        return SavedDashboard(
            uid=str(payload.get("uid", uid)),
            version=int(payload["version"]),
            id=_opt_int(payload.get("id")),
            url=str(payload.get("url", "")),
        )

    def versions(self, uid: str) -> list[DashboardVersion]:
        """Every version of a dashboard, newest first.

        Grafana up to 11.5 answers a bare JSON array paged with `start`; 11.6 an object
        `{"versions": [...], "continueToken": ""}` still paged with `start` on SQL storage;
        12 the object paged with `continueToken` (and `start` ignored).
        """
        found: list[DashboardVersion] = []
        seen: set[int] = set()
        params: dict[str, str | int] = {"limit": VERSIONS_PAGE}
        start = 0
        tokens: set[str] = set()
        for _ in range(_MAX_PAGES):
            payload = self._request(
                "GET",
                f"/api/dashboards/uid/{uid}/versions",
                f"listing versions of {uid!r}",
                params=params,
            )
            if isinstance(payload, list):  # Grafana <= 11.5
                items, token = payload, None
            elif isinstance(payload, dict) and isinstance(payload.get("versions"), list):
                items, token = payload["versions"], str(payload.get("continueToken") or "")
            else:
                raise GrafanaError(
                    self.redact(
                        f"Grafana at {self.shown_url}: versions of {uid!r}: unexpected answer"
                    )
                )
            new = [DashboardVersion.from_api(i, uid) for i in items if isinstance(i, dict)]
            unseen = [entry for entry in new if entry.version not in seen]
            for entry in unseen:
                seen.add(entry.version)
                found.append(entry)
            if token and token not in tokens:
                tokens.add(token)
                params = {"limit": VERSIONS_PAGE, "continueToken": token}
                continue
            # A bare array (up to 11.5), or an object with no token (11.6 with SQL storage,
            # or the last page): page on by `start` while pages bring versions not seen
            # yet (a Grafana that ignores `start` repeats its first page: the end).
            if not unseen:
                break
            start += len(items)
            params = {"limit": VERSIONS_PAGE, "start": start}
        found.sort(key=lambda v: v.version, reverse=True)
        return found

    def get_version(self, uid: str, version: int) -> DashboardVersion:
        """One version with its dashboard JSON in `data`."""
        payload = self._request(
            "GET",
            f"/api/dashboards/uid/{uid}/versions/{version}",
            f"reading version {version} of {uid!r}",
        )
        if not isinstance(payload, dict):
            raise GrafanaError(
                self.redact(
                    f"Grafana at {self.shown_url}: version {version} of {uid!r}: unexpected answer"
                )
            )
        return DashboardVersion.from_api(payload, uid)

    def restore(self, uid: str, version: int) -> int:
        """Restore `version` of dashboard `uid`; Grafana saves it as a new version, returned.

        `GrafanaIdenticalVersionError` when Grafana (11.3+) says the dashboard already is
        that version; older ones save an identical new version.
        """
        payload = self._request(
            "POST",
            f"/api/dashboards/uid/{uid}/restore",
            f"restoring version {version} of {uid!r}",
            body={"version": version},
        )
        if not isinstance(payload, dict) or not isinstance(payload.get("version"), int):
            raise GrafanaError(
                self.redact(f"Grafana at {self.shown_url}: restoring {uid!r}: unexpected answer")
            )
        return int(payload["version"])

    def create_annotation(
        self,
        *,
        dashboard_uid: str,
        time_ms: int,
        text: str,
        tags: Sequence[str] = (),
        time_end_ms: int | None = None,
        panel_id: int | None = None,
    ) -> int:
        """`POST /api/annotations`: a point (or, with `time_end_ms`, a region); returns its id."""
        body: dict[str, Any] = {
            "dashboardUID": dashboard_uid,
            "time": time_ms,
            "tags": list(tags),
            "text": text,
        }
        if time_end_ms is not None:
            body["timeEnd"] = time_end_ms
        if panel_id is not None:
            body["panelId"] = panel_id
        payload = self._request(
            "POST", "/api/annotations", f"annotating dashboard {dashboard_uid!r}", body=body
        )
        if not isinstance(payload, dict) or not isinstance(payload.get("id"), int):
            raise GrafanaError(
                self.redact(f"Grafana at {self.shown_url}: annotation: unexpected answer")
            )
        return int(payload["id"])

    def patch_annotation(
        self,
        annotation_id: int,
        *,
        time_end_ms: int | None = None,
        text: str | None = None,
        tags: Sequence[str] | None = None,
    ) -> None:
        """`PATCH /api/annotations/<id>`: change only the given fields."""
        body: dict[str, Any] = {}
        if time_end_ms is not None:
            body["timeEnd"] = time_end_ms
        if text is not None:
            body["text"] = text
        if tags is not None:
            body["tags"] = list(tags)
        self._request(
            "PATCH",
            f"/api/annotations/{annotation_id}",
            f"updating annotation {annotation_id}",
            body=body,
        )


def _explain_412(payload: object, detail: str) -> str:
    status = payload.get("status") if isinstance(payload, dict) else None
    if status == "version-mismatch":
        return (
            "the dashboard was changed in Grafana since the version this save is based on "
            "(412 version-mismatch); save with overwrite to replace that change, or copy it "
            "into the dashboard file first"
        )
    if status == "name-exists":
        return (
            "another dashboard with the same title already exists in that folder "
            "(412 name-exists); rename one of them or give the file that dashboard's uid"
        )
    if status == "plugin-dashboard":
        return "the dashboard belongs to a plugin and cannot be overwritten (412 plugin-dashboard)"
    return f"precondition failed (412 {status or ''}) {detail}".strip()
