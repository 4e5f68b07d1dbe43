"""safeship.yaml -> frozen, validated models.

This is the only module that reads configuration files and interpolates their
`${VAR}` references from the environment. Loading goes: YAML text -> node tree
(kept for line numbers) -> interpolated plain data -> pydantic models. Every
problem is reported with its key path and line, all at once, so a user fixes
a file in one pass. Every built-in default lives in this module.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, cast
from urllib.parse import unquote, urlsplit

import httpx
import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from safeship import bounded_yaml, placement
from safeship.errors import ConfigError
from safeship.files import UnreadableFile, read_bounded
from safeship.loopback import is_loopback
from safeship.prometheus.promql import parse_duration
from safeship.redact import MASK, basic_credential_forms, redact_text, redact_url

DEFAULT_CONFIG_PATH = "safeship.yaml"
DEFAULT_STEPS: tuple[int, ...] = (10, 50, 100)
DEFAULT_HOLD_SECONDS = 300.0
DEFAULT_MIN_HOLD_SECONDS = 60.0
DEFAULT_STORE_PATH = ".safeship/history.db"
DEFAULT_STORE_URL = f"sqlite:///{DEFAULT_STORE_PATH}"
DEFAULT_METRICS_PORT = 8001
# The service `safeship demo` deploys: its rollouts share the default store with real
# ones, and `safeship report` leaves them out unless asked for by name.
DEMO_SERVICE = "safeship-demo"
DEMO_ENVIRONMENT = "demo"


class Model(BaseModel):
    """Base of every config model: immutable, and unknown keys are errors (typos must not pass)."""

    # allow_inf_nan=False: `hold: inf` or `!!float 1e400` cannot work, so they never load.
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


def http_url(url: str) -> str:
    """A required http(s) URL (it may hold {{ slot }} templates): checked when the config loads,
    not when the rollout first uses it, the way the HTTP client will read it."""
    if not url:
        raise ValueError("is empty: expected an http(s) URL such as http://127.0.0.1:8081")
    if not re.match(r"^https?://[^/\s]+", url, re.IGNORECASE):
        raise ValueError("is not an http(s) URL (expected http://host:port/...)")
    literal = re.sub(r"\{\{.*?\}\}", "", url)  # a {{ slot }} template is filled in later
    if any(ord(c) < 0x21 or ord(c) == 0x7F or 0xD800 <= ord(c) <= 0xDFFF for c in literal):
        raise ValueError(
            "holds a space, control character or unpaired surrogate: percent-encode it "
            "(a space as %20)"
        )
    if "{{" not in url:  # a template is checked once its slots fill it in
        _parsable(url)
    return url  # as written: a path's trailing slash may matter


def _parsable(url: str) -> None:
    """The URL as httpx parses it (authority, port, IDNA host), never echoing it."""
    bad = ValueError(
        "is not a valid URL: check host and port (a password holding ? # / @ or a "
        "space must be percent-encoded, e.g. ? as %3F)"
    )
    try:
        urlsplit(url).port  # noqa: B018 - parses the authority; raises on a bad one
        httpx.Request("GET", url)  # what every client here builds (IDNA host included)
    except (ValueError, UnicodeError, httpx.InvalidURL):
        raise bad from None
    host = urlsplit(url).hostname or ""
    if not host or ".." in host or host.startswith("."):
        raise ValueError("is not a valid URL: its host name is empty or has an empty label")
    if ":" not in host and (len(host) > 253 or any(_too_long(label) for label in host.split("."))):
        # What DNS allows (RFC 1035); IDNA encoding refuses the rest at request time.
        raise ValueError(
            "is not a valid URL: a host name label is longer than 63 characters, or the name "
            "longer than 253"
        )


def _too_long(label: str) -> bool:
    """A DNS label past 63 octets, IDNA-encoded when not ASCII (refused by the codec too)."""
    try:
        return len(label if label.isascii() else label.encode("idna")) > 63
    except UnicodeError:
        return True


def public_url(url: str) -> str:
    """An http(s) URL published in every alert (a runbook link): it must not carry
    credentials, which would be written into every generated rule file."""
    http_url(url.replace("{alertname}", "alertname"))
    if "@" in urlsplit(url).netloc or redact_url(url) != url:
        raise ValueError(
            "carries a user, password or token: it is published in every alert and every "
            "generated rule file; link a page that needs no credentials in its URL"
        )
    if "{{" in url or "}}" in url:
        raise ValueError(
            "holds {{ or }}: Prometheus reads annotations as templates; only {alertname} is "
            "filled in here"
        )
    return url


def http_url_or_none(url: str | None) -> str | None:
    """An optional http(s) base URL, without a trailing slash; the value is never echoed."""
    if not url:
        return None
    return http_url(url).rstrip("/")


BaseUrl = Annotated[str | None, AfterValidator(http_url_or_none)]


HttpUrl = Annotated[str, AfterValidator(http_url)]


# Prometheus 2.42's grammar, in ASCII: Python's (and pydantic's) \w would let `stätus` through.
_METRIC_NAME = r"^[a-zA-Z_:][a-zA-Z0-9_:]*$"
_LABEL_NAME = r"^[a-zA-Z_][a-zA-Z0-9_]*$"
MAX_HOLD_SECONDS = 7 * 86400.0
"""A hold, warm-up or pause timeout beyond a week is refused unless `allow_long_holds: true`:
it is far more often a unit slip (minutes written as seconds x 60) than a plan."""
MAX_LONG_HOLD_SECONDS = 366 * 86400.0  # even on purpose: a year
MAX_REQUEST_SECONDS = 3600.0  # one HTTP request, scrape or router call: an hour at most
MAX_SECRET_BYTES = 64 * 1024  # a token, password or key file; never a stream
MAX_COMMAND_SECONDS = 86400.0  # one hook or smoke-test command: a day at most


class Action(StrEnum):
    """What a rollout does when a class of analysis result reaches its limit."""

    ROLLBACK = "rollback"
    PAUSE = "pause"


class ErrorRateCheck(Model):
    """Canary error ratio: an absolute ceiling and a ceiling relative to the baseline.

    The canary fails when its ratio exceeds `max_ratio`, or exceeds
    `baseline x max_increase_factor + margin` for the same window.
    """

    type: Literal["error_rate"] = "error_rate"
    name: str = "error_rate"
    max_ratio: float | None = Field(default=0.05, ge=0, le=1)
    max_increase_factor: float = Field(default=1.5, ge=1)
    margin: float = Field(default=0.001, ge=0, le=1, description="Absolute slack (0.001 = 0.1pp).")
    critical: bool = True


class LatencyCheck(Model):
    """A canary latency quantile against an absolute ceiling and the baseline's quantile."""

    type: Literal["latency"] = "latency"
    name: str = "latency_p95"
    quantile: float = Field(default=0.95, gt=0, lt=1)
    max_seconds: float | None = Field(default=None, gt=0)
    max_increase_factor: float = Field(default=1.5, ge=1)
    margin_seconds: float = Field(default=0.05, ge=0)
    critical: bool = True


class SequentialErrorRateCheck(Model):
    """Canary vs. baseline error rates by an anytime-valid sequential test.

    Evidence is a mixture likelihood ratio over "canary errors are `theta` times
    the baseline's" (theta >= 1 + `detect_increase`), conditional on where each
    error happened given each version's share of the requests; it stays valid
    however often it is looked at, so the rollout rolls back the moment it
    exceeds 1/alpha. A second test may show the canary not worse than
    `margin` (then a step may advance early, never before `min_hold`).
    """

    type: Literal["error_rate_sequential"] = "error_rate_sequential"
    name: str = "error_rate"
    alpha: float = Field(
        default=0.009, gt=0, lt=0.5, description="This check's share of the false-rollback rate."
    )
    detect_increase: float = Field(
        default=0.5, gt=0, description="Relative increase to catch (0.5: canary errors x1.5)."
    )
    margin: float = Field(
        default=0.25, ge=0, description="Tolerated relative increase for an early advance."
    )
    critical: bool = True


