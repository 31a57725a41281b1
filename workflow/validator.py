"""Validate a workflow document against an action catalog, reporting every problem at once.

The document's shape is checked by the pydantic models in `workflow.document`; a broken step is
parsed on its own so that one bad step does not hide the problems of the others. The checks here
are the ones a model cannot make alone: actions and their input/output schemas, references
between steps, expressions, cycles, compensations and triggers.

Each `Problem` has a stable `code` (tests, the CLI's JSON output and the planner's repair loop
key on it), the location of the field, a message naming what was expected and found, and a hint.
"""

from __future__ import annotations

import difflib
import graphlib
import json
import re
import types
import typing
import unicodedata
import zoneinfo
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

from jinja2 import nodes
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import BaseModel, ValidationError

from workflow.catalog import ActionSpec, Catalog
from workflow.document import Step, Workflow
from workflow.errors import ExpressionError, InvalidWorkflow, Problem, UnsafeExpression
from workflow.expressions import (
    EXPRESSION_RE,
    Expression,
    Reference,
    compile_expression,
    condition_body,
    iter_strings,
    whole_expression,
)
from workflow.loader import format_location, kind_of, problems_from_validation

ERROR = "error"
WARNING = "warning"

PROBLEM_CODES: dict[str, str] = {
    # shape (besides pydantic's own codes such as `missing`, `extra_forbidden`, `string_type`)
    "invalid_document": "the document is not a mapping with `name` and `steps`",
    "invalid_step_id": "a step id has characters other than letters, digits, `_` and `-`",
    "out_of_range": "a number (retry, timeout, concurrency) is outside its allowed range",
    "invalid_schema": "the workflow's `inputs` is not a valid JSON Schema",
    "invalid_name": "the workflow's `name` is blank or holds control characters (a line break, a tab)",
    # steps and references
    "duplicate_step_id": "two steps share an id",
    "unknown_action": "an action (step, compensation or alternative) is not in the catalog",
    "unknown_step": "`needs`, `ordered_after` or a `steps.<id>` reference names no step",
    "self_dependency": "a step needs itself or reads its own result",
    "cycle": "the steps depend on each other in a cycle",
    # inputs and outputs of actions
    "missing_input": "a required input of the action is not given",
    "unknown_input": "`with` gives an input the action does not take",
    "input_type": "a literal input does not match the action's input schema",
    "unknown_output_field": "a reference reads a field the step's action does not return",
    "type_mismatch": "a referenced value's type cannot feed the input it is given to",
    "skippable_output": "a step reads the output of a conditional step it does not share the condition of",
    # expressions
    "expression_syntax": "an expression does not parse",
    "unsafe_expression": "the sandbox refuses an expression (calls, private names)",
    "undeclared_input": "an expression reads an input the workflow's `inputs` does not declare",
    "unknown_reference_root": "an expression reads a name other than `inputs`, `steps` and `item`",
    "secret_in_document": "an expression reads `secrets`, which belong in the catalog",
    # control flow
    "constant_condition": "an `if` is always true or always false",
    "for_each_not_list": "`for_each` is not a list or an expression yielding one",
    "concurrency_without_for_each": "`concurrency` is set on a step without `for_each`",
    "compensation_mismatch": "a step is undone by another action than the catalog declares",
    # triggers
    "invalid_cron": "a schedule's cron expression is not valid",
    "invalid_timezone": "a schedule's time zone is not a known IANA name",
    "trigger_inputs": "a schedule's inputs do not match the workflow's `inputs` schema",
}
"""Every code the validator's own checks give, with what it means (for docs and `--explain`)."""

# the names an expression may read; `item` only in a step with `for_each`
_ROOTS = ("inputs", "steps", "item")
_STEP_FIELDS = ("output", "status")
_JSON_TYPES = ("string", "integer", "number", "boolean", "array", "object", "null")
_RANGE_ERRORS = {"greater_than_equal", "less_than_equal", "greater_than", "less_than"}


@dataclass
class ValidationReport:
    """Every problem found, and the parsed document when its shape was right."""

    problems: list[Problem]
    workflow: Workflow | None

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == ERROR]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == WARNING]

    def to_data(self) -> dict[str, Any]:
        return {"valid": self.ok, "problems": [p.to_data() for p in self.problems]}


def validate(document: Workflow | Mapping[str, Any], catalog: Catalog) -> ValidationReport:
    """Check a document (parsed or raw data) against a catalog; never raises for bad input."""
    return _Validator(catalog).run(document)


def ensure_valid(document: Workflow | Mapping[str, Any], catalog: Catalog) -> Workflow:
    """The parsed document, or `InvalidWorkflow` carrying every problem (warnings included)."""
    report = validate(document, catalog)
    if not report.ok or report.workflow is None:
        raise InvalidWorkflow(report.problems)
    return report.workflow


# ----------------------------------------------------------------------------- helpers


def did_you_mean(word: str, choices: list[str] | tuple[str, ...], *, n: int = 1) -> str | None:
    """`did you mean `x`?` over the closest choices, or None."""
    close = difflib.get_close_matches(word, list(choices), n=n, cutoff=0.6)
    if not close:
        return None
    return "did you mean " + " or ".join(f"`{c}`" for c in close) + "?"


def _quoted_list(items: list[str], limit: int = 12) -> str:
    shown = ", ".join(f"`{i}`" for i in items[:limit])
    return shown + (f" (and {len(items) - limit} more)" if len(items) > limit else "")


