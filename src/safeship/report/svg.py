"""Inline SVG charts drawn in Python, so the HTML report needs no script and no network.

Every drawn data mark (bar, line, point) carries `class="mark"`, which is what the
browser test counts to prove a chart drew something.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from safeship.report.ticks import Tick, count_ticks, percent_ticks, time_ticks

WIDTH = 760
HEIGHT = 260
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 56, 16, 48


@dataclass(frozen=True)
class Series:
    name: str
    color: str
    values: Sequence[float]


def _frame(body: list[str], label: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{escape(label)}">'
        + "".join(body)
        + "</svg>"
    )


def _text(x: float, y: float, text: str, anchor: str = "middle", cls: str = "tick") -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" class="{cls}">{escape(text)}</text>'
    )


def _y_axis(ticks: Sequence[Tick], x: float, anchor: str) -> list[str]:
    """Grid lines and labels at `ticks`, the last one at the top of the plot."""
    plot_height = HEIGHT - _TOP - _BOTTOM
    top = ticks[-1].value
    parts = []
    for tick in ticks:
        y = HEIGHT - _BOTTOM - plot_height * tick.value / top
        parts.append(
            f'<line x1="{_LEFT}" x2="{WIDTH - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
        )
        parts.append(_text(x, y + 4, tick.label, anchor))
    return parts


def _legend(series: Sequence[tuple[str, str]]) -> list[str]:
    parts = []
    x = _LEFT
    for name, color in series:
        parts.append(f'<rect x="{x}" y="{HEIGHT - 14}" width="10" height="10" fill="{color}"/>')
        parts.append(_text(x + 14, HEIGHT - 5, name, "start", "legend"))
        x += 24 + 7 * len(name)
    return parts


def bar_chart(labels: Sequence[str], series: Sequence[Series], label: str) -> str:
    """Stacked bars, one per label; at most ~12 tick labels are written under them."""
    totals = [sum(s.values[i] for s in series) for i in range(len(labels))]
    ticks = count_ticks(max(totals, default=0))
    top = ticks[-1].value
    plot_width = WIDTH - _LEFT - _RIGHT
    plot_height = HEIGHT - _TOP - _BOTTOM
    slot = plot_width / max(len(labels), 1)
    bar = max(slot * 0.8, 1.0)
    body = _y_axis(ticks, _LEFT - 6, "end")
    every = max(1, -(-len(labels) // 12))
    for i, name in enumerate(labels):
        x = _LEFT + i * slot + (slot - bar) / 2
        base = float(HEIGHT - _BOTTOM)
        for s in series:
            height = plot_height * s.values[i] / top
            if height > 0:
                base -= height
                body.append(
                    f'<rect class="mark" x="{x:.2f}" y="{base:.2f}" width="{bar:.2f}" '
                    f'height="{height:.2f}" fill="{s.color}">'
                    f"<title>{escape(name)} {escape(s.name)}: {s.values[i]:g}</title></rect>"
                )
        if i % every == 0:
            body.append(_text(x + bar / 2, HEIGHT - _BOTTOM + 14, name))
    if len(series) > 1:
        body += _legend([(s.name, s.color) for s in series])
    return _frame(body, label)


@dataclass(frozen=True)
class Line:
    name: str
    color: str
    points: Sequence[tuple[float, float]]  # (x, y); y on the line's own axis
    step: bool = False


def line_chart(
    left: Line, right: Sequence[Line], x_max: float, right_max: float, label: str
) -> str:
    """`left` on a 0-100% axis (canary weight, as a step line), `right` lines on a second
    axis of ratios up to at least `right_max` (error rates, shown as percentages) on the
    same grid lines, against seconds up to `x_max`."""
    plot_width = WIDTH - _LEFT - _RIGHT
    plot_height = HEIGHT - _TOP - _BOTTOM
    weights = [Tick(t.value, f"{t.label}%") for t in count_ticks(100)]
    rates = percent_ticks(right_max, len(weights) - 1)
    seconds = time_ticks(x_max)
    right_top = rates[-1].value
    x_max = max(x_max, seconds[-1].value)  # the data's end, or 1 s when shorter

    def x_of(x: float) -> float:
        return _LEFT + plot_width * x / x_max

    def y_of(y: float, top: float) -> float:
        return HEIGHT - _BOTTOM - plot_height * y / top

    body = _y_axis(weights, _LEFT - 6, "end")
    body += [
        _text(WIDTH - _RIGHT + 6, y_of(tick.value, right_top) + 4, tick.label, "start")
        for tick in rates
    ]
    body += [_text(x_of(tick.value), HEIGHT - _BOTTOM + 14, tick.label) for tick in seconds]
    for line, top in [(left, 100.0), *((r, right_top) for r in right)]:
        if not line.points:
            continue
        coords: list[tuple[float, float]] = []
        for x, y in line.points:
            if line.step and coords:
                coords.append((x_of(x), coords[-1][1]))
            coords.append((x_of(x), y_of(y, top)))
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        body.append(
            f'<polyline class="mark" fill="none" stroke="{line.color}" stroke-width="2" '
            f'points="{path}"><title>{escape(line.name)}</title></polyline>'
        )
        if not line.step:
            body += [
                f'<circle class="mark" cx="{x_of(x):.1f}" cy="{y_of(y, top):.1f}" r="3" '
                f'fill="{line.color}"/>'
                for x, y in line.points
            ]
    body += _legend([(left.name, left.color), *((r.name, r.color) for r in right)])
    return _frame(body, label)
