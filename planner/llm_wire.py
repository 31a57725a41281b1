"""The flat wire format the model writes, and its mapping to the workflow document.

Strict JSON-schema modes (OpenAI structured output, strict tool calls) accept only closed objects
whose fields are all required, so the wire model has no optional fields (null instead), no
free-form objects (`with` is a list of name / JSON-text pairs) and the action as an enum of the
names the model was shown. The model's answer is untrusted: it is parsed by pydantic here and the
mapped document still has to pass the validator before anyone sees it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from workflow.catalog import Catalog
from workflow.document import Workflow
from workflow.errors import Problem
from workflow.expressions import iter_strings
from workflow.loader import problems_from_validation

PLAN_TOOL_NAME = "submit_workflow"
_ID_BAD_CHARS = re.compile(r"[^A-Za-z0-9_\-]+")
_FENCE_RE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)


class _Wire(BaseModel):
    # lenient on extras: JSON-in-prompt models add fields; we drop them rather than fail the plan
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class WireArg(_Wire):
    """One input of a step: `value` is JSON text (`"abc"`, `42`, `"${{ steps.x.output.id }}"`)."""

    name: str
    """The input's name, as in the action's input schema."""
    value: Any
    """The value as JSON text; a bare non-JSON string is taken as that string."""


def _pairs(value: Any) -> Any:
    # JSON-in-prompt models often write `with` as an object; accept both shapes
    if isinstance(value, dict):
        return [{"name": k, "value": v if isinstance(v, str) else json.dumps(v)} for k, v in value.items()]
    return [] if value is None else value


class WireStep(_Wire):
    """One step as the model writes it."""

    id: str
    """Short snake_case id, unique in the plan."""
    action: str
    """A catalog action name or a `core.*` built-in."""
    title: str | None = None
    """A short human title."""
    description: str | None = None
    """The clause of the request this step serves."""
    needs: list[str] = Field(default_factory=list)
    """Ids of the steps that must finish first."""
    with_: list[WireArg] = Field(default_factory=list, alias="with")
    """The action's inputs."""
    if_: str | None = Field(default=None, alias="if")
    """A `${{ ... }}` condition, or null."""
    for_each: str | None = None
    """A `${{ ... }}` expression yielding a list, or null."""
    max_attempts: int | None = None
    """Total attempts when the request asks for retries ("retry up to 3 times" = 4), else null."""
    timeout_s: float | None = None
    """Per-attempt time limit in seconds, or null."""
    compensate: str | None = None
    """The action that undoes this step when the run fails later, or null."""
    compensate_with: list[WireArg] = Field(default_factory=list)
    """Inputs of the undo action; empty to wire them from this step's inputs and outputs."""

    @field_validator("with_", "compensate_with", mode="before")
    @classmethod
    def _accept_objects(cls, value: Any) -> Any:
        return _pairs(value)

    @field_validator("needs", mode="before")
    @classmethod
    def _accept_null_needs(cls, value: Any) -> Any:
        return [] if value is None else value


class WirePlan(_Wire):
    """The whole plan as the model writes it."""

    name: str
    """A short kebab-case slug for the workflow."""
    description: str | None = None
    """One sentence on what the workflow does."""
    steps: list[WireStep]
    """The steps, in a sensible reading order."""


# ----------------------------------------------------------------------------- JSON schema


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _closed(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(properties),
            "additionalProperties": False}


def wire_schema(actions: Sequence[str], undo_actions: Sequence[str] = ()) -> dict[str, Any]:
    """The strict JSON Schema of a `WirePlan` whose actions are limited to `actions`."""
    arg = _closed({
        "name": {"type": "string", "description": "Input name from the action's input schema."},
        "value": {"type": "string", "description": 'The value as JSON text: "\\"text\\"", "42", "true", '
                                                   '"\\"${{ steps.other.output.field }}\\"".'},
    })
    undo = sorted(set(undo_actions)) or sorted(set(actions))
    step = _closed({
        "id": {"type": "string", "description": "Short snake_case id, unique in the plan."},
        "action": {"type": "string", "enum": list(dict.fromkeys(actions))},
        "title": _nullable({"type": "string"}),
        "description": _nullable({"type": "string"}),
        "needs": {"type": "array", "items": {"type": "string"}},
        "with": {"type": "array", "items": arg},
        "if": _nullable({"type": "string"}),
        "for_each": _nullable({"type": "string"}),
        "max_attempts": _nullable({"type": "integer"}),
        "timeout_s": _nullable({"type": "number"}),
        "compensate": _nullable({"type": "string", "enum": undo}),
        "compensate_with": {"type": "array", "items": arg},
    })
    return _closed({
        "name": {"type": "string"},
        "description": _nullable({"type": "string"}),
        "steps": {"type": "array", "items": step},
    })