def _types_of(schema: Any) -> set[str]:
    """The JSON types a schema declares (empty: unknown or anything)."""
    if not isinstance(schema, Mapping):
        return set()
    kind = schema.get("type")
    if isinstance(kind, str):
        return {kind}
    if isinstance(kind, list):
        return {k for k in kind if isinstance(k, str)}
    if "enum" in schema and isinstance(schema["enum"], list):
        found = set()
        for value in schema["enum"]:
            found.add(_type_of_value(value))
        return found
    return set()


def _type_of_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _can_feed(source: set[str], target: set[str]) -> bool:
    """Whether a value of one of `source` types fits an input of one of `target` types."""
    if not source or not target:
        return True
    widened = set(source)
    if "integer" in widened:
        widened.add("number")  # every integer is a number; the reverse loses data
    if "null" in source and len(source) > 1:
        widened.discard("null")  # optional outputs are judged by their real type
    return bool(widened & target)


def _closed_properties(schema: Mapping[str, Any]) -> dict[str, Any] | None:
    """The properties of an object schema that takes no others, else None (anything goes)."""
    props = schema.get("properties")
    if not isinstance(props, dict) or not props:
        return None
    if schema.get("additionalProperties") not in (False, None):
        return None  # `true` or a schema: other keys are allowed
    return props


def _has_expression(value: Any) -> bool:
    return any("${{" in text for _, text in iter_strings(value, ""))


# keyed by the schema object's id; the schema is kept in the entry so the id cannot be reused
_VALIDATORS: dict[int, tuple[Mapping[str, Any], Draft202012Validator | None]] = {}
# schema keywords that do not constrain a value beyond its type
_ANNOTATIONS = frozenset({"type", "description", "title", "default", "format", "examples", "deprecated"})


def _schema_validator(schema: Mapping[str, Any]) -> Draft202012Validator | None:
    entry = _VALIDATORS.get(id(schema))
    if entry is not None and entry[0] is schema:
        return entry[1]
    try:
        Draft202012Validator.check_schema(schema)
        checker: Draft202012Validator | None = Draft202012Validator(schema)  # formats are not asserted
    except SchemaError:
        checker = None  # a broken catalog schema is the catalog's problem, not this document's
    if len(_VALIDATORS) > 4096:
        _VALIDATORS.clear()
    _VALIDATORS[id(schema)] = (schema, checker)
    return checker


def _plainly_fits(value: Any, schema: Mapping[str, Any]) -> bool:
    """A fast yes for the common case: a schema that only states a type the value has."""
    enum = schema.get("enum")
    if isinstance(enum, list) and schema.keys() <= _ANNOTATIONS | {"enum"}:
        return value in enum and (not isinstance(schema.get("type"), str) or _plainly_fits(
            value, {"type": schema["type"]}))
    if not schema.keys() <= _ANNOTATIONS or not isinstance(schema.get("type"), str):
        return False
    kind = _type_of_value(value)
    return kind == schema["type"] or (kind == "integer" and schema["type"] == "number")


@lru_cache(maxsize=256)
def _schema_problem(schema_json: str) -> str | None:
    try:
        Draft202012Validator.check_schema(json.loads(schema_json))
    except SchemaError as exc:
        return exc.message
    return None


@lru_cache(maxsize=1)
def _timezones() -> tuple[str, ...]:
    return tuple(sorted(zoneinfo.available_timezones()))


@lru_cache(maxsize=4096)
def _references(source: str) -> tuple[Reference, ...]:
    return tuple(compile_expression(source).references())


# ----------------------------------------------------------------------------- cron

_CRON_MACROS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
_MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
_DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
# (field name, lowest, highest, names in order starting at `lowest`)
_CRON_FIELDS: tuple[tuple[str, int, int, list[str]], ...] = (
    ("minute", 0, 59, []),
    ("hour", 0, 23, []),
    ("day of month", 1, 31, []),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)
_CRON_ITEM_RE = re.compile(r"^(\*|\?|[A-Za-z0-9]+(?:-[A-Za-z0-9]+)?)(?:/(\d+))?$")


def cron_problem(expression: str) -> str | None:
    """What is wrong with a five-field cron expression, or None when it is fine."""
    text = expression.strip()
    if text.lower() in _CRON_MACROS:
        return None
    parts = text.split()
    if len(parts) != 5:
        return ("a cron expression has 5 fields (minute hour day-of-month month day-of-week), "
                f"found {len(parts)}")
    for part, (label, low, high, names) in zip(parts, _CRON_FIELDS, strict=True):
        for item in part.split(","):
            match = _CRON_ITEM_RE.match(item)
            if not match:
                return f"the {label} field `{part}` is not valid cron syntax"
            if match.group(2) is not None and int(match.group(2)) == 0:
                return f"the {label} field `{part}` has a step of 0"
            if match.group(1) in {"*", "?"}:
                continue
            for bound in match.group(1).split("-"):
                if bound.upper() in names:
                    continue
                if not bound.isdigit():
                    allowed = f"{low}-{high}" + (f" or {names[0]}-{names[-1]}" if names else "")
                    return f"the {label} field has `{bound}`; expected {allowed}"
                if not low <= int(bound) <= high:
                    return f"the {label} field has {bound}, outside {low}-{high}"
    return _never_fires(parts)


_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _cron_values(part: str, low: int, high: int, names: list[str]) -> set[int]:
    """The values one (syntactically valid) cron field matches."""
    values: set[int] = set()
    for item in part.split(","):
        match = _CRON_ITEM_RE.match(item)
        assert match is not None  # checked by the caller
        base, step = match.group(1), int(match.group(2) or 1)
        if base in {"*", "?"}:
            first, last = low, high
        else:
            bounds = [low + names.index(b.upper()) if b.upper() in names else int(b) for b in base.split("-")]
            first, last = bounds[0], bounds[-1] if len(bounds) > 1 or match.group(2) is None else high
        values.update(range(first, last + 1, step))
    return values


