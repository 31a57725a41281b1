"""The calls of a workflow that its invoker cannot make: checked before a run is recorded
(`overture run`, `POST /v1/runs`, a trigger's fire) and before a trigger is created or resumed,
because such a run would be journaled and then fail at that step. One check, and one wording of
its findings, so the CLI, the API and the triggers refuse the same workflows in the same words."""

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

    @property
    def message(self) -> str:
        return (
            f"step `{self.step_id}` {'is undone by' if self.undo else 'calls'} `{self.action}`, "
            "which has no `invoke:` block, so nothing can call it"
        )


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


def by_step(calls: list[UncallableCall], where: str | None = None) -> list[str]:
    """The calls per step, as "step `id` (action, undo action)"; with `where` (the document's
    path, e.g. `workflow`), each located: "step `id` (action at workflow.steps[0].action)"."""
    grouped: dict[str, list[str]] = {}
    for call in calls:
        at = f" at {where}.{call.location}" if where else ""
        grouped.setdefault(call.step_id, []).append(f"{'undo ' if call.undo else ''}{call.action}{at}")
    return [f"step `{step_id}` ({', '.join(names)})" for step_id, names in grouped.items()]


def cannot_run(calls: list[UncallableCall], where: str | None = None) -> str:
    """All of them in one sentence: "cannot run: 2 steps call actions with no `invoke:` block,
    which nothing can call: step `a` (x); step `b` (y)" (located with `where`, as `by_step`)."""
    steps = by_step(calls, where)
    count = f"{len(steps)} step{'s call' if len(steps) != 1 else ' calls'}"
    return f"cannot run: {count} actions with no `invoke:` block, which nothing can call: {'; '.join(steps)}"
