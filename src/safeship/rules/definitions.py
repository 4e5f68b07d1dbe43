"""The alerting rules as typed data, built from the config's `alerting` section.

Every alert keeps, in its outer aggregation, each label its annotations use,
carries a `severity` (critical pages, warning goes to chat, info to a ticket),
a `for`, and a `summary`, `description` and `runbook_url`. Ratios are guarded
so that no traffic (0/0) never fires. The SLO alerts are the multi-window,
multi-burn-rate alerts of the Google SRE workbook for a 30-day objective,
reading the error ratios from recording rules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from safeship.config import AlertingSettings, Slo, is_staging_like
from safeship.errors import ConfigError

Severity = Literal["critical", "warning", "info"]
SEVERITIES = ("critical", "warning", "info")

DEFAULT_PUSH_JOB = "safeship"
SLO_RATIO_METRIC = "slo:sli_error:ratio_rate"
SLO_WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")

# (long window, short window, burn rate) per severity: SRE workbook, 30-day SLO.
PAGE_BURNS = (("1h", "5m", 14.4), ("6h", "30m", 6.0))
TICKET_BURNS = (("1d", "2h", 3.0), ("3d", "6h", 1.0))

_SERVICE_ENV = "{{ $labels.service }} in {{ $labels.environment }}"


@dataclass(frozen=True)
class AlertRule:
    """One alerting rule; `summary`/`description` are Prometheus templates."""

    name: str
    expr: str
    for_: str
    severity: Severity
    summary: str
    description: str
    runbook_url: str
    labels: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"{self.name}: severity {self.severity!r} not in {SEVERITIES}")


@dataclass(frozen=True)
class RecordingRule:
    record: str
    expr: str
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class RuleGroup:
    name: str
    rules: tuple[AlertRule | RecordingRule, ...] = field(default_factory=tuple)

    @property
    def alerts(self) -> tuple[AlertRule, ...]:
        return tuple(r for r in self.rules if isinstance(r, AlertRule))


def camel(name: str) -> str:
    """`prod-eu_west` -> `ProdEuWest` (alert names are CamelCase)."""
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", name))


def number(value: float) -> str:
    """A float as PromQL text without binary noise (14.4 x 0.001 -> 0.0144)."""
    text = repr(round(value, 12))
    return text[:-2] if text.endswith(".0") else text


def _le_matcher(seconds: float) -> str:
    """Matches the `le` bucket of `seconds` as Go (`1`) and Python (`1.0`) clients write it."""
    text = number(seconds)
    if "." in text or "e" in text:
        return f'le="{text}"'
    return f'le=~"{text}|{text}\\\\.0"'


def escape(value: str) -> str:
    """`value` inside a PromQL double-quoted string."""
    return value.replace("\\", "\\\\").replace('"', '\\"')


class _Builder:
    def __init__(self, settings: AlertingSettings) -> None:
        self.settings = settings

    def alert(
        self,
        name: str,
        expr: str,
        *,
        for_: str,
        severity: Severity,
        summary: str,
        description: str,
        labels: tuple[tuple[str, str], ...] = (),
    ) -> AlertRule:
        return AlertRule(
            name=name,
            expr=expr.strip(),
            for_=for_,
            severity=severity,
            summary=summary,
            description=description,
            runbook_url=self.settings.runbook_url.replace("{alertname}", name),
            labels=labels,
        )


def deployment_rules(settings: AlertingSettings, push_job: str = DEFAULT_PUSH_JOB) -> RuleGroup:
    """Alerts on the deployment metrics safeship itself exports."""
    b = _Builder(settings)
    job = escape(push_job)
    total_1h = "sum by (service, environment) (increase(deployment_total[1h]))"
    rules = (
        b.alert(
            "DeploymentHighErrorRate",
            f"""
