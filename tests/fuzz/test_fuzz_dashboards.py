"""Dashboard validation never crashes: any JSON value gets a list of problems, each located."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from safeship.grafana.dashboards import validate_dashboard

KEYS = [
    "uid", "title", "panels", "id", "targets", "datasource", "type", "gridPos", "templating",
    "list", "expr", "refId", "schemaVersion", "version", "rows", "fieldConfig", "options",
]  # fmt: skip

json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False),
        st.text(max_size=20),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=6)), inner, max_size=6),
    ),
    max_leaves=40,
)


@given(json_values)
def test_any_json_gets_located_problems_or_none(data: Any) -> None:
    problems = validate_dashboard(data, "dashboards/fuzz.json")
    assert isinstance(problems, list)
    assert all(p.startswith("dashboards/fuzz.json") for p in problems)


@given(st.dictionaries(st.sampled_from(KEYS), json_values, max_size=8))
def test_dashboards_shaped_like_grafanas_get_located_problems_or_none(data: Any) -> None:
    problems = validate_dashboard(data, "dashboards/fuzz.json")
    assert all(isinstance(p, str) and p.startswith("dashboards/fuzz.json") for p in problems)
    if not isinstance(data.get("uid"), str) or not data.get("uid"):
        assert problems
