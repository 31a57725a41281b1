"""`python -m planner plan --catalog C [--format json] REQUEST`: the plan command without the full CLI."""

from __future__ import annotations

import typer

from service.cli_plan import register

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, no_args_is_help=True)
register(app)


@app.callback()
def _root() -> None:
    """Overture planner."""


if __name__ == "__main__":
    app()
