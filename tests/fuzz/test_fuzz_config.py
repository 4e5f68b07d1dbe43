"""Config parsing and `${VAR}` interpolation under arbitrary input.

Whatever the text, parsing ends in a `Config` or a `ConfigError` (never
another exception); an interpolated value arrives byte for byte, and is
masked wherever the config is shown.
"""

from __future__ import annotations

import json
import time
import tracemalloc
from typing import Any

import yaml
from hypothesis import given
from hypothesis import strategies as st

from safeship.config import Config, parse_config, redacted
from safeship.errors import ConfigError
from safeship.redact import MASK

KEYS = [
    "service", "version", "environments", "canary", "steps", "hold", "router", "type",
    "provider", "store", "url", "checks", "name", "alpha", "limits", "hooks", "pre_rollout",
    "command", "smoke_tests", "http", "prometheus", "grafana", "alerting", "production",
]  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["${X}", "${X:-d}", "$$", "${", "local", "prometheus", "10,50"]),
)
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), inner, max_size=5),
    ),
    max_leaves=25,
)


def parses_or_says_why(text: str, env: dict[str, str]) -> Config | None:
    error: ConfigError | None = None
    try:
        return parse_config(text, "fuzz.yaml", env=env)
    except ConfigError as exc:
        error = exc
    assert str(error)
    assert all(isinstance(p, str) and p for p in error.problems)
    return None


@given(st.text(max_size=300))
def test_any_text_is_a_config_or_a_config_error(text: str) -> None:
    parses_or_says_why(text, {})


@given(documents, st.text(max_size=20))
def test_any_yaml_document_is_a_config_or_a_config_error(document: Any, value: str) -> None:
    if isinstance(document, dict):
        document = {"service": "checkout", **document}
    parses_or_says_why(yaml.safe_dump(document), {"X": value})


# Values a shell or CI can put in an environment variable: no NUL, anything else goes.
env_values = st.text(st.characters(exclude_characters="\x00"), min_size=1, max_size=40)


@given(env_values.filter(lambda v: not any("\ud800" <= c <= "\udfff" for c in v)))
def test_an_interpolated_value_arrives_exactly_and_is_masked_when_shown(value: str) -> None:
    text = (
        "service: checkout\n"
        "smoke_tests:\n"
        "  - name: '${SECRET}'\n"
        "    http:\n"
        "      url: 'http://127.0.0.1:9/health'\n"
        "      expect_body: '$${SECRET} ${UNSET:-fallback}'\n"
    )
    config = parse_config(text, "fuzz.yaml", env={"SECRET": value})
    test = config.smoke_tests[0]
    assert test.name == value
    assert test.http is not None
    assert test.http.expect_body == "${SECRET} fallback"
    if len(value) >= 4:
        shown = redacted(config)["smoke_tests"][0]
        # Keys are the config's own words ("timeout" holds "time"): look at values only.
        assert all(value not in json.dumps(v, ensure_ascii=False) for v in _leaves(shown))
        assert shown["name"] == MASK


def _leaves(data: Any) -> list[Any]:
    if isinstance(data, dict):
        return [leaf for v in data.values() for leaf in _leaves(v)]
    if isinstance(data, list):
        return [leaf for v in data for leaf in _leaves(v)]
    return [data]


@given(env_values, st.sampled_from(["\udc80", "\udcff", "\ud800"]))
def test_undecodable_bytes_in_a_variable_are_refused_not_crashed_on(
    value: str, surrogate: str
) -> None:
    """os.environ holds bytes that are not UTF-8 as lone surrogates (surrogateescape)."""
    config = parses_or_says_why(
        "service: checkout\nstore:\n  url: '${X}'\n", {"X": value + surrogate}
    )
    assert config is None


@st.composite
def anchored_documents(draw: st.DrawFn) -> str:
    """YAML text whose anchors alias earlier ones, nested at random: small text, any expansion."""
    lines = ["service: checkout"]
    for i in range(draw(st.integers(1, 12))):
        items = [
            f"*a{draw(st.integers(0, i - 1))}" if i and draw(st.booleans()) else "x"
            for _ in range(draw(st.integers(1, 12)))
        ]
        depth = draw(st.integers(0, 80))
        lines.append(f"k{i}: &a{i} " + "[" * depth + "[" + ",".join(items) + "]" + "]" * depth)
    return "\n".join(lines) + "\n"


@given(anchored_documents())
def test_any_aliased_or_nested_document_parses_quickly_in_little_memory(text: str) -> None:
    started = time.process_time()  # CPU, untraced: other work on the machine cannot fail it
    parses_or_says_why(text, {})
    elapsed = time.process_time() - started
    tracemalloc.start()
    try:
        parses_or_says_why(text, {})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # A document under the limits builds in a fraction of a second; one past them is refused
    # before it is built. Bounds are loose for a loaded machine, tight against expansion.
    assert elapsed < 2.0, f"{elapsed:.2f} s for {len(text)} bytes"
    assert peak < 64 * 1024 * 1024, f"{peak} bytes for {len(text)} bytes"
