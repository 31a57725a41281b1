"""Render the prompt templates in `planner/prompts/` and tell which version of them wrote a plan."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from workflow.catalog import ActionSpec
from workflow.errors import Problem

# inside the package, so an installed (not editable) copy has them too
PROMPTS_DIR = Path(os.environ.get("OVERTURE_PROMPTS_DIR") or Path(__file__).resolve().parent / "prompts")


@lru_cache(maxsize=4)
def _environment(folder: str) -> Environment:
    # these are texts for a model, not HTML: no autoescape; StrictUndefined so a typo fails loudly
    env = Environment(loader=FileSystemLoader(folder), undefined=StrictUndefined, autoescape=False,
                      keep_trailing_newline=True)
    # plain JSON: `tojson` escapes < > & ' for HTML, which costs tokens and reads worse
    env.filters["json"] = lambda value: json.dumps(value, ensure_ascii=False)
    env.filters["fields"] = schema_fields
    return env


def _type_text(schema: Any) -> str:
    if not isinstance(schema, dict):
        return "any"
    if "enum" in schema and isinstance(schema["enum"], list):
        return "|".join(json.dumps(v, ensure_ascii=False) for v in schema["enum"])
    kind = schema.get("type", "any")
    if isinstance(kind, list):
        kind = "|".join(str(k) for k in kind)
    if kind == "array":
        return f"[{_type_text(schema.get('items'))}]"
    if kind == "object" and isinstance(schema.get("properties"), dict):
        return "{" + schema_fields(schema) + "}"
    return str(kind)


def schema_fields(schema: Any) -> str:
    """A JSON Schema object as compact text: `email*: string, seats: integer (how many)`; `*` marks
    required fields. A third of the tokens of the JSON, which matters for small local models."""
    if not isinstance(schema, dict) or not isinstance(schema.get("properties"), dict):
        return ""
    required = set(schema.get("required") or [])
    parts = []
    for name, prop in schema["properties"].items():
        text = f"{name}{'*' if name in required else ''}: {_type_text(prop)}"
        note = prop.get("description") if isinstance(prop, dict) else None
        if note:
            text += f" ({note})"
        parts.append(text)
    return ", ".join(parts)


@lru_cache(maxsize=4)
def _version(folder: str) -> str:
    root = Path(folder)
    digest = hashlib.sha256()
    for path in sorted(root.glob("*.j2")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    base = (root / "VERSION").read_text(encoding="utf-8").strip() if (root / "VERSION").exists() else "0"
    return f"{base}+{digest.hexdigest()[:8]}"


def _unfence(text: str) -> str:
    # the person's text sits between <<< and >>> markers; it may not close them early
    return text.replace("<<<", "‹‹‹").replace(">>>", "›››")


class Prompts:
    """The templates of one folder (default `planner/prompts/`, or `OVERTURE_PROMPTS_DIR`)."""

    def __init__(self, folder: str | Path | None = None) -> None:
        self.folder = str(Path(folder) if folder else PROMPTS_DIR)
        if not Path(self.folder).is_dir():
            from workflow.errors import OvertureError

            raise OvertureError(f"prompt templates not found in {self.folder}; set OVERTURE_PROMPTS_DIR")

    @property
    def version(self) -> str:
        """`VERSION` plus a hash of the templates, e.g. `1+3fa2c1d0`."""
        return _version(self.folder)

    def render(self, name: str, **values: Any) -> str:
        return _environment(self.folder).get_template(name).render(**values).strip() + "\n"

    def system(self, actions: Sequence[ActionSpec], *, schema: dict[str, Any] | None = None) -> str:
        """The planner's rules, the catalog (planning facts only) and examples; `schema` for JSON mode."""
        return self.render("system.j2", actions=list(actions), json_mode=schema is not None, schema=schema)

    def plan(self, request: str) -> str:
        return self.render("plan.j2", request=_unfence(request))

    def repair(self, problems: Sequence[Problem]) -> str:
        return self.render("repair.j2", problems=list(problems))

    def edit(self, plan: dict[str, Any], instruction: str) -> str:
        return self.render("edit.j2", plan=plan, instruction=_unfence(instruction))

    def explain(self, document: dict[str, Any], actions: Sequence[ActionSpec]) -> str:
        return self.render("explain.j2", document=json.dumps(document, indent=1, ensure_ascii=False),
                           actions=list(actions))
