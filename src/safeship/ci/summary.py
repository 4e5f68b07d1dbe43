"""The step summary of one rollout: markdown for `$GITHUB_STEP_SUMMARY`, from the stored story.

It is built from `rollout_story` (the history store's record) rather than from
what this process happened to see, so a resumed or promoted rollout's summary
tells the whole rollout, and what a reviewer reads on the run page is exactly
what `safeship rollout explain` would say.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# A chart of a long hold stays readable (and the summary small) with this many points at most.
MAX_CHART_POINTS = 60


def rollout_summary(story: dict[str, Any], steps: Sequence[int]) -> str:
    """Outcome, steps with their weights, every decision, the deciding inputs and a chart."""
    d = story["deployment"]
    start = float(d["started_at"])
    outcome = d["outcome"] or "running"
    lines = [
        f"## safeship rollout `{_code(d['id'])}`",
        "",
        f"**{_cell(d['service'])}** `{_code(d['version'])}` → **{_cell(d['environment'])}**: "
        f"**{outcome}**"
        + (f" ({d['reason']})" if d["reason"] else "")
        + f", reached {d['max_weight']}%"
        + _duration(d["duration"]),
    ]
    if story["cause"]:
        lines += [
            "",
            f"> because (decision #{story['cause']['seq']}): {_cell(story['cause']['reason'])}",
        ]
    lines += ["", "### Steps", "", "| step | canary weight | reached at |", "| --- | --- | --- |"]
    for index, weight in enumerate(steps, start=1):
        # The stored weight changes only once the router confirmed it.
        reached = next((s["at"] for s in story["states"] if s["weight"] == weight), None)
        lines.append(f"| {index} | {weight}% | {_offset(reached, start)} |")
    lines += _decision_table(story["decisions"], start)
    lines += _decision_details(story["decisions"], start)
    lines += _chart(story, start)
    return "\n".join(lines) + "\n"


def _decision_table(decisions: list[dict[str, Any]], start: float) -> list[str]:
    lines = [
        "",
        "### Decisions",
        "",
        "| # | at | weight | action | result | canary errors | baseline errors | reason |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for dec in decisions:
        samples = (dec["inputs"].get("verdict") or {}).get("samples")
        canary = baseline = "-"
        if samples:
            canary = f"{samples['canary_errors']:.0f}/{samples['canary_requests']:.0f}"
            baseline = f"{samples['baseline_errors']:.0f}/{samples['baseline_requests']:.0f}"
        lines.append(
            f"| {dec['seq']} | {_offset(dec['at'], start)} | {dec['weight']}% | {dec['action']} "
            f"| {dec['result']} | {canary} | {baseline} | {_cell(dec['reason'])} |"
        )
    return lines


def _decision_details(decisions: list[dict[str, Any]], start: float) -> list[str]:
    """Each analysis decision that changed the rollout (or saw a failure), with its inputs.

    Holds that simply continue are in the table and the chart; repeating their
    queries every interval would bury the decisions that mattered.
    """
    lines: list[str] = []
    for dec in decisions:
        inputs = dec["inputs"]
        verdict = inputs.get("verdict")
        if not verdict or (dec["action"] == "continue" and verdict["result"] == "pass"):
            continue
        if not lines:
            lines += ["", "### What each decision was made from", ""]
        window = verdict["window"]
        lines += [
            "<details open>" if dec["action"] != "continue" else "<details>",
            f"<summary>#{dec['seq']} at {_offset(dec['at'], start)}, weight {dec['weight']}%: "
            f"{dec['action']} ({verdict['result']})</summary>",
            "",
            f"{_cell(dec['reason'])}",
            "",
            f"Window {window['seconds']:g}s. "
            + _counters(inputs.get("counters"), inputs.get("step")),
            "",
            "| check | result | canary | baseline | limit | details | reason |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for check in verdict["checks"]:
            lines.append(
                f"| {_cell(check['name'])} ({_cell(check['kind'])}) | {check['result']} "
                f"| {_number(check['canary'])} | {_number(check['baseline'])} "
                f"| {_number(check['limit'])} | {_details(check.get('details', {}))} "
                f"| {_cell(check['reason'])} |"
            )
        for name, query in verdict.get("queries", {}).items():
            fence = "`" * max(3, _longest_backtick_run(query) + 1)
            lines += ["", f"Query `{_code(name)}`:", "", f"{fence}promql", query, fence]
        lines += ["", "</details>", ""]
    return lines


def _counters(counters: dict[str, Any] | None, step: dict[str, Any] | None) -> str:
    parts = []
    if counters:
        parts.append(f"Failures {counters['failures']} (limit {counters['failure_limit']})")
        parts.append(
            f"provider errors in a row {counters['consecutive_errors']} "
            f"(limit {counters['consecutive_error_limit']})"
        )
    if step:
        parts.append(f"hold {step['hold']:g}s, warm-up {step['warmup']:g}s")
        parts.append(f"min requests {step['min_requests']}")
    return "; ".join(parts) + "." if parts else ""


@dataclass(frozen=True)
class _Point:
    label: str
    weight: float
    canary_error_pct: float
    baseline_error_pct: float


def _chart(story: dict[str, Any], start: float) -> list[str]:
    """Canary weight and error rates over time as a mermaid `xychart-beta` line chart.

    A look with no requests has no error rate: the line keeps the last measured
    value instead of drawing a zero that was never observed.
    """
    points = _points(story, start)
    if len(points) < 2:
        return []
    labels = ", ".join(f'"{p.label}"' for p in points)
    return [
        "",
        "### Canary weight and error rate",
        "",
        "Lines, in order: canary weight, canary error rate, baseline error rate (all in %).",
        "",
        "```mermaid",
        "xychart-beta",
        '    title "Canary weight and error rate (%)"',
        f'    x-axis "time since start" [{labels}]',
        '    y-axis "percent" 0 --> 100',
        f"    line [{', '.join(_pct(p.weight) for p in points)}]",
        f"    line [{', '.join(_pct(p.canary_error_pct) for p in points)}]",
        f"    line [{', '.join(_pct(p.baseline_error_pct) for p in points)}]",
        "```",
    ]


def _points(story: dict[str, Any], start: float) -> list[_Point]:
    """The start, one point per analysis look (its weight and error rates), and the end.

    The end is a point of its own: a rollback moves the weight to 0 within the
    same second as the look that decided it, and both must show.
    """
    canary = baseline = 0.0
    points = [_Point("0s", 0, 0.0, 0.0)]
    for dec in story["decisions"]:
        verdict = dec["inputs"].get("verdict")
        if not verdict:
            continue
        samples = verdict["samples"]
        canary = _rate(samples["canary_errors"], samples["canary_requests"], canary)
        baseline = _rate(samples["baseline_errors"], samples["baseline_requests"], baseline)
        point = _Point(f"{max(0.0, dec['at'] - start):.0f}s", dec["weight"], canary, baseline)
        if points[-1].label == point.label:
            points[-1] = point  # one point per second: the latest look wins
        else:
            points.append(point)
    if len(points) > 1:
        last = story["states"][-1]
        points.append(
            _Point(f"end {max(0.0, last['at'] - start):.0f}s", last["weight"], canary, baseline)
        )
    return _thin(points, MAX_CHART_POINTS)


def _rate(errors: float, requests: float, previous: float) -> float:
    return 100.0 * errors / requests if requests > 0 else previous


def _thin(points: list[_Point], limit: int) -> list[_Point]:
    """At most `limit` points, evenly spread, always keeping the first and the last."""
    if len(points) <= limit:
        return points
    stride = (len(points) - 1) / (limit - 1)
    return [points[round(i * stride)] for i in range(limit)]


def _pct(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".") or "0"


def _number(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.4g}"


def _details(details: dict[str, Any]) -> str:
    shown = [
        f"{key}={_number(value) if isinstance(value, float) else value}"
        for key, value in details.items()
        if isinstance(value, int | float | str) and not isinstance(value, bool)
    ]
    return _cell(", ".join(shown)) or "-"


def _offset(at: float | None, start: float) -> str:
    return "-" if at is None else f"+{max(0.0, at - start):.0f}s"


def _duration(seconds: float | None) -> str:
    return "" if seconds is None else f" in {seconds:.0f}s"


def _cell(text: object) -> str:
    """Text safe inside a markdown table cell: one line, no column breaks, no raw HTML."""
    return (
        str(text)
        .replace("\\", "\\\\")
        .replace("|", "\\|")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace("\r", " ")
        .replace("\n", " ")
    )


def _code(text: object) -> str:
    return str(text).replace("`", "'")


def _longest_backtick_run(text: str) -> int:
    longest = run = 0
    for char in text:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    return longest
