"""The plan in plain English: numbered steps, what runs in parallel, conditions, undo and retries."""

from __future__ import annotations

from workflow.catalog import Catalog
from workflow.document import Step, Workflow
from workflow.expressions import condition_body
from workflow.graph import dependency_graph, parallel_groups, transitive_reduction


def _what(step: Step, catalog: Catalog) -> str:
    action = catalog.get(step.action)
    if step.action == "core.wait":
        seconds, until = step.with_.get("seconds"), step.with_.get("until")
        if isinstance(seconds, int | float):
            return f"wait {_duration(float(seconds))}"
        if isinstance(until, str) and "${{" not in until:
            return f"wait until {until}"
        return "wait until the given time"
    if step.action == "core.approval":
        approvers = step.with_.get("approvers")
        who = f" from {', '.join(map(str, approvers))}" if isinstance(approvers, list) and approvers else ""
        return f"ask for approval{who}: {step.with_.get('prompt', '')}".rstrip(": ")
    if step.action in {"core.log", "core.fail"}:
        verb = "record in the run log" if step.action == "core.log" else "stop the run as failed"
        return f"{verb}: {step.with_.get('message', '')}"
    summary = action.description.rstrip(".") if action and action.description else step.action
    return f"{summary} ({step.action})"


def _duration(seconds: float) -> str:
    for unit, size in (("week", 604800), ("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds:g} seconds"


def explain(workflow: Workflow, catalog: Catalog) -> str:
    """A numbered, plain-English reading of the workflow."""
    order = [sid for group in parallel_groups(workflow) for sid in group]
    number = {sid: i + 1 for i, sid in enumerate(order)}
    reduced = transitive_reduction(workflow)
    graph = dependency_graph(workflow)
    lines = [f'Plan "{workflow.name}": {len(order)} step{"s" if len(order) != 1 else ""}.']
    for sid in order:
        step = workflow.step(sid)
        text = f"{number[sid]}. {_what(step, catalog)}"
        before = sorted(number[p] for p in reduced.predecessors(sid))
        if before:
            text += f" — after step{'s' if len(before) > 1 else ''} {', '.join(map(str, before))}"
        else:
            text += " — at the start"
        if step.if_:
            text += f"; only if {condition_body(step.if_).strip()}"
        if step.for_each is not None:
            text += f"; once for each item of {step.for_each}"
        if step.retry and step.retry.max_attempts > 1:
            text += f"; up to {step.retry.max_attempts} attempts"
        if step.timeout_s:
            text += f"; time limit {_duration(step.timeout_s)}"
        lines.append(text + ".")
    for group in parallel_groups(workflow):
        if len(group) > 1:
            lines.append("Steps " + ", ".join(str(number[s]) for s in group) + " can run in parallel.")
    for step in workflow.steps:
        if step.compensate:
            later = sorted(number[s] for s in graph.successors(step.id)) if step.id in graph else []
            undo = step.compensate.action
            how = f"{undo} writing the previous values back" if undo == step.action else undo
            lines.append(
                f"If the run fails after step {number[step.id]} has finished, it is undone with "
                f"{how}" + (f" (e.g. when step {later[0]} fails)." if later else ".")
            )
    lines.extend(_inputs(workflow))
    return "\n".join(lines) + "\n"


def _inputs(workflow: Workflow) -> list[str]:
    """The run inputs a person must give to start it, each with what it is."""
    schema = workflow.inputs if isinstance(workflow.inputs, dict) else {}
    props = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
    required = [str(r) for r in schema.get("required") or [] if isinstance(r, str)]
    if not required:
        return []
    out = ["Inputs to give when starting a run:"]
    for name in required:
        spec = props.get(name) if isinstance(props, dict) else None
        spec = spec if isinstance(spec, dict) else {}
        kind = spec.get("format") or spec.get("type")
        if isinstance(kind, list):
            kind = " or ".join(map(str, kind))
        if spec.get("type") == "array" and isinstance(spec.get("items"), dict):
            kind = f"list of {spec['items'].get('type', 'values')}"
        what = str(spec.get("description") or "").strip().rstrip(".")
        enum = spec.get("enum")
        one_of = f"one of {', '.join(map(str, enum))}" if isinstance(enum, list) and enum else ""
        detail = "; ".join(x for x in (str(kind) if kind else "", one_of, what) if x)
        out.append(f"  - {name}" + (f" ({detail})" if detail else ""))
    return out
