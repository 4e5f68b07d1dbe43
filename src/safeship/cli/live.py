"""The live view of a rollout (`rollout`, `resume`, `promote`, `abort`, `demo`): one short
line per look, figures labelled with what they are, a bar for the hold.

A person watching a rollout wants to see, at a glance, the weight, how far the hold
has gone, and the canary's figures next to the stable version's; the reasons behind a
verdict are long (evidence, thresholds, queries) and stay in `--json`, `-v` and
`safeship rollout explain`. So each line fits in 120 columns, and only a change of
verdict adds one short line saying why. On a terminal the result is coloured; piped,
the same text comes out plain (no escape codes, no redrawing), so logs stay stable.
"""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from safeship.analysis import Verdict
from safeship.rollout.controller import RolloutEvent
from safeship.rollout.machine import RolloutState

LEGEND = (
    "each line: canary vs stable; requests and errors over the step so far, p95 over its window"
)
BAR_CELLS = 8
EXPLANATION_WIDTH = 100
_COLORS = {"pass": "green", "fail": "red", "inconclusive": "yellow", "error": "magenta"}
_ENDINGS = {"promoted": "green", "rolled_back": "red", "aborted": "red", "failed": "red"}
# Events already told by the line of another: a confirmed weight starts the next lines.
_QUIET = frozenset({"weight"})


def percent(rate: float) -> str:
    """An error rate as a percentage with the digits that tell it apart: 0.25%, 12.5%."""
    if rate == 0:
        return "0%"
    if rate < 0.0001:
        return "<0.01%"
    return f"{rate:.2%}" if rate < 0.1 else f"{rate:.1%}"


def latencies(canary: float | None, stable: float | None) -> str:
    """Two latencies in one unit: milliseconds, or seconds from 10 s."""
    largest = max((v for v in (canary, stable) if v is not None), default=0.0)
    scale, unit, digits = (1000, "ms", 0) if largest < 10 else (1, "s", 1)

    def shown(value: float | None) -> str:
        return "-" if value is None else f"{value * scale:.{digits}f}"

    return f"{shown(canary)} vs {shown(stable)} {unit}"


def count(value: float) -> str:
    """A request count short enough for the line: 950, 12.3k, 988k, 4.1M."""
    if value < 10_000:
        return f"{value:.0f}"
    if value < 100_000:
        return f"{value / 1000:.1f}k"
    if value < 1_000_000:
        return f"{value / 1000:.0f}k"
    return f"{value / 1_000_000:.1f}M"


def hold_bar(held: float, hold: float, *, unicode: bool) -> str:
    """How far the step's hold has gone: `[####----]  45/150s` (blocks on a terminal)."""
    share = 0.0 if hold <= 0 else min(1.0, max(0.0, held / hold))
    filled = round(share * BAR_CELLS)
    if unicode:
        bar = "▕" + "█" * filled + "░" * (BAR_CELLS - filled) + "▏"
    else:
        bar = "[" + "#" * filled + "-" * (BAR_CELLS - filled) + "]"
    return f"{bar} {min(held, hold):>3.0f}/{hold:.0f}s"


def figures(verdict: Verdict) -> str:
    """The look's figures, canary first and the stable version second."""
    parts = [f"req {count(verdict.canary_requests)} vs {count(verdict.baseline_requests)}"]
    if verdict.canary_requests and verdict.baseline_requests:
        canary = verdict.canary_errors / verdict.canary_requests
        stable = verdict.baseline_errors / verdict.baseline_requests
        parts.append(f"errors {percent(canary)} vs {percent(stable)}")
    p95 = verdict.p95
    if p95 is not None:
        label = "p95 (bucket estimate)" if p95.estimated else "p95"
        parts.append(f"{label} {latencies(p95.canary, p95.baseline)}")
    return "  ".join(parts)


def shorten(text: str, width: int = EXPLANATION_WIDTH) -> str:
    """The first clause of `text` (up to "; " or " ("), at most `width` characters."""
    first = text.split("; ")[0].split(" (")[0]
    if len(first) > width:
        first = first[: width - 1].rstrip() + "…"
    return first


def short_reason(verdict: Verdict) -> str:
    """Why the verdict is what it is, in one short line: the first check that decided it."""
    deciding = next((c for c in verdict.checks if c.result is verdict.result), None)
    return shorten(f"{deciding.name}: {deciding.reason}" if deciding else verdict.reason)


class LiveView:
    """Prints each rollout event as it happens; `hold` is the steps' hold in seconds."""

    def __init__(self, console: Console, hold: float) -> None:
        self.console = console
        self.hold = hold
        self._last: tuple[str, int, str] | None = None  # (deployment, step, result) last shown
        self._told_legend = False

    def event(self, event: RolloutEvent) -> None:
        if event.kind in _QUIET:
            return
        state = event.state
        head = f"{state.weight:>3}%"
        if event.kind == "started":
            steps = " → ".join(f"{w}%" for w in state.steps)
            self._print(f"[cyan]{head}[/] rolling out {escape(state.version)} as "
                        f"{state.deployment_id}: {steps}")  # fmt: skip
        elif event.kind == "verdict" and event.verdict is not None:
            self._verdict(state, event.verdict, head)
        elif event.kind == "rollback":
            reason = f" ({state.reason.value})" if state.reason else ""
            self._print(
                f"[cyan]{head}[/] [bold red]ROLLBACK[/]{reason} {escape(shorten(state.detail, 84))}"
            )
        elif event.kind == "finished":
            color = _ENDINGS.get(state.phase.value, "yellow")
            ending = state.phase.value.upper().replace("_", " ")
            why = f" ({state.reason.value})" if state.reason else ""
            self._print(f"[cyan]{head}[/] [bold {color}]{ending}[/]{why}")
        elif event.kind == "paused":
            self._print(f"[cyan]{head}[/] [bold yellow]PAUSED[/] {self._short(event.message)}")
        else:
            self._print(f"[cyan]{head}[/] {self._short(event.message, 110)}")

    def _verdict(self, state: RolloutState, verdict: Verdict, head: str) -> None:
        if not self._told_legend:
            self._print(f"[dim]{LEGEND}[/]")
            self._told_legend = True
        result = verdict.result.value
        held = 0.0 if state.step_started_at is None else state.updated_at - state.step_started_at
        final = state.step_index == len(state.steps) - 1
        bar = "" if final else f" {escape(hold_bar(held, self.hold, unicode=self._unicode))}"
        color = _COLORS[result]
        self._print(f"[cyan]{head}[/]{bar}  {figures(verdict)}  [{color}]{result}[/]")
        shown = (state.deployment_id, state.step_index, result)
        changed = self._last is None or self._last[::2] != shown[::2]
        if changed and (result != "pass" or self._last is not None):
            self._print(f"      [dim]{escape(short_reason(verdict))}[/]")
        self._last = shown

    @staticmethod
    def _short(text: str, width: int = EXPLANATION_WIDTH) -> str:
        return escape(text if len(text) <= width else text[: width - 1].rstrip() + "…")

    @property
    def _unicode(self) -> bool:
        return self.console.is_terminal and self.console.encoding.lower().startswith("utf")

    def _print(self, markup: str) -> None:
        self.console.print(markup, highlight=False, soft_wrap=True)
