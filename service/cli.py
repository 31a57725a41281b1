"""The `overture` command line.

Each stage adds its own commands through a `register(app)` function in a `service/cli_*.py`
module; this module holds the contract commands (validate, graph, catalog show) and the error
handling every command shares: an `OvertureError` becomes one clear line on stderr and a
non-zero exit, never a traceback. Heavy imports stay inside the command functions so that
`overture --help` starts fast.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from service.cli_options import fail

if TYPE_CHECKING:
    from workflow.catalog import Catalog

app = typer.Typer(
    name="overture",
    help="Plain English → validated, durable, self-optimizing workflows.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
catalog_app = typer.Typer(help="Inspect action catalogs.", no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")

_PLUGIN_MODULES = (
    "service.cli_plan",
    "service.cli_llm",
    "service.cli_run",
    "service.cli_optimize",
    "service.cli_service",
    "service.cli_triggers",
    "service.cli_demo",
    "service.cli_worker",
)

CatalogOption = Annotated[
    list[str],
    typer.Option(
        "--catalog", "-c",
        help="Catalog file or folder (repeat, or separate with commas, for a catalog split over files).",
        envvar="OVERTURE_CATALOG",
    ),
]


class DocFormat(StrEnum):
    text = "text"
    json = "json"


class GraphFormat(StrEnum):
    mermaid = "mermaid"
    json = "json"


def load_catalog_option(paths: list[str]) -> Catalog:
    from workflow.loader import load_catalog

    if not paths:
        fail("no catalog given; pass --catalog FILE (or set OVERTURE_CATALOG)")
    return load_catalog(*paths)


def called_actions(document: Any) -> list[tuple[str, str]]:
    """(step id, action) for every action a workflow document's data names: each step's own,
    its undo's and its alternatives'. Malformed parts are left out (the validator reports them)."""
    found: list[tuple[str, str]] = []
    steps = document.get("steps") if isinstance(document, dict) else None
    for step in steps if isinstance(steps, list) else []:
        if not isinstance(step, dict):
            continue
        step_id = str(step.get("id", "?"))
        undo = step.get("compensate")
        alternatives = step.get("alternatives")
        for action in [step.get("action"), undo.get("action") if isinstance(undo, dict) else None,
                       *(alternatives if isinstance(alternatives, list) else [])]:
            if isinstance(action, str) and action:
                found.append((step_id, action))
    return found


def core_only(document: Any) -> bool:
    """Whether a workflow document's data has steps and calls only `core.*` built-ins (which every
    catalog has: such a workflow needs no catalog)."""
    actions = called_actions(document)
    return bool(actions) and all(action.startswith("core.") for _, action in actions)


def catalog_for(paths: list[str], document: Any = None) -> Catalog:
    """The catalog `--catalog` names; without one, the `core.*` built-ins alone when the document
    calls nothing else, else one line naming a step that needs the catalog."""
    from workflow.catalog import Catalog

    if paths or document is None:
        return load_catalog_option(paths)
    if core_only(document):
        return Catalog()
    other = next(((s, a) for s, a in called_actions(document) if not a.startswith("core.")), None)
    why = f": step `{other[0]}` calls `{other[1]}`, which is not a core.* action" if other else ""
    fail(f"no catalog given{why}; pass --catalog FILE (or set OVERTURE_CATALOG)")


@app.command()
def validate(
    file: Annotated[Path, typer.Argument(help="Workflow document (YAML or JSON).")],
    catalog: CatalogOption = [],  # noqa: B006 - typer reads the default, it is never mutated
    format: Annotated[DocFormat, typer.Option("--format", "-f", help="text for people, json for tools")] = (
        DocFormat.text
    ),
) -> None:
    """Check a workflow document against a catalog; list every problem. Exit 1 when invalid."""
    from workflow.loader import read_data
    from workflow.validator import validate as run_validator

    data = read_data(file)
    cat = catalog_for(catalog, data)
    report = run_validator(data, cat)
    if format is DocFormat.json:
        typer.echo(json.dumps({"file": str(file), **report.to_data()}, indent=2))
    else:
        errors, warnings = report.errors, report.warnings
        if report.ok:
            typer.echo(f"{file}: valid" + (f" ({len(warnings)} warning{'s' * (len(warnings) != 1)})"
                                           if warnings else ""))
        else:
            typer.echo(f"{file}: {len(errors)} problem{'s' * (len(errors) != 1)}")
        for problem in [*errors, *warnings]:
            tag = "" if problem.severity == "error" else "warning: "
            hint = f"\n      hint: {problem.hint}" if problem.hint else ""
            typer.echo(f"  {tag}{problem.location}: {problem.message}{hint}")
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def graph(
    file: Annotated[Path, typer.Argument(help="Workflow document (YAML or JSON).")],
    format: Annotated[GraphFormat, typer.Option("--format", "-f")] = GraphFormat.mermaid,
) -> None:
    """Print the dependency graph as Mermaid (GitHub renders it) or JSON."""
    from workflow.errors import DocumentError
    from workflow.graph import find_cycle, to_json, to_mermaid
    from workflow.loader import read_data, workflow_from_data

    data = read_data(file)  # a missing or unparseable file is a usage error (2)
    try:
        workflow = workflow_from_data(data, source=str(file))
    except DocumentError as exc:  # it parsed, but it is not a workflow document: invalid (1)
        fail(str(exc), 1)
    cycle = find_cycle(workflow)
    if cycle:
        fail(f"{file}: the steps form a cycle: {' → '.join([*cycle, cycle[0]])}; remove one of these needs",
             1)
    if format is GraphFormat.json:
        typer.echo(json.dumps(to_json(workflow), indent=2))
    else:
        typer.echo(to_mermaid(workflow), nl=False)


def _schema_fields(schema: dict[str, Any]) -> str:
    props = schema.get("properties") or {}
    required = set(schema.get("required") or [])
    if not props:
        return "-"
    parts = []
    for name, spec in props.items():
        kind = spec.get("type", "any") if isinstance(spec, dict) else "any"
        parts.append(f"{name}{'*' if name in required else ''}: {kind}")
    return ", ".join(parts)


@catalog_app.command("show")
def catalog_show(
    paths: Annotated[list[str], typer.Argument(help="Catalog files or folders.")],
    format: Annotated[DocFormat, typer.Option("--format", "-f")] = DocFormat.text,
    core: Annotated[bool, typer.Option(help="Include the core.* built-ins.")] = True,
) -> None:
    """List the actions: inputs (* = required), outputs, compensations and how each is invoked."""
    from rich.console import Console
    from rich.table import Table

    cat = load_catalog_option(paths)
    actions = [a for a in cat if core or not a.is_core]
    if format is DocFormat.json:
        typer.echo(json.dumps(
            [a.model_dump(mode="json", exclude_none=True) for a in actions], indent=2
        ))
        return
    table = Table(title=f"{len(actions)} actions", show_lines=False, expand=False)
    for column in ("action", "inputs (* required)", "outputs", "undo", "invoke"):
        table.add_column(column, overflow="fold")
    for action in actions:
        table.add_row(
            f"[bold]{action.name}[/bold]\n{action.description}",
            _schema_fields(action.input),
            _schema_fields(action.output),
            action.compensation or "",
            action.invoke.kind if action.invoke else "(plan only)",
        )
    Console(width=max(100, Console().width)).print(table)


@app.command()
def version() -> None:
    """Print the version."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        typer.echo(dist_version("overture"))
    except PackageNotFoundError:
        typer.echo("overture (not installed)")


def _register_plugins() -> None:
    for name in _PLUGIN_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue  # that stage has no CLI yet
            raise
        module.register(app)


_register_plugins()


def main() -> None:
    """Console-script entry point: run the app, turning our errors into one clear line."""
    from workflow.errors import InvalidWorkflow, OvertureError

    try:
        code = app(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("aborted", err=True)
        sys.exit(130)
    except InvalidWorkflow as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except OvertureError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except Exception as exc:  # click usage errors and the unexpected
        # typer may bundle its own click; recognise usage errors by shape, not by class
        show, exit_code = getattr(exc, "show", None), getattr(exc, "exit_code", None)
        if callable(show) and isinstance(exit_code, int):
            show()
            sys.exit(exit_code)
        if os.environ.get("OVERTURE_DEBUG"):
            raise
        detail = f"{type(exc).__name__}: {exc}"
        typer.echo(f"internal error: {detail} (set OVERTURE_DEBUG=1 for details)", err=True)
        sys.exit(3)


if __name__ == "__main__":
    main()
