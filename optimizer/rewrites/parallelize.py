"""Parallelize: drop orderings that carry no data and that nothing marks as required.

A planner (or a person) often chains steps "first this, then that" though the second reads
nothing of the first. Each such `needs` entry that no requirement (`optimizer.constraints`)
protects is removed; the steps then start as soon as their data is ready.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from optimizer.constraints import Requirement, data_edges, rebuild_needs, requirements
from workflow.catalog import Catalog
from workflow.document import Workflow
from workflow.graph import dependency_graph


@dataclass(frozen=True)
class Reordering:
    workflow: Workflow
    removed: list[tuple[str, str]]
    """`needs` entries (before, after) dropped."""
    added: list[tuple[str, str]]
    """`needs` entries added to keep a required order that a dropped edge used to enforce."""
    kept: list[Requirement]


def needs_edges(workflow: Workflow) -> set[tuple[str, str]]:
    return {(n, s.id) for s in workflow.steps for n in s.needs}


def edge_changes(old: Workflow, new: Workflow) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    before, after = needs_edges(old), needs_edges(new)
    return sorted(before - after), sorted(after - before)


def same_order(a: Workflow, b: Workflow) -> bool:
    """Whether both graphs order the same pairs of steps (equal transitive closures)."""
    ca = nx.transitive_closure_dag(dependency_graph(a))
    cb = nx.transitive_closure_dag(dependency_graph(b))
    return set(ca.edges()) == set(cb.edges())


def parallelize(workflow: Workflow, catalog: Catalog | None = None) -> Reordering | None:
    """The workflow with only required orderings, or None when nothing would run earlier."""
    required = requirements(workflow, catalog)
    data = data_edges(workflow)
    keep = {e for e in needs_edges(workflow) if e in data}
    new = rebuild_needs(workflow, keep, required)
    if same_order(workflow, new):
        return None
    removed, added = edge_changes(workflow, new)
    return Reordering(new, removed, added, [r for r in required if r.reason != "data"])
