"""Reading vector selectors out of PromQL, for `safeship check`'s diagnosis."""

from __future__ import annotations

import pytest

from safeship.prometheus.promql import Matcher, parse_duration, selectors


def names(query: str) -> list[str | None]:
    return [s.metric for s in selectors(query)]


def test_selector_with_matchers_range_and_function() -> None:
    [s] = selectors('sum(increase(http_requests_total{ service="a", status=~"5.." }[43s]))')
    assert s.metric == "http_requests_total"
    assert s.matchers == (Matcher("service", "=", "a"), Matcher("status", "=~", "5.."))
    assert s.range_seconds == 43
    assert s.function == "increase"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("sum by (le) (rate(h_bucket[5m]))", ["h_bucket"]),
        ("histogram_quantile(0.95, sum(rate(h_bucket[5m])) by (le))", ["h_bucket"]),
        ('a{x="1"} / ignoring(status) group_left sum without (y) (b)', ["a", "b"]),
        ("x offset 5m * 1e3 + topk(3, y)", ["x", "y"]),
        ("rate(x[1h30m]) > 0.5 and on (job) absent(z)", ["x", "z"]),
        ('{__name__="up"}', [None]),
    ],
)
def test_keywords_grouping_labels_and_numbers_are_not_selectors(
    query: str, expected: list[str | None]
) -> None:
    assert names(query) == expected


def test_quotes_and_braces_inside_label_values_do_not_confuse_it() -> None:
    [s] = selectors('count(foo{a="b\\"}c", d="x"})')
    assert s.matchers[1] == Matcher("d", "=", "x")


def test_raw_counter_has_no_range() -> None:
    [s] = selectors("sum(http_requests_total)")
    assert (s.range_seconds, s.function) == (None, "sum")


def test_render_keeps_only_the_given_matchers() -> None:
    [s] = selectors('x{a="1", b=~"2"}[5m]')
    assert s.render() == 'x{a="1", b=~"2"}'
    assert s.render(only=s.matchers[:1]) == 'x{a="1"}'
    assert s.render(only=()) == "x"


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("5m", 300), ("1h30m", 5400), ("500ms", 0.5)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_not_a_duration() -> None:
    assert parse_duration("5 minutes") is None
