"""Running the real `overture` console entry point in a subprocess, for the CLI tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CATALOG = """\
actions:
  - name: crm.create_account
    description: Create the account.
    input: {type: object, properties: {email: {type: string}}, required: [email]}
    output: {type: object, properties: {account_id: {type: string}}}
    invoke: {kind: python, callable: "json:dumps"}
"""
"""A one-action catalog whose action can be called (a python invoker)."""

APPROVAL_STEPS = """\
steps:
  - id: ok
    action: core.approval
    with: {prompt: "Go ahead?"}
  - id: log
    action: core.log
    needs: [ok]
    with: {message: "done"}
"""
"""The steps of a workflow that waits for an approval (`ok`), then logs: core actions only."""


def cli(
    *args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 120
) -> tuple[int, str, str]:
    """`service.cli.main` (which turns errors into one line) in a subprocess, without the
    caller's OPENAI_*/OVERTURE_* variables; (exit code, stdout, stderr), never a traceback."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "OVERTURE_"))}
    result = subprocess.run(
        [sys.executable, "-c", "from service.cli import main; main()", *(str(a) for a in args)],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        stdin=subprocess.DEVNULL,
        timeout=timeout,
        cwd=cwd,
    )
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr
    return result.returncode, result.stdout, result.stderr


def error_line(stderr: str) -> str:
    """The last non-blank line of stderr: the `error: ...` line."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines, "expected an error message on stderr"
    return lines[-1]
