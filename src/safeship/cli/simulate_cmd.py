"""`safeship simulate`: your analysis settings against synthetic canaries, in virtual time."""

from __future__ import annotations

from pathlib import Path

import click

from safeship.cli import params
from safeship.cli.context import Context, pass_context
from safeship.cli.exit_codes import ExitCode
from safeship.cli.output import emit_json
from safeship.config import CanaryStrategy
from safeship.simulation import TrafficModel, simulate


@click.command("simulate")
@click.option("--env", "environment", default=None, help="Use this environment's settings.")
@click.option(
    "--rps",
    type=params.FiniteFloat(min=0, max=1e6, min_open=True),
    default=50.0,
    show_default=True,
    help="Requests per second.",
)
@click.option("--baseline-error-rate", type=params.RATE, default=0.005, show_default=True)
@click.option(
    "--canary-error-rate",
    type=params.RATE,
    default=None,
    help="Canary error rate [default: the baseline's, a healthy canary].",
)
@click.option(
    "--canary-latency-factor",
    type=params.FiniteFloat(min=0, max=1000, min_open=True),
    default=1.0,
    show_default=True,
    help="Canary latency as a multiple of the baseline's.",
)
@click.option("--trials", type=click.IntRange(1, 100_000), default=200, show_default=True)
@click.option("--seed", type=click.IntRange(min=0), default=1, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@pass_context
def simulate_cmd(
    ctx: Context,
    environment: str | None,
    rps: float,
    baseline_error_rate: float,
    canary_error_rate: float | None,
    canary_latency_factor: float,
    trials: int,
    seed: int,
    as_json: bool,
) -> int:
    """Run the real rollout engine on synthetic traffic: promote and rollback rates, time to
    decision, and how many requests (and failed requests) a canary served before it.

    Uses the config's analysis settings (--config or ./safeship.yaml); without a config
    file, the built-in defaults.
    """
    strategy = _strategy(ctx, environment)
    # Each trial looks every simulated second of every step, a step held up to twice its
    # hold: a week-long hold is millions of looks per trial, hours of CPU; say so instead.
    looks = trials * len(strategy.steps) * 2 * strategy.hold / min(strategy.interval, 1.0)
    if looks > MAX_SIMULATED_LOOKS:
        raise click.UsageError(
            f"{trials} trials of holds of {strategy.hold:g} s would take about {looks:.3g} "
            f"looks (at most {MAX_SIMULATED_LOOKS:.0e}): lower --trials or the hold"
        )
    model = TrafficModel(
        rps=rps,
        baseline_error_rate=baseline_error_rate,
        canary_error_rate=baseline_error_rate if canary_error_rate is None else canary_error_rate,
        canary_latency_factor=canary_latency_factor,
    )
    summary = simulate(strategy, model, trials=trials, seed=seed).summary()
    settings = {
        "rps": rps,
        "baseline_error_rate": model.baseline_error_rate,
        "canary_error_rate": model.canary_error_rate,
        "canary_latency_factor": canary_latency_factor,
        "seed": seed,
        "steps": list(strategy.steps),
        "hold": strategy.hold,
        "checks": [c.type for c in strategy.checks],
    }
    if as_json:
        emit_json({"settings": settings, **summary})
        return ExitCode.OK
    click.echo(
        f"{trials} simulated rollouts at {rps:g} rps, baseline errors "
        f"{model.baseline_error_rate:.2%}, canary errors {model.canary_error_rate:.2%}, "
        f"canary latency x{canary_latency_factor:g} (seed {seed})"
    )
    click.echo(f"  promoted          {summary['promote_rate']:.1%}")
    click.echo(f"  rolled back       {summary['rollback_rate']:.1%}")
    click.echo(f"  paused            {summary['pause_rate']:.1%}")
    click.echo(
        f"  time to decision  mean {summary['mean_time_to_decision']:.0f}s, "
        f"p95 {summary['p95_time_to_decision']:.0f}s"
    )
    click.echo(f"  canary requests   mean {summary['mean_canary_requests']:.0f}")
    click.echo(f"  failed on canary  mean {summary['mean_failed_canary_requests']:.1f}")
    return ExitCode.OK


MAX_SIMULATED_LOOKS = 3e6  # about ten minutes of CPU on a laptop


def _strategy(ctx: Context, environment: str | None) -> CanaryStrategy:
    if ctx.config_path is None and not Path("safeship.yaml").exists():
        return CanaryStrategy()
    config = ctx.load()
    if environment is None:
        return config.canary
    return config.for_environment(environment).canary
