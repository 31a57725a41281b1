"""The calls of a workflow that its invoker cannot make: checked before a run is recorded
(`overture run`, `POST /v1/runs`), because such a run would be journaled and then fail at that
step. One check for both, so the CLI and the API refuse the same workflows."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from runtime.invokers.dispatch import InvokerDispatcher
from workflow.catalog import Catalog


@dataclass(frozen=True)
class UncallableCall:
    """One call no invoker can make: a step's action, or its `compensate` action (`undo`)."""

    index: int
    """The step's position in the document's `steps`."""
    step_id: str
    action: str
    undo: bool

    @property
    def location(self) -> str:
        """Where the document names the action, e.g. `steps[2].compensate.action`."""
        return f"steps[{self.index}].{'compensate.' if self.undo else ''}action"


def missing_invokers(invoker: Any) -> Collection[str] | None:
    """The action names `invoker` cannot call, or None when it cannot tell: only the built-in
    dispatcher (`build_invoker`) knows; an embedder's own invoker may call anything."""
    return set(invoker.missing_invokers()) if isinstance(invoker, InvokerDispatcher) else None


def uncallable_calls(
    workflow: Any, catalog: Catalog, missing: Collection[str] | None = None
) -> list[UncallableCall]:
    """Each call of `workflow` to an action in `missing` (by default: the catalog's actions with no
    `invoke:` block, what `build_invoker` without overrides cannot call). `core.*` actions are
    built in; actions the catalog lacks are the validator's business."""
    if missing is None:
        missing = {a.name for a in catalog.user_actions() if a.invoke is None}
    found: list[UncallableCall] = []
    for index, step in enumerate(workflow.steps):
        calls = [(False, step.action)]
        if step.compensate is not None:
            calls.append((True, step.compensate.action))
        for undo, name in calls:
            action = catalog.get(name)
            if action is not None and not action.is_core and name in missing:
                found.append(UncallableCall(index, step.id, name, undo))
    return found


def by_step(calls: list[UncallableCall]) -> list[str]:
    """The calls per step, as "step `id` (action, undo action)"."""
    grouped: dict[str, list[str]] = {}
    for call in calls:
        grouped.setdefault(call.step_id, []).append(f"{'undo ' if call.undo else ''}{call.action}")
    return [f"step `{step_id}` ({', '.join(names)})" for step_id, names in grouped.items()]
