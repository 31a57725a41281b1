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


# -- the crash-test worker: `python tests/runtime_support.py --journal J --dir D --workflow W ...` ----

CRASH_RUN_ID = "crash-run"

CRASH_WORKFLOWS: dict[str, dict[str, Any]] = {
    "chain": {
        "steps": [
            {"id": "a", "action": "work.do"},
            {"id": "b", "action": "work.do", "needs": ["a"]},
            {"id": "c", "action": "work.do", "needs": ["b"]},
        ]
    },
    "saga": {
        "steps": [
            {"id": "a", "action": "work.do", "compensate": {"action": "work.undo"}},
            {"id": "b", "action": "work.do", "needs": ["a"], "compensate": {"action": "work.undo"}},
            {"id": "c", "action": "work.flaky", "needs": ["b"]},
        ]
    },
    "fan": {
        "steps": [
            {
                "id": "each",
                "action": "work.do",
                "for_each": [0, 1, 2, 3, 4, 5],
                "concurrency": 2,
                "with": {"n": "${{ item }}"},
            },
            {"id": "c", "action": "work.do", "needs": ["each"]},
        ]
    },
    "nap": {
        "steps": [
            {"id": "a", "action": "work.do"},
            {"id": "nap", "action": "core.wait", "needs": ["a"], "with": {"seconds": 1}},
            {"id": "c", "action": "work.do", "needs": ["nap"]},
        ]
    },
}


class CountingInvoker:
    """Appends one line per call to `calls.log` (fsynced: a SIGKILL right after must not lose it);
    with `hang_in` set, writes the marker file and hangs inside that step's call."""

    def __init__(self, folder: Path, hang_in: str | None) -> None:
        self.folder = folder
        self.hang_in = hang_in

    async def invoke(self, call: Any) -> dict[str, Any]:
        label = f"{call.step_id}:{call.action.name}"
        with open(self.folder / "calls.log", "a", encoding="utf-8") as log:
            log.write(f"{label}|{call.iteration}|{call.idempotency_key}\n")
            log.flush()
            os.fsync(log.fileno())
        if self.hang_in == label and not (self.folder / "marker").exists():
            (self.folder / "marker").write_text(label)
            await asyncio.Event().wait()  # hang here until the test kills the process
        if call.action.name == "work.flaky":
            from runtime.errors import PermanentActionError

            raise PermanentActionError("this step always fails", type="validation")
        return {"step": call.step_id}


def read_calls(folder: Path) -> list[tuple[str, str, str]]:
    path = folder / "calls.log"
    if not path.exists():
        return []
    return [tuple(line.split("|")) for line in path.read_text().splitlines()]  # type: ignore[misc]


async def _worker(args: Any) -> int:
    import time

    from runtime import Engine

    folder = Path(args.dir)
    journal = Journal.open(args.journal, schema=args.schema)
    if args.stop_after_event:
        kind, _, step = args.stop_after_event.partition(":")

        def stop_after(event: Any) -> None:
            # called right after the commit: the journal already holds this state change
            if event.type == kind and (not step or event.step_id == step):
                (folder / "marker").write_text(event.type)
                time.sleep(3600)

        journal.add_listener(stop_after)
    # a short lease: the restarted worker takes over the killed one's runs within a second
    engine = Engine(
        CATALOG,
        journal,
        CountingInvoker(folder, args.hang_in),
        worker_id=f"worker-{os.getpid()}",
        lease_ttl_s=1.0,
        poll_interval_s=0.1,
    )
    try:
        if args.start:
            await engine.start_run(workflow(CRASH_WORKFLOWS[args.workflow]), run_id=CRASH_RUN_ID)
        else:
            await engine.recover()
        result = await engine.wait(CRASH_RUN_ID, timeout=60)
        (folder / "done").write_text(result.state.value)
    finally:
        await engine.close()
        journal.close()
    return 0


def main() -> int:
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--journal", required=True)
    parser.add_argument("--schema")
    parser.add_argument("--dir", required=True)
    parser.add_argument("--workflow", default="chain")
    parser.add_argument("--start", action="store_true")
    parser.add_argument("--hang-in", help="`step:action` whose call hangs after writing the marker")
    parser.add_argument("--stop-after-event", help="`event.type[:step]` after whose commit the worker hangs")
    return asyncio.run(_worker(parser.parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())


# -- Python-callable actions for the CLI tests (`invoke: {kind: python, callable: runtime_support:...}`) --


def cli_create(email: str) -> dict[str, Any]:
    return {"account_id": "acc-" + email.split("@")[0]}


def cli_delete(account_id: str) -> dict[str, Any]:
    return {"deleted": account_id}


def cli_boom(**_: Any) -> dict[str, Any]:
    raise ValueError("the service said no")
