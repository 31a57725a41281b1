"""What the engine knows about one run while it drives it, and the small rules shared by the
engine's layers (idempotency keys, error normalisation)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from runtime.errors import (
    ActionError,
    PermanentActionError,
)
from runtime.journal_schema import WHOLE_STEP
from runtime.records import RunRecord, RunState, StepRecord, StepState
from workflow.document import Step, Workflow
from workflow.errors import ExpressionError
from workflow.expressions import compile_expression, find_expressions, iter_strings

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


@dataclass(frozen=True)
class TakenRun:
    """A run whose lease the caller already holds, as it read it when it took the lease (a
    worker's take from the queue reads the run, its steps and its in-flight attempts in the
    statement that moves the lease): the engine's driver starts from this instead of claiming
    the run and reading it again."""

    record: RunRecord
    steps: dict[tuple[str, int], StepRecord]
    started_attempts: int
    """Attempts of the run left `started` (a crashed worker's); 0 spares the look for them."""


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
    reads: dict[str, frozenset[str] | None] = field(default_factory=dict)
    """Per step: which steps' results its expressions read (`steps_read`), worked out once."""
    cancel_seen: bool | None = None
    """The run's cancel flag as the last step attempt's end read it (in the same transaction), for
    the driver's next look at stop requests, which then needs no read of its own."""
    _steps_context: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.record.id

    def context(self, reads: frozenset[str] | None = None) -> dict[str, Any]:
        """The data expressions see: `inputs` and `steps` (only the steps in `reads`, when the
        caller knows which ones its expressions read: see `steps_read`)."""
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
        if reads is not None:  # copying every step's entry per step made a long chain quadratic
            return {"inputs": self.record.inputs, "steps": {sid: steps[sid] for sid in reads if sid in steps}}
        return {"inputs": self.record.inputs, "steps": dict(steps)}

    def fail(self, error: dict[str, Any], *, cancelled: bool = False) -> None:
        if self.failure is None:
            self.failure = error
            self.cancelled = cancelled
        self.stop.set()


@lru_cache(maxsize=8192)
def _reads_of(source: str) -> frozenset[str] | None:
    reads: set[str] = set()
    for ref in compile_expression(source).references():
        if ref.root == "steps":
            if not ref.path:  # `steps[name]` with a name computed at run time: any step
                return None
            reads.add(ref.path[0])
    return frozenset(reads)


def steps_read(step: Step) -> frozenset[str] | None:
    """The ids of the steps whose results `step`'s expressions (if, for_each, with) read; None
    when that can't be told before running (a step looked up by a computed name) or an
    expression doesn't compile (the render then reports it)."""
    texts = [text for _, text in iter_strings(step.with_, "")]
    if step.if_:
        texts.append(step.if_ if "${{" in step.if_ else "${{ " + step.if_ + " }}")
    texts += [text for _, text in iter_strings(step.for_each, "")]
    reads: set[str] = set()
    try:
        for text in texts:
            for source in find_expressions(text):
                found = _reads_of(source)
                if found is None:
                    return None
                reads |= found
    except ExpressionError:
        return None
    return frozenset(reads)
