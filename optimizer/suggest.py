"""One suggestion round for a workflow: every rewrite that history says would help, as proposals."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from optimizer.estimate import completed_run_durations, expected_step_durations, makespans, paired_gain
from optimizer.features import Recent, feature_vector
from optimizer.models import ModelSet
from optimizer.proposals import Evidence, Gain, Proposal, make_proposal
from optimizer.records import AttemptRecord, step_runs
from optimizer.rewrites.parallelize import parallelize
from optimizer.rewrites.reorder import fail_fast, step_cost
from optimizer.rewrites.tuning import tune
from optimizer.router import DEFAULT_FAILURE_PENALTY_S
from optimizer.waste import simulate_waste
from workflow.catalog import Catalog
from workflow.document import Workflow


def workflow_records(records: Sequence[AttemptRecord], workflow: Workflow) -> list[AttemptRecord]:
    ids = set(workflow.step_ids)
    return [r for r in records if r.workflow == workflow.name and r.step_id in ids]


def step_failure_rates(workflow: Workflow, records: Sequence[AttemptRecord],
                       models: ModelSet | None = None) -> tuple[dict[str, float], dict[str, int]]:
    """Per step: the probability that it fails after all its attempts, and how many runs say so.

    Jeffreys-smoothed (half a failure, half a success) so a few clean runs do not read as "never
    fails"; a step with no history of its own falls back to its action's attempt failure rate.
    """
    fails: dict[str, int] = {}
    total: dict[str, int] = {}
    for sr in step_runs(records):
        total[sr.step_id] = total.get(sr.step_id, 0) + 1
        fails[sr.step_id] = fails.get(sr.step_id, 0) + (0 if sr.succeeded else 1)
    out = {}
    for step in workflow.steps:
        n = total.get(step.id, 0)
        if n:
            out[step.id] = (fails.get(step.id, 0) + 0.5) / (n + 1.0)
        elif models is not None and (m := models.get(step.action)) is not None:
            out[step.id] = m.failure_rate ** (step.retry.max_attempts if step.retry else 1)
        else:
            out[step.id] = 0.0
    return out, total


def _durations(workflow: Workflow, records: Sequence[AttemptRecord], models: ModelSet | None) -> np.ndarray:
    rows = completed_run_durations(records, workflow)
    if len(rows) == 0 and models is not None:
        rows = expected_step_durations(workflow, {a: m.mean_duration for a, m in models.actions.items()})
    return rows


def _parallelize(workflow: Workflow, catalog: Catalog | None, records: Sequence[AttemptRecord],
                 models: ModelSet | None) -> Proposal | None:
    result = parallelize(workflow, catalog)
    if result is None:
        return None
    rows = _durations(workflow, records, models)
    if len(rows) == 0:
        return None
    ids = workflow.step_ids
    g = paired_gain(makespans(workflow, rows, ids), makespans(result.workflow, rows, ids))
    if g.gain <= 0:
        return None
    summary = [f"{b} no longer waits for {a} (no data flows between them)" for a, b in result.removed]
    summary += [f"{b} now names {a} in needs, keeping a required order" for a, b in result.added]
    return make_proposal(
        "parallelize", workflow, result.workflow,
        title=f"Run independent steps in parallel: makespan −{g.relative:.0%}",
        summary=summary,
        gain=Gain(metric="makespan", before=g.before, after=g.after, unit="s"),
        evidence=Evidence(runs=g.samples, attempts=len(records), confidence=g.confidence),
    )


def _fail_fast(workflow: Workflow, catalog: Catalog | None, records: Sequence[AttemptRecord],
               models: ModelSet | None, *, seed: int = 0) -> Proposal | None:
    p_fail, observed = step_failure_rates(workflow, records, models)
    result = fail_fast(workflow, p_fail, catalog)
    if result is None:
        return None
    rows = _durations(workflow, records, models)
    if len(rows) == 0:
        rows = np.ones((1, len(workflow.steps)))
    cost = step_cost(workflow, catalog)
    compensable = {s.id for s in workflow.steps if s.compensate is not None}
    before = simulate_waste(workflow, p_fail, cost, rows, compensable=compensable, seed=seed)
    after = simulate_waste(result.workflow, p_fail, cost, rows, compensable=compensable, seed=seed)
    if after.wasted_cost >= before.wasted_cost:
        return None
    # confidence: share of draws from the failure rates' posteriors in which the new order still wins
    rng = np.random.default_rng(seed)
    wins = 0
    draws = 60
    fails_seen = {s: p_fail[s] * (observed.get(s, 0) + 1.0) - 0.5 for s in p_fail}
    for k in range(draws):
        p = {s: float(rng.beta(fails_seen[s] + 0.5, observed.get(s, 0) - fails_seen[s] + 0.5))
             if observed.get(s, 0) else p_fail[s] for s in p_fail}
        b = simulate_waste(workflow, p, cost, rows, compensable=compensable, samples=600, seed=k)
        a = simulate_waste(result.workflow, p, cost, rows, compensable=compensable, samples=600, seed=k)
        wins += a.wasted_cost < b.wasted_cost
    summary = [f"{c} (fails {p_fail[c]:.1%}, cost {cost[c]:g}) now runs before {s} "
               f"(fails {p_fail[s]:.1%}, cost {cost[s]:g})" for c, s in result.moved]
    side = [Gain(metric="makespan", before=before.makespan, after=after.makespan, unit="s")]
    if compensable:
        side.append(Gain(metric="compensations per run", before=before.compensations,
                         after=after.compensations, unit="undos"))
    return make_proposal(
        "fail_fast", workflow, result.workflow,
        title=f"Check first: wasted cost −{1 - after.wasted_cost / before.wasted_cost:.0%}",
        summary=summary,
        gain=Gain(metric="wasted_cost", before=before.wasted_cost, after=after.wasted_cost,
                  unit="cost units per run"),
        side_effects=side,
        evidence=Evidence(runs=len({r.run_id for r in records}), attempts=len(records),
                          confidence=wins / draws),
    )


def _retry_timeout(workflow: Workflow, records: Sequence[AttemptRecord]) -> Proposal | None:
    result = tune(workflow, records)
    if result is None:
        return None
    summary = []
    for st in result.steps:
        old = workflow.step(st.step_id)
        new = result.workflow.step(st.step_id)
        if (old.retry.max_attempts if old.retry else 1) != (new.retry.max_attempts if new.retry else 1):
            summary.append(f"{st.step_id}: {new.retry.max_attempts if new.retry else 1} attempts "
                           f"(first attempts fail {st.first_failure_rate:.1%}, "
                           f"retries {st.retry_failure_rate:.1%})")
        if st.hopeless_types:
            types = ", ".join(st.hopeless_types)
            summary.append(f"{st.step_id}: stop at once on {types} (retries never helped)")
        if old.timeout_s != new.timeout_s:
            summary.append(f"{st.step_id}: timeout {new.timeout_s:g}s (was {old.timeout_s or 'none'}; "
                           f"cuts {st.success_cut_share:.2%} of successful attempts)")
    before = 1.0 - math.prod(1.0 - s.predicted_failure_before for s in result.steps)
    after = 1.0 - math.prod(1.0 - s.predicted_failure_after for s in result.steps)
    saved = sum(s.timeout_wait_saved_s for s in result.steps)
    n_attempts = min(s.attempts for s in result.steps)
    gain = Gain(metric="run failure from these steps", before=before, after=after, unit="share of runs")
    side = []
    if saved:
        side.append(Gain(metric="waiting on hung attempts", before=saved, after=0.0, unit="s per run"))
    if after >= before and not saved and not any(s.hopeless_types for s in result.steps):
        # nothing measurable improves (e.g. only a first timeout where none was set): still useful
        side.append(Gain(metric="steps without a timeout", before=sum(
            1 for s in result.steps if workflow.step(s.step_id).timeout_s is None), after=0.0, unit="steps"))
    return make_proposal(
        "retry_timeout", workflow, result.workflow,
        title="Tune retries and timeouts from observed failures and latency tails",
        summary=summary,
        gain=gain,
        side_effects=side,
        # more attempts observed, surer estimates; 1 − 1/√n is a plain heuristic, not a posterior
        evidence=Evidence(runs=result.runs, attempts=result.attempts,
                          confidence=max(0.0, 1.0 - 1.0 / math.sqrt(max(n_attempts, 1)))),
    )


def _route(workflow: Workflow, catalog: Catalog | None, records: Sequence[AttemptRecord],
           models: ModelSet | None) -> Proposal | None:
    """Name same-capability alternatives on steps where, under the conditions history saw, another
    action would often have been the better call."""
    if catalog is None or models is None:
        return None
    new = workflow.model_copy(deep=True)
    summary = []
    before_total = after_total = 0.0
    count = 0
    for step in new.steps:
        others = [a.name for a in catalog.alternatives_of(step.action)
                  if a.name not in step.alternatives and a.name in models.actions]
        own = models.get(step.action)
        if not others or own is None:
            continue
        mine = [r for r in records if r.step_id == step.id]
        if not mine:
            continue
        candidates = [step.action, *step.alternatives, *others]
        own_cost, best_cost = [], []
        for rec in mine[-2000:]:
            costs = []
            for action in candidates:
                m = models.get(action)
                if m is None:
                    continue
                prior = models.priors.get(action, (m.failure_rate, m.mean_duration))
                x = feature_vector(rec.started_at, rec.load, Recent(), prior)
                costs.append(m.expected_duration(x) + DEFAULT_FAILURE_PENALTY_S * m.failure_probability(x))
            own_cost.append(costs[0])
            best_cost.append(min(costs))
        b, a = float(np.mean(own_cost)), float(np.mean(best_cost))
        if a < 0.95 * b:
            step.alternatives = [*step.alternatives, *others]
            summary.append(f"{step.id}: may call {', '.join(others)} when conditions favour it")
            before_total += b
            after_total += a
            count += len(mine)
    if not summary:
        return None
    return make_proposal(
        "route", workflow, new,
        title="Let the router pick among same-capability actions",
        summary=summary,
        gain=Gain(metric="expected attempt cost (latency + failure penalty)", before=before_total,
                  after=after_total, unit="s"),
        evidence=Evidence(runs=len({r.run_id for r in records}), attempts=count,
                          confidence=max(0.0, 1.0 - 1.0 / math.sqrt(max(count, 1)))),
    )


def suggest(workflow: Workflow, records: Sequence[AttemptRecord], *, catalog: Catalog | None = None,
            models: ModelSet | None = None) -> list[Proposal]:
    """All proposals for the workflow, strongest gain first within each kind."""
    mine = workflow_records(records, workflow)
    found = [
        _parallelize(workflow, catalog, mine, models),
        _fail_fast(workflow, catalog, mine, models),
        _retry_timeout(workflow, mine),
        _route(workflow, catalog, mine, models),
    ]
    return [p for p in found if p is not None]


def auto_apply(workflow: Workflow, proposals: Sequence[Proposal]) -> Proposal | None:
    """For workflows that opted in: the proposal to apply now (strong evidence, biggest relative gain)."""
    if workflow.optimize is None or not workflow.optimize.auto:
        return None
    strong = [p for p in proposals if p.status == "open" and p.strong]
    return max(strong, key=lambda p: p.gain.relative, default=None)
