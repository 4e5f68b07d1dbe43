"""A hostile config file is refused in milliseconds: alias bombs, deep nesting, huge or non-UTF-8
files, each with a located error and exit 2 (every command loads the config first)."""

from __future__ import annotations

import logging
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from safeship import bounded_yaml
from safeship.cli.main import main
from safeship.config import load_config, parse_config
from safeship.errors import ConfigError


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for name in ("SAFESHIP_CONFIG", "SAFESHIP_LOG_FORMAT", "CI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    logger = logging.getLogger("safeship")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved


def alias_bomb(levels: int, fan_out: int) -> str:
    """`levels` lists of `fan_out` aliases of the one before: fan_out**levels nodes expanded."""
    lines = ["service: checkout", "a0: &0 [" + ",".join(["x"] * fan_out) + "]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &{i} [" + ",".join([f"*{i - 1}"] * fan_out) + "]")
    return "\n".join(lines) + "\n"


def refused_quickly(text: str) -> ConfigError:
    """parse_config refuses `text` in well under a second of CPU, with little memory.

    CPU time, not wall time, and measured without tracemalloc (which slows every
    allocation many times over): a machine busy with other work cannot fail it, while the
    old loader (38 s and 1.3 GB here) could never pass.
    """
    started = time.process_time()
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "bomb.yaml", env={})
    elapsed = time.process_time() - started
    tracemalloc.start()
    try:
        with pytest.raises(ConfigError):
            parse_config(text, "bomb.yaml", env={})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < 1.0
    assert peak < 20 * 1024 * 1024
    return caught.value


def test_the_reported_369_byte_alias_bomb_is_refused_at_its_line() -> None:
    text = alias_bomb(levels=9, fan_out=9)  # 9**9 = 387 million nodes
    assert len(text) < 369

    error = refused_quickly(text)

    assert str(error).startswith("bomb.yaml:")
    assert "alias bomb" in str(error)
    assert "docs/reliability.md" in str(error)


def test_a_1kb_alias_bomb_is_refused_in_under_a_second_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = alias_bomb(levels=19, fan_out=12)  # 12**19 nodes
    assert 800 < len(text) <= 1024
    path = tmp_path / "safeship.yaml"
    path.write_text(text, encoding="utf-8")

    started = time.process_time()
    code = main(["config", "validate", str(path)])
    elapsed = time.process_time() - started

    out, err = capsys.readouterr()
    assert code == 2
    assert elapsed < 1.0
    assert f"{path}:" in err
    assert "alias" in err
    assert "Traceback" not in out + err


def test_many_aliases_are_refused_even_when_each_is_small() -> None:
    shared = "defaults: &d {hold: 60}\n"
    uses = "".join(f"k{i}: *d\n" for i in range(bounded_yaml.MAX_ALIASES + 1))

    error = refused_quickly("service: a\n" + shared + uses)

    assert f"more than {bounded_yaml.MAX_ALIASES} aliases" in str(error)


def test_deep_nesting_is_refused_without_exhausting_the_stack() -> None:
    for text in ("a: " + "[" * 100_000 + "]" * 100_000, "a: " + "{b: " * 5_000 + "}" * 5_000):
        error = refused_quickly(text)
        assert f"nested more than {bounded_yaml.MAX_DEPTH} levels deep" in str(error)


def test_a_file_beyond_the_size_limit_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("service: a\n" + "# padding\n" * 30_000, encoding="utf-8")

    with pytest.raises(ConfigError, match=r"larger than 262144 bytes"):
        load_config(path, env={})


def test_a_file_that_is_not_utf8_names_its_line_and_byte(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"service: checkout\nversion: caf\xe9\n")

    code = main(["config", "validate", str(path)])

    out, err = capsys.readouterr()
    assert code == 2
    assert f"{path}:2: not UTF-8 text (byte 0xe9" in err
    assert "Traceback" not in out + err


def test_anchors_used_as_intended_still_load() -> None:
    text = (
        "service: checkout\n"
        "environments:\n"
        "  staging: {canary: &fast {hold: 30, min_hold: 10}}\n"
        "  production: {canary: *fast}\n"
    )

    config = parse_config(text, "ok.yaml", env={})

    assert config.for_environment("production").canary.hold == 30


def test_rule_files_and_routing_cases_have_the_same_limits(tmp_path: Path) -> None:
    from safeship.rules.alertmanager import load_routing_cases
    from safeship.rules.lint import RulesFileError, parse_rules

    bomb = alias_bomb(levels=9, fan_out=9)
    started = time.process_time()
    with pytest.raises(RulesFileError, match="alias bomb"):
        parse_rules(bomb, "rules.yml")
    cases = tmp_path / "routes.yml"
    cases.write_text(bomb, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"routes.yml:\d+: refused: .*alias bomb"):
        load_routing_cases(cases)
    assert time.process_time() - started < 1.0


@pytest.mark.parametrize(
    "text",
    ["version: 1\nservice: &x [*x]\n", "service: a\nhooks: &h {pre_rollout: *h}\n"],
)
def test_an_alias_inside_its_own_anchor_is_refused(text: str) -> None:
    # It recursed until Python's limit: "unexpected RecursionError", 100 MB, exit 1.
    error = refused_quickly(text)
    assert "refers to a node that contains it" in str(error)


def test_a_file_at_the_size_limit_loads_in_well_under_a_second() -> None:
    text = "service: a\n" + "#" * (bounded_yaml.MAX_BYTES - 20) + "\n"
    started = time.process_time()
    parse_config(text, "big.yaml", env={})
    assert time.process_time() - started < 1.0


def test_integers_too_large_to_read_are_located_errors() -> None:
    for hold in ("1" + "0" * 310, "9" * 4400):
        with pytest.raises(ConfigError) as caught:
            parse_config(f"service: a\ncanary: {{hold: {hold}}}\n", "big.yaml", env={})
        assert caught.value.problems[0].startswith("big.yaml:2: canary.hold: ")


def test_merge_keys_share_settings_as_in_yaml() -> None:
    # `<<: *defaults` was refused as a tag; explicit keys win over merged ones.
    config = parse_config(
        "service: checkout\n"
        "environments:\n"
        "  staging: {canary: &defaults {hold: 30, min_hold: 10}}\n"
        "  production: {canary: {<<: *defaults, hold: 90}}\n",
        "ok.yaml",
        env={},
    )
    production = config.for_environment("production").canary
    assert (production.hold, production.min_hold) == (90, 10)
    with pytest.raises(ConfigError) as twice:
        parse_config("service: a\nservice: b\n", "dup.yaml", env={})
    assert twice.value.problems == ["dup.yaml:2: service: duplicate key"]
