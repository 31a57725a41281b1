"""The optimizer's own input type: one attempt of one step, as the journal recorded it.

The journal reader (`optimizer.history`) and the benchmark's simulator both produce these, so the
models and rewrites never depend on the journal's table layout.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

OK = "ok"
ERROR = "error"
TIMEOUT = "timeout"


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One attempt: what ran, how long it took, how it ended and under which conditions."""

    run_id: str
    workflow: str
    step_id: str
    action: str
    """The action actually called (an alternative when the router rerouted the step)."""
    started_at: float
    """Seconds since the epoch, on the engine's clock (simulated time in the benchmark)."""
    ended_at: float
    outcome: str
    """`ok`, `error` or `timeout`."""
    attempt: int = 1
    iteration: int | None = None
    error_type: str | None = None
    transient: bool | None = None
    """Whether the runtime classed the error as retryable (None when unknown or no error)."""
    load: float = 0.0
    """Runs in flight when the attempt started."""
    worker: str | None = None
    propensity: float | None = None
    """Probability with which the router picked `action` (None when no routing happened)."""
    workflow_version: int | None = None

    @property
    def duration(self) -> float:
        return max(0.0, self.ended_at - self.started_at)

    @property
    def ok(self) -> bool:
        return self.outcome == OK


@dataclass(slots=True)
class StepRun:
    """All attempts of one step (one for-each item) in one run, folded together."""

    run_id: str
    step_id: str
    iteration: int | None
    attempts: list[AttemptRecord] = field(default_factory=list)

    @property
    def started_at(self) -> float:
        return min(a.started_at for a in self.attempts)

    @property
    def ended_at(self) -> float:
        return max(a.ended_at for a in self.attempts)

    @property
    def duration(self) -> float:
        return self.ended_at - self.started_at

    @property
    def busy(self) -> float:
        """Time spent inside attempts (the step's duration minus retry back-off waits)."""
        return sum(a.duration for a in self.attempts)

    @property
    def succeeded(self) -> bool:
        return any(a.ok for a in self.attempts)


def step_runs(records: Iterable[AttemptRecord]) -> list[StepRun]:
    """Group attempts by (run, step, iteration), attempts in order."""
    groups: dict[tuple[str, str, int | None], StepRun] = {}
    for rec in records:
        key = (rec.run_id, rec.step_id, rec.iteration)
        if key not in groups:
            groups[key] = StepRun(rec.run_id, rec.step_id, rec.iteration)
        groups[key].attempts.append(rec)
    for group in groups.values():
        group.attempts.sort(key=lambda a: (a.attempt, a.started_at))
    return list(groups.values())


def run_step_durations(records: Iterable[AttemptRecord]) -> dict[str, dict[str, float]]:
    """Per run, each step's realized duration (for-each items merged: first start to last end)."""
    spans: dict[str, dict[str, tuple[float, float]]] = defaultdict(dict)
    for rec in records:
        lo, hi = spans[rec.run_id].get(rec.step_id, (rec.started_at, rec.ended_at))
        spans[rec.run_id][rec.step_id] = (min(lo, rec.started_at), max(hi, rec.ended_at))
    return {run: {s: hi - lo for s, (lo, hi) in steps.items()} for run, steps in spans.items()}


def for_workflow(records: Sequence[AttemptRecord], name: str) -> list[AttemptRecord]:
    return [r for r in records if r.workflow == name]