class LatencyJudgeCheck(Model):
    """Canary vs. baseline latency distributions: anytime-valid, and explained Kayenta's way.

    The rollout decides with an anytime-valid test of the share of slow
    requests, bucket by bucket: the canary fails when there is evidence past
    1/alpha that, beyond some bound, its share of requests is more than
    (1 + `tolerance`) times the baseline's in the harmful `direction`. Each
    interval also reports Kayenta's Mann-Whitney judgement (Hodges-Lehmann
    shift, its interval at `confidence`, the mean ratio). `max_tail_ratio`
    is a plain limit on the tail quantile's ratio (not a test), off by default.
    """

    type: Literal["latency_judge"] = "latency_judge"
    name: str = "latency"
    alpha: float = Field(
        default=0.001, gt=0, lt=0.5, description="This check's share of the false-rollback rate."
    )
    confidence: float = Field(default=0.98, gt=0.5, lt=1)
    tolerance: float = Field(default=0.25, ge=0)
    direction: Literal["increase", "decrease", "either"] = "increase"
    tail_quantile: float = Field(default=0.99, gt=0.5, lt=1)
    max_tail_ratio: float | None = Field(default=None, gt=1)
    critical: bool = True


Check = Annotated[
    ErrorRateCheck | LatencyCheck | SequentialErrorRateCheck | LatencyJudgeCheck,
    Field(discriminator="type"),
]


def default_checks() -> tuple[Check, ...]:
    """Statistical by default: the sequential error-rate test and the latency judge."""
    return (SequentialErrorRateCheck(), LatencyJudgeCheck())


class CatastropheGuard(Model):
    """Rolls back at once a canary obviously failing, looking at every fresh figure.

    It fires when the evidence shows the canary failing more than
    `error_ratio` of its requests and more than `baseline_factor` times the
    baseline's error rate; warm-up, holds, failure limits and pause settings
    cannot hold it back. `alpha` bounds its false alarms per hour of looking
    once a second at a canary exactly at those limits.
    """

    enabled: bool = True
    error_ratio: float = Field(
        default=0.2, gt=0, lt=1, description="Share of failing canary requests that is a disaster."
    )
    baseline_factor: float = Field(
        default=2.0, ge=1, description="...and how many times the baseline's error rate."
    )
    alpha: float = Field(default=0.001, gt=0, lt=0.5, description="False alarms per hour.")


class Limits(Model):
    """How many results of each class a rollout tolerates, and what it does past that.

    Mirrors Argo Rollouts: a rollout fails when failed measurements exceed
    `failure_limit`; provider errors are counted consecutively. Not enough
    data when a hold ends triggers `on_inconclusive` and never advances.
    """

    failure_limit: int = Field(default=0, ge=0)
    on_failure: Literal[Action.ROLLBACK, Action.PAUSE] = Action.ROLLBACK
    consecutive_errors: int = Field(default=5, ge=1)
    on_error: Literal[Action.ROLLBACK, Action.PAUSE] = Action.ROLLBACK
    on_inconclusive: Literal[Action.PAUSE, Action.ROLLBACK] = Action.PAUSE
    on_suspected_harm: Literal[Action.ROLLBACK, Action.PAUSE] = Field(
        default=Action.ROLLBACK,
        description="Harm likely (evidence past sqrt(1/alpha), not proof) after twice the "
        "hold: the safe side is back.",
    )
    max_restarts: int = Field(
        default=2,
        ge=0,
        description="Canary restarts (counter resets) tolerated in one step; one more rolls "
        "back as crash_loop, at once.",
    )
    on_interrupted: Literal["resume", "rollback"] = Field(
        default="resume",
        description="What `safeship rollout resume` does with a rollout whose process died "
        "mid-step: hold the step again from the start, or roll back. A recorded promotion "
        "or rollback is always finished.",
    )


class CanaryStrategy(Model):
    """Steps of canary weight, how long each is held, and how it is judged."""

    steps: tuple[int, ...] = DEFAULT_STEPS
    hold: float = Field(default=DEFAULT_HOLD_SECONDS, gt=0, description="Seconds per step.")
    min_hold: float = Field(default=DEFAULT_MIN_HOLD_SECONDS, ge=0)
    warmup: float = Field(default=10.0, ge=0)
    interval: float = Field(
        default=10.0, ge=0.1, le=86400, description="Seconds between full looks."
    )
    min_requests: int = Field(default=100, ge=1)
    checks: tuple[Check, ...] = Field(default_factory=default_checks)
    guard: CatastropheGuard = Field(default_factory=CatastropheGuard)
    limits: Limits = Field(default_factory=Limits)
    pause_timeout: float | None = Field(default=None, gt=0)
    pause_timeout_action: Literal[Action.ROLLBACK, Action.PAUSE] = Action.ROLLBACK
    allow_long_holds: bool = Field(
        default=False, description="Allow hold / pause_timeout beyond a week (on purpose)."
    )

    @model_validator(mode="before")
    @classmethod
    def _min_hold_fits_short_holds(cls, data: Any) -> Any:
        # The 60 s default must not make a short hold (demo, tests) invalid.
        if isinstance(data, dict) and "min_hold" not in data:
            hold = data.get("hold", DEFAULT_HOLD_SECONDS)
            try:  # a quoted `hold: "30"` is a number to pydantic, so clamp for it too
                seconds = float(hold)
            except (TypeError, ValueError, OverflowError):
                return data  # the field itself reports the bad hold
            if not 0 < seconds < math.inf:
                return data  # likewise: one error, at the hold
            data = {**data, "min_hold": min(DEFAULT_MIN_HOLD_SECONDS, seconds)}
        return data

    @field_validator("steps", mode="before")
    @classmethod
    def _steps_as_written_on_the_command_line(cls, steps: Any) -> Any:
        """`steps: "10,50,100"`, as CANARY_STEPS and --steps take them, is the list too."""
        if isinstance(steps, str):
            try:
                return tuple(int(part) for part in steps.replace(" ", "").split(",") if part)
            except ValueError:
                raise ValueError(
                    'expected a list of whole percentages, e.g. [10, 50, 100] or "10,50,100"'
                ) from None
        return steps

    @field_validator("steps")
    @classmethod
    def _steps_climb_to_100(cls, steps: tuple[int, ...]) -> tuple[int, ...]:
        if not steps:
            raise ValueError("needs at least one step; the last must be 100")
        if any(not 0 < s <= 100 for s in steps):
            raise ValueError("each step is a canary weight from 1 to 100")
        if list(steps) != sorted(set(steps)):
            raise ValueError("steps must strictly increase")
        if steps[-1] != 100:
            raise ValueError("the last step must be 100 (reaching it is promotion)")
        return steps

    @model_validator(mode="after")
    def _holds_fit(self) -> CanaryStrategy:
        for name in ("hold", "pause_timeout"):
            seconds = getattr(self, name)
            if seconds is not None and seconds > MAX_HOLD_SECONDS and not self.allow_long_holds:
                raise ValueError(
                    f"{name} {seconds:g} s is longer than a week; write it in seconds "
                    "(e.g. 600 for 10 minutes), or set allow_long_holds: true if you mean it"
                )
            if seconds is not None and seconds > MAX_LONG_HOLD_SECONDS:
                raise ValueError(f"{name} {seconds:g} s is longer than a year, even on purpose")
        if self.min_hold > self.hold:
            raise ValueError(f"min_hold ({self.min_hold}) cannot exceed hold ({self.hold})")
        if self.warmup >= self.hold:
            raise ValueError(f"warmup ({self.warmup}) must be shorter than hold ({self.hold})")
        names = [c.name for c in self.checks]
        if len(names) != len(set(names)):
            raise ValueError(f"check names must be unique, got {names}")
        return self


