"""What a rollout shows GitHub Actions: log groups, annotations, step outputs, a summary.

`safeship rollout` (and promote, abort, resume) creates one only inside a
workflow run, so outside Actions nothing here runs and the output is unchanged.
Every text that leaves through here is scrubbed of the config's secrets first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import click

from safeship.analysis.verdict import Result
from safeship.ci.github import append_summary, in_github_actions, set_output, workflow_command
from safeship.ci.summary import rollout_summary
from safeship.redact import redact_text
from safeship.rollout.controller import RolloutEvent
from safeship.rollout.machine import Phase, RolloutState


class GitHubRolloutReport:
    """Follows one rollout's events, then writes its outputs and step summary.

    Each canary step gets its own `::group::` so the log folds per step; a
    rollback is an `::error::` annotation with its reason, a provider error or
    any other warning a `::warning::`. With `--json` stdout must stay JSON, so
    the commands go to stderr (the runner reads both) and no groups are opened
    (there are no progress lines to fold).
    """

    def __init__(
        self,
        secrets: Iterable[str] = (),
        *,
        groups: bool = True,
        err: bool = False,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.secrets = frozenset(secrets)
        self.groups = groups
        self.err = err
        self.environ = environ
        self._group_open = False

    @classmethod
    def from_environment(
        cls, secrets: Iterable[str], *, as_json: bool
    ) -> GitHubRolloutReport | None:
        """A report inside a workflow run; None anywhere else."""
        if not in_github_actions():
            return None
        return cls(secrets, groups=not as_json, err=as_json)

    def on_event(self, event: RolloutEvent) -> None:
        """Called before the event's progress line is printed, so the line lands in its group."""
        state = event.state
        if event.kind == "started":
            self._open(f"Prepare {state.version} for {state.environment}: hooks and smoke tests")
        elif event.kind == "weight":
            self._close()
            if state.phase is Phase.HOLDING:
                self._open(
                    f"Step {state.step_index + 1}/{len(state.steps)}: canary at {state.weight}%"
                )
        elif event.kind == "rollback":
            self._close()
            self._command(
                "error",
                f"{state.deployment_id} ({state.version} in {state.environment}) at "
                f"{state.weight}%: {event.message}",
                title="safeship rollback",
            )
            self._open(f"Rollback of {state.deployment_id} to 0%")
        elif event.kind == "paused" and state.phase is Phase.PAUSED:
            self._close()
            self.warning(
                f"{state.deployment_id} paused at {state.weight}%: {event.message}. Continue "
                f"with `safeship rollout promote|abort|resume {state.deployment_id}`",
                title="safeship rollout paused",
            )
        elif event.kind == "finished":
            self._close()
            if state.phase is Phase.ABORTED:
                self.warning(f"{state.deployment_id} aborted: {state.detail}")
        elif event.kind == "verdict" and event.verdict and event.verdict.result is Result.ERROR:
            self.warning(event.verdict.reason, title="metrics provider error")

    def warning(self, message: str, title: str = "safeship") -> None:
        self._command("warning", message, title=title)

    def finish(self, state: RolloutState, story: dict[str, Any]) -> None:
        """Step outputs (outcome, deployment_id, weight, reason, detail) and the step summary."""
        self._close()
        outputs = {
            "outcome": state.outcome.value if state.outcome else state.phase.value,
            "deployment_id": state.deployment_id,
            "weight": str(state.weight),
            "reason": state.reason.value if state.reason else "",
            "detail": state.detail or "",
        }
        for name, value in outputs.items():
            set_output(name, self._scrub(value), self.environ)
        append_summary(self._scrub(rollout_summary(story, state.steps)), self.environ)

    def close(self) -> None:
        """End a group left open by an interrupted rollout, so later log lines are not hidden."""
        self._close()

    def _open(self, title: str) -> None:
        if self.groups:
            self._command("group", title)
            self._group_open = True

    def _close(self) -> None:
        if self._group_open:
            self._command("endgroup")
            self._group_open = False

    def _command(self, name: str, message: str = "", **properties: str) -> None:
        scrubbed = {key: self._scrub(value) for key, value in properties.items()}
        click.echo(workflow_command(name, self._scrub(message), **scrubbed), err=self.err)

    def _scrub(self, text: str) -> str:
        return redact_text(text, self.secrets)
