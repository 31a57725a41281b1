"""A run as plain data for people and tools: steps with their attempts, durations and errors,
undo results, approvals and the saga summary (the CLI's `runs show`, dashboards)."""

from __future__ import annotations

from typing import Any

from runtime.clock import iso_time
from runtime.journal_memory import AnyJournal
from runtime.journal_schema import WHOLE_STEP, item_of


def _when(ts: float | None) -> str | None:
    return iso_time(ts) if ts is not None else None


def run_data(journal: AnyJournal, run_id: str) -> dict[str, Any]:
    record = journal.get_run(run_id)
    rows = journal.step_results(run_id)
    attempts = journal.attempts(run_id=run_id)
    undos = journal.undo_results(run_id)
    order = [s.get("id") for s in record.document.get("steps", [])]
    steps = []
    for step_id in order:
        row = rows.get((step_id, WHOLE_STEP))
        mine = [a for a in attempts if a.step_id == step_id and a.kind == "action"]
        items = sorted(it for (sid, it) in rows if sid == step_id and it != WHOLE_STEP)
        step: dict[str, Any] = {
            "id": step_id,
            "state": row.state.value if row else "pending",
            "attempts": len(mine),
            "started_at": _when(row.started_at) if row else None,
            "ended_at": _when(row.ended_at) if row else None,
            "duration_s": (row.ended_at - row.started_at)
            if row and row.started_at and row.ended_at
            else None,
            "error": row.error if row else None,
        }
        if items:
            step["items"] = {str(i): rows[(step_id, i)].state.value for i in items}
        undo = [u for (sid, _), u in undos.items() if sid == step_id]
        if undo:
            step["undo"] = [
                {"iteration": u.iteration, "state": u.state.value, "action": u.action, "error": u.error}
                for u in undo
            ]
        steps.append(step)
    return {
        "id": record.id,
        "workflow": record.workflow_name,
        "version": record.workflow_version,
        "state": record.state.value,
        "created_at": _when(record.created_at),
        "ended_at": _when(record.ended_at),
        "duration_s": (record.ended_at - record.created_at) if record.ended_at else None,
        "inputs": journal.redact(record.inputs),
        "error": record.error,
        "compensation": record.compensation,
        "steps": steps,
        "attempts": [
            {
                "step": a.step_id,
                "iteration": item_of(a.iteration),
                "attempt": a.attempt,
                "kind": a.kind,
                "action": a.action,
                "outcome": a.outcome,
                "started_at": _when(a.started_at),
                "duration_s": a.duration_s,
                "error_type": a.error_type,
                "error": a.error_message,
            }
            for a in attempts
        ],
        "approvals": [
            {
                "step": a.step_id,
                "iteration": item_of(a.iteration),
                "prompt": a.prompt,
                "approvers": a.approvers,
                "requested_at": _when(a.requested_at),
                "decided_at": _when(a.decided_at),
                "approved": a.approved,
                "by": a.decided_by,
                "as": a.decided_as,
                "comment": a.comment,
            }
            for a in journal.approvals(run_id)
        ],
    }
