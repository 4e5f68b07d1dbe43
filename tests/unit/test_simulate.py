"""`safeship simulate`: the real engine on synthetic traffic, reproducible for a seed."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from safeship.cli.main import main
from safeship.config import CanaryStrategy
from safeship.rollout.machine import Outcome
from safeship.simulation import TrafficModel, simulate

FAST = CanaryStrategy(hold=60, min_hold=30, warmup=5, interval=10)


@pytest.fixture(autouse=True)
def _restore_logger() -> Iterator[None]:
    logger = logging.getLogger("safeship")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved


def test_results_are_reproducible_for_a_seed_and_differ_across_seeds() -> None:
    model = TrafficModel(canary_error_rate=0.015)
    first = simulate(FAST, model, trials=20, seed=11).summary()
    again = simulate(FAST, model, trials=20, seed=11).summary()
    other = simulate(FAST, model, trials=20, seed=12).summary()
    assert first == again
    assert first != other


def test_a_healthy_canary_is_promoted_and_a_tenfold_one_rolled_back() -> None:
    healthy = simulate(FAST, TrafficModel(), trials=30, seed=1)
    bad = simulate(FAST, TrafficModel(canary_error_rate=0.05), trials=30, seed=1)
    assert healthy.rate(Outcome.PROMOTED) >= 0.9
    assert bad.rate(Outcome.ROLLED_BACK) == 1.0
    assert bad.summary()["rollback_reasons"] == {"high_error_rate": 30}
    assert 0 < bad.summary()["mean_failed_canary_requests"] < 30


def test_a_latency_regression_is_rolled_back_as_high_latency() -> None:
    slow = simulate(FAST, TrafficModel(canary_latency_factor=2.0), trials=10, seed=1)
    assert slow.summary()["rollback_reasons"] == {"high_latency": 10}


def test_cli_json_reports_the_fields_without_a_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["simulate", "--json", "--trials", "5", "--seed", "3", "--canary-error-rate", "0.05"]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    for key in (
        "promote_rate",
        "rollback_rate",
        "mean_time_to_decision",
        "p95_time_to_decision",
        "mean_canary_requests",
        "mean_failed_canary_requests",
    ):
        assert key in report
    assert report["settings"]["steps"] == [10, 50, 100]
    assert report["rollback_rate"] == 1.0


def test_cli_uses_the_configs_analysis_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "safeship.yaml"
    config.write_text(
        "service: s\ncanary:\n  steps: [25, 100]\n  hold: 30\n  checks:\n    - type: error_rate\n"
    )
    assert main(["--config", str(config), "simulate", "--json", "--trials", "3"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["settings"]["steps"] == [25, 100]
    assert report["settings"]["checks"] == ["error_rate"]


def test_cli_rejects_an_error_rate_outside_0_to_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--canary-error-rate", "3"]) == 2
    assert "3.0 is not in the range 0<=x<=1" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args",
    [
        ["--rps", "inf"], ["--rps", "nan"], ["--rps", "0"], ["--rps", "-5"],
        ["--canary-latency-factor", "nan"], ["--baseline-error-rate", "nan"], ["--seed", "-1"],
    ],
)  # fmt: skip
def test_cli_refuses_values_that_cannot_be_simulated(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # inf and nan reached numpy before ("ValueError: lam value too large", a traceback)
    assert main(["simulate", "--trials", "1", *args]) == 2
    err = capsys.readouterr().err
    assert f"Invalid value for '{args[0]}'" in err
    assert "Traceback" not in err