def _never_fires(parts: list[str]) -> str | None:
    """A day of month that no month of the schedule has (`0 9 30 2 *`): valid fields, but the
    schedule would never fire. With a day of week given, cron fires on either, so it does fire."""
    if parts[4] not in {"*", "?"} or parts[2] in {"*", "?"}:
        return None
    days = _cron_values(parts[2], *_CRON_FIELDS[2][1:])
    months = _cron_values(parts[3], *_CRON_FIELDS[3][1:])
    if any(day <= _MONTH_DAYS[month - 1] for day in days for month in months if 1 <= month <= 12):
        return None
    named = ", ".join(_MONTHS[m - 1] for m in sorted(months) if 1 <= m <= 12)
    return (f"the schedule never fires: no month it names ({named}) has day {min(days)} "
            f"(`{parts[2]}` in the day-of-month field)")


# ----------------------------------------------------------------------------- pydantic errors


def _bounds_in(obj: Any, depth: int = 0) -> dict[str, Any]:
    """ge/gt/le/lt constraints in a field's metadata or its (Annotated, Optional) type."""
    found: dict[str, Any] = {}
    if depth > 6:
        return found
    if not isinstance(obj, type):
        for name in ("ge", "gt", "le", "lt"):
            value = getattr(obj, name, None)
            if isinstance(value, int | float):
                found[name] = value
    for inner in [*(getattr(obj, "metadata", None) or []), *typing.get_args(obj)]:
        for name, value in _bounds_in(inner, depth + 1).items():
            found.setdefault(name, value)
    return found


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is not None:
        for arg in typing.get_args(annotation):
            model = _model_in(arg)
            if model is not None:
                return model
    return None


def _field_range(model: type[BaseModel], loc: tuple[Any, ...]) -> tuple[str, dict[str, Any]] | None:
    """The field name and its numeric bounds for a pydantic error location, when it has any."""
    current: type[BaseModel] | None = model
    for index, part in enumerate(loc):
        if current is None or not isinstance(part, str):
            continue
        fields = current.model_fields
        name = part if part in fields else next((k for k, f in fields.items() if f.alias == part), None)
        if name is None:
            return None
        info = fields[name]
        if index == len(loc) - 1:
            return part.rstrip("_"), _bounds_in(info) | _bounds_in(info.annotation)
        current = _model_in(info.annotation)
    return None


def _range_text(bounds: Mapping[str, Any]) -> str:
    low = f"at least {bounds['ge']}" if "ge" in bounds else f"above {bounds['gt']}" if "gt" in bounds else ""
    high = f"at most {bounds['le']}" if "le" in bounds else f"below {bounds['lt']}" if "lt" in bounds else ""
    if "ge" in bounds and "le" in bounds:
        return f"between {bounds['ge']} and {bounds['le']}"
    return " and ".join(t for t in (low, high) if t)


_FIELD_HINTS = {
    "max_attempts": "max_attempts counts every attempt: 1 = no retry, \"retry up to 3 times\" = 4",
    "action": "name an action of the catalog, e.g. `crm.update_account`",
    "steps": "give at least one step: `steps: [{id: ..., action: ...}]`",
    "name": "give the workflow a short slug name, e.g. `enterprise-onboarding`",
    "if": "write the condition as an expression string, e.g. \"${{ inputs.amount > 500 }}\"",
}


def _shape_problems(exc: ValidationError, model: type[BaseModel], prefix: str, step: str | None,
                    drop: Callable[[tuple[Any, ...]], bool] | None = None) -> list[Problem]:
    """pydantic errors as Problems, with the range, id and field hints people need."""
    problems = []
    for err, problem in zip(exc.errors(include_url=False), problems_from_validation(exc, prefix=prefix),
                            strict=True):
        loc = tuple(err["loc"])
        if drop is not None and drop(loc):
            continue
        field_name = str(loc[-1]).rstrip("_") if loc else ""
        message, hint, code = problem.message, problem.hint, problem.code
        if err["type"] in _RANGE_ERRORS:
            found_range = _field_range(model, loc)
            if found_range and found_range[1]:
                name, bounds = found_range
                message = f"`{name}` must be {_range_text(bounds)}, found {err.get('input')!r}"
                hint = _FIELD_HINTS.get(name, f"use a value {_range_text(bounds)}")
                code = "out_of_range"
        elif loc == ("id",) and err["type"] == "string_pattern_mismatch" and model is Step:
            bad = str(err.get("input"))
            fixed = re.sub(r"[^A-Za-z0-9_\-]+", "_", bad).strip("_") or "step_1"
            message = f"step id `{bad}` may only hold letters, digits, `_` and `-`"
            hint = f"rename it, e.g. `{fixed}` (and update the `needs` and references that use it)"
            code = "invalid_step_id"
        elif hint is None and field_name in _FIELD_HINTS:
            hint = _FIELD_HINTS[field_name]
        problems.append(Problem(problem.location, message, hint, code=code, step=step))
    return problems


def _without_broken_fields(raw: Mapping[str, Any], exc: ValidationError) -> Step | None:
    """The step parsed without its broken optional fields, so its other fields still get checked.

    Its shape problems are already reported; None when `id` or `action` is among the broken.
    """
    broken = {err["loc"][0] for err in exc.errors() if err["loc"]}
    if not broken or broken & {"id", "action"} or any(not err["loc"] for err in exc.errors()):
        return None
    try:
        return Step.model_validate({k: v for k, v in raw.items() if k not in broken})
    except ValidationError:
        return None


