"""The queue's hand-off on a real PostgreSQL: the submitter's hold-and-defer statement, the
worker's take statement (job claim + lease move + the run read back), and the worker journal's
answers from what the take read (once each, forgotten at any write)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

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

from runtime.journal import Journal
from runtime.journal_schema import WHOLE_STEP
from runtime.records import RunState, StepState
from runtime.workers import ensure_schema
from runtime.workers.handoff import HandoffJournal, HandoffLink, Taken
from runtime.workers.queue import QUEUE_NAME, QUEUED_OWNER, QueueUnavailable

DOC = {"name": "x", "steps": [{"id": "a", "action": "w.work"}]}


@pytest.fixture
def journal(database: str) -> Iterator[HandoffJournal]:  # noqa: F811
    ensure_schema(database)
    opened = HandoffJournal.open_url(database)
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


async def test_hold_and_defer_then_take_moves_the_lease_with_the_job(journal: HandoffJournal) -> None:
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


async def test_take_leaves_a_live_lease_alone_and_takes_a_lapsed_one(journal: HandoffJournal) -> None:
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


async def test_the_journal_answers_from_the_take_once_and_forgets_at_a_write(journal: HandoffJournal) -> None:
    link = HandoffLink(journal)
    other = Journal.open(journal._engine.url.render_as_string(hide_password=False))
    try:
        worker = queue_worker(journal)
        new_run(journal, "r")
        await link.hold_and_defer("r", ttl=120)
        taken = await link.take(queues=[QUEUE_NAME], worker_id=worker, owner="w-a", ttl=30)
        assert taken is not None
        journal.prime(taken, "w-a")
        # another process asks to cancel after the take: the primed answer is the take's, once
        other.request_cancel("r", time.time(), by="someone")
        assert journal.cancel_requested("r") is False
        assert journal.cancel_requested("r") is True
        # the claim of a lease just taken is answered once; the next goes to the database
        assert journal.claim("r", "w-a", now=time.time(), ttl=30)
        assert journal.get_run("r").owner == "w-a"  # from the take
        with other._engine.begin() as conn:
            conn.execute(sa.text("UPDATE overture_runs SET owner = 'w-b', lease_until = :t WHERE id = 'r'"),
                         {"t": time.time() + 30})
        assert not journal.claim("r", "w-a", now=time.time(), ttl=30)
        assert journal.get_run("r").owner == "w-b"

        # the step rows are answered for the driver and the first step's replay, then read again;
        # any write forgets every primed answer at once
        new_run(journal, "s")
        await link.hold_and_defer("s", ttl=120)
        taken = await link.take(queues=[QUEUE_NAME], worker_id=worker, owner="w-a", ttl=30)
        assert taken is not None
        journal.prime(taken, "w-a")
        other.put_step("s", "a", WHOLE_STEP, time.time(), state=StepState.SUCCEEDED, output={})
        assert journal.step_results("s") == {}
        journal.append_event("s", "note", time.time())  # a write through this journal
        assert set(journal.step_results("s")) == {("a", WHOLE_STEP)}
        assert journal.interrupt_attempts("s", time.time()) == []
        assert journal.get_run("s").owner == "w-a"
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