_HOST_PORT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]*):[0-9]{1,5}$")
_NGINX_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


class LocalRouterSettings(Model):
    """The embedded weighted proxy, reached through its loopback admin API.

    Its two upstreams are the slots; promotion swaps which one is stable.
    """

    type: Literal["local"] = "local"
    admin_url: HttpUrl = "http://127.0.0.1:8081"
    admin_token: SecretRef | None = Field(
        default=None,
        description="Bearer token of a proxy served with --allow-remote (env or file).",
    )
    timeout: float = Field(default=2.0, gt=0, le=MAX_REQUEST_SECONDS)
    slots: dict[str, str] | None = Field(
        default=None,
        description="The proxy's two upstreams by name: name -> host:port, e.g. "
        "{blue: '127.0.0.1:9001', green: '127.0.0.1:9002'}; unset, each is named by its address.",
    )

    @model_validator(mode="after")
    def _two_slots(self) -> LocalRouterSettings:
        if self.slots is None:
            return self
        if len(self.slots) != 2 or len(set(self.slots.values())) != 2:
            raise ValueError(f"slots must name two different addresses, got {self.slots}")
        for name, address in self.slots.items():
            if not _NGINX_NAME.match(name):
                raise ValueError(f"slot name {name!r} may hold only letters, digits, _ . -")
            if not _HOST_PORT.match(address):
                raise ValueError(f"slot {name!r}: address {address!r} must be host:port")
        return self


class HaproxyRouterSettings(Model):
    """HAProxy 2.6 through its Runtime API: two servers (slots) of one backend.

    The canary is whichever slot is not the stable one; promotion makes the
    canary slot the stable one (recorded in `state_file`), so the next rollout
    deploys into the other slot.
    """

    type: Literal["haproxy"] = "haproxy"
    socket: str = Field(
        description="Runtime API: a unix socket path, or host:port (stats socket ... level admin)."
    )
    backend: str = "app"
    slots: tuple[str, str] = ("blue", "green")
    state_file: str = ".safeship/haproxy-router.json"
    timeout: float = Field(default=2.0, gt=0, le=MAX_REQUEST_SECONDS)


class NginxRouterSettings(Model):
    """nginx: the upstream's two servers (slots) written to an include file safeship owns.

    Every change writes `include_file`, runs `nginx -t`, then reloads nginx
    gracefully (in-flight requests finish on the old workers); a failed test
    restores the previous file. The weights in force are read back from nginx
    itself through a loopback status server the include file declares
    (`status_listen`). Promotion makes the canary slot the stable one
    (recorded in `state_file`), so the next rollout deploys into the other.
    """

    type: Literal["nginx"] = "nginx"
    upstream: str = Field(default="app", pattern=_NGINX_NAME.pattern)
    include_file: str = Field(
        description="File safeship writes and nginx includes in its http block."
    )
    slots: dict[str, str] = Field(
        description="Exactly two slots: server name -> address (host:port), e.g. "
        "{blue: '10.0.0.5:8080', green: '10.0.0.6:8080'}; the first is stable at first."
    )
    status_listen: str = Field(
        default="127.0.0.1:8089",
        description="host:port of the status server the include file declares, to read "
        "back the weights nginx really loaded.",
    )
    binary: str = "nginx"
    config_file: str | None = Field(
        default=None, description="nginx's main config (-c); nginx's default when unset."
    )
    prefix: str | None = Field(default=None, description="nginx's prefix (-p), when not default.")
    state_file: str = ".safeship/nginx-router.json"
    timeout: float = Field(
        default=10.0, gt=0, le=MAX_REQUEST_SECONDS, description="Seconds for test, reload, confirm."
    )

    @model_validator(mode="after")
    def _two_slots(self) -> NginxRouterSettings:
        if len(self.slots) != 2:
            raise ValueError(f"slots must name exactly two servers, got {list(self.slots)}")
        for name, address in self.slots.items():
            if not _NGINX_NAME.match(name):
                raise ValueError(f"slot name {name!r} may hold only letters, digits, _ . -")
            if not _HOST_PORT.match(address):
                raise ValueError(f"slot {name!r}: address {address!r} must be host:port")
        if not _HOST_PORT.match(self.status_listen):
            raise ValueError(f"status_listen {self.status_listen!r} must be host:port")
        return self


