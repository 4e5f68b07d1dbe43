"""The report charts' axes carry ticks a person would pick, read from the rendered SVG.

Counts step by whole numbers, rates by 1, 2 or 5 times a power of ten with every label
exact, and time since a rollout started by whole seconds, minutes or hours; no two labels
of one axis read the same.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safeship.report.build import report_from_url
from safeship.report.period import DAY, Period
from safeship.report.queries import Scope
from safeship.report.render_html import render_html
from safeship.report.svg import Line, Series, bar_chart, line_chart
from safeship.report.synthetic import generate_history
from safeship.report.ticks import count_ticks, percent_ticks, time_ticks

_TICK = re.compile(r'<text x="[^"]*" y="[^"]*" text-anchor="(\w+)" class="tick">([^<]*)</text>')


def axes(svg: str) -> dict[str, list[str]]:
    """Tick labels by axis: y on the left (anchored at their end), the right y axis
    (anchored at their start) and the x axis (centred under it)."""
    found: dict[str, list[str]] = {"left": [], "right": [], "bottom": []}
    names = {"end": "left", "start": "right", "middle": "bottom"}
    for anchor, label in _TICK.findall(svg):
        found[names[anchor]].append(label.replace("&#x27;", "'"))
    return found


def counts_axis(*totals: float) -> list[str]:
    svg = bar_chart([str(i) for i in range(len(totals))], [Series("n", "#000", totals)], "c")
    return axes(svg)["left"]


@pytest.mark.parametrize(
    ("totals", "labels"),
    [
        pytest.param((0, 0), ["0", "1"], id="nothing"),
        pytest.param((1,), ["0", "1"], id="a single deployment"),
        pytest.param((1, 3), ["0", "1", "2", "3"], id="a few"),
        pytest.param((2, 7), ["0", "2", "4", "6", "8"], id="seven"),
        pytest.param((12,), ["0", "5", "10", "15"], id="twelve"),
        pytest.param((100, 40), ["0", "20", "40", "60", "80", "100"], id="a hundred"),
        pytest.param((5000,), ["0", "1000", "2000", "3000", "4000", "5000"], id="thousands"),
        pytest.param((38_000,), ["0", "10k", "20k", "30k", "40k"], id="tens of thousands"),
        pytest.param((1_234_567,), ["0", "0.5M", "1.0M", "1.5M"], id="huge"),
        pytest.param((3e9,), ["0", "1G", "2G", "3G"], id="enormous"),
    ],
)
def test_count_axes_step_by_whole_numbers(totals: tuple[float, ...], labels: list[str]) -> None:
    assert counts_axis(*totals) == labels


def canary_axes(seconds: float, error_rate: float) -> dict[str, list[str]]:
    weight = Line("weight", "#000", [(0, 0), (seconds / 2, 10), (seconds, 100)], step=True)
    rate = Line("canary error rate", "#f00", [(seconds / 2, error_rate), (seconds, 0.0)])
    return axes(line_chart(weight, [rate], seconds, error_rate, "canary"))


@pytest.mark.parametrize(
    ("seconds", "labels"),
    [
        pytest.param(0.0, ["0", "1 s"], id="nothing yet"),
        pytest.param(0.4, ["0", "1 s"], id="under a second"),
        pytest.param(5.0, ["0", "1 s", "2 s", "3 s", "4 s", "5 s"], id="seconds"),
        pytest.param(50.0, ["0", "10 s", "20 s", "30 s", "40 s", "50 s"], id="under a minute"),
        pytest.param(95.0, ["0", "30 s", "1 min", "1 min 30 s"], id="a minute and a half"),
        pytest.param(245.0, ["0", "1 min", "2 min", "3 min", "4 min"], id="minutes"),
        pytest.param(930.0, ["0", "5 min", "10 min", "15 min"], id="a quarter of an hour"),
        pytest.param(3600.0, ["0", "15 min", "30 min", "45 min", "1 h"], id="an hour"),
        pytest.param(
            5000.0,
            ["0", "15 min", "30 min", "45 min", "1 h", "1 h 15 min"],
            id="an hour and a half",
        ),
        pytest.param(3 * DAY, ["0", "1 d", "2 d", "3 d"], id="days"),
        pytest.param(100 * DAY, ["0", "20 d", "40 d", "60 d", "80 d", "100 d"], id="months"),
    ],
)
def test_time_axes_step_by_whole_units(seconds: float, labels: list[str]) -> None:
    assert canary_axes(seconds, 0.01)["bottom"] == labels


@pytest.mark.parametrize(
    ("error_rate", "labels"),
    [
        pytest.param(0.0, ["0%", "0.2%", "0.4%", "0.6%", "0.8%", "1.0%"], id="no errors"),
        pytest.param(
            0.0025, ["0%", "0.05%", "0.10%", "0.15%", "0.20%", "0.25%"], id="a quarter percent"
        ),
        pytest.param(0.008, ["0%", "0.2%", "0.4%", "0.6%", "0.8%", "1.0%"], id="under 1%"),
        pytest.param(
            3e-6,
            ["0%", "0.0001%", "0.0002%", "0.0003%", "0.0004%", "0.0005%"],
            id="a tiny rate",
        ),
        pytest.param(0.25, ["0%", "5%", "10%", "15%", "20%", "25%"], id="a quarter"),
        pytest.param(0.75, ["0%", "20%", "40%", "60%", "80%", "100%"], id="three quarters"),
        pytest.param(1.0, ["0%", "20%", "40%", "60%", "80%", "100%"], id="everything fails"),
    ],
)
def test_error_rate_axes_are_exact_percentages_on_the_weight_axis_grid(
    error_rate: float, labels: list[str]
) -> None:
    found = canary_axes(120.0, error_rate)
    assert found["left"] == ["0%", "20%", "40%", "60%", "80%", "100%"]  # canary weight
    assert found["right"] == labels


def test_every_axis_of_the_html_report_has_distinct_labels(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/history.db"
    now = time.time()
    generate_history(url, 300, 20, seed=3, end=now)
    html = render_html(report_from_url(url, Scope(Period(now - 30 * DAY, now)), now))
    svgs = re.findall(r"<svg .*?</svg>", html)
    assert len(svgs) >= 4
    lines = [svg for svg in svgs if "<polyline" in svg]
    assert lines  # canary traces
    for svg in svgs:
        found = axes(svg)
        numeric = [found["left"], found["right"]]
        if svg in lines:
            numeric.append(found["bottom"])  # a bar chart's x labels name its bars
        for labels in filter(None, numeric):
            assert len(labels) == len(set(labels)), labels
            assert labels[0] in ("0", "0%")


# --- for any range -------------------------------------------------------------------------

_SUFFIXES = {"k": 1e3, "M": 1e6, "G": 1e9, "%": 1e-2}
_SECONDS = {"s": 1, "min": 60, "h": 3600, "d": 86400}


def _read(label: str) -> float:
    """A count or percent label back as a number: "1.5M" is 1.5e6, "0.25%" is 0.0025."""
    if label[-1] in _SUFFIXES:
        return float(label[:-1]) * _SUFFIXES[label[-1]]
    return float(label)


def _read_duration(label: str) -> float:
    words = label.split()
    return sum(int(n) * _SECONDS[unit] for n, unit in zip(words[::2], words[1::2], strict=True))


def _evenly_spaced_from_zero(values: list[float]) -> None:
    assert values[0] == 0
    step = values[1]
    assert step > 0
    assert values == pytest.approx([k * step for k in range(len(values))], rel=1e-9)


@settings(max_examples=300)
@given(st.floats(min_value=0, max_value=1e12))
def test_count_ticks_are_whole_distinct_exact_and_cover_the_data(high: float) -> None:
    ticks = count_ticks(high)
    values = [t.value for t in ticks]
    _evenly_spaced_from_zero(values)
    assert 2 <= len(ticks) <= 7
    assert values[-1] >= high
    assert all(v == int(v) for v in values)
    labels = [t.label for t in ticks]
    assert len(set(labels)) == len(labels)
    assert [_read(label) for label in labels] == pytest.approx(values, rel=1e-12)


@settings(max_examples=300)
@given(st.floats(min_value=0, max_value=1), st.integers(min_value=1, max_value=10))
def test_percent_ticks_are_distinct_exact_and_cover_the_data(high: float, steps: int) -> None:
    ticks = percent_ticks(high, steps)
    values = [t.value for t in ticks]
    _evenly_spaced_from_zero(values)
    assert len(ticks) == steps + 1
    assert values[-1] >= high * (1 - 1e-9)  # to within float error
    labels = [t.label for t in ticks]
    assert len(set(labels)) == len(labels)
    assert [_read(label) for label in labels] == pytest.approx(values, rel=1e-12)


@settings(max_examples=300)
@given(st.floats(min_value=0, max_value=1000 * DAY))
def test_time_ticks_are_whole_seconds_distinct_and_within_the_data(high: float) -> None:
    ticks = time_ticks(high)
    values = [t.value for t in ticks]
    _evenly_spaced_from_zero(values)
    assert 2 <= len(ticks) <= 6
    assert max(high, 1) - values[1] < values[-1] <= max(high, 1)
    assert all(v == int(v) for v in values)
    labels = [t.label for t in ticks]
    assert labels[0] == "0"
    assert [_read_duration(label) for label in labels[1:]] == values[1:]
