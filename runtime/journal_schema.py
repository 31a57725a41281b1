"""The journal's tables (SQLAlchemy 2.0 Core). Every time column is seconds since the Unix epoch
from the engine's clock; `iteration` is the for-each item index, or -1 for a step as a whole.

Step results, compensations, timers and approvals are keyed by (run_id, step_id, iteration),
never by call order, so a resumed run finds each step's record whatever order things ran in.
"""

from __future__ import annotations

import sqlalchemy as sa

WHOLE_STEP = -1
"""The `iteration` of a plain step's row, and of a for-each step's summary row."""


def item_of(iteration: int) -> int | None:
    """The for-each item index people and invokers see: None for a whole step."""
    return None if iteration == WHOLE_STEP else iteration

metadata = sa.MetaData()

runs = sa.Table(
    "overture_runs",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("workflow_name", sa.String(200), nullable=False),
    sa.Column("workflow_version", sa.Integer, nullable=True),
    sa.Column("document", sa.JSON, nullable=False),
    sa.Column("inputs", sa.JSON, nullable=False),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
    sa.Column("ended_at", sa.Double, nullable=True),
    sa.Column("deadline_at", sa.Double, nullable=True),
    sa.Column("error", sa.JSON, nullable=True),
    sa.Column("compensation", sa.JSON, nullable=True),
    sa.Column("cancel_requested", sa.Boolean, nullable=False, default=False),
    sa.Column("worker_id", sa.String(200), nullable=True),
    # which worker drives the run right now, until when (real time): two processes on one journal
    # (the service and `overture resume`) never drive the same run at once
    sa.Column("owner", sa.String(200), nullable=True),
    sa.Column("lease_until", sa.Double, nullable=True),
    sa.Index("ix_overture_runs_state", "state"),
)

step_results = sa.Table(
    "overture_step_results",
    metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("step_id", sa.String(128), primary_key=True),
    sa.Column("iteration", sa.Integer, primary_key=True),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("action", sa.String(200), nullable=True),
    sa.Column("inputs", sa.JSON, nullable=True),
    sa.Column("output", sa.JSON, nullable=True),
    sa.Column("error", sa.JSON, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("started_at", sa.Double, nullable=True),
    sa.Column("ended_at", sa.Double, nullable=True),
    sa.Column("not_before", sa.Double, nullable=True),
    sa.Column("updated_at", sa.Double, nullable=False),
)

compensations = sa.Table(
    "overture_compensations",
    metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("step_id", sa.String(128), primary_key=True),
    sa.Column("iteration", sa.Integer, primary_key=True),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("action", sa.String(200), nullable=False),
    sa.Column("inputs", sa.JSON, nullable=True),
    sa.Column("output", sa.JSON, nullable=True),
    sa.Column("error", sa.JSON, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("updated_at", sa.Double, nullable=False),
)

attempts = sa.Table(
    "overture_attempts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("workflow_name", sa.String(200), nullable=False),
    sa.Column("step_id", sa.String(128), nullable=False),
    sa.Column("iteration", sa.Integer, nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("action", sa.String(200), nullable=False),
    sa.Column("idempotency_key", sa.String(400), nullable=False),
    sa.Column("started_at", sa.Double, nullable=False),
    sa.Column("ended_at", sa.Double, nullable=True),
    sa.Column("duration_s", sa.Double, nullable=True),
    sa.Column("outcome", sa.String(20), nullable=False),
    sa.Column("error_type", sa.String(100), nullable=True),
    sa.Column("error_class", sa.String(200), nullable=True),
    sa.Column("error_message", sa.Text, nullable=True),
    sa.Column("transient", sa.Boolean, nullable=True),
    sa.Column("retry_after", sa.Double, nullable=True),
    sa.Column("output", sa.JSON, nullable=True),
    sa.Column("output_size", sa.Integer, nullable=True),
    sa.Column("output_truncated", sa.Boolean, nullable=False, default=False),
    sa.Column("worker_id", sa.String(200), nullable=True),
    sa.Column("runs_in_flight", sa.Integer, nullable=True),
    sa.Column("propensity", sa.Double, nullable=True),
    sa.Column("candidates", sa.JSON, nullable=True),
    sa.Index("ix_overture_attempts_action_time", "action", "started_at"),
    sa.Index("ix_overture_attempts_run", "run_id", "step_id", "iteration"),
)

events = sa.Table(
    "overture_events",
    metadata,
    # one sequence over all runs: unique and increasing without read-then-write races
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("time", sa.Double, nullable=False),
    sa.Column("type", sa.String(50), nullable=False),
    sa.Column("step_id", sa.String(128), nullable=True),
    sa.Column("iteration", sa.Integer, nullable=True),
    sa.Column("data", sa.JSON, nullable=False),
    sa.Index("ix_overture_events_run_seq", "run_id", "seq"),
)

timers = sa.Table(
    "overture_timers",
    metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("step_id", sa.String(128), primary_key=True),
    sa.Column("iteration", sa.Integer, primary_key=True),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("wake_at", sa.Double, nullable=False),
    sa.Column("fired", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Index("ix_overture_timers_wake", "fired", "wake_at"),
)

approvals = sa.Table(
    "overture_approvals",
    metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("step_id", sa.String(128), primary_key=True),
    sa.Column("iteration", sa.Integer, primary_key=True),
    sa.Column("prompt", sa.Text, nullable=True),
    sa.Column("approvers", sa.JSON, nullable=True),
    sa.Column("requested_at", sa.Double, nullable=False),
    sa.Column("decided_at", sa.Double, nullable=True),
    sa.Column("approved", sa.Boolean, nullable=True),
    sa.Column("decided_by", sa.String(200), nullable=True),
    sa.Column("comment", sa.Text, nullable=True),
    # which approver let `decided_by` decide (their name, a role, `*`); NULL when anyone could,
    # and on decisions made before it was recorded
    sa.Column("decided_as", sa.String(200), nullable=True),
)
