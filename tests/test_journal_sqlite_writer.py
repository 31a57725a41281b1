"""The journal's write path: one held writer connection (SQLite: statements on the DBAPI cursor,
WAL checkpoints on a thread of their own; PostgreSQL: pinged after idling). Real SQLite files and
a real PostgreSQL."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from runtime import Journal, StepState
from runtime.journal_checkpoint import COMMITS_PER_CHECKPOINT
from runtime.journal_schema import attempts, events, step_results


def new_run(journal: Journal, run_id: str) -> None:
    journal.create_run(
        run_id,
        workflow_name="wf",
        workflow_version=None,
        document={"name": "wf", "steps": []},
        inputs={},
        now=1.0,
        deadline_at=None,
        worker_id="w",
    )


def test_values_written_on_the_cursor_read_back_as_sqlalchemy_wrote_them(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path / "j.db")
    new_run(journal, "r")
    attempt_id = journal.start_attempt(
        run_id="r",
        workflow_name="wf",
        step_id="s",
        iteration=-1,
        attempt=1,
        kind="action",
        action="a.b",
        idempotency_key="k",
        now=2.0,
        worker_id=None,
        runs_in_flight=None,
        propensity=None,
        candidates=None,
        inputs={"n": [1, 2], "none": None},
    )
    journal.finish_attempt(
        attempt_id,
        3.5,
        outcome="succeeded",
        output={"ok": True, "when": 1.5},
        step={"state": StepState.SUCCEEDED.value, "output": {"ok": True, "when": 1.5}},
        event="step.succeeded",
    )
    (row,) = journal.attempts(run_id="r")
    assert (row.outcome, row.duration_s, row.output, row.output_truncated) == (
        "succeeded",
        1.5,
        {"ok": True, "when": 1.5},
        False,
    )
    assert row.candidates is None
    step = journal.step_results("r")[("s", -1)]
    assert (step.state, step.inputs, step.output, step.attempts, step.started_at, step.ended_at) == (
        StepState.SUCCEEDED,
        {"n": [1, 2], "none": None},
        {"ok": True, "when": 1.5},
        1,
        2.0,
        3.5,
    )
    # the raw text is what SQLAlchemy's JSON type writes and reads (JSON null for "no value")
    with sqlite3.connect(tmp_path / "j.db") as raw:
        (text,) = raw.execute("SELECT candidates FROM overture_attempts").fetchone()
        types = [r[0] for r in raw.execute("SELECT type FROM overture_events ORDER BY seq")]
    assert text == "null"
    assert types == ["run.started", "step.started", "step.succeeded"]
    journal.close()


def test_a_second_journal_on_the_file_sees_every_commit_at_once(tmp_path: Path) -> None:
    writer = Journal.open(tmp_path / "j.db")
    reader = Journal.open(tmp_path / "j.db")
    new_run(writer, "r")
    writer.put_step("r", "s", -1, 2.0, state=StepState.RUNNING, event="step.started")
    assert reader.step_results("r")[("s", -1)].state == StepState.RUNNING
    reader.request_cancel("r", 3.0, by="someone")
    assert writer.cancel_requested("r") is True
    writer.close()
    reader.close()


def test_threads_and_the_loop_share_the_writer_without_losing_a_write(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path / "j.db")
    new_run(journal, "r")
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        try:
            for i in range(150):
                journal.append_event("r", "log", float(i), step_id=f"w{worker}", data={"i": i})
        except BaseException as exc:  # reported below: a thread's exception would vanish
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for i in range(150):
        journal.put_step("r", f"s{i}", -1, float(i), state=StepState.SUCCEEDED, output={"i": i})
    for thread in threads:
        thread.join()
    assert errors == []
    seqs = [e.seq for e in journal.events_since("r")]
    assert len(seqs) == 1 + 4 * 150 and len(set(seqs)) == len(seqs)
    assert len(journal.step_results("r")) == 150
    journal.close()


def test_the_wal_is_checkpointed_off_the_writing_connection(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    journal = Journal.open(path)
    new_run(journal, "r")
    with journal._engine.connect() as conn:  # a look inside: the writer no longer checkpoints
        writer = journal._writer_connection()
        assert writer.connection.dbapi_connection is not None
        (auto,) = writer.connection.dbapi_connection.execute("PRAGMA wal_autocheckpoint").fetchone()
        assert auto == 0
        del conn
    checkpointer = journal._checkpointer
    assert checkpointer is not None
    for i in range(2 * COMMITS_PER_CHECKPOINT):
        journal.put_step("r", f"s{i}", -1, float(i), state=StepState.SUCCEEDED, output={"i": i})
    deadline = time.monotonic() + 10
    while checkpointer.checkpoints == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert checkpointer.checkpoints >= 1
    journal.close()
    # after the closing checkpoint every page is in the database file: a reader that ignores the
    # log (immutable) sees all the steps
    uri = f"file:{path}?immutable=1"
    with sqlite3.connect(uri, uri=True) as raw:
        (count,) = raw.execute("SELECT count(*) FROM overture_step_results").fetchone()
    assert count == 2 * COMMITS_PER_CHECKPOINT


def test_a_failed_transaction_leaves_nothing_and_the_writer_goes_on(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path / "j.db")
    new_run(journal, "r")
    with pytest.raises(sa.exc.IntegrityError):
        new_run(journal, "r")  # the same id twice
    journal.put_step("r", "s", -1, 2.0, state=StepState.SUCCEEDED)
    with journal._engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(events)).scalar() == 1
        assert conn.execute(sa.select(sa.func.count()).select_from(step_results)).scalar() == 1
        assert conn.execute(sa.select(sa.func.count()).select_from(attempts)).scalar() == 0
    journal.close()


def test_errors_on_the_cursor_are_sqlalchemy_errors(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path / "j.db")
    new_run(journal, "r")
    journal.put_step("r", "s", -1, 2.0, state=StepState.SUCCEEDED)
    with journal._engine.begin() as conn:  # a trigger that refuses inserts: a constraint failing
        conn.execute(
            sa.text(
                "CREATE TRIGGER no_events BEFORE INSERT ON overture_events "
                "BEGIN SELECT RAISE(ABORT, 'events are closed'); END"
            )
        )
    with pytest.raises(sa.exc.IntegrityError, match="events are closed"):
        journal.append_event("r", "log", 3.0)
    journal.close()


def test_a_busy_writer_keeps_the_log_short(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    journal = Journal.open(path)
    journal.fsync = False  # the same checkpoints, without waiting on the disk
    new_run(journal, "r")
    payload = {"text": "x" * 3000}  # a page or more per commit
    peak = 0
    for i in range(6000):
        journal.put_step("r", f"s{i}", -1, float(i), state=StepState.SUCCEEDED, output=payload)
        if i % 500 == 0:
            peak = max(peak, (tmp_path / "j.db-wal").stat().st_size)
    peak = max(peak, (tmp_path / "j.db-wal").stat().st_size)
    journal.close()
    # 6,000 commits of a page or more would make a log of 25 MB or more without the rewinds
    assert peak < 16 * 1024 * 1024, peak


@pytest.fixture
def postgres_journal() -> Iterator[Journal]:
    """A journal on the local PostgreSQL, in a schema of its own (dropped after)."""
    import uuid

    from runtime_support import PG_URL, postgres_available

    reason = postgres_available()
    if reason:
        pytest.skip(reason)
    journal = Journal.open(PG_URL, schema=f"t_{uuid.uuid4().hex[:10]}")
    try:
        yield journal
    finally:
        journal.drop_schema()
        journal.close()


def test_a_postgres_writer_that_lost_its_server_connection_reconnects(postgres_journal: Journal) -> None:
    import psycopg

    journal = postgres_journal
    new_run(journal, "r")
    writer = journal._writer_connection()
    pid = writer.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
    writer.rollback()
    # the server ends the writer's session (a restart, an idle timeout, an operator)
    with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test", autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)
    journal._writer_used -= 60  # it sat idle past the ping threshold meanwhile
    journal.put_step("r", "s", -1, 2.0, state=StepState.SUCCEEDED, output={"ok": True})
    assert journal.step_results("r")[("s", -1)].output == {"ok": True}
    again = journal._writer_connection()
    assert again.exec_driver_sql("SELECT pg_backend_pid()").scalar_one() != pid
    again.rollback()



def test_a_postgres_write_on_a_dropped_connection_fails_once_and_the_next_reconnects(
    postgres_journal: Journal,
) -> None:
    """No idle time to trigger the writer's ping: the failed statement itself marks the
    connection gone (as SQLAlchemy's execution does), for the per-step statements that run on
    psycopg's cursor directly and for the one-statement attempt writes."""
    import psycopg

    journal = postgres_journal

    def drop_writer() -> int:
        writer = journal._writer_connection()
        pid = writer.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        writer.rollback()
        with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test", autocommit=True) as admin:
            assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)
        return int(pid)

    def start(step_id: str) -> int:
        return journal.start_attempt(
            run_id="r", workflow_name="wf", step_id=step_id, iteration=-1, attempt=1, kind="action",
            action="a.b", idempotency_key=f"r:{step_id}", now=3.0, worker_id=None, runs_in_flight=None,
            propensity=None, candidates=None, inputs={},
        )

    new_run(journal, "r")
    for write in (
        lambda: journal.put_step("r", "s", -1, 2.0, state=StepState.SUCCEEDED, output={"ok": 1}),
        lambda: start("t"),
    ):
        pid = drop_writer()
        with pytest.raises(sa.exc.OperationalError):
            write()
        write()  # a new connection, at once
        again = journal._writer_connection()
        assert again.exec_driver_sql("SELECT pg_backend_pid()").scalar_one() != pid
        again.rollback()
    assert journal.step_results("r")[("s", -1)].output == {"ok": 1}
    assert journal.step_results("r")[("t", -1)].state == StepState.RUNNING
    assert journal.cancel_requested("r") is False  # a read on the writer's connection too



