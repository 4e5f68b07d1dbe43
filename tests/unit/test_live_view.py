"""The live view's text: each figure labelled with what it is, short lines, plain when piped."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from safeship.analysis.verdict import P95, CheckResult, Result, Verdict
from safeship.cli.live import LEGEND, LiveView, count, figures, hold_bar, latencies, percent
from safeship.providers.interface import Window
from safeship.rollout.controller import RolloutEvent
from safeship.rollout.machine import Phase, Reason, RolloutState


def state(weight: int = 10, step: int = 0, held: float = 45.0, **changes: object) -> RolloutState:
    base = RolloutState(
        deployment_id="01TESTLIVEVIEW0000000000000",
        service="checkout",
        environment="production",
        version="v2",
        steps=(10, 50, 100),
        started_at=1000.0,
        updated_at=1000.0 + held,
        phase=Phase.HOLDING,
        step_index=step,
        weight=weight,
        step_started_at=1000.0,
    )
    return base if not changes else base.__class__(**{**base.__dict__, **changes})  # type: ignore[arg-type]


ESTIMATED = P95(0.182, 0.175, estimated=True)


def verdict(
    result: Result = Result.PASS,
    *,
    requests: tuple[float, float] = (1234, 5012),
    errors: tuple[float, float] = (4, 14),
    p95: P95 | None = ESTIMATED,
    reason: str = "no evidence of harm: evidence 1 < 111, ratio ~n/a (canary 4/1234 errors)",
) -> Verdict:
    check = CheckResult(name="error_rate", kind="error_rate_sequential", result=result,
                        reason=reason)  # fmt: skip
    return Verdict(
        result=result,
        reason=f"{result.value}: {reason}",
        window=Window(1000.0, 1045.0),
        checks=(check,),
        canary_requests=requests[0],
        baseline_requests=requests[1],
        canary_errors=errors[0],
        baseline_errors=errors[1],
        p95=p95,
    )


def piped() -> tuple[LiveView, io.StringIO]:
    out = io.StringIO()
    return LiveView(Console(file=out, width=120, force_terminal=False), hold=150), out


@pytest.mark.parametrize(
    ("rate", "shown"),
    [(0.0, "0%"), (0.0025, "0.25%"), (0.0075, "0.75%"), (0.05, "5.00%"), (0.125, "12.5%"),
     (1.0, "100.0%"), (0.00004, "<0.01%")],
)  # fmt: skip
def test_error_rates_are_percentages_that_tell_values_apart(rate: float, shown: str) -> None:
    assert percent(rate) == shown


def test_latencies_are_milliseconds_and_counts_stay_short() -> None:
    assert latencies(0.182, 0.0004) == "182 vs 0 ms"
    assert latencies(None, 0.03) == "- vs 30 ms"
    assert latencies(12.345, 0.5) == "12.3 vs 0.5 s"
    assert [count(v) for v in (0, 950, 9999, 12_345, 987_654, 4_100_000)] == [
        "0", "950", "9999", "12.3k", "988k", "4.1M",
    ]  # fmt: skip


def test_the_hold_bar_shows_how_far_the_hold_has_gone() -> None:
    assert hold_bar(45, 150, unicode=False) == "[##------]  45/150s"
    assert hold_bar(150, 150, unicode=False) == "[########] 150/150s"
    assert hold_bar(400, 150, unicode=False) == "[########] 150/150s"  # a hold past its end
    assert hold_bar(75, 150, unicode=True) == "▕████░░░░▏  75/150s"


def test_figures_name_what_they_are_canary_first() -> None:
    assert figures(verdict()) == (
        "req 1234 vs 5012  errors 0.32% vs 0.28%  p95 (bucket estimate) 182 vs 175 ms"
    )
    measured = verdict(p95=P95(0.0301, 0.0299, estimated=False))
    assert figures(measured).endswith("  p95 30 vs 30 ms")
    assert figures(verdict(requests=(0, 0), errors=(0, 0), p95=None)) == "req 0 vs 0"


def test_a_look_is_one_line_and_a_change_of_verdict_adds_one_short_reason() -> None:
    view, out = piped()
    short = "not enough data: canary 79 < 100 requests"
    view.event(
        RolloutEvent("verdict", state(held=30), "", verdict(Result.INCONCLUSIVE, reason=short))
    )
    view.event(
        RolloutEvent("verdict", state(held=45), "", verdict(Result.INCONCLUSIVE, reason=short))
    )
    view.event(RolloutEvent("verdict", state(held=60), "", verdict()))
    lines = out.getvalue().splitlines()
    assert lines == [
        LEGEND,
        " 10% [##------]  30/150s  req 1234 vs 5012  errors 0.32% vs 0.28%  "
        "p95 (bucket estimate) 182 vs 175 ms  inconclusive",
        "      error_rate: not enough data: canary 79 < 100 requests",
        " 10% [##------]  45/150s  req 1234 vs 5012  errors 0.32% vs 0.28%  "
        "p95 (bucket estimate) 182 vs 175 ms  inconclusive",
        " 10% [###-----]  60/150s  req 1234 vs 5012  errors 0.32% vs 0.28%  "
        "p95 (bucket estimate) 182 vs 175 ms  pass",
        "      error_rate: no evidence of harm: evidence 1 < 111, ratio ~n/a",
    ]
    assert all(len(line) <= 120 for line in lines)
    assert "\x1b[" not in out.getvalue()  # piped: plain text


def test_the_last_step_has_no_hold_bar_and_endings_are_short() -> None:
    view, out = piped()
    view.event(RolloutEvent("verdict", state(100, step=2), "", verdict()))
    rolled = state(0, phase=Phase.ROLLED_BACK, reason=Reason.HIGH_ERROR_RATE,
                   detail="1 failed measurement(s) > failure_limit 0: error_rate: canary error "
                   "rate higher than baseline: evidence 736 >= 111 (1/alpha), ratio ~inf "
                   "(canary 5/59 errors, baseline 0/541); " + "x" * 300)  # fmt: skip
    view.event(RolloutEvent("rollback", rolled, "rolling back"))
    view.event(RolloutEvent("finished", rolled, "rolled back"))
    lines = out.getvalue().splitlines()
    assert lines[1].startswith("100%  req 1234 vs 5012")
    assert lines[-2] == (
        "  0% ROLLBACK (high_error_rate) 1 failed measurement(s) > failure_limit 0: error_rate: "
        "canary error rate higher tha…"
    )
    assert lines[-1] == "  0% ROLLED BACK (high_error_rate)"
    assert all(len(line) <= 120 for line in lines)


def test_on_a_terminal_the_result_is_coloured_and_the_bar_is_drawn() -> None:
    out = io.StringIO()
    console = Console(file=out, width=120, force_terminal=True, color_system="standard")
    LiveView(console, hold=150).event(RolloutEvent("verdict", state(), "", verdict(Result.FAIL)))
    text = out.getvalue()
    assert "\x1b[31mfail" in text  # red
    assert "▕██░░░░░░▏" in text


def test_the_widest_look_still_fits_in_120_columns() -> None:
    view, out = piped()
    widest = verdict(Result.INCONCLUSIVE, requests=(987_654, 9_876_543), errors=(987_000, 1),
                     p95=P95(12.345, 99.999, estimated=True), reason="x" * 500)  # fmt: skip
    view.event(RolloutEvent("verdict", state(held=1000), "", widest))
    assert max(len(line) for line in out.getvalue().splitlines()) <= 120
