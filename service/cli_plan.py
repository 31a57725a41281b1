"""`overture plan`: plain English → a validated workflow document (offline planner)."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer


class PlanFormat(str, Enum):  # noqa: UP042 - typer reads str-valued enums
    yaml = "yaml"
    json = "json"
    mermaid = "mermaid"


def _request_text(request: str | None, file: Path | None) -> str:
    if file is not None:
        try:
            return file.read_text(encoding="utf-8")
        except OSError as exc:
            raise typer.BadParameter(f"cannot read {file}: {exc.strerror}", param_hint="--file") from None
        except UnicodeDecodeError:
            raise typer.BadParameter(f"{file} is not UTF-8 text; save the request as UTF-8",
                                     param_hint="--file") from None
    if request is None or request == "-":
        if sys.stdin.isatty():
            raise typer.BadParameter(
                "give the request as an argument, with --file, or on stdin", param_hint="REQUEST"
            )
        return sys.stdin.read()
    return request


def register(app: typer.Typer) -> None:
    @app.command()
    def plan(
        request: Annotated[
            str | None, typer.Argument(help="What the workflow should do ('-' or none: stdin).")
        ] = None,
        catalog: Annotated[
            list[str],
            typer.Option(
                "--catalog", "-c", envvar="OVERTURE_CATALOG", help="Catalog file or folder (repeatable)."
            ),
        ] = [],  # noqa: B006
        format: Annotated[
            PlanFormat, typer.Option("--format", "-f", help="yaml, json or mermaid")
        ] = PlanFormat.yaml,
        explain: Annotated[
            bool, typer.Option("--explain", help="Also print the plan in plain English.")
        ] = False,
        file: Annotated[Path | None, typer.Option("--file", help="Read the request from this file.")] = None,
        planner: Annotated[
            str,
            typer.Option(
                "--planner",
                "-p",
                envvar="OVERTURE_PLANNER",
                help="offline, llm, or auto (the LLM when OPENAI_API_KEY/OPENAI_BASE_URL is set, "
                "else offline).",
            ),
        ] = "auto",
    ) -> None:
        """Plan a workflow from plain English (offline planner, or the LLM with --planner llm|auto)."""
        from planner.offline import PlanningError
        from workflow.errors import OvertureError
        from workflow.graph import to_mermaid
        from workflow.loader import dumps_workflow, load_catalog

        if not catalog:
            typer.echo("error: no catalog given; pass --catalog FILE (or set OVERTURE_CATALOG)", err=True)
            raise typer.Exit(2)
        text = _request_text(request, file)
        if not text.strip():
            typer.echo("error: the request is empty; describe what the workflow should do, e.g. "
                       '"Create the CRM account, then send the welcome email"', err=True)
            raise typer.Exit(2)
        try:
            if planner not in ("offline", "llm", "auto"):
                raise typer.BadParameter("use offline, llm or auto", param_hint="--planner")
            from planner.select import make_planner

            result = make_planner(planner, load_catalog(*catalog)).plan(text)  # type: ignore[arg-type]
        except PlanningError as exc:
            for warning in exc.warnings:
                if warning not in str(exc):  # the error line already says it; say it once
                    typer.echo(f"warning: {warning}", err=True)
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        except OvertureError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        for warning in result.warnings:
            typer.echo(f"warning: {warning}", err=True)
        if format is PlanFormat.mermaid:
            typer.echo(to_mermaid(result.workflow), nl=False)
        else:
            typer.echo(dumps_workflow(result.workflow, format.value), nl=False)
        if explain:
            # stdout must stay one parseable document for json/yaml; the prose goes beside it
            typer.echo(result.explanation, err=format is not PlanFormat.mermaid, nl=False)