(
  sum by (service, environment) (increase(deployment_total{{status="failed"}}[1h]))
  /
  {total_1h}
) > 0.1
and
{total_1h} >= 1
""",
            for_="5m",
            severity="warning",
            summary=f"Deployments of {_SERVICE_ENV} are failing",
            description=(
                "{{ $value | humanizePercentage }} of the deployments of {{ $labels.service }} "
                "to {{ $labels.environment }} failed in the last hour (threshold 10%)."
            ),
        ),
        b.alert(
            "DeploymentRollbackDetected",
            """
sum by (service, environment, reason) (increase(deployment_rollback_total[10m])) > 0
""",
            for_="1m",
            severity="warning",
            summary=f"A deployment of {_SERVICE_ENV} was rolled back",
            description=(
                "{{ $labels.service }} in {{ $labels.environment }} was rolled back in the "
                "last 10 minutes (reason: {{ $labels.reason }})."
            ),
        ),
        b.alert(
            "CanaryCrashLooping",
            """
sum by (service, environment) (increase(deployment_rollback_total{reason="crash_loop"}[30m])) > 0
""",
            for_="1m",
            severity="warning",
            summary=f"A canary of {_SERVICE_ENV} was crash-looping",
            description=(
                "A new version of {{ $labels.service }} in {{ $labels.environment }} kept "
                "restarting under canary traffic and was rolled back (crash_loop) in the last "
                "30 minutes; its logs say why it dies."
            ),
        ),
        b.alert(
            "SmokeTestFailing",
            """
sum by (service, environment) (increase(smoke_test_total{result="failed"}[15m])) > 0
""",
            for_="1m",
            severity="warning",
            summary=f"Smoke tests of {_SERVICE_ENV} are failing",
            description=(
                "Smoke tests of {{ $labels.service }} in {{ $labels.environment }} failed "
                "in the last 15 minutes; new versions are not getting traffic."
            ),
        ),
        b.alert(
            "DeploymentFrequencyAnomaly",
            f"{total_1h} > 2",
            for_="5m",
            severity="info",
            summary=f"Unusually many deployments of {_SERVICE_ENV}",
            description=(
                "{{ $labels.service }} was deployed to {{ $labels.environment }} "
                '{{ $value | printf "%.0f" }} times in the last hour (more than 2).'
            ),
        ),
        b.alert(
            "CanaryAnalysisFailed",
            """
sum by (service, environment, check) (increase(canary_analysis_total{result="fail"}[15m])) > 0
""",
            for_="1m",
            severity="warning",
            summary=f"Canary analysis failed for {_SERVICE_ENV}",
            description=(
                "The canary check {{ $labels.check }} failed for {{ $labels.service }} in "
                "{{ $labels.environment }} in the last 15 minutes."
            ),
        ),
        b.alert(
            "RolloutStuck",
            """
(time() - max by (service, environment) (rollout_started_timestamp_seconds)) > 3600
and
max by (service, environment) (rollout_in_progress) == 1
""",
            for_="5m",
            severity="warning",
            summary=f"The rollout of {_SERVICE_ENV} is stuck",
            description=(
                "A rollout of {{ $labels.service }} to {{ $labels.environment }} started "
                "{{ $value | humanizeDuration }} ago and is still in progress (limit 1h)."
            ),
        ),
        b.alert(
            "PrometheusQueryFailing",
            """
