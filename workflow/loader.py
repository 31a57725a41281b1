"""Reading and writing workflow documents and catalogs as YAML or JSON.

Key order is kept both ways (PyYAML and json keep insertion order; we never sort), so
load → save → load gives an equal document and a person's diff stays small.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import ValidationError

from workflow.catalog import Catalog, CatalogFile
from workflow.document import Workflow
from workflow.errors import DocumentError, Problem
from workflow.json_values import MAX_DEPTH, check_json_values

Format = Literal["yaml", "json"]


def format_location(loc: Iterable[int | str], prefix: str = "") -> str:
    """Turn a pydantic location tuple into `steps[2].with.account_id`."""
    text = prefix
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "(document)"


def problems_from_validation(exc: ValidationError, prefix: str = "") -> list[Problem]:
    """pydantic errors as Problems with spec field names (`with`, not `with_`)."""
    problems = []
    for err in exc.errors(include_url=False):
        loc = [p for p in err["loc"] if not (isinstance(p, str) and p in {"http", "python", "smtp", "core"})]
        loc = [p.rstrip("_") if isinstance(p, str) else p for p in loc]
        found = err.get("input")
        kind = err["type"]
        message = err["msg"]
        hint = None
        if kind == "extra_forbidden":
            message = f"unknown field `{loc[-1]}`"
            hint = "remove it or check its spelling against the spec"
        elif kind == "missing":
            message = f"required field `{loc[-1]}` is missing"
        elif found is not None and not isinstance(found, dict | list):
            message = f"{message} (found {found!r})"
        problems.append(Problem(format_location(loc, prefix), message, hint, code=kind))
    return problems


def load_yaml(text: str) -> Any:
    """YAML text as data, read by libyaml (C) when PyYAML has it: ~8x faster than PyYAML's own
    reader (a 50-action catalog: 8 ms instead of 65 ms, paid by every command that loads it). Both
    build the data with the same safe constructor; on any complaint the pure-Python loader reads the
    text again, so that a bad document gets its messages, which name the character or the alias
    (libyaml's do not), and too deep a nesting its RecursionError."""
    fast = getattr(yaml, "CSafeLoader", None)
    if fast is not None:
        try:
            return yaml.load(text, Loader=fast)
        except (yaml.YAMLError, UnicodeEncodeError):  # the latter: a lone surrogate, which C cannot take
            pass
    return yaml.safe_load(text)


_load_yaml = load_yaml  # its name before the lexicon used it too


def parse_text(text: str, *, source: str = "<text>") -> Any:
    """Parse YAML or JSON text (JSON is YAML, but json gives better errors for .json files)."""
    try:
        data = json.loads(text) if source.endswith(".json") else load_yaml(text)
    except json.JSONDecodeError as exc:
        raise DocumentError(f"not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
                            path=source) from None
    except RecursionError:
        raise DocumentError(f"it is nested too deeply to read; nest at most {MAX_DEPTH} levels",
                            path=source) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise DocumentError(f"not valid YAML{where}: {problem}", path=source) from None
    limit = MAX_EXPANDED_VALUES + len(text)
    for problem in check_json_values(data, first=True, max_values=limit):
        if problem.code == "too_many_values":
            raise DocumentError(f"its anchors and aliases (`&name`, `*name`) expand to more than {limit:,} "
                                "values (or refer to themselves); repeat less, or write the repeated parts "
                                "out", path=source)
        aliased = problem.code == "too_deep" and "*" in text
        why = " (is a YAML alias used inside its own anchor?)" if aliased else ""
        raise DocumentError(f"{format_location(problem.path)}: {problem.message}{why}; {problem.hint}",
                            path=source)
    return data


MAX_EXPANDED_VALUES = 1_000_000
"""How many values a YAML document may hold once its aliases are expanded (beyond one per character
of its text): a few lines of nested aliases ("billion laughs") expand to billions, which every
consumer that walks or copies the data would then spend its memory and time on."""


def read_data(path: str | Path) -> Any:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DocumentError("file not found", path=str(path)) from None
    except IsADirectoryError:
        raise DocumentError("is a directory, expected a file", path=str(path)) from None
    except UnicodeDecodeError:
        raise DocumentError("not UTF-8 text", path=str(path)) from None
    return parse_text(text, source=str(path))


def workflow_from_data(data: Any, *, source: str | None = None) -> Workflow:
    """Build a Workflow, raising DocumentError with every field problem on a bad shape."""
    if not isinstance(data, dict):
        found = kind_of(data)
        raise DocumentError(f"expected a mapping with `name` and `steps` at the top, found {found}",
                            path=source)
    try:
        return Workflow.model_validate(data)
    except ValidationError as exc:
        raise DocumentError("not a valid workflow document", path=source,
                            problems=problems_from_validation(exc)) from None


def load_workflow(path: str | Path) -> Workflow:
    return workflow_from_data(read_data(path), source=str(path))


def loads_workflow(text: str, *, source: str = "<text>") -> Workflow:
    return workflow_from_data(parse_text(text, source=source), source=source)


def dump_data(data: Any, fmt: Format = "yaml") -> str:
    if fmt == "json":
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


def dumps_workflow(workflow: Workflow, fmt: Format = "yaml") -> str:
    return dump_data(workflow.to_data(), fmt)


def save_workflow(workflow: Workflow, path: str | Path, fmt: Format | None = None) -> None:
    path = Path(path)
    fmt = fmt or ("json" if path.suffix == ".json" else "yaml")
    text = dumps_workflow(workflow, fmt)
    try:
        path.write_text(text, encoding="utf-8")
    except IsADirectoryError:
        raise DocumentError("is a directory; name a file to write the document to", path=str(path)) from None
    except FileNotFoundError:
        raise DocumentError(f"cannot write: the folder {path.parent} does not exist",
                            path=str(path)) from None
    except OSError as exc:
        raise DocumentError(f"cannot write: {exc.strerror or exc}", path=str(path)) from None


def catalog_from_data(data: Any, *, source: str = "<catalog>") -> Catalog:
    if isinstance(data, list):
        data = {"actions": data}
    if not isinstance(data, dict):
        found = kind_of(data)
        raise DocumentError(f"expected a mapping with `actions: [...]`, found {found}", path=source)
    try:
        parsed = CatalogFile.model_validate(data)
    except ValidationError as exc:
        raise DocumentError("not a valid action catalog", path=source,
                            problems=problems_from_validation(exc)) from None
    problems: list[Problem] = []
    first: dict[str, int] = {}
    dupes: set[str] = set()
    for index, action in enumerate(parsed.actions):
        if action.name in first:
            dupes.add(action.name)
            problems.append(Problem(
                f"actions[{index}].name", f"action `{action.name}` is already defined by "
                f"actions[{first[action.name]}]", "give every action its own name", code="duplicate_action"))
        else:
            first[action.name] = index
    if dupes:
        raise DocumentError(f"action names must be unique; repeated: {', '.join(sorted(dupes))}",
                            path=source, problems=problems)
    return Catalog(parsed.actions, sources=[source])


def kind_of(data: Any) -> str:
    """A parsed value's kind, for messages: its type's name, or that there is nothing."""
    return "nothing (the document is empty)" if data is None else type(data).__name__


def _catalog_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in {".yaml", ".yml", ".json"})
        if not files:
            raise DocumentError("the folder holds no .yaml, .yml or .json catalog files", path=str(path))
        return files
    return [path]


