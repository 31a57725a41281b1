"""Fail-fast reorder: run cheap checks that are likely to fail before costly or side-effecting steps.

For steps that run one after another and stop at the first failure, the order that minimizes
expected spent cost sorts them by cost / failure probability (the ratio rule; Smith, Sidney). A
step that must bring its own prerequisites along counts as the chain of them, whose ratio is
expected chain cost / probability that the chain fails.

The rewrite keeps every required ordering (`optimizer.constraints`), puts a check C before a step S
when C's chain ratio is below S's ratio and S is side-effecting or costlier, and keeps the
document's other orderings where they do not contradict a new one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import networkx as nx

from optimizer.constraints import data_edges, rebuild_needs, requirements
from optimizer.rewrites.parallelize import edge_changes, needs_edges, same_order
from workflow.catalog import Catalog
from workflow.document import Workflow
from workflow.graph import dependency_graph

DEFAULT_COST = 1.0


@dataclass(frozen=True)
class FailFast:
    workflow: Workflow
    moved: list[tuple[str, str]]
    """(check, step): the check now runs before the step."""
    removed: list[tuple[str, str]]
    added: list[tuple[str, str]]


def step_cost(
    workflow: Workflow, catalog: Catalog | None, overrides: Mapping[str, float] | None = None
) -> dict[str, float]:
    """Per step: the override, else the catalog's `cost`, else 1."""
    out = {}
    for step in workflow.steps:
        spec = catalog.get(step.action) if catalog is not None else None
        listed = spec.cost if spec is not None and spec.cost is not None else DEFAULT_COST
        out[step.id] = (overrides or {}).get(step.id, listed)
    return out


def has_side_effects(workflow: Workflow, catalog: Catalog | None) -> dict[str, bool]:
    out = {}
    for step in workflow.steps:
        spec = catalog.get(step.action) if catalog is not None else None
        out[step.id] = True if spec is None else spec.side_effects
    return out


def ratio(cost: float, p: float) -> float:
    return math.inf if p <= 0 else cost / p


def chain_ratio(chain: Sequence[str], cost: Mapping[str, float], p_fail: Mapping[str, float]) -> float:
    """Expected cost of running the chain (stopping at a failure) over the chain's failure probability."""
    survive, expected = 1.0, 0.0
    for s in chain:
        expected += survive * cost[s]
        survive *= 1.0 - p_fail.get(s, 0.0)
    return ratio(expected, 1.0 - survive)


def fail_fast(
    workflow: Workflow,
    p_fail: Mapping[str, float],
    catalog: Catalog | None = None,
    *,
    cost: Mapping[str, float] | None = None,
    min_probability: float = 0.005,
) -> FailFast | None:
    """The reordered workflow, or None when the current order is already fail-fast."""
    costs = step_cost(workflow, catalog, cost)
    effects = has_side_effects(workflow, catalog)
    required = requirements(workflow, catalog)
    base = rebuild_needs(workflow, {e for e in needs_edges(workflow) if e in data_edges(workflow)}, required)
    graph = dependency_graph(base)
    checks = sorted(
        (s for s in workflow.step_ids if not effects[s] and p_fail.get(s, 0.0) >= min_probability),
        key=lambda s: (ratio(costs[s], p_fail[s]), s),
    )
    moved: list[tuple[str, str]] = []
    for c in checks:
        for s in workflow.step_ids:
            if s == c or nx.has_path(graph, s, c) or nx.has_path(graph, c, s):
                continue
            ahead = nx.ancestors(graph, c) | {c}
            chain = [x for x in nx.topological_sort(graph.subgraph(ahead - nx.ancestors(graph, s)))]
            if not (effects[s] or costs[s] > sum(costs[x] for x in chain)):
                continue
            if chain_ratio(chain, costs, p_fail) < ratio(costs[s], p_fail.get(s, 0.0)):
                graph.add_edge(c, s)
                moved.append((c, s))
    if not moved:
        return None
    # the document's own orderings stay unless they would now form a cycle
    for u, v in sorted(needs_edges(workflow)):
        if not graph.has_edge(u, v) and not nx.has_path(graph, v, u):
            graph.add_edge(u, v)
    keep = {e for e in needs_edges(workflow) if graph.has_edge(*e)}
    new = rebuild_needs(workflow, keep, required)
    for c, s in moved:
        step = new.step(s)
        if c not in step.needs:
            step.needs.append(c)
    _drop_redundant(new, set(moved))
    if same_order(workflow, new):
        return None
    removed, added = edge_changes(workflow, new)
    return FailFast(new, moved, removed, added)


def _drop_redundant(workflow: Workflow, candidates: set[tuple[str, str]]) -> None:
    """Remove the added check edges that other paths already enforce."""
    graph = dependency_graph(workflow)
    for u, v in sorted(candidates):
        if not graph.has_edge(u, v):
            continue
        graph.remove_edge(u, v)
        if nx.has_path(graph, u, v):
            workflow.step(v).needs.remove(u)
        else:
            graph.add_edge(u, v)
