"""A structural diff of two workflow documents: steps added, removed and changed field by field,
dependency edges added and removed. Rendered for people (`render`) and as JSON (`to_data`); used by
`overture edit` and to compare stored versions of a workflow.

Edges are compared after transitive reduction, so a redundant `needs` entry does not show as a new
edge (it still shows as a change of the step's `needs`).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, Field

from workflow.document import Step, Workflow
from workflow.graph import transitive_reduction

# bookkeeping the service and planners rewrite on every save; not a change a person made
_IGNORED_DOC_FIELDS = ("steps", "metadata", "version")


class StepRef(BaseModel):
    """A step named in a diff."""

    id: str
    """The step's id."""
    action: str
    """Its action."""
    title: str
    """Its display title (the id when it has no name)."""


class FieldChange(BaseModel):
    """One field that differs, by dotted path (`with.amount`, `retry.max_attempts`)."""

    field: str
    """Dotted path of the field within the step or document."""
    before: Any = None
    """The old value; None when the field was absent."""
    after: Any = None
    """The new value; None when the field was removed."""


class StepChange(BaseModel):
    """A step present in both documents whose fields differ."""

    id: str
    """The step's id (same in both)."""
    title: str
    """Its title in the new document."""
    changes: list[FieldChange]
    """What differs."""


class WorkflowDiff(BaseModel):
    """Everything that differs between two versions of a workflow."""

    steps_added: list[StepRef] = Field(default_factory=list)
    """Steps only in the new document."""
    steps_removed: list[StepRef] = Field(default_factory=list)
    """Steps only in the old document."""
    steps_changed: list[StepChange] = Field(default_factory=list)
    """Steps in both whose fields differ."""
    edges_added: list[tuple[str, str]] = Field(default_factory=list)
    """Direct dependencies (from, to) only in the new document."""
    edges_removed: list[tuple[str, str]] = Field(default_factory=list)
    """Direct dependencies (from, to) only in the old document."""
    document_changes: list[FieldChange] = Field(default_factory=list)
    """Document-level fields that differ (name, description, triggers, inputs, ...)."""

    @property
    def empty(self) -> bool:
        return not (self.steps_added or self.steps_removed or self.steps_changed or self.edges_added
                    or self.edges_removed or self.document_changes)

    def to_data(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def summary(self) -> str:
        """One line: `+1 step, ~2 changed, +1 edge, -1 edge`."""
        if self.empty:
            return "no changes"
        parts = []
        counts = ((len(self.steps_added), "+", "step"), (len(self.steps_removed), "-", "step"),
                  (len(self.steps_changed), "~", "changed step"),
                  (len(self.edges_added), "+", "edge"), (len(self.edges_removed), "-", "edge"),
                  (len(self.document_changes), "~", "document field"))
        for count, sign, noun in counts:
            if count:
                parts.append(f"{sign}{count} {noun}{'s' if count != 1 else ''}")
        return ", ".join(parts)

    def sentences(self) -> list[str]:
        """One short sentence per change, for change logs and version notes."""
        out = [f"added step `{r.id}` ({r.action})" for r in self.steps_added]
        out += [f"removed step `{r.id}` ({r.action})" for r in self.steps_removed]
        out += [f"changed step `{c.id}`: {', '.join(f.field for f in c.changes)}" for c in self.steps_changed]
        out += [f"`{v}` now waits for `{u}`" for u, v in self.edges_added]
        out += [f"`{v}` no longer waits for `{u}`" for u, v in self.edges_removed]
        out += [f"changed {c.field}" for c in self.document_changes]
        return out

    def render(self) -> str:
        """A readable diff, one change a line."""
        if self.empty:
            return "no changes\n"
        lines = []
        for change in self.document_changes:
            lines.append(f"~ {change.field}: {_show(change.before)} → {_show(change.after)}")
        for sign, refs in (("+", self.steps_added), ("-", self.steps_removed)):
            for ref in refs:
                title = f" “{ref.title}”" if ref.title != ref.id else ""
                lines.append(f"{sign} step {ref.id} ({ref.action}){title}")
        for step in self.steps_changed:
            lines.append(f"~ step {step.id}:")
            for change in step.changes:
                lines.append(f"    {change.field}: {_show(change.before)} → {_show(change.after)}")
        for u, v in self.edges_added:
            lines.append(f"+ edge {u} → {v}")
        for u, v in self.edges_removed:
            lines.append(f"- edge {u} → {v}")
        return "\n".join(lines) + "\n"


def _show(value: Any) -> str:
    if value is None:
        return "(none)"
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
    return text if len(text) <= 80 else text[:77] + "..."


def _flatten(data: Any, prefix: str = "", depth: int = 3) -> dict[str, Any]:
    """Nested mappings as dotted paths down to `depth` levels (`inputs.properties.email`,
    `compensate.with.invoice_id`); deeper values, lists and scalars are leaves."""
    if isinstance(data, dict) and data and depth > 0:
        flat: dict[str, Any] = {}
        for key, value in data.items():
            flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key), depth - 1))
        return flat
    return {prefix: data} if prefix else {}


def _field_changes(before: dict[str, Any], after: dict[str, Any]) -> list[FieldChange]:
    old, new = _flatten(before), _flatten(after)
    changes = []
    for key in [*old, *(k for k in new if k not in old)]:
        if old.get(key) != new.get(key):
            changes.append(FieldChange(field=key, before=old.get(key), after=new.get(key)))
    return changes


def _step_data(step: Step) -> dict[str, Any]:
    return step.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_defaults=True)


def _ref(step: Step) -> StepRef:
    return StepRef(id=step.id, action=step.action, title=step.title)


def _edges(workflow: Workflow) -> set[tuple[str, str]]:
    return {(str(u), str(v)) for u, v in transitive_reduction(workflow).edges()}


def diff_workflows(old: Workflow, new: Workflow) -> WorkflowDiff:
    """What changed from `old` to `new`, steps matched by id."""
    old_steps = {s.id: s for s in old.steps}
    new_steps = {s.id: s for s in new.steps}
    changed = []
    for step in new.steps:
        if step.id in old_steps:
            changes = _field_changes(_step_data(old_steps[step.id]), _step_data(step))
            if changes:
                changed.append(StepChange(id=step.id, title=step.title, changes=changes))
    old_doc = {k: v for k, v in old.to_data().items() if k not in _IGNORED_DOC_FIELDS}
    new_doc = {k: v for k, v in new.to_data().items() if k not in _IGNORED_DOC_FIELDS}
    old_edges, new_edges = _edges(old), _edges(new)
    order = {sid: i for i, sid in enumerate([*new.step_ids, *old.step_ids])}

    def edge_key(edge: tuple[str, str]) -> tuple[int, int]:
        return order.get(edge[0], 0), order.get(edge[1], 0)

    return WorkflowDiff(
        steps_added=[_ref(s) for s in new.steps if s.id not in old_steps],
        steps_removed=[_ref(s) for s in old.steps if s.id not in new_steps],
        steps_changed=changed,
        edges_added=sorted(new_edges - old_edges, key=edge_key),
        edges_removed=sorted(old_edges - new_edges, key=edge_key),
        document_changes=_field_changes(old_doc, new_doc),
    )
