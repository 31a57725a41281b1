"""`overture edit` and `overture explain`: change a plan by a sentence, or read it in plain English.

Both use the model behind `OPENAI_API_KEY` / `OPENAI_BASE_URL` (`OVERTURE_MODEL` names it) when one
is configured, and work offline otherwise; `--planner llm|offline|auto` chooses. Heavy imports
(openai, the planners) stay inside the commands so the CLI starts fast.
"""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from planner.llm_settings import LLMSettings
    from workflow.catalog import Catalog
    from workflow.document import Workflow

CatalogOption = Annotated[
    list[str],
    typer.Option("--catalog", "-c", envvar="OVERTURE_CATALOG",
                 help="Catalog file or folder (repeat, or separate with commas)."),
]
ModelOption = Annotated[
    str | None,
    typer.Option("--model", "-m", envvar="OVERTURE_MODEL",
                 help="Model name at the endpoint (OPENAI_BASE_URL, or OpenAI with OPENAI_API_KEY)."),
]


class PlannerChoice(StrEnum):
    auto = "auto"
    llm = "llm"
    offline = "offline"


class DocFormat(StrEnum):
    yaml = "yaml"
    json = "json"


PlannerOption = Annotated[
    PlannerChoice,
    typer.Option("--planner", "-p", envvar="OVERTURE_PLANNER",
                 help="llm, offline, or auto: the LLM when an endpoint is configured, else offline."),
]


def _settings(model: str | None) -> LLMSettings:
    from planner.llm_settings import LLMSettings

    return LLMSettings(model=model) if model else LLMSettings()


def _catalog(paths: list[str]) -> Catalog:
    from workflow.loader import load_catalog

    if not paths:
        typer.echo("error: no catalog given; pass --catalog FILE (or set OVERTURE_CATALOG)", err=True)
        raise typer.Exit(2)
    return load_catalog(*paths)


def _load(file: Path) -> Workflow:
    """The document: a missing or unparseable file is a usage error (2); a file that parses but is
    not a workflow document is an invalid document (1)."""
    from workflow.errors import DocumentError
    from workflow.loader import read_data, workflow_from_data

    data = read_data(file)
    try:
        return workflow_from_data(data, source=str(file))
    except DocumentError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def edit(
    file: Annotated[Path, typer.Argument(help="Workflow document to change (YAML or JSON).")],
    instruction: Annotated[str, typer.Argument(help='What to change, e.g. "retry the charge 3 times".')],
    catalog: CatalogOption = [],  # noqa: B006 - typer reads the default, it is never mutated
    planner: PlannerOption = PlannerChoice.auto,
    model: ModelOption = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the document here.")] = None,
    in_place: Annotated[bool, typer.Option("--in-place", "-i", help="Overwrite FILE.")] = False,
    format: Annotated[DocFormat | None, typer.Option("--format", "-f",
                                                     help="Document format (default: FILE's).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object: document, diff, "
                                                         "changes, warnings, planner.")] = False,
) -> None:
    """Change a workflow by a plain-English instruction; print the new document and a readable diff.

    The document goes to stdout (or --output / --in-place), the diff to stderr.
    """
    from planner.select import edit_plan
    from workflow.loader import dumps_workflow, save_workflow

    if in_place and output is not None:
        raise typer.BadParameter("give --output FILE or --in-place, not both", param_hint="--output")
    cat = _catalog(catalog)
    old = _load(file)
    result = edit_plan(old, instruction, cat, mode=planner.value, settings=_settings(model))
    fmt = format.value if format else ("json" if file.suffix == ".json" else "yaml")
    if as_json:
        typer.echo(json.dumps({
            "planner": result.planner, "changes": result.changes, "warnings": result.warnings,
            "diff": result.diff.to_data(), "workflow": result.workflow.to_data(),
        }, indent=2, ensure_ascii=False))
    target = file if in_place else output
    if target is not None:
        out_fmt = format.value if format else ("json" if target.suffix == ".json" else "yaml")
        save_workflow(result.workflow, target, fmt=out_fmt)  # type: ignore[arg-type]
    elif not as_json:
        typer.echo(dumps_workflow(result.workflow, fmt), nl=False)  # type: ignore[arg-type]
    if not as_json:
        err = sys.stderr
        print(f"edited by the {result.planner} planner: {result.diff.summary()}", file=err)
        for change in result.changes:
            print(f"  {change}", file=err)
        print(result.diff.render(), end="", file=err)
        for warning in result.warnings:
            print(f"warning: {warning}", file=err)
        if target is not None:
            print(f"wrote {target}", file=err)


def explain(
    file: Annotated[Path, typer.Argument(help="Workflow document (YAML or JSON).")],
    catalog: CatalogOption = [],  # noqa: B006 - typer reads the default, it is never mutated
    planner: PlannerOption = PlannerChoice.auto,
    model: ModelOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print {text, planner, warnings} as JSON.")] = False,
) -> None:
    """Explain a workflow in plain English (the LLM when available, a template otherwise)."""
    from planner.llm_explain import explain_plan
    from workflow.validator import validate

    cat = _catalog(catalog)
    workflow = _load(file)
    report = validate(workflow, cat)
    if report.errors:  # explain it anyway, but do not let a broken plan read as a sound one
        first = report.errors[0]
        more = f" (and {len(report.errors) - 1} more)" if len(report.errors) > 1 else ""
        typer.echo(f"warning: {file} is not valid against the catalog: {first.location}: {first.message}"
                   f"{more}; `overture validate` lists every problem", err=True)
    result = explain_plan(workflow, cat, mode=planner.value, settings=_settings(model))
    if as_json:
        typer.echo(json.dumps({"text": result.text, "planner": result.planner, "warnings": result.warnings},
                              indent=2, ensure_ascii=False))
        return
    typer.echo(result.text.rstrip("\n"))
    for warning in result.warnings:
        typer.echo(f"warning: {warning}", err=True)


def register(app: typer.Typer) -> None:
    """Add `edit` and `explain` to the `overture` app."""
    app.command("edit")(edit)
    app.command("explain")(explain)