# ----------------------------------------------------------------------------- parsing


class WireError(ValueError):
    """The model's text is not a usable plan; `problems` say why, for the repair prompt."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


def extract_json(text: str) -> Any:
    """The JSON value in a model's answer: bare, fenced in ``` or wrapped in prose."""
    candidates = [text.strip()]
    candidates += [m.group(1).strip() for m in _FENCE_RE.finditer(text)]
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start:end + 1])
    last: json.JSONDecodeError | None = None
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except json.JSONDecodeError as exc:
            last = exc
    where = f" (line {last.lineno}, column {last.colno}: {last.msg})" if last else ""
    raise WireError([Problem("(answer)", f"the answer is not valid JSON{where}",
                             "answer with one JSON object and nothing else", code="malformed_json")])


def parse_wire(text: str) -> WirePlan:
    """Parse the model's text as a `WirePlan`, or raise `WireError` with the problems."""
    data = extract_json(text)
    if isinstance(data, dict) and "steps" not in data:
        # some models wrap the plan: {"workflow": {...}} or {"plan": {...}}
        inner = [v for v in data.values() if isinstance(v, dict) and "steps" in v]
        if len(inner) == 1:
            data = inner[0]
    try:
        return WirePlan.model_validate(data)
    except ValidationError as exc:
        raise WireError(problems_from_validation(exc)) from None


# ----------------------------------------------------------------------------- mapping


def decode_value(value: Any, schema: Any = None) -> Any:
    """A wire value as data: JSON text is decoded, anything else is kept as it is.

    With the input's schema, a string input stays a string: models often send `3391` for the
    id "3391", which JSON would turn into a number."""
    if not isinstance(value, str):
        return value
    try:
        decoded = json.loads(value)
    except json.JSONDecodeError:
        return value
    wanted = schema.get("type") if isinstance(schema, dict) else None
    if wanted == "string" and not isinstance(decoded, str):
        return value
    return decoded


def safe_id(raw: str, index: int) -> str:
    """A step id the spec accepts, close to what the model wrote."""
    cleaned = _ID_BAD_CHARS.sub("_", raw.strip()).strip("_")
    return cleaned[:128] or f"step_{index + 1}"


def default_compensation_with(catalog: Catalog, step_id: str, action_name: str, inputs: dict[str, Any],
                              undo_action: str) -> dict[str, Any]:
    """Wire the undo action's inputs by name: from this step's output, else from its own inputs."""
    undo = catalog.get(undo_action)
    action = catalog.get(action_name)
    if undo is None:
        return {}
    if action is not None and action.compensation == undo_action and action.compensation_with:
        return dict(action.compensation_with)
    outputs = action.output_properties if action is not None else {}
    wired: dict[str, Any] = {}
    for name in undo.input_properties:
        if name in outputs:
            wired[name] = f"${{{{ steps.{step_id}.output.{name} }}}}"
        elif name in inputs:
            wired[name] = inputs[name]
    return wired


