"""Training data from the runtime's journal: the one place that knows the attempts table's shape.

Only finished attempts of actions count (`kind == "action"`); in-flight and interrupted ones say
nothing about how long a call takes or whether it fails, and compensations are another story.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from optimizer.errors import NoHistory
from optimizer.records import ERROR, OK, TIMEOUT, AttemptRecord

if TYPE_CHECKING:
    from runtime.journal import Journal
    from runtime.records import AttemptRecord as JournalAttempt

_OUTCOMES = {"succeeded": OK, "failed": ERROR, "timeout": TIMEOUT}
_WHOLE_STEP = -1  # runtime.journal_schema.WHOLE_STEP: the row of a step that is not a for-each item


def convert(row: JournalAttempt) -> AttemptRecord | None:
    """The optimizer's record of one journal row, or None for rows it does not learn from."""
    outcome = _OUTCOMES.get(row.outcome)
    if row.kind != "action" or outcome is None or row.ended_at is None:
        return None
    return AttemptRecord(
        run_id=row.run_id,
        workflow=row.workflow_name,
        step_id=row.step_id,
        action=row.action,
        started_at=row.started_at,
        ended_at=row.ended_at,
        outcome=outcome,
        attempt=row.attempt,
        iteration=None if row.iteration == _WHOLE_STEP else row.iteration,
        error_type=row.error_type,
        transient=row.transient,
        load=float(row.runs_in_flight or 0),
        worker=row.worker_id,
        propensity=row.propensity,
    )


def convert_all(rows: Iterable[JournalAttempt]) -> list[AttemptRecord]:
    return [rec for row in rows if (rec := convert(row)) is not None]


def load_history(
    journal: Journal, *, workflow: str | None = None, since: float | None = None
) -> list[AttemptRecord]:
    """Every finished action attempt in the journal (of one workflow, when named), oldest first."""
    records = convert_all(journal.attempts(kind="action", since=since))
    if workflow is not None:
        records = [r for r in records if r.workflow == workflow]
    return records


def open_journal(target: str | Path | None = None) -> Journal:
    from runtime.journal import Journal

    return Journal.open(target)


def require(records: list[AttemptRecord], source: str, workflow: str | None = None) -> list[AttemptRecord]:
    if not records:
        raise NoHistory(source, workflow)
    return records
