"""Makespans and gains estimated from realized per-run step durations, with bootstrap confidence.

A rewrite's gain is judged by replaying history: each past run's realized step durations are laid
on the old and on the new graph, and the critical paths compared. That is evidence a person can
check, and it needs no model of the duration distribution.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import networkx as nx
import numpy as np

from optimizer.records import AttemptRecord, run_step_durations, step_runs
from workflow.document import Workflow
from workflow.graph import dependency_graph


def topology(workflow: Workflow) -> tuple[list[str], dict[str, list[str]]]:
    graph = dependency_graph(workflow)
    order = list(nx.topological_sort(graph))
    return order, {s: list(graph.predecessors(s)) for s in order}


def makespans(workflow: Workflow, durations: np.ndarray, step_ids: Sequence[str]) -> np.ndarray:
    """Critical-path length per row of `durations` (rows: runs, columns: `step_ids`)."""
    order, preds = topology(workflow)
    col = {s: i for i, s in enumerate(step_ids)}
    finish: dict[str, np.ndarray] = {}
    zeros = np.zeros(durations.shape[0])
    for s in order:
        start = np.max(np.vstack([finish[p] for p in preds[s]]), axis=0) if preds[s] else zeros
        finish[s] = start + (durations[:, col[s]] if s in col else zeros)
    if not finish:
        return zeros
    return np.max(np.vstack(list(finish.values())), axis=0)


def completed_run_durations(records: Sequence[AttemptRecord], workflow: Workflow) -> np.ndarray:
    """Rows of realized step durations (columns: the workflow's steps) of runs with no failed step.

    A step with no attempts in a completed run was skipped and counts as zero.
    """
    failed_runs = {sr.run_id for sr in step_runs(records) if not sr.succeeded}
    per_run = run_step_durations(r for r in records if r.run_id not in failed_runs)
    ids = workflow.step_ids
    rows = [[steps.get(s, 0.0) for s in ids] for steps in per_run.values()
            if set(steps) <= set(ids)]
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), len(ids))


@dataclass(frozen=True)
class Gain:
    before: float
    after: float
    low: float
    """Lower end of the 95% bootstrap interval of the mean gain (before − after)."""
    high: float
    confidence: float
    """Share of bootstrap resamples in which the mean gain is positive."""
    samples: int

    @property
    def gain(self) -> float:
        return self.before - self.after

    @property
    def relative(self) -> float:
        return self.gain / self.before if self.before > 0 else 0.0


def paired_gain(before: np.ndarray, after: np.ndarray, *, seed: int = 0, resamples: int = 400) -> Gain:
    """Mean of paired values and a bootstrap interval of their mean difference."""
    n = len(before)
    if n == 0:
        return Gain(0.0, 0.0, 0.0, 0.0, 0.0, 0)
    diff = before - after
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(resamples, n))
    means = diff[idx].mean(axis=1)
    return Gain(
        before=float(before.mean()),
        after=float(after.mean()),
        low=float(np.quantile(means, 0.025)),
        high=float(np.quantile(means, 0.975)),
        confidence=float((means > 0).mean()),
        samples=n,
    )


def expected_step_durations(workflow: Workflow, mean_by_action: Mapping[str, float]) -> np.ndarray:
    """One row of per-step durations from per-action means (for workflows with no history yet)."""
    return np.array([[mean_by_action.get(s.action, 0.0) for s in workflow.steps]], dtype=np.float64)
