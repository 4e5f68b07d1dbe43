"""Tests of `safeship config validate | schema | show` and `--version`, through the CLI entry."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from safeship import __version__
from safeship.cli.main import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

GOOD = "service: checkout\nenvironments:\n  staging: {}\n  production: {}\n"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No config from the developer's shell or cwd; the CLI's logger setup is undone."""
    for name in ("SAFESHIP_CONFIG", "SAFESHIP_LOG_FORMAT", "CI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    logger = logging.getLogger("safeship")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --- validate ---------------------------------------------------------------------


def test_validate_a_good_file_exits_0_and_says_valid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path / "ok.yaml", GOOD)

    code = main(["config", "validate", str(path)])

    out, err = capsys.readouterr()
    assert code == 0
    assert out.startswith("valid:")
    assert "service checkout" in out
    assert "staging, production" in out
    assert err == ""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("service: a\ncanary:\n  holdd: 30\n", "bad.yaml:3: canary.holdd: unknown key"),
        ("service: a\ncanary:\n  hold: soon\n", "bad.yaml:3: canary.hold: "),
        (
            "service: a\nstore:\n  url: ${DB_URL}\n",
            "bad.yaml:3: store.url: environment variable DB_URL is not set",
        ),
        (
            "service: a\ncanary:\n  checks:\n    - type: error_rate\n      max_ratio: 7\n",
            "bad.yaml:5: canary.checks[0].max_ratio: ",
        ),
    ],
    ids=["unknown-key", "wrong-type", "missing-env-var", "list-index"],
)
def test_validate_a_bad_file_exits_2_naming_line_and_key(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    text: str,
    expected: str,
) -> None:
    path = write(tmp_path / "bad.yaml", text)

    code = main(["config", "validate", str(path)])

    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert err.startswith("invalid: ")
    assert f"{tmp_path / expected}" in err


def test_validate_lists_every_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path / "bad.yaml", "service: a\ncanary:\n  holdd: 1\n  hold: soon\n")

    assert main(["config", "validate", str(path)]) == 2

    err = capsys.readouterr().err
    assert "2 problem(s)" in err
    assert "canary.holdd" in err
    assert "canary.hold:" in err


def test_validate_interpolates_from_the_process_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SERVICE_NAME", "from-env")
    path = write(tmp_path / "ok.yaml", "service: ${SERVICE_NAME}\n")

    assert main(["config", "validate", str(path)]) == 0
    assert "service from-env" in capsys.readouterr().out


def test_validate_without_file_uses_safeship_config_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path / "safeship.yaml", "service: from-cwd\n")
    chosen = write(tmp_path / "chosen.yaml", "service: from-env\n")
    monkeypatch.setenv("SAFESHIP_CONFIG", str(chosen))

    assert main(["config", "validate"]) == 0
    assert "service from-env" in capsys.readouterr().out


def test_validate_without_file_uses_safeship_yaml_in_cwd(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path / "safeship.yaml", "service: from-cwd\n")

    assert main(["config", "validate"]) == 0
    assert "service from-cwd" in capsys.readouterr().out


def test_config_option_wins_over_safeship_config_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SAFESHIP_CONFIG", str(write(tmp_path / "env.yaml", "service: env\n")))
    option = write(tmp_path / "opt.yaml", "service: option\n")

    assert main(["--config", str(option), "config", "validate"]) == 0
    assert "service option" in capsys.readouterr().out


def test_validate_with_no_config_anywhere_exits_2_and_says_how_to_give_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["config", "validate"])

    err = capsys.readouterr().err
    assert code == 2
    assert "safeship.yaml: config file not found" in err
    assert "--config" in err
    assert err.count("config file not found") == 1  # said once, not repeated as a problem


def test_validate_json_for_a_good_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path / "ok.yaml", GOOD)

    code = main(["config", "validate", "--json", str(path)])

    data = json.loads(capsys.readouterr().out)
    assert code == 0
    assert data == {
        "schema_version": 1,
        "valid": True,
        "service": "checkout",
        "environments": ["staging", "production"],
    }


