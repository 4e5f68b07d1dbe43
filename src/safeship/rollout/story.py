"""The whole story of one rollout, rebuilt from the history store alone.

"Why was this rolled back?" must be answerable from the record: the
deployment, every state it passed through and every decision with its inputs.
"""

from __future__ import annotations

from typing import Any

from safeship.errors import RolloutStateError
from safeship.store.interface import Store


def rollout_story(store: Store, deployment_id: str) -> dict[str, Any]:
    """Deployment, states and decisions of one rollout as JSON-able data."""
    deployment = store.get_deployment(deployment_id)
    if deployment is None:
        raise RolloutStateError(
            f"no rollout {deployment_id!r} in the history store "
            "(`safeship rollout list` shows the known ones)"
        )
    decisions = store.decisions(deployment_id)
    deciding = next(
        (d for d in reversed(decisions) if d.action in ("rollback", "abort", "pause", "fail")),
        None,
    )
    return {
        "deployment": {
            "id": deployment.id,
            "service": deployment.service,
            "environment": deployment.environment,
            "version": deployment.version,
            "commit_sha": deployment.commit_sha,
            "commit_time": deployment.commit_time,
            "commit_time_missing": deployment.commit_time_missing,
            "started_at": deployment.started_at,
            "finished_at": deployment.finished_at,
            "duration": deployment.duration,
            "outcome": deployment.outcome,
            "reason": deployment.reason,
            "max_weight": deployment.max_weight,
        },
        "cause": None
        if deciding is None
        else {"seq": deciding.seq, "action": deciding.action, "reason": deciding.reason},
        "states": [
            {
                "at": at,
                "phase": s.get("phase"),
                "weight": s.get("weight"),
                "target_weight": s.get("target_weight"),
                "detail": s.get("detail"),
            }
            for at, s in store.state_history(deployment_id)
        ],
        "decisions": [
            {
                "seq": d.seq,
                "at": d.at,
                "action": d.action,
                "step": d.step,
                "weight": d.weight,
                "result": d.result,
                "reason": d.reason,
                "inputs": d.inputs,
            }
            for d in decisions
        ],
    }
