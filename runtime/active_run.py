"""What the engine knows about one run while it drives it, and the small rules shared by the
engine's layers (idempotency keys, error normalisation)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from runtime.errors import (
    ActionError,
    PermanentActionError,
)
from runtime.journal_schema import WHOLE_STEP
from runtime.records import RunRecord, RunState, StepRecord, StepState
from workflow.document import Workflow

RESUMABLE = (StepState.RUNNING, StepState.RETRYING)
PASSED = (StepState.SUCCEEDED, StepState.SKIPPED)

StepOutcome = tuple[StepState, Any, dict[str, Any] | None]
"""(final state, output, error) of a step or item."""


@dataclass(frozen=True)
class RunResult:
    """Where a run stands: its state, each step's state and output, the error and the saga summary."""

    run_id: str
    state: RunState
    steps: dict[str, StepState]
    outputs: dict[str, Any]
    error: dict[str, Any] | None
    compensation: dict[str, Any] | None

    @property
    def succeeded(self) -> bool:
        return self.state == RunState.SUCCEEDED


def idempotency_key(run_id: str, step_id: str, iteration: int, *, undo: bool = False) -> str:
    """Deterministic per (run, step, iteration): the same across retries and crash recovery."""
    key = f"{run_id}:{step_id}" if iteration == WHOLE_STEP else f"{run_id}:{step_id}:{iteration}"
    return key + ":undo" if undo else key


def parse_time(text: str) -> float:
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)  # a time without zone is read as UTC, as the journal is
    return when.timestamp()


def as_action_error(exc: BaseException) -> ActionError:
    if isinstance(exc, ActionError):
        return exc
    # an invoker that raises anything else has a bug or met bad input: retrying will not fix it
    return PermanentActionError(f"{type(exc).__name__}: {exc}", type=type(exc).__name__)


class _Noted(dict[str, Any]):
    """A dict that notes the keys set since the last look, so `ActiveRun.context()` rebuilds only
    those: rebuilding every step's entry per step made a long chain quadratic."""

    def __init__(self) -> None:
        super().__init__()
        self.changed: set[str] = set()

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self.changed.add(key)


@dataclass
class ActiveRun:
    """A run's in-memory state while a driver holds it."""

    record: RunRecord
    workflow: Workflow
    deps: dict[str, set[str]]
    status: dict[str, StepState | None] = field(default_factory=_Noted)
    outputs: dict[str, Any] = field(default_factory=_Noted)
    failure: dict[str, Any] | None = None
    cancelled: bool = False
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    replay: dict[tuple[str, int], StepRecord] | None = None
    """The run's step rows as this driver first read them (see `StepRunner._replay_rows`)."""
    replayed: set[str] = field(default_factory=set)
    """Steps this driver has started: for these the journal has moved on from `replay`."""
    _steps_context: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.record.id

    def context(self) -> dict[str, Any]:
        steps = self._steps_context
        changed: set[str] = set()
        for noted in (self.status, self.outputs):
            if isinstance(noted, _Noted):
                changed |= noted.changed
                noted.changed = set()
            else:  # replaced by a plain dict: no notes, rebuild all
                changed |= set(self.status)
        for sid in changed:
            if sid in self.status:
                st = self.status[sid]
                steps[sid] = {"output": self.outputs.get(sid), "status": (st.value if st else "pending")}
        # a copy per call: a step's context is a snapshot, as steps finishing meanwhile must not
        # change what its (for-each) items render
        return {"inputs": self.record.inputs, "steps": dict(steps)}

    def fail(self, error: dict[str, Any], *, cancelled: bool = False) -> None:
        if self.failure is None:
            self.failure = error
            self.cancelled = cancelled
        self.stop.set()
