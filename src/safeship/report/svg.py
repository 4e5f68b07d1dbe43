"""Inline SVG charts drawn in Python, so the HTML report needs no script and no network.

Every drawn data mark (bar, line, point) carries `class="mark"`, which is what the
browser test counts to prove a chart drew something.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

WIDTH = 760
HEIGHT = 260
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 56, 16, 48


@dataclass(frozen=True)
class Series:
    name: str
    color: str
    values: Sequence[float]


def _nice_max(value: float) -> float:
    """A round axis maximum at or above `value` (1, 2 or 5 times a power of ten)."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** len(str(int(value)))  # above value
    for candidate in (magnitude / 10, magnitude / 5, magnitude / 2, magnitude):
        if candidate >= value:
            return float(candidate)
    return float(magnitude)


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


def _y_axis(top: float, x: float, anchor: str, fmt: str = "{:g}") -> list[str]:
    plot_height = HEIGHT - _TOP - _BOTTOM
    parts = []
    for i in range(5):
        value = top * i / 4
        y = HEIGHT - _BOTTOM - plot_height * i / 4
        parts.append(
            f'<line x1="{_LEFT}" x2="{WIDTH - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
        )
        parts.append(_text(x, y + 4, fmt.format(value), anchor))
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
    top = _nice_max(max(totals, default=0))
    plot_width = WIDTH - _LEFT - _RIGHT
    plot_height = HEIGHT - _TOP - _BOTTOM
    slot = plot_width / max(len(labels), 1)
    bar = max(slot * 0.8, 1.0)
    body = _y_axis(top, _LEFT - 6, "end")
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
    left: Line, right: Sequence[Line], x_max: float, right_top: float, label: str
) -> str:
    """`left` on a 0-100 axis (canary weight, as a step line), `right` lines on a second
    axis from 0 to `right_top` (error rates, as percentages), against seconds."""
    plot_width = WIDTH - _LEFT - _RIGHT
    plot_height = HEIGHT - _TOP - _BOTTOM
    right_top = _nice_max(right_top * 100) / 100 if right_top > 0 else 0.01
    x_max = max(x_max, 1.0)

    def x_of(x: float) -> float:
        return _LEFT + plot_width * x / x_max

    def y_of(y: float, top: float) -> float:
        return HEIGHT - _BOTTOM - plot_height * y / top

    body = _y_axis(100, _LEFT - 6, "end", "{:g}%")
    body += [
        _text(
            WIDTH - _RIGHT + 6,
            y_of(right_top * i / 4, right_top) + 4,
            f"{right_top * i / 4:.1%}",
            "start",
        )
        for i in range(5)
    ]
    for i in range(5):
        body.append(
            _text(x_of(x_max * i / 4), HEIGHT - _BOTTOM + 14, f"{x_max * i / 4 / 60:.0f} min")
        )
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
