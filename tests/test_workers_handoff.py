"""The queue's hand-off on a real PostgreSQL: the submitter's hold-and-defer statement, the
worker's take statement (job claim + lease move + the run read back), and the worker journal's
engine driving a run from what the take read."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from test_workers import (  # noqa: F401 - `database` is a fixture
    check_executions,
    database,
    files,
    start_worker,
    stop,
    submit,
    wait_finished,
    wait_ready,
)

from runtime.active_run import TakenRun
from runtime.engine import Engine
from runtime.invocation import ActionCall
from runtime.journal import Journal
from runtime.journal_schema import WHOLE_STEP
from runtime.records import RunState, StepState
from runtime.workers import ensure_schema
from runtime.workers.handoff import HandoffLink, Taken
from runtime.workers.queue import QUEUE_NAME, QUEUED_OWNER, QueueUnavailable
from workflow.catalog import ActionSpec, Catalog

DOC = {"name": "x", "steps": [{"id": "a", "action": "w.work"}]}
CATALOG = Catalog([ActionSpec(name="w.work", description="work")])


@pytest.fixture
def journal(database: str) -> Iterator[Journal]:  # noqa: F811
    ensure_schema(database)
    opened = Journal.open(database)
    try:
        yield opened
    finally:
        opened.close()


def new_run(journal: Journal, run_id: str) -> None:
    journal.create_run(run_id, workflow_name="x", workflow_version=None, document=DOC, inputs={"n": 1},
                       now=time.time(), deadline_at=None, worker_id="test")


def queue_worker(journal: Journal) -> int:
    """A row in Procrastinate's worker table: a job's `worker_id` must name one."""
    with journal._engine.begin() as conn:
        made = conn.execute(sa.text("INSERT INTO procrastinate_workers DEFAULT VALUES RETURNING id"))
        return int(made.scalar_one())


def jobs(journal: Journal) -> list[tuple[str, str, str]]:
    with journal._engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT queueing_lock, status, queue_name FROM procrastinate_jobs ORDER BY id"))
        return [(r[0], r[1], r[2]) for r in rows]


async def test_hold_and_defer_then_take_moves_the_lease_with_the_job(journal: Journal) -> None:
    link = HandoffLink(journal)
    try:
        new_run(journal, "r1")
        before = time.time()
        assert await link.hold_and_defer("r1", ttl=120) is not None
        record = journal.get_run("r1")
        assert record.owner == QUEUED_OWNER and record.lease_until is not None
        assert before + 119 < record.lease_until < time.time() + 121
        # a second poke while the job waits adds no job and keeps the hold
        assert await link.hold_and_defer("r1", ttl=120) is None
        assert jobs(journal) == [("r1", "todo", QUEUE_NAME)]

        worker = queue_worker(journal)
        taken = await link.take(queues=[QUEUE_NAME], worker_id=worker, owner="w-a", ttl=30)
        assert taken is not None and taken.job.task_kwargs == {"run_id": "r1"}
        assert taken.run is not None and taken.run.id == "r1"
        # what came back is the row as the statement left it: the lease is w-a's now
        assert (taken.run.owner, taken.run.state, taken.run.inputs) == ("w-a", RunState.RUNNING, {"n": 1})
        assert taken.run.document == DOC and taken.steps == {} and taken.started_attempts == 0
        stored = journal.get_run("r1")
        assert stored.owner == "w-a" and stored.lease_until == pytest.approx(taken.lease_until)
        assert jobs(journal) == [("r1", "doing", QUEUE_NAME)]
        assert await link.take(queues=[QUEUE_NAME], worker_id=worker, owner="w-b", ttl=30) is None
    finally:
        await link.close()


async def test_take_leaves_a_live_lease_alone_and_takes_a_lapsed_one(journal: Journal) -> None:
    link = HandoffLink(journal)
    try:
        worker = queue_worker(journal)
        new_run(journal, "held")
        # another worker drives the run (a poke for an approval recorded elsewhere, say)
        assert journal.claim("held", "w-other", now=time.time(), ttl=30)
        assert await link.hold_and_defer("held", ttl=120) is not None
        assert journal.get_run("held").owner == "w-other"  # the hold does not take it either
        taken = await link.take(queues=[QUEUE_NAME], worker_id=worker, owner="w-a", ttl=30)
        assert taken is not None and taken.run is None  # the job is claimed, the run is not
        assert journal.get_run("held").owner == "w-other"

        # a worker that died: its lease ran out; its run, its steps and the attempt it left in
        # flight come back with the job
        new_run(journal, "orphan")
        assert journal.claim("orphan", "w-dead", now=time.time() - 60, ttl=30)
        journal.put_step("orphan", "a", WHOLE_STEP, time.time(), state=StepState.SUCCEEDED, output={"ok": 1})
        journal.start_attempt(run_id="orphan", workflow_name="x", step_id="b", iteration=WHOLE_STEP,
                              attempt=1, kind="action", action="w.work", idempotency_key="k",
                              now=time.time(), worker_id="w-dead", runs_in_flight=1, propensity=1.0,
                              candidates=None, inputs={})
        assert await link.hold_and_defer("orphan", ttl=120) is not None
        taken = await link.take(queues=[QUEUE_NAME], worker_id=worker, owner="w-a", ttl=30)
        assert taken is not None and taken.run is not None and taken.run.owner == "w-a"
        assert taken.steps[("a", WHOLE_STEP)].output == {"ok": 1}
        assert taken.steps[("b", WHOLE_STEP)].state == StepState.RUNNING
        assert taken.started_attempts == 1
    finally:
        await link.close()


class Works:
    async def invoke(self, call: ActionCall) -> dict[str, Any]:
        return {"done": call.step_id}


async def test_the_engine_drives_a_taken_run_from_what_the_take_read(journal: Journal) -> None:
    link = HandoffLink(journal)
    other = Journal.open(journal._engine.url.render_as_string(hide_password=False))
    statements: list[str] = []
    # the journal's own statements go straight to psycopg's cursor on its writer connection
    # (`runtime.journal_sql`); anything on a pooled connection goes through SQLAlchemy
    sa.event.listen(journal._engine, "before_cursor_execute",
                    lambda _c, _k, sql, *_: statements.append(" ".join(sql.split())))

    class Traced(psycopg.Cursor[Any]):
        def execute(self, query: Any, params: Any = None, **options: Any) -> Any:
            statements.append(" ".join(str(query).split()))
            return super().execute(query, params, **options)

    journal._writer_connection().connection.dbapi_connection.cursor_factory = Traced  # type: ignore[union-attr]
    two = {"name": "x", "steps": [{"id": "a", "action": "w.work"},
                                  {"id": "b", "action": "w.work", "needs": ["a"]}]}
    try:
        worker = queue_worker(journal)
        journal.create_run("r", workflow_name="x", workflow_version=None, document=two, inputs={},
                           now=time.time(), deadline_at=None, worker_id="test")
        await link.hold_and_defer("r", ttl=120)
        taken = await link.take(queues=[QUEUE_NAME], worker_id=worker, owner="w-a", ttl=30)
        assert taken is not None and taken.run is not None and taken.started_attempts == 0
        # another process asks to cancel after the take: the engine starts from the take's row
        # (no cancel yet), so it is seen at its next look, after the first step
        other.request_cancel("r", time.time(), by="someone")
        statements.clear()
        async with Engine(CATALOG, journal, Works(), worker_id="w-a", poll_interval_s=None) as engine:
            result = await engine.run_until_settled(
                "r", taken=TakenRun(taken.run, taken.steps, taken.started_attempts))
        assert result.state == RunState.CANCELLED
        assert result.steps == {"a": StepState.SUCCEEDED}  # b never started
        # the first attempt's start: one INSERT, or on PostgreSQL a WITH of three (`journal_pg`)
        first_write = next(i for i, sql in enumerate(statements) if sql.startswith(("INSERT", "WITH")))
        before = statements[:first_write]
        # nothing read or claimed again before the first attempt: no lease update, no read of
        # the run, its steps, its cancel flag or its started attempts (the engine's scheduler
        # looks at timers and orphans meanwhile: those are not about this run)
        again = ("UPDATE overture_runs SET owner", "WHERE overture_runs.id", "FROM overture_step_results",
                 "FROM overture_attempts")
        assert not [sql for sql in before if any(part in sql for part in again)], before
        assert any("UPDATE overture_runs SET owner" in sql for sql in statements[first_write:])  # released
    finally:
        other.close()
        await link.close()


async def test_an_unreachable_queue_is_one_clear_error() -> None:
    away = Journal.open("postgresql+psycopg://overture:secret@127.0.0.1:1/none", create=False)
    link = HandoffLink(away)
    try:
        with pytest.raises(QueueUnavailable) as caught:
            await link.hold_and_defer("r", ttl=120)
        message = str(caught.value)
        shown = "postgresql+psycopg://overture:***@127.0.0.1:1/none"
        assert message.startswith(f"cannot reach the run queue at {shown}: ")
        assert "\n" not in message and "secret" not in message
    finally:
        await link.close()
        away.close()


def test_runs_taken_by_a_worker_that_died_at_once_are_taken_over(database: str,  # noqa: F811
                                                                  tmp_path: Path) -> None:
    files(tmp_path)
    ensure_schema(database)
    ids = submit(database, tmp_path, count=3, sleep=0)  # no worker yet: the jobs wait, the runs are held
    journal = Journal.open(database)

    async def take_and_die() -> list[Taken | None]:
        # what a worker's fetches do before it is SIGKILLed: the jobs are `doing` under its
        # Procrastinate id (last heartbeat long ago) and the runs' leases are its own, for 2 s
        link = HandoffLink(journal)
        try:
            with journal._engine.begin() as conn:
                dead = int(conn.execute(sa.text(
                    "INSERT INTO procrastinate_workers (last_heartbeat) VALUES (now() - interval '1 hour') "
                    "RETURNING id")).scalar_one())
            return [await link.take(queues=[QUEUE_NAME], worker_id=dead, owner="dead", ttl=2) for _ in ids]
        finally:
            await link.close()

    heir = None
    try:
        taken = asyncio.run(take_and_die())
        assert sorted(t.run.id for t in taken if t is not None and t.run is not None) == sorted(ids)
        assert {journal.get_run(r).owner for r in ids} == {"dead"}
        heir = start_worker(database, tmp_path, "heir")
        wait_ready({"heir": heir}, tmp_path)
        states = wait_finished(journal, ids, timeout=60)
        assert set(states.values()) == {RunState.SUCCEEDED}, states
        assert check_executions(journal, tmp_path, ids, None) == 0  # every step exactly once
        assert {a.worker_id for r in ids for a in journal.attempts(run_id=r)} == {"heir"}
        # the dead worker's jobs are not left `doing` on the queue's books: swept back, then done
        end = time.monotonic() + 30
        while jobs(journal):
            assert time.monotonic() < end, jobs(journal)
            time.sleep(0.2)
    finally:
        journal.close()
        if heir is not None:
            assert stop([heir]) == [0]
