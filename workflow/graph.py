"""Graph operations on a workflow document (networkx).

A step depends on its `needs` plus every `steps.<id>` it reads in `with`, `if` or `for_each`
(the spec's rule). From that graph come the groups that may run in parallel (topological
generations), the critical path for given durations, and exports to Mermaid and JSON.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import networkx as nx

from workflow.document import Step, Workflow
from workflow.errors import ExpressionError
from workflow.expressions import EXPRESSION_RE, Reference, compile_expression, condition_body, iter_strings

# fallback for text the expression parser refuses: the scorer's own reading of a reference
_STEP_REF_RE = re.compile(r"steps\.([A-Za-z0-9_\-]+)")


def step_expressions(step: Step) -> Iterator[tuple[str, str]]:
    """(location within the step, expression body) for every expression a step holds."""
    for location, text in iter_strings(step.with_, "with"):
        for match in EXPRESSION_RE.finditer(text):
            yield location, match.group(1)
    if step.if_:
        yield "if", condition_body(step.if_)
    if isinstance(step.for_each, str):
        bodies = [m.group(1) for m in EXPRESSION_RE.finditer(step.for_each)]
        for body in bodies or [step.for_each]:
            yield "for_each", body


def step_references(step: Step) -> Iterator[tuple[str, Reference]]:
    """(location, reference) for every run-data read of a step (unparseable expressions skipped)."""
    for location, body in step_expressions(step):
        try:
            refs = compile_expression(body).references()
        except ExpressionError:
            continue
        for ref in refs:
            yield location, ref


def referenced_steps(step: Step) -> set[str]:
    """Ids of the steps whose data this step reads (in `with`, `if` or `for_each`)."""
    found: set[str] = set()
    for _, body in step_expressions(step):
        try:
            refs = compile_expression(body).references()
        except ExpressionError:
            found.update(_STEP_REF_RE.findall(body))
            continue
        found.update(r.path[0] for r in refs if r.root == "steps" and r.path)
    return found


def step_dependencies(step: Step) -> set[str]:
    """The spec's dependency set: `needs` plus every step read by reference."""
    return (set(step.needs) | referenced_steps(step)) - {step.id}


def dependency_graph(workflow: Workflow) -> nx.DiGraph:
    """Nodes are step ids (with the Step as `step`); an edge u → v means v waits for u.

    Dependencies on ids that do not exist are left out (the validator reports them).
    """
    graph: nx.DiGraph = nx.DiGraph()
    for step in workflow.steps:
        graph.add_node(step.id, step=step)
    for step in workflow.steps:
        # read once per step: walking the expressions is the costly part of building the graph
        reads = referenced_steps(step)
        for dep in (set(step.needs) | reads) - {step.id}:
            if dep in graph:
                graph.add_edge(dep, step.id, data=dep in reads)
    return graph


def find_cycle(workflow: Workflow) -> list[str] | None:
    """The steps on one cycle, in order, or None when the graph is acyclic."""
    try:
        edges = nx.find_cycle(dependency_graph(workflow))
    except nx.NetworkXNoCycle:
        return None
    return [u for u, _ in edges]


def parallel_groups(workflow: Workflow) -> list[list[str]]:
    """Topological generations: the steps of one group have no path between them."""
    graph = dependency_graph(workflow)
    order = {sid: i for i, sid in enumerate(workflow.step_ids)}
    return [sorted(group, key=order.__getitem__) for group in nx.topological_generations(graph)]


def transitive_reduction(workflow: Workflow) -> nx.DiGraph:
    graph = dependency_graph(workflow)
    reduced = nx.transitive_reduction(graph)
    reduced.add_nodes_from(graph.nodes(data=True))
    return reduced


def critical_path(workflow: Workflow, durations: Mapping[str, float]) -> tuple[list[str], float]:
    """The longest chain of steps by duration (missing durations count as 0) and its length."""
    graph = dependency_graph(workflow)
    finish: dict[str, float] = {}
    best_prev: dict[str, str | None] = {}
    for sid in nx.topological_sort(graph):
        preds = list(graph.predecessors(sid))
        prev = max(preds, key=finish.__getitem__) if preds else None
        start = finish[prev] if prev is not None else 0.0
        finish[sid] = start + float(durations.get(sid, 0.0))
        best_prev[sid] = prev
    if not finish:
        return [], 0.0
    end = max(finish, key=lambda s: finish[s])
    path = [end]
    while (prev := best_prev[path[-1]]) is not None:
        path.append(prev)
    return list(reversed(path)), finish[end]


def _mermaid_id(step_id: str) -> str:
    return "s_" + re.sub(r"[^A-Za-z0-9_]", "_", step_id)


def _mermaid_label(text: str) -> str:
    return text.replace('"', "#quot;")


def to_mermaid(workflow: Workflow) -> str:
    """A Mermaid flowchart GitHub renders: one node per step, edges by dependency (reduced).

    Conditions show as `if: ...` in the label, retries as `retry ×N`, compensations as a dashed
    edge to an undo node.
    """
    lines = ["flowchart TD"]
    reduced = transitive_reduction(workflow)
    for step in workflow.steps:
        label = f"{step.title}<br/><small>{step.action}</small>"
        extras = []
        if step.if_:
            extras.append(f"if: {condition_body(step.if_).strip()}")
        if step.for_each is not None:
            extras.append("for each item")
        if step.retry and step.retry.max_attempts > 1:
            extras.append(f"retry ×{step.retry.max_attempts}")
        if step.timeout_s:
            extras.append(f"timeout {step.timeout_s:g}s")
        if extras:
            label += "<br/><i>" + ", ".join(extras) + "</i>"
        shape = ('{{"', '"}}') if step.if_ else ('["', '"]')
        lines.append(f"  {_mermaid_id(step.id)}{shape[0]}{_mermaid_label(label)}{shape[1]}")
    for u, v in sorted(reduced.edges()):
        lines.append(f"  {_mermaid_id(u)} --> {_mermaid_id(v)}")
    for step in workflow.steps:
        if step.compensate:
            undo = _mermaid_id(step.id) + "_undo"
            lines.append(f'  {undo}(["undo: {_mermaid_label(step.compensate.action)}"])')
            lines.append(f"  {_mermaid_id(step.id)} -.->|on failure| {undo}")
            lines.append(f"  class {undo} undo")
    lines.append("  classDef undo stroke-dasharray: 4 3,fill:#fff4f4")
    return "\n".join(lines) + "\n"


def to_json(workflow: Workflow) -> dict[str, Any]:
    """Nodes, edges (reduced, with whether data flows) and parallel groups, for UIs and tools."""
    graph = dependency_graph(workflow)
    reduced = transitive_reduction(workflow)
    nodes = []
    for step in workflow.steps:
        nodes.append({
            "id": step.id,
            "action": step.action,
            "title": step.title,
            "condition": condition_body(step.if_).strip() if step.if_ else None,
            "for_each": step.for_each is not None,
            "max_attempts": step.retry.max_attempts if step.retry else 1,
            "timeout_s": step.timeout_s,
            "compensate": step.compensate.action if step.compensate else None,
        })
    edges = [
        {"from": u, "to": v, "data": bool(graph.edges[u, v].get("data"))} for u, v in sorted(reduced.edges())
    ]
    return {"name": workflow.name, "nodes": nodes, "edges": edges, "groups": parallel_groups(workflow)}