(
  sum by (service, workflow) (rate(prometheus_query_total{result=~"failed|timeout"}[15m]))
  /
  sum by (service, workflow) (rate(prometheus_query_total[15m]))
) > 0.1
and
sum by (service, workflow) (rate(prometheus_query_total[15m])) > 0
""",
            for_="10m",
            severity="warning",
            summary="Prometheus queries of {{ $labels.service }} ({{ $labels.workflow }}) fail",
            description=(
                "{{ $value | humanizePercentage }} of the Prometheus queries of "
                "{{ $labels.service }} in workflow {{ $labels.workflow }} failed or timed out "
                "in the last 15 minutes (threshold 10%); canary analysis is blind."
            ),
        ),
        b.alert(
            "DeploymentMetricsStale",
            f'time() - max by (service, environment) (push_time_seconds{{job="{job}"}}) > 7200',
            for_="10m",
            severity="info",
            summary=f"No deployment metrics pushed for {_SERVICE_ENV}",
            description=(
                "The deployment metrics of {{ $labels.service }} in {{ $labels.environment }} "
                "were last pushed {{ $value | humanizeDuration }} ago (limit 2h)."
            ),
        ),
        b.alert(
            "DeploymentMetricsAbsent",
            f'absent(push_time_seconds{{job="{job}"}})',
            for_="30m",
            severity="warning",
            summary="No deployment metrics in Prometheus",
            description=(
                f'Prometheus has no push_time_seconds series of job "{job}": '
                "the Pushgateway is not scraped (with honor_labels) or nothing was pushed."
            ),
        ),
    )
    return RuleGroup("safeship-deployments", rules)


def service_rules(settings: AlertingSettings) -> RuleGroup:
    """Per-environment 5xx ratio and p95 latency alerts on the service's own metrics."""
    b = _Builder(settings)
    rules: list[AlertRule | RecordingRule] = []
    for env, limits in settings.environments.items():
        sel = f'environment="{escape(env)}"'
        # Production-like environments page (prod, live, production-eu, ...); staging-like
        # ones go to chat, whatever their exact names.
        severity: Severity = "warning" if is_staging_like(env) else "critical"
        requests = f"sum by (service, environment) (rate(http_requests_total{{{sel}}}[5m]))"
        rules.append(
            b.alert(
                f"HighErrorRate{camel(env)}",
                f"""
(
  sum by (service, environment) (rate(http_requests_total{{{sel}, status=~"5.."}}[5m]))
  /
  {requests}
) > {number(limits.error_rate)}
and
{requests} > 0
""",
                for_=limits.for_,
                severity=severity,
                summary=f"High 5xx ratio for {_SERVICE_ENV}",
                description=(
                    "{{ $value | humanizePercentage }} of the requests to {{ $labels.service }} "
                    f"in {{{{ $labels.environment }}}} failed with 5xx over 5 minutes "
                    f"(threshold {number(limits.error_rate * 100)}%)."
                ),
            )
        )
        rules.append(
            b.alert(
                f"HighLatency{camel(env)}",
                f"""
histogram_quantile(
  0.95,
  sum by (le, service, environment) (rate(http_request_duration_seconds_bucket{{{sel}}}[5m]))
) > {number(limits.latency_p95_seconds)}
""",
                for_=limits.for_,
                severity=severity,
                summary=f"High p95 latency for {_SERVICE_ENV}",
                description=(
                    "The p95 latency of {{ $labels.service }} in {{ $labels.environment }} is "
                    "{{ $value | humanizeDuration }} over 5 minutes "
                    f"(threshold {number(limits.latency_p95_seconds)}s)."
                ),
            )
        )
    return RuleGroup("safeship-service", tuple(rules))


def slo_error_ratio(slo: Slo, window: str) -> str:
    """The share of bad events over `window` per service and environment."""
    if slo.kind == "availability":
        return (
            'sum by (service, environment) (rate(http_requests_total{status=~"5.."}[W]))\n'
            "/\n"
            "sum by (service, environment) (rate(http_requests_total[W]))"
        ).replace("W", window)
    assert slo.latency_threshold_seconds is not None
    le = _le_matcher(slo.latency_threshold_seconds)
    return (
        "1 - (\n"
        f"  sum by (service, environment) (rate(http_request_duration_seconds_bucket{{{le}}}[W]))\n"
        "  /\n"
        "  sum by (service, environment) "
        '(rate(http_request_duration_seconds_bucket{le="+Inf"}[W]))\n'
        ")"
    ).replace("[W]", f"[{window}]")