def to_document(plan: WirePlan, catalog: Catalog, *, request: str | None = None) -> dict[str, Any]:
    """Map a wire plan to workflow-document data; the validator then checks shape and catalog."""
    ids = {s.id: safe_id(s.id, i) for i, s in enumerate(plan.steps)}
    steps: list[dict[str, Any]] = []
    for wire in plan.steps:
        step_id = ids[wire.id]
        action = wire.action.strip()
        spec = catalog.get(action)
        props = spec.input_properties if spec is not None else {}
        inputs = {arg.name: decode_value(arg.value, props.get(arg.name)) for arg in wire.with_}
        data: dict[str, Any] = {"id": step_id, "action": action}
        for key, value in (("name", wire.title), ("description", wire.description)):
            if value not in (None, ""):
                data[key] = value
        # a step needing itself is a slip, not a cycle worth a repair round
        needs = [n for n in dict.fromkeys(ids.get(n, n) for n in wire.needs) if n != step_id]
        if needs:
            data["needs"] = needs
        if inputs:
            data["with"] = inputs
        timeout = wire.timeout_s if wire.timeout_s is not None and wire.timeout_s > 0 else None
        for_each: Any = wire.for_each
        if isinstance(for_each, str) and for_each.strip().startswith("["):
            for_each = decode_value(for_each)  # a literal list, sent as JSON text
        extras: tuple[tuple[str, Any], ...] = (("if", wire.if_), ("for_each", for_each),
                                               ("timeout_s", timeout))
        for key, extra in extras:
            if extra not in (None, ""):
                data[key] = extra
        if wire.max_attempts is not None and wire.max_attempts > 1:
            data["retry"] = {"max_attempts": wire.max_attempts}
        if wire.compensate:
            undo = catalog.get(wire.compensate)
            undo_props = undo.input_properties if undo is not None else {}
            given = {arg.name: decode_value(arg.value, undo_props.get(arg.name))
                     for arg in wire.compensate_with}
            data["compensate"] = {
                "action": wire.compensate,
                "with": given or default_compensation_with(catalog, step_id, action, inputs, wire.compensate),
            }
        steps.append(data)
    name = safe_id(plan.name.strip().lower().replace(" ", "-"), 0)[:200] or "workflow"
    document: dict[str, Any] = {"name": name, "description": request or plan.description, "steps": steps}
    inputs = declared_inputs(steps, catalog)
    if inputs:
        document["inputs"] = {"type": "object", "properties": inputs}
    return document


_INPUT_REF_RE = re.compile(r"\binputs\.([A-Za-z_][A-Za-z0-9_]*)")
_WHOLE_INPUT_RE = re.compile(r"^\s*\$\{\{\s*inputs\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}\s*$")


def input_type_of(schema: dict[str, Any]) -> dict[str, Any]:
    """The part of an action input's schema a run input declared to feed it copies: its type."""
    return {k: v for k, v in schema.items() if k in ("type", "items", "enum")}


def declared_inputs(steps: list[dict[str, Any]], catalog: Catalog) -> dict[str, Any]:
    """Run inputs the steps read (`inputs.x`), each typed like the action input it feeds.

    Models read run inputs freely but rarely declare them; declaring them here saves a repair
    round, and the type comes from the catalog, not from the model."""
    found: dict[str, Any] = {}
    for step in steps:
        action = catalog.get(str(step.get("action")))
        props = action.input_properties if action else {}
        for key, value in (step.get("with") or {}).items():
            whole = _WHOLE_INPUT_RE.match(value) if isinstance(value, str) else None
            if whole and isinstance(props.get(key), dict):
                found.setdefault(whole.group(1), input_type_of(props[key]))
        loop = step.get("for_each")
        whole_loop = _WHOLE_INPUT_RE.match(loop) if isinstance(loop, str) else None
        if whole_loop:
            found.setdefault(whole_loop.group(1), {"type": "array"})
        for _, text in iter_strings([step.get("with"), step.get("if"), step.get("for_each"),
                                     (step.get("compensate") or {}).get("with")], ""):
            for name in _INPUT_REF_RE.findall(text):
                found.setdefault(name, {})
    return found


def from_workflow(workflow: Workflow) -> dict[str, Any]:
    """A document in the wire shape, to show the model a plan it should edit or repair."""
    steps = []
    for step in workflow.steps:
        steps.append({
            "id": step.id,
            "action": step.action,
            "title": step.name,
            "description": step.description,
            "needs": list(step.needs),
            "with": [{"name": k, "value": json.dumps(v)} for k, v in step.with_.items()],
            "if": step.if_,
            "for_each": step.for_each if isinstance(step.for_each, str) or step.for_each is None
            else json.dumps(step.for_each),
            "max_attempts": step.retry.max_attempts if step.retry else None,
            "timeout_s": step.timeout_s,
            "compensate": step.compensate.action if step.compensate else None,
            "compensate_with": [{"name": k, "value": json.dumps(v)}
                                for k, v in (step.compensate.with_ if step.compensate else {}).items()],
        })
    return {"name": workflow.name, "description": workflow.description, "steps": steps}
