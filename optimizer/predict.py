"""A predicted run duration, for progress displays: median and 90th percentile, by Monte Carlo.

Each step's attempts are drawn from its action's observed successful durations and failure rate
(retries with the step's back-off included), and laid on the dependency graph. Steps already
finished count as zero, so the same call answers "how much longer?" during a run.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from optimizer.estimate import makespans
from optimizer.models import ModelSet
from workflow.document import RetryPolicy, Workflow


@dataclass(frozen=True)
class DurationForecast:
    p50_s: float
    p90_s: float
    mean_s: float
    success_probability: float
    unknown_steps: list[str]
    """Steps whose action has no history: counted as zero, so the forecast is a lower bound."""


def step_duration_samples(step_action: str, retry: RetryPolicy | None, models: ModelSet,
                          samples: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray] | None:
    """(durations, succeeded) of `samples` simulated executions of one step."""
    model = models.actions.get(step_action)
    if model is None:
        return None
    ok_durations = model.rows_duration[model.rows_ok]
    fail_durations = model.rows_duration[~model.rows_ok]
    if ok_durations.size == 0:
        ok_durations = np.array([model.mean_duration])
    if fail_durations.size == 0:
        fail_durations = ok_durations
    policy = retry or RetryPolicy()
    total = np.zeros(samples)
    done = np.zeros(samples, dtype=bool)
    for attempt in range(1, policy.max_attempts + 1):
        active = ~done
        if not active.any():
            break
        fails = rng.random(samples) < model.failure_rate
        d = np.where(fails, rng.choice(fail_durations, samples), rng.choice(ok_durations, samples))
        total += np.where(active, d + policy.delay_before(attempt), 0.0)
        done |= active & ~fails
    return total, done


def predict_run_duration(workflow: Workflow, models: ModelSet, *, finished: Iterable[str] = (),
                         samples: int = 2000, seed: int = 0) -> DurationForecast:
    rng = np.random.default_rng(seed)
    finished_ids = set(finished)
    ids = workflow.step_ids
    durations = np.zeros((samples, len(ids)))
    success = np.ones(samples, dtype=bool)
    unknown = []
    for j, step in enumerate(workflow.steps):
        if step.id in finished_ids or step.action.startswith("core."):
            continue
        drawn = step_duration_samples(step.action, step.retry, models, samples, rng)
        if drawn is None:
            unknown.append(step.id)
            continue
        durations[:, j], ok = drawn
        success &= ok
    spans = makespans(workflow, durations, ids)
    return DurationForecast(
        p50_s=float(np.quantile(spans, 0.5)),
        p90_s=float(np.quantile(spans, 0.9)),
        mean_s=float(spans.mean()),
        success_probability=float(success.mean()),
        unknown_steps=unknown,
    )
