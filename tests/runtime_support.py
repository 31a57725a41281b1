"""Shared parts for the runtime tests: journals on SQLite and PostgreSQL, a test catalog, and a
helper that drives a run on a ManualClock by jumping to the next timer whenever the engine idles.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime import Engine, Journal, ManualClock, RunResult
from workflow.catalog import ActionSpec, Catalog
from workflow.document import Workflow

PG_URL = os.environ.get("OVERTURE_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def postgres_available() -> str | None:
    """None when PostgreSQL answers, else the reason it does not."""
    try:
        import psycopg

        with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test", connect_timeout=2):
            return None
    except Exception as exc:  # any failure to connect means: skip, saying why
        return f"PostgreSQL at 127.0.0.1:5432 (user postgres, db test) is not reachable: {exc}"


def open_journal(kind: str, tmp_path: Path) -> Iterator[Journal]:
    if kind == "sqlite":
        journal = Journal.open(tmp_path / "journal.db")
        yield journal
        journal.close()
        return
    reason = postgres_available()
    if reason:
        pytest.skip(reason)
    schema = f"overture_test_{uuid.uuid4().hex[:12]}"
    journal = Journal.open(PG_URL, schema=schema)
    try:
        yield journal
    finally:
        journal.drop_schema()
        journal.close()


JOURNAL_KINDS = ["sqlite", "postgresql"]


def action(
    name: str,
    *,
    required: tuple[str, ...] = (),
    compensation: str | None = None,
    capability: str | None = None,
) -> ActionSpec:
    props = {r: {"type": "string"} for r in required}
    return ActionSpec(
        name=name,
        description=f"test action {name}",
        input={"type": "object", "properties": props, "required": list(required)},
        compensation=compensation,
        capability=capability,
    )


CATALOG = Catalog(
    [
        action("crm.create_account", required=("email",), compensation="crm.delete_account"),
        action("crm.delete_account", required=("account_id",)),
        action("billing.charge", required=("account_id",), compensation="billing.refund"),
        action("billing.refund", required=("charge_id",)),
        action("tenant.create", compensation="tenant.delete"),
        action("tenant.delete", required=("tenant_id",)),
        action("mail.send", capability="mail"),
        action("mail.send_backup", capability="mail"),
        action("work.do", compensation="work.undo"),
        action("work.undo"),
        action("work.flaky"),
    ]
)


def workflow(data: dict[str, Any]) -> Workflow:
    return Workflow.model_validate({"name": "test-flow", **data})


async def idle(ticks: int = 200) -> None:
    """Let every ready task run until the loop has nothing left to do without time passing."""
    for _ in range(ticks):
        await asyncio.sleep(0)


async def settle(engine: Engine, clock: ManualClock, run_id: str, *, max_jumps: int = 500) -> RunResult:
    """Run to the end, jumping the clock to the next timer whenever the engine is idle."""
    waiter = asyncio.ensure_future(engine.wait(run_id))
    try:
        for _ in range(max_jumps):
            await idle()
            if waiter.done():
                return waiter.result()
            if clock.next_wake() is None:
                raise AssertionError(f"run {run_id} is stuck: {engine.result(run_id)}")
            clock.advance_to_next()
        raise AssertionError(f"run {run_id} did not finish after {max_jumps} clock jumps")
    finally:
        waiter.cancel()


async def pause(engine: Engine, clock: ManualClock, run_id: str, *, max_jumps: int = 100) -> RunResult:
    """Run until the run finishes or waits on something the clock cannot end (an approval)."""
    for _ in range(max_jumps):
        await idle()
        result = engine.result(run_id)
        if result.state.finished:
            return result
        if engine.journal.approvals(run_id, pending_only=True) and result.state.value == "waiting":
            return result
        if clock.next_wake() is None:
            return result
        clock.advance_to_next()
    return engine.result(run_id)
