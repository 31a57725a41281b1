"""WfCommons execution traces as workflows: real DAG shapes with measured task runtimes.

A trace becomes a workflow whose every task is a step that reads its parents' outputs (so the
trace's edges are data dependencies) and, optionally, is over-serialized: each step also `needs`
the step before it in a topological order, as a planner that writes "then ... then ..." would.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import networkx as nx

from workflow.document import Workflow


def _step_id(task_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_\-]", "_", task_id)[-120:]


def load_trace(path: str | Path) -> tuple[nx.DiGraph, dict[str, float]]:
    """(DAG of task ids, runtime in seconds per task)."""
    data: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    spec = data["workflow"]["specification"]["tasks"]
    executed = data["workflow"]["execution"]["tasks"]
    runtimes = {t["id"]: float(t.get("runtimeInSeconds") or 0.0) for t in executed}
    graph: nx.DiGraph = nx.DiGraph()
    for task in spec:
        graph.add_node(task["id"])
        for parent in task.get("parents", []):
            graph.add_edge(parent, task["id"])
    return graph, {t: runtimes.get(t, 0.0) for t in graph}


def trace_workflow(path: str | Path, *, serialize: bool = True, action: str = "trace.task") -> tuple[
        Workflow, dict[str, float]]:
    """(workflow, runtime per step id). With `serialize`, steps also need their predecessor in a
    topological order, hiding the trace's parallelism behind orderings that carry no data."""
    graph, runtimes = load_trace(path)
    order = list(nx.lexicographical_topological_sort(graph))
    ids = {t: _step_id(t) for t in order}
    steps = []
    for i, task in enumerate(order):
        parents = sorted(graph.predecessors(task))
        step: dict[str, Any] = {"id": ids[task], "action": action}
        if parents:
            step["with"] = {"inputs": [f"${{{{ steps.{ids[p]}.output }}}}" for p in parents]}
        if serialize and i > 0:
            step["needs"] = [ids[order[i - 1]]]
        steps.append(step)
    name = re.sub(r"[^a-z0-9\-]", "-", Path(path).stem.lower())[:200]
    wf = Workflow.model_validate({"name": name, "steps": steps})
    return wf, {ids[t]: runtimes[t] for t in order}


def dag_critical_path(path: str | Path) -> float:
    graph, runtimes = load_trace(path)
    finish: dict[str, float] = {}
    for t in nx.topological_sort(graph):
        finish[t] = max((finish[p] for p in graph.predecessors(t)), default=0.0) + runtimes[t]
    return max(finish.values(), default=0.0)
