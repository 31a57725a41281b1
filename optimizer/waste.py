"""Expected wasted work of a failing run under a given graph, by Monte Carlo.

Model: every step fails (after its retries) independently with its probability; steps start as
soon as their dependencies finish; the run stops at the first failure. Everything that started
before that moment was wasted (its cost was spent), and every completed step with side effects
that has a compensation must be undone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from optimizer.estimate import topology
from workflow.document import Workflow


@dataclass(frozen=True)
class WasteEstimate:
    wasted_cost: float
    """Mean cost spent on runs that fail, per run."""
    compensations: float
    """Mean number of compensations per run."""
    makespan: float
    """Mean makespan of runs that succeed."""
    failure_rate: float


def simulate_waste(
    workflow: Workflow,
    p_fail: Mapping[str, float],
    cost: Mapping[str, float],
    durations: np.ndarray,
    *,
    compensable: set[str] | None = None,
    samples: int = 4000,
    seed: int = 0,
) -> WasteEstimate:
    """`durations`: rows of per-step durations (columns in `workflow.steps` order) to resample from."""
    rng = np.random.default_rng(seed)
    ids = workflow.step_ids
    col = {s: i for i, s in enumerate(ids)}
    if len(durations):
        rows = durations[rng.integers(0, len(durations), size=samples)]
    else:
        rows = np.ones((samples, len(ids)))
    probs = np.array([p_fail.get(s, 0.0) for s in ids])
    fails: np.ndarray = rng.random((samples, len(ids))) < probs[None, :]
    order, preds = topology(workflow)
    start = np.zeros((samples, len(ids)))
    finish = np.zeros((samples, len(ids)))
    for s in order:
        j = col[s]
        if preds[s]:
            start[:, j] = np.max(finish[:, [col[p] for p in preds[s]]], axis=1)
        finish[:, j] = start[:, j] + rows[:, j]
    t_fail = np.where(fails, finish, np.inf).min(axis=1)
    failed = np.isfinite(t_fail)
    started = start < t_fail[:, None]
    started[~failed] = False  # successful runs waste nothing
    costs = np.array([cost.get(s, 1.0) for s in ids])
    wasted = (started * costs).sum(axis=1)
    comp_mask = np.array([s in (compensable or set()) for s in ids])
    completed = (finish <= t_fail[:, None]) & ~fails
    compensations = (completed & comp_mask & failed[:, None]).sum(axis=1)
    ok_span = finish[~failed].max(axis=1) if (~failed).any() and ids else np.zeros(1)
    return WasteEstimate(
        wasted_cost=float(wasted.mean()),
        compensations=float(compensations.mean()),
        makespan=float(ok_span.mean()),
        failure_rate=float(failed.mean()),
    )
