"""`safeship demo`: a healthy canary promoted and a faulty one rolled back, on this machine."""

from __future__ import annotations

import signal
from types import FrameType

import click
from rich.console import Console
from rich.table import Table

from safeship.cli import params
from safeship.cli.context import Context
from safeship.cli.exit_codes import ExitCode
from safeship.cli.live import LiveView
from safeship.cli.output import emit_json
from safeship.config import (
    DEFAULT_STORE_PATH,
    DEFAULT_STORE_URL,
    DEMO_ENVIRONMENT,
    DEMO_SERVICE,
)
from safeship.demo import service as sample_service
from safeship.demo.sandbox import (
    Fault,
    MetricsSource,
    Scenario,
    ScenarioResult,
    default_scenarios,
    demo_strategy,
    run_demo,
)
from safeship.redact import redact_url


@click.group(invoke_without_command=True)
@click.option(
    "--fault", default=None, help="Run one faulty rollout: error-rate=0.05, latency=300ms."
)
@click.option("--healthy", is_flag=True, help="Run one healthy rollout.")
@click.option(
    "--rps",
    type=params.FiniteFloat(min=0, max=10_000, min_open=True),
    default=200.0,
    show_default=True,
    help="Load through the router.",
)
@click.option(
    "--store",
    "store_url",
    default=None,
    help=f"Keep the history here [default: {DEFAULT_STORE_PATH}, as every command reads it].",
)
@click.option(
    "--metrics",
    "metrics_source",
    type=click.Choice(["scrape", "prometheus"]),
    default="scrape",
    show_default=True,
    help="Analyse from each version's /metrics, or through a real Prometheus started here.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON, no live view.")
@click.pass_context
def demo(
    click_ctx: click.Context,
    fault: str | None,
    healthy: bool,
    rps: float,
    store_url: str | None,
    metrics_source: MetricsSource,
    as_json: bool,
) -> int:
    """Run real canary rollouts locally: sample service, local router, load, analysis.

    By default a healthy version is promoted and a faulty one (5% errors) is rolled
    back by itself. Exits 0 when every rollout ended as it should.
    """
    if click_ctx.invoked_subcommand is not None:
        return ExitCode.OK
    ctx: Context = click_ctx.ensure_object(Context)
    if fault and healthy:
        raise click.UsageError("--fault and --healthy exclude each other")
    try:
        scenarios = (
            [Scenario("v1.1.0", Fault.parse(fault))]
            if fault
            else [Scenario("v1.1.0", Fault())]
            if healthy
            else default_scenarios()
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--fault") from exc
    # The demo never reads safeship.yaml: its rollouts are the embedded defaults' own.
    store_url = store_url or ctx.store_url or DEFAULT_STORE_URL
    signal.signal(signal.SIGTERM, _interrupt)
    console = Console(stderr=as_json, highlight=False)
    view = None if as_json else DemoView(console, demo_strategy().hold)
    results = run_demo(
        scenarios,
        rps=rps,
        store_url=store_url,
        on_event=view.event if view else None,
        on_scenario=view.scenario if view else None,
        metrics_source=metrics_source,
    )
    ok = all(r.as_expected for r in results)
    if as_json:
        payload = {"ok": ok, "rollouts": [r.to_dict() for r in results]}
        if len(results) == 1:
            payload |= results[0].to_dict()
        emit_json(payload)
    else:
        _summary(console, results, ok)
        _explore(console, results, store_url)
    return ExitCode.OK if ok else ExitCode.FAILED


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


class DemoView(LiveView):
    """The live view, with a rule before each scenario naming its fault and what is expected."""

    def scenario(self, scenario: Scenario) -> None:
        self.console.rule(
            f"[bold]canary {scenario.version}[/] ({scenario.fault.describe()}), "
            f"expected: {scenario.expected.value}"
        )


def _summary(console: Console, results: list[ScenarioResult], ok: bool) -> None:
    table = Table(title="safeship demo", show_lines=True)
    for column in ("canary", "outcome", "steps reached", "canary req", "failed", "time"):
        table.add_column(column, overflow="fold")
    for r in results:
        d = r.to_dict()
        mark = "[green]✔[/]" if r.as_expected else "[red]✘ unexpected[/]"
        table.add_row(
            f"{d['version']}\n{d['fault']}",
            f"{mark} {d['outcome']}" + (f"\n{d['reason']}" if d["reason"] else ""),
            " → ".join(f"{w}%" for w in d["steps_reached"]) or "none",
            f"{d['canary_requests']:.0f}",
            f"{d['canary_failed_requests']:.0f}",
            f"{d['duration']:.0f}s",
        )
    console.print(table)
    for r in results:
        console.print(f"[bold]{r.scenario.version}[/] {r.state.deployment_id}: {_why(r)}")
    verdict = "[bold green]as expected[/]" if ok else "[bold red]NOT as expected[/]"
    console.print(f"demo {verdict}.")


def _explore(console: Console, results: list[ScenarioResult], store_url: str) -> None:
    """The commands that read what the demo kept, in any folder, with no config."""
    store = "" if store_url == DEFAULT_STORE_URL else f"--store {redact_url(store_url)} "
    console.print(f"History kept in {DEFAULT_STORE_PATH if not store else redact_url(store_url)}.")
    console.print("Explore it:")
    for r in results:
        console.print(f"  safeship {store}rollout explain {r.state.deployment_id}", soft_wrap=True)
    console.print(f"  safeship {store}rollout list", soft_wrap=True)
    console.print(
        f"  safeship {store}report --service {DEMO_SERVICE} --production-env {DEMO_ENVIRONMENT}",
        soft_wrap=True,
    )


def _why(result: ScenarioResult) -> str:
    decisions = result.story.get("decisions", [])
    final = next(
        (d for d in reversed(decisions) if d["action"] in ("rollback", "pause", "advance")),
        None,
    )
    return final["reason"] if final else result.state.detail


@demo.command(
    "service",
    context_settings={"ignore_unknown_options": True, "help_option_names": []},
    add_help_option=False,
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def service_cmd(args: tuple[str, ...]) -> int:
    """Run the demo's sample service in the foreground: a stand-in for your own version in
    a slot (what `safeship init`'s hooks start). `safeship demo service --help` lists its
    options: --listen, --service, --environment, --version, --track, faults."""
    try:
        return sample_service.main(list(args), prog="safeship demo service")
    except SystemExit as exc:  # argparse's own usage error (it printed it) or --help
        return exc.code if isinstance(exc.code, int) else ExitCode.USAGE
