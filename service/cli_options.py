"""The options a command was given, rendered again for the follow-up commands it prints.

A hint such as `overture approve RUN STEP` is only useful when following it reaches the same
journal: a run started with `--data-dir d` is not in `./.overture`. `Given` keeps the
`--data-dir` / `--database-url` / `--catalog` a command got and writes them back into every
command line it suggests. A value that came from (or equals) its environment variable is left
out: the next command in the same shell reads it from there too.

`fail` is the one-line error every command ends a bad input with.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import typer


def fail(message: str, code: int = 2) -> NoReturn:
    """Print one clear line to stderr and exit (2: usage and input errors)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _from_env(value: str, variable: str) -> bool:
    return os.environ.get(variable) == value


@dataclass(frozen=True)
class Given:
    """Where a command looked (as given); `args()` renders them for a suggested command."""

    data_dir: Path | str | None = None
    database_url: str | None = None
    catalog: list[str] = field(default_factory=list)

    def args(self, *, catalog: bool = False) -> str:
        """` --data-dir d --database-url u [--catalog c]`, or "" when nothing needs saying."""
        parts: list[str] = []
        if self.data_dir is not None and not _from_env(str(self.data_dir), "OVERTURE_DATA_DIR"):
            parts += ["--data-dir", str(self.data_dir)]
        if self.database_url and not _from_env(self.database_url, "OVERTURE_DATABASE_URL"):
            parts += ["--database-url", self.database_url]
        env_catalog = os.environ.get("OVERTURE_CATALOG")
        paths = [p for item in self.catalog for p in item.split(",") if p]
        if catalog and paths and env_catalog not in (",".join(paths), " ".join(paths)):
            for path in paths:
                parts += ["--catalog", path]
        return "".join(f" {shlex.quote(p)}" for p in parts)

    def command(self, text: str, *, catalog: bool = False) -> str:
        """`overture <text>` with the options appended."""
        return f"overture {text}{self.args(catalog=catalog)}"
