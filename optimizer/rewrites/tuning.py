"""Retry and timeout tuning from what history shows.

- Which failures are transient: an error type after which the next attempt of the same step
  often succeeds is worth retrying; one after which retries never succeeded (with enough cases)
  goes to `non_retryable`, so the step stops wasting attempts on it.
- How many attempts: the fewest that bring the step's predicted failure below a target, given
  the observed first-attempt failure rate and the success rate of retries.
- Timeout: from the latency tail of successful attempts (a high quantile times a margin), so a
  hung call is cut early while calls that would have succeeded are almost never cut.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from optimizer.records import TIMEOUT, AttemptRecord, step_runs
from workflow.document import RetryPolicy, Workflow

TARGET_STEP_FAILURE = 0.002
MAX_ATTEMPTS_CAP = 8
TIMEOUT_QUANTILE = 0.995
TIMEOUT_MARGIN = 1.5
MIN_ATTEMPTS_FOR_TIMEOUT = 50
MIN_CASES_FOR_NON_RETRYABLE = 5


@dataclass
class StepTuning:
    step_id: str
    attempts: int
    first_failure_rate: float
    retry_failure_rate: float
    transient_types: dict[str, float] = field(default_factory=dict)
    """Error type → share of its retries that succeeded."""
    hopeless_types: list[str] = field(default_factory=list)
    max_attempts: int = 1
    timeout_s: float | None = None
    predicted_failure_before: float = 0.0
    predicted_failure_after: float = 0.0
    timeout_wait_saved_s: float = 0.0
    """Per run: waiting on hung attempts that the new timeout would have cut short."""
    success_cut_share: float = 0.0
    """Share of successful attempts that would have outlasted the new timeout."""


@dataclass(frozen=True)
class Tuning:
    workflow: Workflow
    steps: list[StepTuning]
    runs: int
    attempts: int


def _nice(seconds: float) -> float:
    """Round up to two significant digits, so documents show 1.3, 45, 120, not 1.2874."""
    if seconds <= 0:
        return 0.1
    digits = 1 - math.floor(math.log10(seconds))
    factor = 10.0**digits
    return math.ceil(seconds * factor) / factor


def analyze_step(step_id: str, records: Sequence[AttemptRecord], policy: RetryPolicy | None,
                 timeout_s: float | None, runs: int) -> StepTuning | None:
    groups = [g for g in step_runs(records) if g.step_id == step_id]
    if not groups:
        return None
    firsts = [g.attempts[0] for g in groups]
    retries = [a for g in groups for a in g.attempts[1:]]
    p1 = float(np.mean([not a.ok for a in firsts]))
    after: dict[str, list[bool]] = {}
    occurrences: Counter[str] = Counter()
    for g in groups:
        for prev, nxt in zip(g.attempts, g.attempts[1:], strict=False):
            if not prev.ok:
                after.setdefault(prev.error_type or "error", []).append(nxt.ok)
        for a in g.attempts:
            if not a.ok:
                occurrences[a.error_type or "error"] += 1
    transient = {t: float(np.mean(v)) for t, v in after.items() if any(v)}
    hopeless = sorted(t for t, v in after.items() if len(v) >= MIN_CASES_FOR_NON_RETRYABLE and not any(v))
    # failures that retries can fix; a hopeless type ends the step whatever the attempts
    all_attempts = [a for g in groups for a in g.attempts]
    n_all = len(all_attempts)
    hopeless_firsts = sum(1 for a in firsts if not a.ok and (a.error_type or "error") in hopeless)
    p_hopeless_first = hopeless_firsts / len(firsts)
    useful = [not a.ok for a in retries if (a.error_type or "error") not in hopeless]
    # Jeffreys-smoothed: a handful of clean retries does not read as "retries never fail"
    retry_fail = (sum(useful) + 0.5) / (len(useful) + 1.0) if useful else p1
    p_retryable_first = max(0.0, p1 - p_hopeless_first)
    q = min(max(retry_fail, 1e-6), 0.999)

    def failure(n: int) -> float:
        return p_hopeless_first + p_retryable_first * q ** (n - 1)

    current = policy.max_attempts if policy is not None else 1
    best = current
    for n in range(1, MAX_ATTEMPTS_CAP + 1):
        if failure(n) <= p_hopeless_first + TARGET_STEP_FAILURE:
            best = n
            break
    else:
        best = MAX_ATTEMPTS_CAP
    if p_retryable_first == 0:
        best = 1 if current == 1 or hopeless else current
    ok_durations = np.array([a.duration for a in all_attempts if a.ok])
    new_timeout = timeout_s
    saved = 0.0
    cut = 0.0
    if ok_durations.size >= MIN_ATTEMPTS_FOR_TIMEOUT:
        candidate = _nice(float(np.quantile(ok_durations, TIMEOUT_QUANTILE)) * TIMEOUT_MARGIN)
        if timeout_s is None or abs(candidate - timeout_s) / timeout_s > 0.25:
            new_timeout = candidate
            timed_out = [a for a in all_attempts if a.outcome == TIMEOUT]
            if timeout_s is not None and candidate < timeout_s:
                waited = sum(a.duration - candidate for a in timed_out if a.duration > candidate)
                saved = waited / max(runs, 1)
            cut = float((ok_durations > candidate).mean())
    return StepTuning(
        step_id=step_id,
        attempts=n_all,
        first_failure_rate=p1,
        retry_failure_rate=retry_fail,
        transient_types=transient,
        hopeless_types=hopeless,
        max_attempts=best,
        timeout_s=new_timeout,
        predicted_failure_before=failure(current),
        predicted_failure_after=failure(best),
        timeout_wait_saved_s=saved,
        success_cut_share=cut,
    )


def tune(workflow: Workflow, records: Sequence[AttemptRecord]) -> Tuning | None:
    """The workflow with tuned retry policies and timeouts, or None when nothing would change."""
    runs = len({r.run_id for r in records})
    new = workflow.model_copy(deep=True)
    changed: list[StepTuning] = []
    for step in new.steps:
        result = analyze_step(step.id, records, step.retry, step.timeout_s, runs)
        if result is None:
            continue
        policy = step.retry or RetryPolicy()
        non_retryable = sorted(set(policy.non_retryable) | set(result.hopeless_types))
        new_retry = RetryPolicy.model_validate(
            {**policy.model_dump(), "max_attempts": result.max_attempts, "non_retryable": non_retryable}
        )
        retry_changed = new_retry != policy and (step.retry is not None or new_retry != RetryPolicy())
        timeout_changed = result.timeout_s != step.timeout_s
        if not retry_changed and not timeout_changed:
            continue
        if retry_changed:
            step.retry = new_retry
        if timeout_changed:
            step.timeout_s = result.timeout_s
        changed.append(result)
    if not changed:
        return None
    return Tuning(new, changed, runs, len(records))