def test_a_postgres_read_off_the_event_loop_does_not_wait_behind_the_writer(
    postgres_journal: Journal,
) -> None:
    """The service's worker threads read on pooled connections: a read from such a thread goes
    on while the engine's thread holds the writer (here: its lock, as during a write)."""
    from runtime.records import RunState

    journal = postgres_journal
    new_run(journal, "r")
    held, release = threading.Event(), threading.Event()

    def writer_busy() -> None:
        with journal._write_lock:
            held.set()
            release.wait(10)

    busy = threading.Thread(target=writer_busy)
    busy.start()
    assert held.wait(5)
    read: list[object] = []
    reader = threading.Thread(target=lambda: read.append(journal.get_run("r").state))
    reader.start()
    reader.join(5)
    done_while_held = not reader.is_alive()
    release.set()
    busy.join()
    reader.join()
    assert done_while_held and read == [RunState.RUNNING]



def test_the_writer_catches_up_when_the_thread_reports_nothing(tmp_path: Path) -> None:
    """A checkpoint round on a disk busy with others can take seconds; until it reports, the
    writer goes by its own count of commits since the log was last copied whole."""
    from runtime.journal_checkpoint import MAX_WAL_FRAMES, Checkpointer

    path = tmp_path / "w.db"
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("PRAGMA journal_size_limit=1048576")  # a rewound log is cut back to 1 MB
    writer.execute("CREATE TABLE t (v TEXT)")
    stuck = threading.Event()

    class StuckRound:  # the thread's connection: its round never comes back while the writer writes
        def cursor(self) -> StuckRound:
            return self

        def execute(self, sql: str) -> StuckRound:
            stuck.wait(30)
            return self

        def fetchall(self) -> list[tuple[int, int, int]]:
            return [(0, 0, 0)]

        def close(self) -> None:
            pass

    checkpointer = Checkpointer(StuckRound)
    wal = tmp_path / "w.db-wal"
    try:
        for i in range(MAX_WAL_FRAMES + 200):
            writer.execute("INSERT INTO t VALUES (?)", ("x" * 3000 + str(i),))  # a page or more a commit
            checkpointer.committed(writer)
        # without the count, 2,200 commits of a page or more leave a log of 9 MB or more; with it the
        # log was copied and rewound after 2,000 and holds the last ~200 commits
        assert wal.stat().st_size < 4 * 1024 * 1024, wal.stat().st_size
        assert writer.execute("SELECT count(*) FROM t").fetchone() == (MAX_WAL_FRAMES + 200,)
    finally:
        stuck.set()
        checkpointer.close()
        writer.close()
