"""Label values cannot break out of the selectors safeship renders.

Service and environment names, configured label values and the error-status
regex are put into PromQL double-quoted strings. Whatever they hold (quotes,
backslashes, newlines, braces, `"} or vector(1) #`), reading the rendered
query back gives exactly the configured matchers with exactly those values:
nothing is injected, nothing is lost.
"""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from safeship.config import PrometheusProviderSettings
from safeship.placement import Placement, SlotVersion
from safeship.prometheus.promql import selectors
from safeship.providers.prometheus import PrometheusQueries

values = st.one_of(
    st.text(st.characters(exclude_categories=["Cs"]), max_size=30),
    st.sampled_from(['"} or vector(1) #', '\\"', "\\", '", track="stable', "{{ service }}", "\n"]),
)
_ESCAPE = re.compile(r"\\(.)", re.S)


def unescape(value: str) -> str:
    """A PromQL double-quoted string's content back to its text (the escapes we write)."""
    return _ESCAPE.sub(lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), value)


@given(environment=values, team=values, status=values, version=values)
def test_label_values_never_escape_their_string(
    environment: str, team: str, status: str, version: str
) -> None:
    settings = PrometheusProviderSettings(
        labels={"service": "{{ service }}", "environment": "{{ environment }}", "team": team},
        error_status=status,
    )
    queries = PrometheusQueries(settings, service="checkout", environment=environment)
    # The version comes from the command line (`--version`): hostile too.
    queries.placement = Placement(
        SlotVersion("green", None, version), SlotVersion("blue", None, "v1")
    )
    for name, query in queries.all("canary", 42.5).items():
        found = selectors(query)
        assert found, query
        for selector in found:
            matchers = {m.label: (m.op, unescape(m.value)) for m in selector.matchers}
            expected = {
                "service": ("=", "checkout"),
                "environment": ("=", environment),
                "team": ("=", team.replace("{{ service }}", "checkout")),
                "version": ("=", version),
            }
            if name == "errors":
                expected["status"] = ("=~", status)
            elif "status" in matchers:  # the error-label presence check of some templates
                expected["status"] = ("!=", "")
            assert matchers == expected, query
