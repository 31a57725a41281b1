"""What the journal hands back: runs, step results, attempts, events, approvals (frozen data).

Event types (`Event.type`; `step_id`/`iteration` say which step or for-each item):

    run.started  run.waiting  run.resumed  run.cancel_requested  run.finished (data: state, error,
    compensation)  ·  step.started (attempt, action, idempotency_key)  step.retrying (error,
    delay_s)  step.succeeded  step.failed (error)  step.skipped  step.waiting (timers)
    step.cancelled  step.interrupted (in flight at a crash)  ·  approval.requested (prompt,
    approvers)  approval.given (approved, by, comment)  ·  log (message)  ·  compensation.started
    compensation.step_started  compensation.step_retrying  compensation.step_undone
    compensation.step_failed  compensation.step_left (reason)  compensation.step_interrupted
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class RunState(StrEnum):
    RUNNING = "running"
    WAITING = "waiting"
    """Every step left is blocked on a timer or an approval; no task is held meanwhile."""
    COMPENSATING = "compensating"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED)


class StepState(StrEnum):
    RUNNING = "running"
    RETRYING = "retrying"
    WAITING = "waiting"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"

    @property
    def done(self) -> bool:
        return self in (StepState.SUCCEEDED, StepState.SKIPPED, StepState.FAILED, StepState.CANCELLED)


class UndoState(StrEnum):
    RUNNING = "running"
    UNDONE = "undone"
    FAILED = "failed"
    LEFT = "left"
    """Not attempted because a step that depends on it could not be undone."""


@dataclass(frozen=True)
class RunRecord:
    id: str
    workflow_name: str
    workflow_version: int | None
    document: dict[str, Any]
    inputs: dict[str, Any]
    state: RunState
    created_at: float
    updated_at: float
    ended_at: float | None
    deadline_at: float | None
    error: dict[str, Any] | None
    compensation: dict[str, Any] | None
    """`{status: complete|incomplete, undone: [...], left: [{step, iteration, reason}]}`."""
    cancel_requested: bool
    worker_id: str | None
    owner: str | None = None
    """The worker driving the run now (see `Journal.claim`)."""
    lease_until: float | None = None


@dataclass(frozen=True)
class StepRecord:
    run_id: str
    step_id: str
    iteration: int
    state: StepState
    action: str | None
    inputs: Any
    output: Any
    error: dict[str, Any] | None
    attempts: int
    started_at: float | None
    ended_at: float | None
    not_before: float | None


@dataclass(frozen=True)
class UndoRecord:
    run_id: str
    step_id: str
    iteration: int
    state: UndoState
    action: str
    inputs: Any
    output: Any
    error: dict[str, Any] | None
    attempts: int


@dataclass(frozen=True)
class AttemptRecord:
    """One row of the attempts table, the optimizer's training data.

    Columns: `action` is the action actually called (after routing), `kind` is `action` or
    `compensation`, `outcome` is `started` (in flight, or lost in a crash until recovery marks it
    `interrupted`), `succeeded`, `failed`, `timeout` or `interrupted`. The error columns say what
    kind of failure it was (`error_type` as retry policies name it, `error_class` the Python
    class, `transient` whether a retry may help). `output` is capped (see `output_truncated`);
    `runs_in_flight`, `worker_id` and `propensity` describe the conditions at dispatch.
    """

    id: int
    run_id: str
    workflow_name: str
    step_id: str
    iteration: int
    attempt: int
    kind: str
    action: str
    idempotency_key: str
    started_at: float
    ended_at: float | None
    duration_s: float | None
    outcome: str
    error_type: str | None
    error_class: str | None
    error_message: str | None
    transient: bool | None
    retry_after: float | None
    output: Any
    output_size: int | None
    output_truncated: bool
    worker_id: str | None
    runs_in_flight: int | None
    propensity: float | None
    candidates: list[str] | None


@dataclass(frozen=True)
class Event:
    seq: int
    run_id: str
    time: float
    type: str
    step_id: str | None = None
    iteration: int | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def to_data(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "run_id": self.run_id,
            "time": self.time,
            "type": self.type,
            "step_id": self.step_id,
            "iteration": self.iteration,
            "data": self.data,
        }


@dataclass(frozen=True)
class ApprovalRecord:
    run_id: str
    step_id: str
    iteration: int
    prompt: str | None
    approvers: list[str] | None
    requested_at: float
    decided_at: float | None
    approved: bool | None
    decided_by: str | None
    comment: str | None
    decided_as: str | None = None
    """The approver that allowed the decision (`decided_by`'s name, a role, `*`); None when the
    approval listed nobody."""


@dataclass(frozen=True)
class TimerRecord:
    run_id: str
    step_id: str
    iteration: int
    kind: str
    wake_at: float
    fired: bool