def slo_recording_rules(settings: AlertingSettings) -> RuleGroup:
    rules = tuple(
        RecordingRule(
            record=f"{SLO_RATIO_METRIC}{window}",
            expr=slo_error_ratio(slo, window),
            labels=(("slo", slo.name),),
        )
        for slo in settings.slos
        for window in SLO_WINDOWS
    )
    return RuleGroup("safeship-slo-recording", rules)


def paging_environments(settings: AlertingSettings) -> tuple[str, ...]:
    """The environments SLO burn alerts watch: the production-like ones (a staging's
    budget burning pages nobody)."""
    return tuple(env for env in settings.environments if not is_staging_like(env))


def _burn_expr(
    slo: Slo, burns: tuple[tuple[str, str, float], ...], environments: tuple[str, ...]
) -> str:
    budget = 1 - slo.objective
    matcher = "|".join(
        escape(re.sub(r"([.+*?()|\[\]{}^$\\])", r"\\\1", env)) for env in environments
    )
    parts = []
    for long, short, rate in burns:
        limit = number(rate * budget)
        sel = f'{{slo="{slo.name}", environment=~"{matcher}"}}'
        parts.append(
            "(\n"
            f"  {SLO_RATIO_METRIC}{long}{sel} > {limit}\n"
            "  and\n"
            f"  {SLO_RATIO_METRIC}{short}{sel} > {limit}\n"
            ")"
        )
    return "\nor\n".join(parts)


def slo_alert_rules(settings: AlertingSettings) -> RuleGroup:
    b = _Builder(settings)
    rules: list[AlertRule | RecordingRule] = []
    environments = paging_environments(settings)
    for slo in settings.slos if environments else ():
        objective = number(slo.objective * 100)
        what = (
            "5xx responses"
            if slo.kind == "availability"
            else (f"requests slower than {number(slo.latency_threshold_seconds or 0)}s")
        )
        plans: tuple[tuple[str, tuple[tuple[str, str, float], ...], Severity, str, str], ...] = (
            ("Fast", PAGE_BURNS, "critical", "2m", "fast"),
            ("Slow", TICKET_BURNS, "warning", "15m", "slowly"),
        )
        for kind, burns, severity, for_, pace in plans:
            long_windows = " / ".join(f"{long}+{short} x{number(r)}" for long, short, r in burns)
            rules.append(
                b.alert(
                    f"{camel(slo.name)}ErrorBudget{kind}Burn",
                    _burn_expr(slo, burns, environments),
                    for_=for_,
                    severity=severity,
                    labels=(("slo", slo.name),),
                    summary=(
                        f"{{{{ $labels.service }}}} in {{{{ $labels.environment }}}} burns the "
                        f"{slo.name} error budget {pace}"
                    ),
                    description=(
                        f"{{{{ $value | humanizePercentage }}}} {what} for "
                        f"{{{{ $labels.service }}}} in {{{{ $labels.environment }}}}: "
                        f"the {objective}% {slo.name} SLO "
                        f"(30 days) burns its error budget {pace} (windows {long_windows})."
                    ),
                )
            )
    return RuleGroup("safeship-slo-alerts", tuple(rules))


def rule_groups(
    settings: AlertingSettings | None = None, push_job: str = DEFAULT_PUSH_JOB
) -> tuple[RuleGroup, ...]:
    """Every rule group, in file order, from the config's alerting settings."""
    settings = settings or AlertingSettings()
    groups = [deployment_rules(settings, push_job), service_rules(settings)]
    if settings.slos:
        groups += [slo_recording_rules(settings), slo_alert_rules(settings)]
    names = [alert.name for group in groups for alert in group.alerts]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ConfigError(
            f"alerting: environment or SLO names give duplicate alert names {duplicates}; "
            "rename them so their CamelCase forms differ"
        )
    return tuple(groups)


def all_alerts(groups: tuple[RuleGroup, ...]) -> tuple[AlertRule, ...]:
    return tuple(alert for group in groups for alert in group.alerts)