def catalog_problems(data: Any) -> list[Problem]:
    """What `catalog_from_data` lets through but a catalog file or upload must not: an action named
    `core.*` (the built-ins cannot be redefined, so the catalog would silently drop it) and an
    `input` or `output` that is not a JSON Schema (the validator would silently skip checking against
    it). `data` is catalog data that `catalog_from_data` accepted."""
    actions = data.get("actions") if isinstance(data, dict) else data
    problems = []
    for index, action in enumerate(actions if isinstance(actions, list) else []):
        if not isinstance(action, dict):
            continue
        name = action.get("name")
        if isinstance(name, str) and name.startswith("core."):
            problems.append(Problem(
                f"actions[{index}].name",
                f"`{name}` is a built-in action; a catalog cannot define or redefine `core.*` actions",
                f"rename it into a namespace of your own (e.g. `ops.{name[5:]}`) or remove it",
                code="reserved_name"))
        for field in ("input", "output"):
            schema = action.get(field)
            if not isinstance(schema, dict):
                continue
            try:
                Draft202012Validator.check_schema(schema)
            except SchemaError as exc:
                problems.append(Problem(
                    format_location(exc.absolute_path, f"actions[{index}].{field}"),
                    f"not a valid JSON Schema: {exc.message}",
                    "write it as e.g. `{type: object, properties: {name: {type: string}}}`",
                    code="invalid_schema"))
    return problems


def load_catalog(*paths: str | Path) -> Catalog:
    """Load a catalog split over any number of files (or folders of files); names must be unique.
    Each path may list several, separated by commas; a file named twice is read once."""
    parts = [part.strip() for raw in paths for part in str(raw).split(",")]
    if paths and not any(parts):
        raise DocumentError("the catalog path is empty; name a catalog file or folder")
    catalog = Catalog()
    seen: dict[str, str] = {}
    read: set[Path] = set()
    for part in filter(None, parts):  # a stray comma ("a.yaml,") would otherwise read the current folder
        for file in _catalog_files(Path(part)):
            if file.resolve() in read:
                continue
            read.add(file.resolve())
            data = read_data(file)
            piece = catalog_from_data(data, source=str(file))
            problems = catalog_problems(data)
            if problems:
                raise DocumentError("not a valid action catalog", path=str(file), problems=problems)
            for action in piece.user_actions():
                if action.name in seen:
                    raise DocumentError(
                        f"action `{action.name}` is defined twice (also in {seen[action.name]})",
                        path=str(file),
                    )
                seen[action.name] = str(file)
            catalog = catalog.merged(piece)
    return catalog