class KubernetesRouterSettings(Model):
    """Kubernetes: traffic split by replicas, Gateway API HTTPRoute, Istio or SMI.

    `slots` names the two backends: Deployments (mode `replicas`), or Services
    (`gateway-api`, `smi`), or VirtualService destination subsets (`istio`; the
    destination host when there are no subsets). The stable slot is recorded on
    the routing object itself (annotation `safeship.dev/stable-slot`), so every
    CI runner sees the same one; the canary is the other slot.
    """

    type: Literal["kubernetes"] = "kubernetes"
    mode: Literal["replicas", "gateway-api", "istio", "smi"]
    namespace: str = Field(default="default", pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    name: str | None = Field(
        default=None,
        description="The HTTPRoute, VirtualService or TrafficSplit to change (not for replicas).",
    )
    slots: tuple[str, str] = Field(description="The two backends; the first is stable at first.")
    rule: int = Field(
        default=0, ge=0, description="Which rule of the HTTPRoute / VirtualService http list."
    )
    replicas: int = Field(
        default=10, ge=1, description="replicas mode: pods across both Deployments."
    )
    kubeconfig: str | None = Field(
        default=None,
        description="Path of a kubeconfig; unset: in-cluster config inside a pod, "
        "else $KUBECONFIG or ~/.kube/config.",
    )
    context: str | None = None
    conflict_retries: int = Field(default=5, ge=0, description="Re-reads after a 409 conflict.")
    timeout: float = Field(default=10.0, gt=0, le=MAX_REQUEST_SECONDS)
    smi_version: Literal["v1alpha1", "v1alpha2", "v1alpha3", "v1alpha4"] = Field(
        default="v1alpha4",
        description="smi mode: the split.smi-spec.io version the cluster serves TrafficSplit "
        "at (SMI's own CRD serves only v1alpha4; v1alpha1 weights are quantities).",
    )

    @model_validator(mode="after")
    def _fits_mode(self) -> KubernetesRouterSettings:
        if self.slots[0] == self.slots[1]:
            raise ValueError(f"slots must be two different names, got {list(self.slots)}")
        if self.mode != "replicas" and not self.name:
            raise ValueError(f"mode {self.mode!r} needs `name`: the object whose weights change")
        if self.mode == "replicas" and self.replicas < 2:
            raise ValueError("mode 'replicas' needs replicas >= 2: one pod cannot be split")
        return self


RouterSettings = Annotated[
    LocalRouterSettings | HaproxyRouterSettings | NginxRouterSettings | KubernetesRouterSettings,
    Field(discriminator="type"),
]


class ScrapeProviderSettings(Model):
    """Reads each version's /metrics directly: no Prometheus server needed."""

    type: Literal["scrape"] = "scrape"
    canary_url: str = Field(
        default="http://{{ canary_address }}/metrics",
        description="The canary's /metrics; by default the address of the slot it went into.",
    )
    baseline_url: str = Field(
        default="http://{{ stable_address }}/metrics",
        description="The baseline's /metrics; by default the address of the stable slot.",
    )
    timeout: float = Field(
        default=5.0, gt=0, le=MAX_REQUEST_SECONDS, description="Seconds per scrape, all of it."
    )
    poll_interval: float = Field(
        default=1.0,
        ge=0.1,
        le=MAX_REQUEST_SECONDS,
        description="Seconds between scrapes for the catastrophe guard and the sequential tests.",
    )
    match: dict[str, str] = Field(
        default_factory=dict, description="Only series with these label values count."
    )
    error_label: str = Field(
        default="status", pattern=_LABEL_NAME, description="Label of HTTP codes."
    )
    error_status: str = Field(default="5..", description="Regex of HTTP codes counted as errors.")

    @field_validator("canary_url", "baseline_url")
    @classmethod
    def _slot_variables(cls, url: str) -> str:
        return http_url(_known_slot_variables(url))


def _known_slot_variables(template: str) -> str:
    unknown = placement.unknown_variables(template)
    if unknown:
        raise ValueError(
            f"unknown template variable(s) {sorted(unknown)}; known: {sorted(placement.VARIABLES)}"
        )
    return template


_TEMPLATE_VAR = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
QUERY_VARIABLES = frozenset(
    {
        "service",
        "environment",
        "selector",
        "window",
        "requests_metric",
        "latency_metric",
        "error_label",
        "error_status",
    }
)
LABEL_VARIABLES = frozenset({"service", "environment"})


def template_variables(template: str) -> set[str]:
    """The `{{ name }}` variables a PromQL template uses."""
    return set(_TEMPLATE_VAR.findall(template))


def render_template(template: str, values: Mapping[str, str]) -> str:
    """Fill `{{ name }}` variables; callers pass values already escaped for PromQL."""
    return _TEMPLATE_VAR.sub(lambda m: values[m.group(1)], template)


class PrometheusQueries(Model):
    """PromQL templates for one version's figures over `{{ window }}`, overriding the defaults.

    `{{ selector }}` is the version's label matchers (escaped). A template must
    return one sample (latency: one sample per `le`); an empty result is no data.
    """

    requests: str | None = None
    errors: str | None = None
    latency: str | None = None
    resets: str | None = Field(default=None, description="Counter resets (restarts) in the window.")

    @model_validator(mode="after")
    def _known_variables(self) -> PrometheusQueries:
        for name in ("requests", "errors", "latency", "resets"):
            template = getattr(self, name)
            if template is None:
                continue
            unknown = template_variables(template) - QUERY_VARIABLES
            if unknown:
                raise ValueError(
                    f"{name}: unknown template variable(s) {sorted(unknown)}; "
                    f"known: {sorted(QUERY_VARIABLES)}"
                )
            if "selector" not in template_variables(template):
                raise ValueError(
                    f"{name}: must use {{{{ selector }}}} to tell canary from baseline"
                )
        return self


class PrometheusProviderSettings(Model):
    """Canary and baseline figures from PromQL over the window since the step started.

    By default the queries are built from the sample-service metric names; an
    errors query that finds no series counts as zero errors only when the
    requests exist and carry the `error_label`, so a misspelt label is never
    read as a clean canary.
    """

    type: Literal["prometheus"] = "prometheus"
    requests_metric: str = Field(default="http_requests_total", pattern=_METRIC_NAME)
    latency_metric: str = Field(default="http_request_duration_seconds", pattern=_METRIC_NAME)
    error_label: str = Field(default="status", pattern=_LABEL_NAME)
    error_status: str = Field(default="5..", description="Regex of error label values.")
    labels: dict[str, str] = Field(
        default_factory=lambda: {"service": "{{ service }}", "environment": "{{ environment }}"},
        description="Matchers every query gets; values may use {{ service }}, {{ environment }}.",
    )
    canary_labels: dict[str, str] = Field(
        default_factory=lambda: {"version": "{{ canary_version }}"},
        description="Matchers of the canary's series: by default the version rolled out.",
    )
    baseline_labels: dict[str, str] = Field(
        default_factory=lambda: {"version": "{{ stable_version }}"},
        description="Matchers of the baseline's series: by default the version last promoted "
        "(before any promotion is recorded: every version but the canary's).",
    )
    queries: PrometheusQueries = Field(default_factory=PrometheusQueries)

    @field_validator("labels", "canary_labels", "baseline_labels")
    @classmethod
    def _label_names(cls, labels: dict[str, str]) -> dict[str, str]:
        for name, value in labels.items():
            if not re.fullmatch(_LABEL_NAME, name):
                raise ValueError(f"{name!r} is not a valid Prometheus label name")
            unknown = template_variables(value) - LABEL_VARIABLES - placement.VARIABLES
            if unknown:
                raise ValueError(f"label {name}: unknown template variable(s) {sorted(unknown)}")
        return labels


ProviderSettings = Annotated[
    ScrapeProviderSettings | PrometheusProviderSettings, Field(discriminator="type")
]


class SecretRef(Model):
    """Where a secret lives: an environment variable or a file, never the value itself."""

    env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    file: Path | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of env or file")
        return self

    def reveal(self, environ: Mapping[str, str] | None = None) -> str:
        """The secret's value; a ConfigError names where it was looked for, never a value."""
        if self.env is not None:
            environ = os.environ if environ is None else environ
            value = environ.get(self.env)
            if not value:
                raise ConfigError(f"secret environment variable {self.env} is not set or empty")
            return value
        assert self.file is not None
        try:
            value = read_bounded(self.file, MAX_SECRET_BYTES).decode("utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"secret file {self.file}: cannot read it: {exc.strerror}") from exc
        except UnreadableFile as exc:
            raise ConfigError(f"secret file {self.file} {exc}") from None
        except UnicodeDecodeError:
            raise ConfigError(
                f"secret file {self.file} is not UTF-8 text; save the secret as UTF-8"
            ) from None
        if not value:
            raise ConfigError(f"secret file {self.file} is empty")
        return value


class BasicAuth(Model):
    username: str
    password: SecretRef


class PrometheusSettings(Model):
    """How to reach Prometheus; the URL may also come from PROMETHEUS_URL (CLI)."""

    url: BaseUrl = Field(default=None, description="e.g. http://prometheus:9090")
    timeout: float = Field(
        default=10.0, gt=0, le=MAX_REQUEST_SECONDS, description="Seconds per HTTP request."
    )
    retries: int = Field(default=3, ge=0, description="Retries of a failed request.")
    bearer_token: SecretRef | None = None
    basic_auth: BasicAuth | None = None
    ca_file: Path | None = Field(default=None, description="CA bundle to verify TLS with.")
    scrape_interval: float | None = Field(
        default=None,
        gt=0,
        le=MAX_REQUEST_SECONDS,
        description="Used when Prometheus' targets do not say.",
    )
    rule_files: tuple[str, ...] = Field(
        default=(".prometheus/alerts.yml",),
        description="Checked with promtool by `safeship check`; a file named here must exist "
        "(the default may be absent).",
    )

    @field_validator("ca_file")
    @classmethod
    def _ca_file_exists(cls, path: Path | None) -> Path | None:
        if path is not None and not path.is_file():
            raise ValueError(f"no such file: {path}")
        return path

    @model_validator(mode="after")
    def _one_auth(self) -> PrometheusSettings:
        if self.bearer_token is not None and self.basic_auth is not None:
            raise ValueError("give bearer_token or basic_auth, not both")
        return self


class Hook(Model):
    """A command run at a rollout stage: an argv list, no shell unless asked."""

    command: tuple[str, ...] | str
    shell: bool = False
    timeout: float = Field(default=300.0, gt=0, le=MAX_COMMAND_SECONDS)
    env: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _shell_matches_form(self) -> Hook:
        if isinstance(self.command, str) and not self.shell:
            raise ValueError("command is a string: give an argv list, or set shell: true")
        if isinstance(self.command, tuple) and not self.command:
            raise ValueError("command is empty")
        return self


class Hooks(Model):
    """Commands per stage; pre_rollout puts the new version in the canary slot."""

    pre_rollout: tuple[Hook, ...] = ()
    pre_promotion: tuple[Hook, ...] = ()
    post_promotion: tuple[Hook, ...] = ()
    on_rollback: tuple[Hook, ...] = ()


class HttpSmokeTest(Model):
    """An HTTP request to the canary with the answer it must give.

    `url` may use the rollout's slots, e.g. `http://{{ canary_address }}/healthz`.
    """

    url: str
    method: str = "GET"
    expect_status: int = 200
    expect_body: str | None = Field(default=None, description="Substring the body must contain.")
    timeout: float = Field(default=10.0, gt=0, le=MAX_REQUEST_SECONDS)

    @field_validator("url")
    @classmethod
    def _slot_variables(cls, url: str) -> str:
        return http_url(_known_slot_variables(url))


class SmokeTest(Model):
    """One smoke test: an HTTP check or a command, run before any traffic moves."""

    name: str
    http: HttpSmokeTest | None = None
    command: tuple[str, ...] | str | None = None
    shell: bool = False
    timeout: float = Field(default=60.0, gt=0, le=MAX_COMMAND_SECONDS)

    @model_validator(mode="after")
    def _one_kind(self) -> SmokeTest:
        if (self.http is None) == (self.command is None):
            raise ValueError("give exactly one of http or command")
        if isinstance(self.command, str) and not self.shell:
            raise ValueError("command is a string: give an argv list, or set shell: true")
        return self


class StoreSettings(Model):
    url: str = DEFAULT_STORE_URL


class MetricsSettings(Model):
    """Where `safeship metrics serve` exposes the deployment metrics."""

    address: str = "127.0.0.1"
    port: int = Field(default=DEFAULT_METRICS_PORT, ge=1, le=65535)
    allow_remote: bool = Field(
        default=False, description="Serve beyond loopback (an address such as 0.0.0.0)."
    )

    @model_validator(mode="after")
    def _loopback_unless_meant(self) -> MetricsSettings:
        if not is_loopback(self.address) and not self.allow_remote:
            raise ValueError(
                f"address {self.address!r} is not loopback: set allow_remote: true to serve "
                "the deployment metrics beyond this machine"
            )
        return self


_LOOSE_ENVIRONMENTS = re.compile(r"(^|[-_.])(staging|stage|stg|dev|development|test|qa|preview)")


def is_staging_like(environment: str) -> bool:
    """A staging, dev, test, QA or preview environment: looser limits, and it never pages."""
    return bool(_LOOSE_ENVIRONMENTS.search(environment.lower()))


def thresholds_for(environment: str) -> AlertThresholds:
    """The default limits of an environment: staging's (5%, 1 s) for a staging, dev, test or
    preview one, production's (1%, 0.5 s) otherwise."""
    if is_staging_like(environment):
        return AlertThresholds(error_rate=0.05, latency_p95_seconds=1.0)
    return AlertThresholds()


class AlertThresholds(Model):
    """Alert limits for one environment (`alerting.environments.<name>`)."""

    error_rate: float = Field(default=0.01, gt=0, le=1, description="5xx ratio that alerts.")
    latency_p95_seconds: float = Field(default=0.5, gt=0)
    for_: str = Field(default="5m", alias="for", pattern=r"^\d+[smhd]$")

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class Slo(Model):
    """A service-level objective; multi-window, multi-burn-rate alerts are generated from it."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    kind: Literal["availability", "latency"] = "availability"
    objective: float = Field(gt=0, lt=1, description="e.g. 0.999")
    latency_threshold_seconds: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _latency_needs_threshold(self) -> Slo:
        if self.kind == "latency" and self.latency_threshold_seconds is None:
            raise ValueError("a latency SLO needs latency_threshold_seconds")
        return self


# Which Receiver fields each receiver type takes (the others must be left out), and the one
# it needs; Alertmanager 0.25 reads secrets only from files, so a URL must carry none.
_RECEIVER_FIELDS: dict[str, tuple[str, ...]] = {
    "pagerduty": ("routing_key_file",),
    "slack": ("api_url_file", "channel"),
    "webhook": ("url",),
    "email": ("to",),
}
_RECEIVER_NEEDS = {"pagerduty": "routing_key_file", "slack": "api_url_file", "webhook": "url",
                   "email": "to"}  # fmt: skip
_SECRET_URL_HOSTS = ("hooks.slack.com", "events.pagerduty.com", "discord.com", "discordapp.com")


def _secret_url_problem(url: str) -> str | None:
    """Why a webhook URL must not be written to a file in clear, if it must not."""
    parts = urlsplit(url)
    if parts.username or parts.password:
        return "has credentials in it; Alertmanager 0.25 has no url_file, so it would leak"
    if parts.query:
        return "has a query string (often a token); Alertmanager 0.25 has no url_file"
    host = parts.hostname or ""
    if any(host == h or host.endswith("." + h) for h in _SECRET_URL_HOSTS):
        return (
            f"{host} URLs are secrets; use a slack/pagerduty receiver with a *_file "
            "(Alertmanager 0.25 has no url_file for webhooks)"
        )
    return None


class Receiver(Model):
    """Where Alertmanager sends a severity's alerts; secrets only as files (Alertmanager 0.25)."""

    type: Literal["pagerduty", "slack", "webhook", "email"]
    routing_key_file: str | None = None  # pagerduty
    api_url_file: str | None = None  # slack
    channel: str | None = None  # slack
    url: BaseUrl = None  # webhook: Alertmanager 0.25 has no url_file, so never a secret
    to: str | None = None  # email

    @model_validator(mode="after")
    def _fits_its_type(self) -> Receiver:
        """Every problem that would make a wrong or secret-leaking Alertmanager file."""
        problems = []
        needed = _RECEIVER_NEEDS[self.type]
        if not getattr(self, needed):
            problems.append(f"a {self.type} receiver needs `{needed}`")
        for name in ("routing_key_file", "api_url_file", "channel", "url", "to"):
            if name not in _RECEIVER_FIELDS[self.type] and getattr(self, name) is not None:
                problems.append(
                    f"`{name}` does not apply to a {self.type} receiver "
                    f"(it takes {', '.join(_RECEIVER_FIELDS[self.type])})"
                )
        if self.type == "webhook" and self.url:
            problem = _secret_url_problem(self.url)
            if problem:
                problems.append(f"url {problem}")
        if problems:
            raise ValueError("; ".join(problems))
        return self


def _am_duration(value: str) -> str:
    seconds = parse_duration(value)
    if seconds is None:
        raise ValueError("is not a duration (e.g. 30s, 5m, 4h)")
    if seconds > MAX_LONG_HOLD_SECONDS:
        raise ValueError("is longer than a year: write a duration such as 4h or 1d")
    return value


AlertmanagerDuration = Annotated[str, AfterValidator(_am_duration)]


class AlertmanagerSettings(Model):
    """Routing by severity: critical -> pager, warning -> chat, info -> ticket."""

    pager: Receiver = Field(
        default_factory=lambda: Receiver(
            type="pagerduty", routing_key_file="/etc/alertmanager/pagerduty-routing-key"
        )
    )
    chat: Receiver = Field(
        default_factory=lambda: Receiver(
            type="slack",
            api_url_file="/etc/alertmanager/slack-api-url",
            channel="#deployments",
        )
    )
    ticket: Receiver = Field(
        default_factory=lambda: Receiver(type="webhook", url="http://127.0.0.1:9095/alerts")
    )
    group_wait: AlertmanagerDuration = "30s"
    group_interval: AlertmanagerDuration = "5m"
    repeat_interval: AlertmanagerDuration = "4h"


class AlertingSettings(Model):
    """Alerting rules and Alertmanager routing generated from the config (`safeship rules`)."""

    runbook_url: Annotated[str, AfterValidator(public_url)] = Field(
        default="https://github.com/safeship/safeship/blob/main/docs/runbooks.md#{alertname}",
        description="Template; {alertname} is replaced with the alert's name.",
    )
    environments: dict[str, AlertThresholds] = Field(
        default_factory=lambda: {name: thresholds_for(name) for name in ("staging", "production")},
        description="Per-environment alert limits; by default one per environment of the "
        "config (staging-like names get the looser staging limits).",
    )
    slos: tuple[Slo, ...] = (
        Slo(name="availability", kind="availability", objective=0.999),
        Slo(name="latency", kind="latency", objective=0.99, latency_threshold_seconds=0.5),
    )
    alertmanager: AlertmanagerSettings = Field(default_factory=AlertmanagerSettings)


#: Where the Grafana token is read when the config names none.
GRAFANA_TOKEN_ENV = "GRAFANA_API_KEY"
GRAFANA_URL_ENV = "GRAFANA_URL"


class GrafanaSettings(Model):
    """Dashboards as code pushed to Grafana with each deployment (`safeship dashboards`)."""

    url: BaseUrl = Field(default=None, description="e.g. http://grafana:3000 (or GRAFANA_URL)")
    token: SecretRef | None = Field(
        default=None, description="Service-account token (or GRAFANA_API_KEY)."
    )
    folder_uid: str | None = None
    dashboards: tuple[str, ...] = Field(
        default=("dashboards/*.json",), description="Files (globs) pushed by `dashboards push`."
    )
    annotate: tuple[str, ...] = Field(
        default=("safeship-deployment-overview",),
        description="Dashboard uids that get a region annotation per rollout.",
    )
    rollback_on_failure: bool = Field(
        default=True, description="A rolled-back rollout restores its dashboards too."
    )
    timeout: float = Field(default=10.0, gt=0, le=MAX_REQUEST_SECONDS)
    retries: int = Field(default=3, ge=0)


class PushgatewaySettings(Model):
    """Where short-lived CI processes push the deployment metrics (cumulative totals)."""

    url: BaseUrl = Field(default=None, description="e.g. http://pushgateway:9091")
    job: str = "safeship"
    timeout: float = Field(default=10.0, gt=0, le=MAX_REQUEST_SECONDS)


class EnvironmentSettings(Model):
    """Per-environment overrides; anything left out is taken from the top level."""

    canary: CanaryStrategy | None = None
    router: RouterSettings | None = None
    provider: ProviderSettings | None = None
    smoke_tests: tuple[SmokeTest, ...] | None = None
    hooks: Hooks | None = None
    prometheus: PrometheusSettings | None = None


class Config(Model):
    """The whole of safeship.yaml."""

    # Values interpolated from the environment: masked wherever the config is shown.
    _from_environment: frozenset[str] = PrivateAttr(default=frozenset())

    version: Literal[1] = 1
    service: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    environments: dict[str, EnvironmentSettings] = Field(
        default_factory=lambda: {"production": EnvironmentSettings()}
    )
    canary: CanaryStrategy = Field(default_factory=CanaryStrategy)
    router: RouterSettings = Field(default_factory=LocalRouterSettings)
    provider: ProviderSettings = Field(default_factory=ScrapeProviderSettings)
    smoke_tests: tuple[SmokeTest, ...] = ()
    hooks: Hooks = Field(default_factory=Hooks)
    store: StoreSettings = Field(default_factory=StoreSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    prometheus: PrometheusSettings = Field(default_factory=PrometheusSettings)
    pushgateway: PushgatewaySettings = Field(default_factory=PushgatewaySettings)
    alerting: AlertingSettings = Field(default_factory=AlertingSettings)
    grafana: GrafanaSettings = Field(default_factory=GrafanaSettings)

    @model_validator(mode="after")
    def _alerts_for_these_environments(self) -> Config:
        """Unless written, the alerting environments are the config's own: a production-only
        project gets no staging alerts (and a `qa` one gets alerts for qa)."""
        if "environments" not in self.alerting.model_fields_set:
            alerting = self.alerting.model_copy(
                update={"environments": {n: thresholds_for(n) for n in self.environments}}
            )
            object.__setattr__(self, "alerting", alerting)
        return self

    @property
    def uses_kubernetes(self) -> bool:
        """Whether any environment routes through Kubernetes: only then do the generated
        rules and routing come with their Prometheus Operator manifests."""
        routers = [self.router, *(e.router for e in self.environments.values() if e.router)]
        return any(r.type == "kubernetes" for r in routers)

    def for_environment(self, name: str) -> EnvironmentConfig:
        """The settings in force for one environment (its overrides over the top level)."""
        if name not in self.environments:
            known = ", ".join(sorted(self.environments)) or "none"
            raise ConfigError(
                f"environment {name!r} is not in the config (environments: {known}); "
                "add it under 'environments:' or pick one of those"
            )
        env = self.environments[name]
        settings = EnvironmentConfig(
            service=self.service,
            environment=name,
            canary=env.canary or self.canary,
            router=env.router or self.router,
            provider=env.provider or self.provider,
            smoke_tests=self.smoke_tests if env.smoke_tests is None else env.smoke_tests,
            hooks=env.hooks or self.hooks,
            store=self.store,
            prometheus=env.prometheus or self.prometheus,
        )
        # The whole config's secrets (the Grafana token too): a hook may print any of them.
        settings._from_environment = secret_values(self)
        return settings


class EnvironmentConfig(Model):
    """Everything a rollout of one service to one environment needs."""

    _from_environment: frozenset[str] = PrivateAttr(default=frozenset())

    service: str
    environment: str
    canary: CanaryStrategy
    router: RouterSettings
    provider: ProviderSettings
    smoke_tests: tuple[SmokeTest, ...]
    hooks: Hooks
    store: StoreSettings
    prometheus: PrometheusSettings = Field(default_factory=PrometheusSettings)

    def with_overrides(
        self, *, steps: tuple[int, ...] | None = None, hold: float | None = None
    ) -> EnvironmentConfig:
        """Apply command-line / environment overrides, validated like the file."""
        update: dict[str, Any] = {}
        if steps is not None:
            update["steps"] = steps
        if hold is not None:
            update["hold"] = hold
            if self.canary.min_hold > hold:
                update["min_hold"] = hold
        if not update:
            return self
        data = self.canary.model_dump() | update
        try:
            canary = CanaryStrategy.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(_format_override_errors(exc)) from exc
        return self.model_copy(update={"canary": canary})


def _format_override_errors(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        path = ".".join(str(p) for p in ("canary", *err["loc"]))
        parts.append(f"{path}: {err['msg']}")
    return "invalid override: " + "; ".join(parts)


# --- parsing -----------------------------------------------------------------

_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_SECRET_KEY = re.compile(r"(token|password|passwd|secret|api_key|apikey|credential)", re.I)
KeyPath = tuple[str | int, ...]


def _is_utf8(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _interpolate(
    text: str,
    env: Mapping[str, str],
    path: KeyPath,
    line: int,
    problems: list[str],
    source: str,
    used: set[str],
) -> str:
    """Replace `${VAR}` / `${VAR:-default}`; `$$` is a literal `$`.

    Values taken from the environment are added to `used`: any of them may be a
    secret, so output masks them wherever they appear.
    """

    def sub(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        if name in env:
            value = env[name]
            if not _is_utf8(value):
                # os.environ carries undecodable bytes as lone surrogates, which no
                # output (JSON, YAML, a terminal) can encode.
                problems.append(
                    f"{source}:{line}: {_dotted(path)}: environment variable {name} is not "
                    "valid UTF-8; set it to UTF-8 text"
                )
                return ""
            used.add(value)
            return value
        if default is not None:
            return default
        problems.append(
            f"{source}:{line}: {_dotted(path)}: environment variable {name} is not set "
            f"(set it, or write ${{{name}:-default}})"
        )
        return ""

    return _VAR.sub(sub, text)


class _Loader:
    """Turns a YAML node tree into plain data, remembering each key path's line."""

    def __init__(self, source: str, env: Mapping[str, str]) -> None:
        self.source = source
        self.env = env
        self.lines: dict[KeyPath, int] = {}
        self.problems: list[str] = []
        self.unresolved: set[KeyPath] = set()
        self.from_environment: set[str] = set()
        self.expanded = 0  # characters interpolation added, over every use of every node
        self._constructor = yaml.SafeLoader("")  # one for the file: building one is slow

    def build(self, node: yaml.Node, path: KeyPath) -> Any:
        self.lines[path] = node.start_mark.line + 1
        if node.tag not in yaml.SafeLoader.yaml_constructors:
            # e.g. !!python/object/apply: never constructed, and never silently dropped
            self.problems.append(
                f"{self.source}:{node.start_mark.line + 1}: {_dotted(path)}: YAML tag "
                f"{node.tag} is not allowed (only plain YAML: mappings, lists, scalars)"
            )
            self.unresolved.add(path)
            return None
        if isinstance(node, yaml.MappingNode):
            # `<<: *defaults` merge keys, as PyYAML's safe loader reads them (checked for
            # size, like every alias, before anything is built)
            explicit = sum(1 for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge")
            try:
                self._constructor.flatten_mapping(node)
            except yaml.MarkedYAMLError as exc:  # e.g. `<<: 5`: its problem, never the line
                self.problems.append(
                    f"{self.source}:{node.start_mark.line + 1}: {_dotted(path)}: {exc.problem}"
                )
                self.unresolved.add(path)
                return None
            merged = len(node.value) - explicit  # flattening puts the merged pairs first
            out: dict[str, Any] = {}
            written: set[str] = set()
            for index, (key_node, value_node) in enumerate(node.value):
                if key_node.tag not in yaml.SafeLoader.yaml_constructors:
                    self.build(key_node, (*path, "<key>"))  # reported, never constructed
                    continue
                try:
                    key = str(self._plain(key_node))
                except _UNREADABLE as exc:
                    problem = _unreadable(key_node, exc)
                    self.problems.append(
                        f"{self.source}:{key_node.start_mark.line + 1}: {_dotted(path)}: "
                        f"a key that {problem}"
                    )
                    continue
                if index >= merged and key in written:
                    # merged keys may be set again (explicit over merged, the last merge
                    # over earlier ones, as in YAML); one key written twice is a mistake
                    self.problems.append(
                        f"{self.source}:{key_node.start_mark.line + 1}: "
                        f"{_dotted((*path, key))}: duplicate key"
                    )
                if index >= merged:
                    written.add(key)
                out[key] = self.build(value_node, (*path, key))
                self.lines[(*path, key)] = key_node.start_mark.line + 1
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        try:
            value = self._plain(node)
        except _UNREADABLE as exc:  # e.g. an integer of 5,000 digits, `!!bool abc`
            self.problems.append(
                f"{self.source}:{node.start_mark.line + 1}: {_dotted(path)}: the value "
                f"{_unreadable(node, exc)}"
            )
            self.unresolved.add(path)
            return None
        if isinstance(value, str) and "$" in value:
            before = len(self.problems)
            text = _interpolate(
                value,
                self.env,
                path,
                node.start_mark.line + 1,
                self.problems,
                self.source,
                self.from_environment,
            )
            self.expanded += max(0, len(text) - len(value))
            if self.expanded > bounded_yaml.MAX_EXPANDED_BYTES:
                # An alias repeats its node's ${VAR}s: bounded like the aliases themselves.
                self.problems.append(
                    f"{self.source}:{node.start_mark.line + 1}: {_dotted(path)}: refused: "
                    "environment variables expand the config beyond "
                    f"{bounded_yaml.MAX_EXPANDED_BYTES} bytes (limits in docs/reliability.md, "
                    "'Bounded parsing')"
                )
                raise _Refused
            if len(self.problems) > before:
                self.unresolved.add(path)
                return value
            # An interpolated plain scalar is typed like YAML so `${PORT}` can be an int;
            # only its type is resolved: the value is never parsed as YAML syntax, so a
            # secret like `@x`, `*x` or `a #b` stays the exact string it was.
            if isinstance(node, yaml.ScalarNode) and not node.style and text != value:
                if not text.strip():
                    return None
                tag = self._constructor.resolve(  # type: ignore[no-untyped-call]
                    yaml.ScalarNode, text, (True, False)
                )
                typed = yaml.ScalarNode(tag, text)
                try:
                    return self._plain(typed)
                except _UNREADABLE as exc:  # `${HOLD}` = 2026-13-45: no date, no hold
                    self.problems.append(
                        f"{self.source}:{node.start_mark.line + 1}: {_dotted(path)}: the "
                        f"interpolated value {_unreadable(typed, exc)}"
                    )
                    self.unresolved.add(path)
                    return None
            return text
        return value

    def _plain(self, node: yaml.Node) -> Any:
        constructor = self._constructor
        try:
            return constructor.construct_object(node, deep=True)
        finally:
            # Each node is built on its own: nothing kept from one to the next.
            constructor.constructed_objects.clear()
            constructor.recursive_objects.clear()


class _Refused(Exception):
    """The file is past a limit: stop building it (the problem is already recorded)."""


# What PyYAML raises for a scalar it cannot build as its tag says (`!!bool abc`,
# `!!timestamp 2026-13-45`, an integer of 5,000 digits).
_UNREADABLE = (ValueError, OverflowError, KeyError, AttributeError, TypeError, yaml.YAMLError)


def _unreadable(node: yaml.Node, exc: BaseException) -> str:
    """Why a scalar could not be built, in words (never its text: it may be a secret)."""
    kind = node.tag.rsplit(":", 1)[-1]
    if isinstance(exc, ValueError) and "digits" in str(exc):
        return "is a number too large to read (Python reads integers of at most 4300 digits)"
    return (
        f"cannot be read as {kind} (check it, or quote it to make it a string; tags such "
        "as !!int or !!timestamp must fit their value)"
    )


def _dotted(path: KeyPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "(top level)"


def _line_for(lines: dict[KeyPath, int], path: KeyPath) -> int | None:
    """The line of the deepest existing prefix of `path` (missing keys point at their parent)."""
    for end in range(len(path), -1, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return None


def _format_validation(exc: ValidationError, loader: _Loader) -> list[str]:
    lines, source = loader.lines, loader.source
    problems = []
    for err in exc.errors():
        loc = _file_path(err, lines)
        if err["type"] == "union_tag_invalid":
            loc = (*loc, "type")
        if loc in loader.unresolved:
            continue  # already reported as a missing environment variable
        line = _line_for(lines, loc)
        where = f"{source}:{line}" if line else source
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; `safeship config schema` lists the keys)"
        elif err["type"] == "missing":
            msg = "required key is missing"
        elif err["type"] == "union_tag_invalid":
            ctx = err.get("ctx", {})
            msg = f"{ctx.get('tag')!r} is not available; choose one of: {ctx.get('expected_tags')}"
        elif err["type"] == "union_tag_not_found":
            loc = (*loc, "type")
            msg = "required key is missing (it says which kind this is)"
        problem = f"{where}: {_dotted(loc)}: {msg}"
        if problem not in problems:  # two union branches can fail the same way
            problems.append(problem)
    return problems


def _file_path(err: ErrorDetails, lines: dict[KeyPath, int]) -> KeyPath:
    """An error's location as a key path of the file.

    pydantic's location also names union branches ("local", "error_rate",
    "str", "tuple[str, ...]"), which are not keys: a part the file does not
    have is dropped, except a missing key, which is not in the file by nature.
    An environment named `local` stays in the path.
    """
    loc, kept = err["loc"], cast(KeyPath, ())
    for i, part in enumerate(loc):
        missing_key = err["type"] == "missing" and i == len(loc) - 1
        if isinstance(part, str) and (*kept, part) not in lines and not missing_key:
            continue
        kept = (*kept, part)
    return kept


_MERGED_SECTIONS = ("canary", "router", "provider", "hooks", "prometheus")


def _merge_environments(data: dict[str, Any]) -> dict[str, Any]:
    """Each environment's sections deep-merged over the top-level ones."""
    envs = data.get("environments")
    if not isinstance(envs, dict):
        return data
    merged_envs = {}
    for name, env in envs.items():
        if isinstance(env, dict):
            env = dict(env)
            for key in _MERGED_SECTIONS:
                if key in env and key in data:
                    env[key] = _deep_merge(data[key], env[key])
        merged_envs[name] = env
    return {**data, "environments": merged_envs}


def _deep_merge(base: Any, override: Any) -> Any:
    """Mappings merge key by key; anything else (lists included) is replaced.

    A section that names another backend `type` replaces the base whole, since
    one backend's keys mean nothing to another.
    """
    if not isinstance(base, dict) or not isinstance(override, dict):
        return override
    if "type" in override and base.get("type", override["type"]) != override["type"]:
        return override
    return {k: _deep_merge(base[k], v) if k in base else v for k, v in override.items()} | {
        k: v for k, v in base.items() if k not in override
    }


def parse_config(
    text: str, source: str = "<string>", env: Mapping[str, str] | None = None
) -> Config:
    """Parse and validate config text; raises `ConfigError` listing every problem."""
    env = os.environ if env is None else env
    too_large = bounded_yaml.check_limits(text)
    if too_large is not None:
        raise ConfigError(
            f"{source}:{too_large.line}: refused: {too_large.problem} "
            "(limits in docs/reliability.md, 'Bounded parsing')"
        )
    try:
        root = yaml.compose(text, Loader=bounded_yaml.FAST_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: not valid YAML: {problem}") from exc
    if root is None:
        raise ConfigError(f"{source}: the file is empty; at least 'service:' is required")
    loader = _Loader(source, env)
    try:
        data = loader.build(root, ())
    except _Refused:
        raise ConfigError(loader.problems[-1], problems=loader.problems) from None
    if not isinstance(data, dict):
        problem = f"{source}:1: the top level must be a mapping of keys"
        raise ConfigError(problem, problems=[*loader.problems, problem])
    problems = list(loader.problems)
    config = None
    try:
        # Environment sections are checked as written first, so each error points at its
        # own line; then they are merged over the top level and checked as a whole.
        Config.model_validate(data)
        config = Config.model_validate(_merge_environments(data))
    except ValidationError as exc:
        problems.extend(_format_validation(exc, loader))
    if problems or config is None:
        # A validator may quote a value it refuses, and a value from the environment, or a
        # URL's password, may be a secret: no problem shows one, whoever prints it.
        shown = [redact_text(p, loader.from_environment) for p in problems]
        raise ConfigError(f"{source}: {len(shown)} problem(s) in the configuration", problems=shown)
    config._from_environment = frozenset(loader.from_environment)
    return config


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Read safeship.yaml: `path`, else `$SAFESHIP_CONFIG`, else ./safeship.yaml."""
    env = os.environ if env is None else env
    chosen = Path(path or env.get("SAFESHIP_CONFIG") or DEFAULT_CONFIG_PATH)
    try:
        raw = read_bounded(chosen, bounded_yaml.MAX_BYTES)
    except UnreadableFile as exc:
        raise ConfigError(
            f"{chosen}: refused: the file {exc} (limits in docs/reliability.md, 'Bounded parsing')"
        ) from None
    except FileNotFoundError as exc:
        raise ConfigError(
            f"{chosen}: config file not found (pass --config FILE, set SAFESHIP_CONFIG, "
            "or create safeship.yaml; see examples/)"
        ) from exc
    except OSError as exc:
        raise ConfigError(f"{chosen}: cannot read the config file: {exc.strerror}") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{chosen}:{line}: not UTF-8 text (byte {raw[exc.start]:#04x} at offset "
            f"{exc.start}); save the file as UTF-8"
        ) from exc
    return parse_config(text, str(chosen), env)


def json_schema() -> dict[str, Any]:
    """A JSON Schema of safeship.yaml for editors (yaml-language-server)."""
    schema = Config.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "safeship.yaml"
    return schema


def redacted(config: BaseModel) -> dict[str, Any]:
    """The config as data, fit to show: secret-looking keys, URL user-info and every
    value that came from an environment variable are masked."""
    secrets = secret_values(config)
    masked: dict[str, Any] = _mask(json.loads(config.model_dump_json()), secrets)
    return masked


def secret_values(config: BaseModel, *, interpolated: bool = True) -> frozenset[str]:
    """Every secret value `config` knows, to scrub from whatever is shown or stored.

    The values interpolated from the environment (any may be secret), the values
    its `SecretRef`s point at (when they can be read: a hook inherits the
    environment, so it can print them), and the passwords in its URLs, also in
    their decoded form. `interpolated=False` leaves out the interpolated values that are
    not otherwise secret (a `${PORT}`), for masking everywhere a process prints.
    """
    found: set[str] = set()
    if interpolated:
        found.update(getattr(config, "_from_environment", frozenset()))
    _collect_secrets(config, found)
    return frozenset(found)


def _collect_secrets(value: Any, found: set[str]) -> None:
    if isinstance(value, GrafanaSettings) and value.token is None:
        # The Grafana client falls back to this variable; a hook inherits it too.
        token = os.environ.get(GRAFANA_TOKEN_ENV)
        if token:
            found.add(token)
    if isinstance(value, GrafanaSettings) and value.url is None:
        # Likewise its URL, which may carry a user's password.
        _collect_secrets(os.environ.get(GRAFANA_URL_ENV, ""), found)
    if isinstance(value, SecretRef):
        # Unreadable: nothing to scrub, and whatever uses it says where it looked.
        with contextlib.suppress(ConfigError):
            found.add(value.reveal())
    elif isinstance(value, BasicAuth):
        with contextlib.suppress(ConfigError):
            password = value.password.reveal()
            found.update({password, *basic_credential_forms(value.username, password)})
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            _collect_secrets(getattr(value, name), found)
    elif isinstance(value, dict):
        for item in value.values():
            _collect_secrets(item, found)
    elif isinstance(value, tuple | list):
        for item in value:
            _collect_secrets(item, found)
    elif isinstance(value, str) and "://" in value and "@" in value:
        # The user-info as `redact_url` finds it: up to the last `@` before the query.
        rest = value.partition("://")[2].partition("?")[0]
        userinfo, at, _ = rest.rpartition("@")
        if at and ("@" in rest.partition("/")[0] or ":" in userinfo):
            user, colon, password = userinfo.partition(":")
            # A lone `TOKEN@` is a credential in an http(s) URL; in a database URL
            # (`postgresql://postgres@host`) it is a user name, and masking it in free
            # text would mask every "postgresql" too.
            is_http = value.lower().startswith(("http://", "https://"))
            secret = password if colon else (userinfo if is_http else "")
            if secret:
                found.update({secret, unquote(secret)})
                if colon:  # what an HTTP client sends for these credentials
                    found.update(basic_credential_forms(unquote(user), unquote(secret)))


def _mask(value: Any, secrets: frozenset[str], key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _mask(v, secrets, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v, secrets, key) for v in value]
    if isinstance(value, str):
        if _SECRET_KEY.search(key) and value:
            return MASK
        return redact_text(value, secrets)
    return value


def parse_steps(text: str) -> tuple[int, ...]:
    """Parse `CANARY_STEPS` / `--steps` ("10,50,100")."""
    try:
        return tuple(int(part) for part in text.replace(" ", "").split(",") if part)
    except ValueError as exc:
        raise ConfigError(
            f"steps {text!r}: expected comma-separated whole percentages, e.g. 10,50,100"
        ) from exc
