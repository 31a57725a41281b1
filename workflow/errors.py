"""Errors of the workflow contract.

    OvertureError                 every error Overture raises on purpose
    ├── DocumentError             a file could not be read or parsed (YAML/JSON syntax, wrong shape)
    ├── InvalidWorkflow           a document broke validator rules; carries every `Problem`
    └── ExpressionError           a `${{ ... }}` expression does not parse or was refused
        └── UnsafeExpression      the sandbox refused it (private attributes, calls, huge values)

Each carries its data (path, location, problems) so callers can render them for people or as JSON.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


class OvertureError(Exception):
    """Base of every error Overture raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a document: where, what, and how to fix it."""

    location: str
    """JSON-path-like location, e.g. `steps[2].with.account_id`."""
    message: str
    """What is wrong, naming what was expected and what was found."""
    hint: str | None = None
    """How to fix it, e.g. "did you mean `crm.update_account`?"."""
    code: str = "invalid"
    """A stable machine-readable kind, e.g. `unknown_action`, `cycle`."""
    step: str | None = None
    """The id of the step concerned, when there is one."""
    severity: str = "error"
    """`error` makes the document invalid; `warning` does not."""

    def to_data(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def __str__(self) -> str:
        text = f"{self.location}: {self.message}"
        return f"{text} ({self.hint})" if self.hint else text


class DocumentError(OvertureError):
    """A file could not be read or did not have the expected shape."""

    def __init__(self, message: str, *, path: str | None = None, problems: list[Problem] | None = None):
        self.path = path
        self.problems = problems or []
        detail = "; ".join(str(p) for p in self.problems[:5])
        where = f"{path}: " if path else ""
        super().__init__(f"{where}{message}" + (f": {detail}" if detail else ""))


@dataclass
class InvalidWorkflow(OvertureError):
    """A document failed validation; `problems` lists every problem found."""

    problems: list[Problem] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(self.__str__())

    def __str__(self) -> str:
        errors = [p for p in self.problems if p.severity == "error"]
        head = f"the workflow has {len(errors)} problem{'s' if len(errors) != 1 else ''}"
        return head + "".join(f"\n  - {p}" for p in errors)


class ExpressionError(OvertureError):
    """An expression does not parse or cannot be evaluated."""

    def __init__(self, message: str, *, expression: str | None = None):
        self.expression = expression
        super().__init__(message)


class UnsafeExpression(ExpressionError):
    """The sandbox refused an expression."""