_STEP_LOCATION_RE = re.compile(r"^steps\[(\d+)\]")


def _problem_order(problem: Problem) -> tuple[int, int]:
    """Document-level problems first, then each step's in document order (the sort is stable)."""
    match = _STEP_LOCATION_RE.match(problem.location)
    if match:
        return 1, int(match.group(1))
    return (2, 0) if problem.location.startswith("triggers") else (0, 0)


# ----------------------------------------------------------------------------- the checks


@dataclass
class _StepContext:
    index: int
    step: Step
    spec: ActionSpec | None

    @property
    def where(self) -> str:
        return f"steps[{self.index}]"


@dataclass
class _Validator:
    catalog: Catalog
    problems: list[Problem] = field(default_factory=list)
    step_ids: list[str] = field(default_factory=list)
    id_positions: list[tuple[int, str]] = field(default_factory=list)
    """(index in `steps`, id) of every step whose id is a string, broken steps included."""
    outputs: dict[str, ActionSpec | None] = field(default_factory=dict)
    inputs_schema: dict[str, Any] | None = None
    dependencies: dict[str, set[str]] = field(default_factory=dict)
    """Step id → the steps it needs or reads (the spec's dependency rule), for the cycle check."""
    conditions: dict[str, str] = field(default_factory=dict)
    """Step id → its `if` (whitespace normalized), for steps that have one."""
    _warned_reads: set[tuple[str, str]] = field(default_factory=set)
    """(location, step id) pairs already warned about as skippable reads."""

    # -- reporting

    def add(self, location: str, message: str, hint: str | None, code: str, step: str | None = None,
            severity: str = ERROR) -> None:
        assert code in PROBLEM_CODES, f"document the problem code `{code}` in PROBLEM_CODES"
        self.problems.append(Problem(location, message, hint, code=code, step=step, severity=severity))

    # -- entry

    def run(self, document: Workflow | Mapping[str, Any]) -> ValidationReport:
        workflow: Workflow | None
        if isinstance(document, Workflow):
            workflow = document
            steps: list[tuple[int, Step]] = list(enumerate(document.steps))
            self.step_ids = document.step_ids
            self.id_positions = list(enumerate(self.step_ids))
            self.inputs_schema = document.inputs
            triggers_data: Any = document.triggers.model_dump(by_alias=True) if document.triggers else None
        elif isinstance(document, Mapping):
            workflow, steps = self._parse(document)
            triggers_data = document.get("triggers")
        else:
            found = kind_of(document)
            self.add("(document)", f"expected a mapping with `name` and `steps` at the top, found {found}",
                     "start the document with `name:` and `steps:`", "invalid_document")
            return ValidationReport(self.problems, None)

        self._check_name(workflow.name if workflow is not None else
                         document.get("name") if isinstance(document, Mapping) else None)
        self._check_inputs_schema()
        self._check_duplicate_ids()
        contexts = [_StepContext(i, s, self.catalog.get(s.action)) for i, s in steps]
        self.outputs = {c.step.id: c.spec for c in contexts}
        self.conditions = {
            c.step.id: " ".join(condition_body(c.step.if_).split())
            for c in contexts
            if c.step.if_ is not None
        }
        for ctx in contexts:
            self._check_step(ctx)
        self._check_cycle(steps)
        self._check_triggers(triggers_data)
        self.problems.sort(key=_problem_order)
        return ValidationReport(self.problems, workflow)

    def _check_name(self, name: Any) -> None:
        """A name people can see and type: one line, not blank (the model checks it is a string)."""
        if not isinstance(name, str) or not name:
            return
        control = next((c for c in name if unicodedata.category(c) == "Cc"), None)
        if not name.strip():
            self.add("name", "the name is blank", _FIELD_HINTS["name"], "invalid_name")
        elif control is not None:
            cleaned = " ".join("".join(" " if unicodedata.category(c) == "Cc" else c for c in name).split())
            self.add("name", f"the name holds a control character ({control!r}); a name is one line of text",
                     f"rename it, e.g. `{cleaned}`", "invalid_name")

    def _parse(self, data: Mapping[str, Any]) -> tuple[Workflow | None, list[tuple[int, Step]]]:
        raw_steps = data.get("steps")
        raw_list = raw_steps if isinstance(raw_steps, list) else []
        self.id_positions = [
            (i, raw["id"])
            for i, raw in enumerate(raw_list)
            if isinstance(raw, Mapping) and isinstance(raw.get("id"), str)
        ]
        self.step_ids = [sid for _, sid in self.id_positions]
        raw_inputs = data.get("inputs")
        self.inputs_schema = raw_inputs if isinstance(raw_inputs, dict) else None
        try:
            workflow = Workflow.model_validate(dict(data))
        except ValidationError as exc:
            # the steps are checked one by one below; here only the top-level fields
            self.problems.extend(_shape_problems(
                exc, Workflow, "", None,
                drop=lambda loc: len(loc) >= 2 and loc[0] == "steps" and isinstance(loc[1], int),
            ))
        else:
            return workflow, list(enumerate(workflow.steps))
        parsed: list[tuple[int, Step]] = []
        for index, raw in enumerate(raw_list):
            step_id = raw.get("id") if isinstance(raw, Mapping) and isinstance(raw.get("id"), str) else None
            prefix = f"steps[{index}]"
            if isinstance(raw, Mapping):
                raw = dict(raw)
                for_each = raw.get("for_each")
                if for_each is not None and not isinstance(for_each, str | list):
                    self._for_each_not_list(prefix, step_id, for_each)
                    raw.pop("for_each")
            try:
                parsed.append((index, Step.model_validate(raw)))
            except ValidationError as exc:
                self.problems.extend(_shape_problems(exc, Step, prefix, step_id))
                salvaged = _without_broken_fields(raw, exc)
                if salvaged is not None:
                    parsed.append((index, salvaged))
        return None, parsed

    def _for_each_not_list(self, location: str, step_id: str | None, value: Any) -> None:
        self.add(f"{location}.for_each",
                 f"`for_each` must yield a list, found {_type_of_value(value)} {value!r}",
                 "give a list (`[a, b]`) or an expression yielding one, e.g. \"${{ inputs.customers }}\"",
                 "for_each_not_list", step_id)

    # -- document level

    def _check_inputs_schema(self) -> None:
        if self.inputs_schema is None:
            return
        error = _schema_problem(json.dumps(self.inputs_schema, sort_keys=True, default=str))
        if error:
            self.add("inputs", f"`inputs` is not a valid JSON Schema: {error}",
                     "write it as `{type: object, properties: {name: {type: string}}}`", "invalid_schema")

    def _check_duplicate_ids(self) -> None:
        first: dict[str, int] = {}
        for index, step_id in self.id_positions:
            if step_id in first:
                self.add(f"steps[{index}].id",
                         f"step id `{step_id}` is already used by steps[{first[step_id]}]",
                         "give every step its own id (and point `needs` and references at the right one)",
                         "duplicate_step_id", step_id)
            else:
                first[step_id] = index

    def _check_cycle(self, steps: list[tuple[int, Step]]) -> None:
        if not steps:
            return
        known = set(self.step_ids)
        graph = {sid: {d for d in deps if d in known and d != sid} for sid, deps in self.dependencies.items()}
        try:
            # a quick test first; networkx (via workflow.graph) names the cycle when there is one
            graphlib.TopologicalSorter(graph).prepare()
            return
        except graphlib.CycleError:
            pass
        # imported here: networkx costs `overture validate` ~80 ms, and only a cycle needs it
        from workflow.graph import find_cycle

        cycle = find_cycle(Workflow.model_construct(name="-", steps=[s for _, s in steps]))
        if not cycle:
            return
        index = next(i for i, s in steps if s.id == cycle[0])
        self.add(f"steps[{index}]",
                 "the steps depend on each other in a cycle: " + " → ".join([*cycle, cycle[0]]),
                 "remove one of these dependencies (a `needs` entry or a `steps.<id>` reference)",
                 "cycle", cycle[0])

    def _check_triggers(self, triggers: Any) -> None:
        if not isinstance(triggers, Mapping):
            return
        schedule = triggers.get("schedule")
        for index, entry in enumerate(schedule if isinstance(schedule, list) else []):
            if not isinstance(entry, Mapping):
                continue
            where = f"triggers.schedule[{index}]"
            cron = entry.get("cron")
            if isinstance(cron, str):
                error = cron_problem(cron)
                if error:
                    hint = ("pick a day that a month it names has, e.g. `0 9 28 2 *` (09:00 on 28 February)"
                            if "never fires" in error
                            else "use five fields, e.g. `0 9 * * MON-FRI` (09:00 on weekdays)")
                    self.add(f"{where}.cron", f"cron `{cron}`: {error}", hint, "invalid_cron")
            given = entry.get("inputs")
            if isinstance(given, Mapping) and self.inputs_schema is not None:
                self._check_trigger_inputs(given, f"{where}.inputs")
            zone = entry.get("timezone")
            if isinstance(zone, str):
                try:
                    zoneinfo.ZoneInfo(zone)
                except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                    hint = did_you_mean(zone, _timezones()) or "use an IANA name, e.g. `Europe/Berlin`"
                    self.add(f"{where}.timezone", f"unknown time zone `{zone}`", hint, "invalid_timezone")

    def _check_trigger_inputs(self, given: Mapping[str, Any], location: str) -> None:
        assert self.inputs_schema is not None
        if _schema_validator(self.inputs_schema) is None:
            return  # reported as invalid_schema
        # with formats, as the service checks each fire's inputs: otherwise every fire would fail
        checker = Draft202012Validator(self.inputs_schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
        for error in sorted(checker.iter_errors(dict(given)), key=lambda e: list(map(str, e.path))):
            self.add(format_location(error.path, location),
                     f"the schedule's inputs do not fit the workflow's `inputs`: {error.message}",
                     "give every required input a value of the declared type", "trigger_inputs")

    # -- step level

    def _check_step(self, ctx: _StepContext) -> None:
        step, where = ctx.step, ctx.where
        if ctx.spec is None:
            self._unknown_action(f"{where}.action", step.action, step.id)
        else:
            self._check_with(ctx.spec, step.with_, f"{where}.with", step.id, autofill=set())
        for j, need in enumerate(step.needs):
            self._check_step_id(f"{where}.needs[{j}]", need, step.id, what="needs")
        for j, other in enumerate(step.ordered_after):
            self._check_step_id(f"{where}.ordered_after[{j}]", other, step.id, what="ordered_after")
        for j, alternative in enumerate(step.alternatives):
            self._unknown_action(f"{where}.alternatives[{j}]", alternative, step.id)
        self._check_expressions(ctx)
        self._check_condition(ctx)
        self._check_for_each(ctx)
        self._check_compensation(ctx)

    def _unknown_action(self, location: str, name: str, step_id: str) -> None:
        if name in self.catalog:
            return
        hint = did_you_mean(name, self.catalog.names)
        namespace = name.rsplit(".", 1)[0] if "." in name else None
        if hint is None and namespace:
            same = [n for n in self.catalog.names if n.startswith(namespace + ".")]
            if same:
                hint = f"the `{namespace}` actions are: {_quoted_list(same)}"
        if hint is None:
            spaces = sorted({n.split(".", 1)[0] for n in self.catalog.names})
            hint = f"use an action from the catalog; its namespaces are {_quoted_list(spaces)}"
        self.add(location, f"unknown action `{name}`: the catalog has no action of that name", hint,
                 "unknown_action", step_id)

    def _check_step_id(self, location: str, target: str, step_id: str, *, what: str) -> None:
        if target == step_id:
            self.add(location, f"step `{step_id}` lists itself in `{what}`",
                     f"remove `{step_id}` from `{what}`", "self_dependency", step_id)
        elif target not in self.step_ids:
            hint = did_you_mean(target, self.step_ids) or f"the step ids are {_quoted_list(self.step_ids)}"
            self.add(location, f"`{what}` names step `{target}`, but no step has that id", hint,
                     "unknown_step", step_id)

    def _check_with(self, spec: ActionSpec, values: Mapping[str, Any], location: str, step_id: str,
                    autofill: set[str]) -> None:
        props = spec.input_properties
        for name in spec.required_inputs:
            if name not in values and name not in autofill:
                strays = [k for k in values if k not in props]
                near = difflib.get_close_matches(name, strays, n=1, cutoff=0.6)
                hint = (f"rename `{near[0]}` to `{name}`" if near
                        else f"add `{name}: ...` under `{location.rsplit('.', 1)[-1]}`")
                self.add(location, f"`{spec.name}` requires input `{name}`, which is not given", hint,
                         "missing_input", step_id)
        if spec.name == "core.wait":
            self._check_wait(values, location, step_id)
        closed = _closed_properties(spec.input)
        for key, value in values.items():
            here = f"{location}.{key}"
            if closed is not None and key not in closed:
                hint = did_you_mean(key, list(closed)) or f"`{spec.name}` takes {_quoted_list(list(closed))}"
                self.add(here, f"`{spec.name}` has no input `{key}`", hint, "unknown_input", step_id)
                continue
            schema = props.get(key)
            if not isinstance(schema, Mapping):
                continue
            if isinstance(value, str) and (whole := whole_expression(value)) is not None:
                self._check_fed_type(whole, schema, here, step_id, spec.name, key)
            elif not _has_expression(value):
                self._check_literal(value, schema, here, step_id, spec.name, key)

    def _check_wait(self, values: Mapping[str, Any], location: str, step_id: str) -> None:
        if "seconds" not in values and "until" not in values:
            self.add(location, "`core.wait` needs `seconds` or `until`, neither is given",
                     "add `seconds: 60` or `until: \"2030-01-01T09:00:00Z\"`", "missing_input", step_id)
        until = values.get("until")
        if isinstance(until, str) and "${{" not in until:
            try:
                datetime.fromisoformat(until.strip().replace("Z", "+00:00"))
            except ValueError:
                self.add(f"{location}.until", f"`until` must be an ISO-8601 time, found {until!r}",
                         "write e.g. `2030-01-01T09:00:00Z` (or `+02:00` for another offset)", "input_type",
                         step_id)

    def _check_literal(self, value: Any, schema: Mapping[str, Any], location: str, step_id: str,
                       action: str, key: str) -> None:
        if _plainly_fits(value, schema):
            return
        checker = _schema_validator(schema)
        if checker is None:
            return
        errors = sorted(checker.iter_errors(value), key=lambda e: len(e.path))
        if not errors:
            return
        error = errors[0]
        if error.validator == "enum":
            hint = f"use one of {_quoted_list([str(v) for v in error.validator_value])}"
        elif error.validator == "type":
            hint = f"give a value of type {error.validator_value}"
        else:
            hint = f"see the schema of input `{key}` in the catalog entry of `{action}`"
        self.add(format_location(error.path, location), f"input `{key}` of `{action}`: {error.message}", hint,
                 "input_type", step_id)

    def _check_fed_type(self, body: str, target: Mapping[str, Any], location: str, step_id: str,
                        action: str, key: str) -> None:
        try:
            expression = compile_expression(body)
        except ExpressionError:
            return  # reported by the expression check
        if not isinstance(expression.tree, nodes.Getattr | nodes.Getitem | nodes.Name):
            return  # a computed value: its type is not known before the run
        refs = _references(body)
        if len(refs) != 1:
            return
        source = self._reference_schema(refs[0])
        if source is None:
            return
        got, want = _types_of(source), _types_of(target)
        if not _can_feed(got, want):
            read = ".".join((refs[0].root, *refs[0].path))
            self.add(location,
                     f"input `{key}` of `{action}` expects {' or '.join(sorted(want))}, "
                     f"but `{read}` is {' or '.join(sorted(got))}",
                     f"pass a value of type {' or '.join(sorted(want))}, or convert it with a filter, "
                     f"e.g. `${{{{ {read} | {'int' if 'integer' in want else 'string'} }}}}`",
                     "type_mismatch", step_id)

    def _reference_schema(self, ref: Reference) -> Mapping[str, Any] | None:
        """The JSON Schema of the value a reference reads, when the documents say it."""
        if ref.root == "inputs" and len(ref.path) >= 1 and self.inputs_schema:
            schema: Any = self.inputs_schema
            rest = ref.path
        elif ref.root == "steps" and len(ref.path) >= 3 and ref.path[1] == "output":
            spec = self.outputs.get(ref.path[0])
            if spec is None:
                return None
            schema, rest = spec.output, ref.path[2:]
        else:
            return None
        for part in rest:
            props = schema.get("properties") if isinstance(schema, Mapping) else None
            if not isinstance(props, Mapping) or part not in props:
                return None
            schema = props[part]
        return schema if isinstance(schema, Mapping) else None

    # -- expressions

    def _step_strings(self, step: Step) -> Iterator[tuple[str, str, bool]]:
        """(location in the step, text, whether the whole text is one bare expression) to check."""
        yield from ((loc, text, False) for loc, text in iter_strings(step.with_, "with"))
        if step.if_ is not None:
            yield "if", step.if_, "${{" not in step.if_
        if isinstance(step.for_each, str):
            yield "for_each", step.for_each, "${{" not in step.for_each
        if step.compensate is not None:
            found = iter_strings(step.compensate.with_, "compensate.with")
            yield from ((loc, text, False) for loc, text in found)

    def _check_expressions(self, ctx: _StepContext) -> None:
        step = ctx.step
        reads = self.dependencies.setdefault(step.id, set(step.needs))
        for location, text, bare in self._step_strings(step):
            if not bare and "${{" not in text:
                continue
            here = f"{ctx.where}.{location}"
            bodies = [text] if bare else [m.group(1) for m in EXPRESSION_RE.finditer(text)]
            if not bare and text.count("${{") > len(bodies):
                self.add(here, f"`{text}` opens `${{{{` without closing `}}}}`",
                         "close the expression with `}}`", "expression_syntax", step.id)
            for body in bodies:
                expression = self._compile(body, here, step.id)
                if expression is None:
                    continue
                self._check_references(ctx, location, here, body)
                if not _references(body):
                    self._check_constant(expression, here, step.id)
                if not location.startswith("compensate."):
                    reads.update(r.path[0] for r in _references(body) if r.root == "steps" and r.path)

    def _check_constant(self, expression: Expression, location: str, step_id: str) -> None:
        """An expression that reads no run data has the same value every run: compute it now, so
        a refused (`'a' * 10**9`) or failing (`1 / 0`) one is found before the run."""
        try:
            expression.evaluate({})
        except UnsafeExpression as exc:
            reason = str(exc).removeprefix("refused: ")
            self.add(location, f"refused expression: `{expression.source.strip()}`: {reason}",
                     "keep constant values small; compute large data in an action", "unsafe_expression",
                     step_id)
        except ExpressionError as exc:
            self.add(location, f"expression always fails: {exc}", "fix the constant expression",
                     "expression_syntax", step_id)

    def _compile(self, body: str, location: str, step_id: str) -> Expression | None:
        try:
            return compile_expression(body)
        except UnsafeExpression as exc:
            self.add(location, f"refused expression: {exc}",
                     "read data with dotted names (`steps.<id>.output.field`) and filters (`| length`)",
                     "unsafe_expression", step_id)
        except ExpressionError as exc:
            self.add(location, f"expression does not parse: {exc}",
                     "write e.g. `${{ steps.<id>.output.field }}` or `${{ inputs.amount > 500 }}`",
                     "expression_syntax", step_id)
        return None

    def _check_references(self, ctx: _StepContext, location: str, here: str, body: str) -> None:
        step = ctx.step
        in_compensation = location.startswith("compensate.")
        for ref in _references(body):
            text = ".".join((ref.root, *ref.path))
            if ref.root == "inputs":
                self._check_input_reference(ref, here, step.id)
            elif ref.root == "steps":
                self._check_step_reference(ref, here, ctx, text, body, in_compensation)
            elif ref.root == "item":
                if step.for_each is None:
                    self.add(here, f"`{text}` is only defined in a step with `for_each`, and step "
                             f"`{step.id}` has none",
                             "add `for_each: \"${{ ... }}\"` to run the step once per item, or read "
                             "`inputs`/`steps` instead", "unknown_reference_root", step.id)
            elif ref.root == "secrets":
                self.add(here, f"`{text}` reads a secret in the workflow document",
                         "secrets belong in the catalog's `invoke` templates (e.g. a header "
                         "`Bearer ${{ secrets.CRM_TOKEN }}`), never in a workflow",
                         "secret_in_document", step.id)
            else:
                hint = did_you_mean(ref.root, _ROOTS) or "expressions read `inputs.<name>`, " \
                    "`steps.<id>.output.<field>`, `steps.<id>.status` and, with `for_each`, `item`"
                self.add(here, f"`{text}` reads `{ref.root}`, which expressions do not know", hint,
                         "unknown_reference_root", step.id)

    def _check_input_reference(self, ref: Reference, here: str, step_id: str) -> None:
        if not ref.path:
            return
        name = ref.path[0]
        schema = self.inputs_schema
        if schema is None:
            self.add(here, f"`inputs.{name}` is read, but the workflow declares no `inputs`",
                     f"declare it: `inputs: {{type: object, properties: {{{name}: {{type: string}}}}}}`",
                     "undeclared_input", step_id)
            return
        props = schema.get("properties")
        props = props if isinstance(props, Mapping) else {}
        if name in props or schema.get("additionalProperties") not in (None, False):
            return
        hint = did_you_mean(name, list(props)) or f"add `{name}` under `inputs.properties`"
        self.add(here, f"`inputs.{name}` is read, but `inputs` does not declare `{name}`", hint,
                 "undeclared_input", step_id)

    def _check_step_reference(self, ref: Reference, here: str, ctx: _StepContext, text: str, body: str,
                              in_compensation: bool) -> None:
        step_id = ctx.step.id
        if not ref.path:
            return
        target = ref.path[0]
        if target not in self.step_ids:
            hint = did_you_mean(target, self.step_ids) or f"the step ids are {_quoted_list(self.step_ids)}"
            self.add(here, f"`{text}` reads step `{target}`, but no step has that id", hint,
                     "unknown_step", step_id)
            return
        if target == step_id and not in_compensation:
            self.add(here, f"`{text}` reads the step's own result before it has run",
                     "read another step's output, or move this into `compensate.with`",
                     "self_dependency", step_id)
            return
        if len(ref.path) < 2:
            return
        part = ref.path[1]
        if part not in _STEP_FIELDS:
            hint = did_you_mean(part, _STEP_FIELDS) or (
                f"write `steps.{target}.output.<field>` or `steps.{target}.status`")
            self.add(here, f"`{text}`: a step has `output` and `status`, not `{part}`", hint,
                     "unknown_output_field", step_id)
            return
        if part == "output" and not in_compensation:
            self._check_skippable_read(target, here, ctx, text, body)
        spec = self.outputs.get(target)
        if part != "output" or len(ref.path) < 3 or spec is None:
            return
        closed = _closed_properties(spec.output)
        if closed is not None and ref.path[2] not in closed:
            name = ref.path[2]
            hint = did_you_mean(name, list(closed)) or f"`{spec.name}` returns {_quoted_list(list(closed))}"
            self.add(here, f"`{text}`: `{spec.name}` (step `{target}`) returns no field `{name}`", hint,
                     "unknown_output_field", step_id)

    def _check_skippable_read(self, target: str, here: str, ctx: _StepContext, text: str, body: str) -> None:
        """Warn when a step reads the output of a step that may be skipped (skips don't spread)."""
        condition = self.conditions.get(target)
        if condition is None or (here, target) in self._warned_reads:
            return
        own = self.conditions.get(ctx.step.id)
        if own == condition or re.search(r"\|\s*(default|d)\b", body):
            return  # same branch, or the read has a fallback
        self._warned_reads.add((here, target))
        self.add(here,
                 f"`{text}` is read, but step `{target}` runs only if `{condition}`; when it is skipped "
                 "there is no output and this read fails",
                 f"give this step the same `if`, or add a fallback: `${{{{ {text} | default('') }}}}`",
                 "skippable_output", ctx.step.id, WARNING)

    # -- conditions, loops, compensation

    def _check_condition(self, ctx: _StepContext) -> None:
        step = ctx.step
        if step.if_ is None:
            return
        body = condition_body(step.if_)
        if "${{" in body:
            return  # a condition built from text pieces; its parts are checked as expressions
        try:
            tree = compile_expression(body).tree
        except ExpressionError:
            return
        if isinstance(tree, nodes.Const):
            verdict = "always runs" if tree.value else "never runs"
            constant = json.dumps(tree.value, default=str)
            self.add(f"{ctx.where}.if", f"the condition is the constant {constant}: the step {verdict}",
                     "remove `if`, or test run data, e.g. \"${{ inputs.amount > 500 }}\"",
                     "constant_condition", step.id, WARNING)

    def _check_for_each(self, ctx: _StepContext) -> None:
        step = ctx.step
        if step.concurrency is not None and step.for_each is None:
            self.add(f"{ctx.where}.concurrency", "`concurrency` has no effect without `for_each`",
                     "remove `concurrency`, or add `for_each` to run the step once per item",
                     "concurrency_without_for_each", step.id, WARNING)
        if not isinstance(step.for_each, str):
            return
        body = whole_expression(step.for_each)
        body = body if body is not None else (step.for_each if "${{" not in step.for_each else None)
        if body is None:
            self._for_each_not_list(ctx.where, step.id, step.for_each)
            return
        try:
            tree = compile_expression(body).tree
        except ExpressionError:
            return
        if isinstance(tree, nodes.Const) and not isinstance(tree.value, list | tuple):
            self._for_each_not_list(ctx.where, step.id, tree.value)
        elif isinstance(tree, nodes.Dict):
            self._for_each_not_list(ctx.where, step.id, "{...}")
        else:
            ref_schema = None
            refs = _references(body)
            if isinstance(tree, nodes.Getattr | nodes.Getitem | nodes.Name) and len(refs) == 1:
                ref_schema = self._reference_schema(refs[0])
            got = _types_of(ref_schema)
            if got and "array" not in got:
                self.add(f"{ctx.where}.for_each",
                         f"`for_each` must yield a list, but `{body.strip()}` is {' or '.join(sorted(got))}",
                         "point `for_each` at an array field", "for_each_not_list", step.id)

    def _check_compensation(self, ctx: _StepContext) -> None:
        step, compensate = ctx.step, ctx.step.compensate
        if compensate is None:
            return
        where = f"{ctx.where}.compensate"
        spec = self.catalog.get(compensate.action)
        if spec is None:
            self._unknown_action(f"{where}.action", compensate.action, step.id)
            return
        # like the runtime: a missing compensation input is filled by name from the step's own
        # output or `with`, so it is only missing when neither has a field of that name
        autofill = set(step.with_)
        if ctx.spec is not None:
            autofill |= set(ctx.spec.output_properties)
        self._check_with(spec, compensate.with_, f"{where}.with", step.id, autofill=autofill)
        declared = ctx.spec.compensation if ctx.spec is not None else None
        if declared and declared != compensate.action:
            self.add(f"{where}.action",
                     f"the catalog says `{step.action}` is undone by `{declared}`, "
                     f"but this step uses `{compensate.action}`",
                     f"use `{declared}` unless you mean to undo it differently", "compensation_mismatch",
                     step.id, WARNING)