def test_validate_json_for_a_bad_file_lists_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path / "bad.yaml", "service: a\ncanary:\n  holdd: 1\n  hold: soon\n")

    code = main(["config", "validate", "--json", str(path)])

    out, err = capsys.readouterr()
    data = json.loads(out)
    assert code == 2
    assert err == ""
    assert data["schema_version"] == 1
    assert data["valid"] is False
    assert len(data["problems"]) == 2
    assert any(p.startswith(f"{path}:3: canary.holdd: unknown key") for p in data["problems"])
    assert any(p.startswith(f"{path}:4: canary.hold: ") for p in data["problems"])


# --- schema ---------------------------------------------------------------------------


def test_schema_prints_a_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["config", "schema"])

    schema = json.loads(capsys.readouterr().out)
    assert code == 0
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert {"service", "canary", "router", "store"} <= set(schema["properties"])


# --- show ---------------------------------------------------------------------------------


def test_show_prints_defaults_and_masks_an_interpolated_url_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DB_PASSWORD", "hunter2-secret")
    path = write(
        tmp_path / "s.yaml",
        "service: checkout\nstore:\n  url: postgresql://app:${DB_PASSWORD}@db/x\n",
    )

    code = main(["--config", str(path), "config", "show"])

    out = capsys.readouterr().out
    data = json.loads(out)
    assert code == 0
    assert "hunter2-secret" not in out
    assert data["store"]["url"] == "postgresql://app:***@db/x"
    assert data["schema_version"] == 1
    assert data["canary"]["steps"] == [10, 50, 100]
    assert data["canary"]["hold"] == 300.0


def test_show_masks_secret_hook_env(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(
        tmp_path / "s.yaml",
        "service: a\nhooks:\n  pre_rollout:\n    - command: [deploy]\n      env:\n"
        "        API_TOKEN: tok-123\n",
    )

    assert main(["--config", str(path), "config", "show"]) == 0

    out = capsys.readouterr().out
    assert "tok-123" not in out
    assert json.loads(out)["hooks"]["pre_rollout"][0]["env"]["API_TOKEN"] == "***"


def test_show_env_prints_the_settings_in_force_there(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path / "s.yaml",
        "service: a\nenvironments:\n  staging:\n    canary:\n      steps: [50, 100]\n"
        "      hold: 30\n      warmup: 1\n  production: {}\n",
    )

    assert main(["--config", str(path), "config", "show", "--env", "staging"]) == 0

    data = json.loads(capsys.readouterr().out)
    assert data["environment"] == "staging"
    assert data["canary"]["steps"] == [50, 100]
    assert data["canary"]["hold"] == 30.0


def test_show_unknown_env_exits_2_listing_known_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path / "s.yaml", GOOD)

    code = main(["--config", str(path), "config", "show", "--env", "qa"])

    err = capsys.readouterr().err
    assert code == 2
    assert "'qa' is not in the config" in err
    assert "production, staging" in err


def test_show_of_a_bad_file_exits_2_with_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path / "s.yaml", "service: a\ncanary:\n  holdd: 1\n")

    code = main(["--config", str(path), "config", "show"])

    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert f"{path}:3: canary.holdd: unknown key" in err


# --- version and usage -----------------------------------------------------------------------


def test_version_exits_0_and_prints_the_version(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--version"])

    assert code == 0
    assert capsys.readouterr().out.strip() == f"safeship, version {__version__}"


def test_unknown_config_subcommand_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "frobnicate"]) == 2
    assert "frobnicate" in capsys.readouterr().err


# --- shipped examples --------------------------------------------------------------------------


def example_files() -> list[Path]:
    return sorted(EXAMPLES.glob("*.yaml")) if EXAMPLES.is_dir() else []


def test_every_example_config_validates(capsys: pytest.CaptureFixture[str]) -> None:
    examples = example_files()
    if not examples:
        pytest.skip(f"no example configs yet: {EXAMPLES} has no *.yaml files")
    failures = {}
    for path in examples:
        code = main(["config", "validate", str(path)])
        out, err = capsys.readouterr()
        if code != 0 or not out.startswith("valid:"):
            failures[path.name] = err.strip() or out.strip()

    assert failures == {}
