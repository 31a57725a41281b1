"""Saga planning: which completed steps to undo, in which order, with which inputs.

A step is undone only after every completed step that (transitively) depends on it has been
undone: the reverse of the order they ran in. Steps with no path between them are undone in
parallel. A step whose undo cannot run (because a later step's undo failed) is left, with the
reason, rather than undone out of order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import networkx as nx

from runtime.journal_schema import WHOLE_STEP
from runtime.records import StepRecord, StepState
from workflow.catalog import ActionSpec
from workflow.document import Step, Workflow
from workflow.expressions import render
from workflow.graph import dependency_graph

Unit = tuple[str, int]
"""(step id, iteration): one thing to undo."""


@dataclass(frozen=True)
class UndoUnit:
    step: Step
    iteration: int
    after: frozenset[Unit]
    """Units that must be undone before this one."""

    @property
    def key(self) -> Unit:
        return (self.step.id, self.iteration)

    @property
    def label(self) -> str:
        return unit_label(self.key)


def unit_label(unit: Unit) -> str:
    step_id, iteration = unit
    return step_id if iteration == WHOLE_STEP else f"{step_id}[{iteration}]"


def run_graph(workflow: Workflow) -> nx.DiGraph:
    """The dependency graph, with `ordered_after` edges too (they are orderings that matter)."""
    graph = dependency_graph(workflow)
    for step in workflow.steps:
        for before in step.ordered_after:
            if before in graph and before != step.id:
                graph.add_edge(before, step.id)
    return graph


def plan_undo(workflow: Workflow, rows: Mapping[Unit, StepRecord]) -> list[UndoUnit]:
    """The units to undo: every completed step with `compensate` (each completed item of a
    for-each step). A failed step is not undone: its own failure does not compensate it."""
    units: dict[str, list[int]] = {}
    for step in workflow.steps:
        whole = rows.get((step.id, WHOLE_STEP))
        if step.compensate is None or whole is None or whole.state != StepState.SUCCEEDED:
            continue
        if step.for_each is None:
            units[step.id] = [WHOLE_STEP]
        else:
            units[step.id] = sorted(
                it
                for (sid, it), row in rows.items()
                if sid == step.id and it != WHOLE_STEP and row.state == StepState.SUCCEEDED
            )
    graph = run_graph(workflow)
    plan: list[UndoUnit] = []
    for step_id, iterations in units.items():
        later = [d for d in nx.descendants(graph, step_id) if d in units]
        after = frozenset((d, it) for d in later for it in units[d])
        plan.extend(UndoUnit(workflow.step(step_id), it, after) for it in iterations)
    return plan


def undo_inputs(
    step: Step,
    action: ActionSpec | None,
    context: Mapping[str, Any],
    output: Any,
    step_inputs: Any,
) -> dict[str, Any]:
    """Render `compensate.with`; a required input it leaves out is filled by name from the
    step's output, then from the step's own inputs."""
    assert step.compensate is not None
    inputs = render(step.compensate.with_, context)
    if not isinstance(inputs, dict):
        inputs = {}
    for name in action.required_inputs if action else []:
        if name in inputs:
            continue
        for source in (output, step_inputs):
            if isinstance(source, Mapping) and name in source:
                inputs[name] = source[name]
                break
    return inputs
