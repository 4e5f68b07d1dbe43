"""Just enough PromQL reading to diagnose a query: its vector selectors and their ranges.

Prometheus 2.42 has no parse endpoint, so `safeship check` finds the vector
selectors itself (metric name, label matchers, range, and the function the
selector is passed to) to ask Prometheus about each one separately: which
metric is absent, which label value matches nothing, which counter is used
without `rate`/`increase`, which range is shorter than two scrape intervals.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

AGGREGATIONS = frozenset(
    {
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
    }
)
GROUPING = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
KEYWORDS = frozenset({"bool", "and", "or", "unless", "offset", "inf", "nan", "atan2"})
COUNTER_FUNCTIONS = frozenset({"rate", "irate", "increase", "resets"})
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_MATCHER = re.compile(r'\s*([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*,?')


@dataclass(frozen=True)
class Matcher:
    label: str
    op: str
    value: str

    def render(self) -> str:
        return f'{self.label}{self.op}"{self.value}"'


@dataclass(frozen=True)
class Selector:
    """One vector selector of a query, as written."""

    metric: str | None
    matchers: tuple[Matcher, ...]
    range_seconds: float | None
    function: str | None  # the function whose argument list holds the selector, if any

    def render(self, *, only: tuple[Matcher, ...] | None = None) -> str:
        """The selector (without range) for the series API, optionally with fewer matchers."""
        matchers = self.matchers if only is None else only
        inner = ", ".join(m.render() for m in matchers)
        if self.metric is None:
            return "{" + inner + "}"
        return f"{self.metric}{{{inner}}}" if inner else self.metric


def parse_duration(text: str) -> float | None:
    """A PromQL duration (`30s`, `1h30m`) in seconds, or None if it is not one."""
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(int(n) * _DURATION_UNITS[u] for n, u in parts)


def selectors(query: str) -> list[Selector]:
    """The vector selectors of `query`, left to right (best effort, never raises)."""
    found: list[Selector] = []
    calls: list[str | None] = []  # the function (or None for a plain parenthesis) per open "("
    i, n = 0, len(query)
    while i < n:
        c = query[i]
        if c == '"' or c == "'":
            i = _skip_string(query, i)
            continue
        if c == "(":
            calls.append(None)
            i += 1
            continue
        if c == ")":
            if calls:
                calls.pop()
            i += 1
            continue
        if c.isdigit() or (c == "." and i + 1 < n and query[i + 1].isdigit()):
            # Numbers and durations (1e3, 0x1f, 5m after offset) are not selectors.
            while i < n and (query[i].isalnum() or query[i] in "._"):
                i += 1
            continue
        if c.isalpha() or c in "_:" or c == "{":
            name = None
            if c != "{":
                match = re.match(r"[a-zA-Z_:][\w:]*", query[i:])
                assert match is not None
                name = match.group(0)
                i += len(name)
            j = _skip_space(query, i)
            lowered = (name or "").lower()
            if lowered in GROUPING:
                i = _skip_grouping(query, j)
                continue
            if lowered in AGGREGATIONS:
                k = j
                clause = re.match(r"(by|without)\b", query[k:], re.IGNORECASE)
                if clause:
                    k = _skip_space(
                        query, _skip_grouping(query, _skip_space(query, k + clause.end()))
                    )
                if k < n and query[k] == "(":
                    calls.append(name)
                    i = k + 1
                    continue
            if name is not None and j < n and query[j] == "(":
                calls.append(name)  # a function call
                i = j + 1
                continue
            if lowered in KEYWORDS:
                i = j
                continue
            matchers: tuple[Matcher, ...] = ()
            if j < n and query[j] == "{":
                end = _find_brace_end(query, j)
                matchers = tuple(
                    Matcher(m.group(1), m.group(2), m.group(3))
                    for m in _MATCHER.finditer(query[j + 1 : end])
                )
                i = end + 1
            else:
                i = j if name is not None else i + 1
            range_seconds = None
            k = _skip_space(query, i)
            if k < n and query[k] == "[":
                close = query.find("]", k)
                if close > k:
                    window = query[k + 1 : close].split(":")[0].strip()
                    range_seconds = parse_duration(window)
                    i = close + 1
            function = next((f for f in reversed(calls) if f is not None), None)
            if name is not None or matchers:
                found.append(Selector(name, matchers, range_seconds, function))
            continue
        i += 1
    return found


def _skip_string(query: str, i: int) -> int:
    quote, i = query[i], i + 1
    while i < len(query) and query[i] != quote:
        i += 2 if query[i] == "\\" else 1
    return i + 1


def _skip_space(query: str, i: int) -> int:
    while i < len(query) and query[i].isspace():
        i += 1
    return i


def _skip_grouping(query: str, i: int) -> int:
    """Past `by (a, b)`: label lists are not selectors."""
    if i < len(query) and query[i] == "(":
        close = query.find(")", i)
        return close + 1 if close > 0 else len(query)
    return i


def _find_brace_end(query: str, i: int) -> int:
    j = i + 1
    while j < len(query) and query[j] != "}":
        j = _skip_string(query, j) if query[j] == '"' else j + 1
    return j
