"""How a run can fall between the queue and the workers, reproduced on a real PostgreSQL.

A job fetch is Procrastinate's `procrastinate_fetch_job_v2`, a VOLATILE function: it looks at the
jobs with a snapshot of its own, taken after the one of the statement around it (`handoff.take`),
whose lease move reads the runs with the statement's. A run journaled and handed to the queue
(`hold_and_defer`) between the two had its job claimed while the lease move did not see its row:
the job was used up, the worker found the run held by the queue and dropped it, and the run
waited for the hand-off lease to lapse (120 s) before an orphan scan took it. A worker fetching
again just as the submitter journals the next run (what every NOTIFY makes it do) meets that
window; a busy server, which may preempt the backend between the two snapshots, widens it. It
was the run found still `running` 90 s after the kill in one run of `test_workers_netns`.

The tests hold the fetch at that point deterministically: the fetch function waits on an advisory
lock the test holds (`workers_support.gate_fetches`) after its statement took its snapshot.

The same gate shows the other side of that snapshot: a job for a run this worker drives (a poke,
a job swept back) whose take read the run before the worker's own driver wrote its last step and
ended; the engine started again from that read and called the completed step a second time.

Also here: a worker's heartbeat and listener outlive a moment without the database (Procrastinate
let them end at their first error, for good); a worker whose row in Procrastinate's books another
worker pruned registers again (its next fetch crashed it); and the guard under every takeover: a
run whose worker died, with no job and no NOTIFY to announce it, is found by the orphan scan.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url
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
from test_workers_handoff import new_run, queue_worker
from workers_support import ADMIN, FetchGate, gate_fetches, read_calls

from runtime.journal import Journal
from runtime.journal_schema import WHOLE_STEP
from runtime.records import RunState
from runtime.workers import RunQueue, ensure_schema
from runtime.workers.handoff import HandoffLink, Taken
from runtime.workers.queue import QUEUE_NAME, QUEUED_OWNER, conninfo
from workflow.loader import load_catalog, read_data
from workflow.validator import ensure_valid


async def fetch_at_gate(gate: FetchGate, link: HandoffLink, worker: int) -> asyncio.Future[Taken | None]:
    """A take by the worker `w-a`, once its fetch waits at the gate."""
    fetch = asyncio.ensure_future(link.take(queues=[QUEUE_NAME], worker_id=worker, owner="w-a", ttl=30))
    end = time.monotonic() + 30
    while not gate.waiting():
        assert time.monotonic() < end, "the fetch never reached the gate"
        await asyncio.sleep(0.02)
    return fetch


async def test_a_run_handed_to_the_queue_during_a_fetch_comes_with_its_job(database: str) -> None:  # noqa: F811
    ensure_schema(database)
    gate_fetches(database)
    journal = Journal.open(database)
    taker, submitter = HandoffLink(journal), HandoffLink(journal)
    try:
        worker = queue_worker(journal)
        with FetchGate(database) as gate:
            # the worker's fetch has its statement's snapshot and waits before its own
            fetch = await fetch_at_gate(gate, taker, worker)
            # meanwhile the submitter journals a run and hands it to the queue
            new_run(journal, "late")
            assert await submitter.hold_and_defer("late", ttl=120) is not None
            assert journal.get_run("late").owner == QUEUED_OWNER
        taken = await asyncio.wait_for(fetch, 30)
        assert taken is not None and taken.job.task_kwargs == {"run_id": "late"}
        # the job came, and so did the run: its lease left the queue's hold for the worker
        assert taken.run is not None and taken.run.id == "late" and taken.run.owner == "w-a"
        assert taken.steps == {} and taken.started_attempts == 0
        stored = journal.get_run("late")
        assert stored.owner == "w-a" and stored.lease_until is not None
        assert stored.lease_until < time.time() + 31  # the worker's lease, not the 120 s hold

        # a run another worker drives still stays there, whichever snapshot the fetch used
        new_run(journal, "driven")
        assert journal.claim("driven", "w-other", now=time.time(), ttl=30)
        with FetchGate(database) as gate:
            fetch = await fetch_at_gate(gate, taker, worker)
            assert await submitter.hold_and_defer("driven", ttl=120) is not None
        taken = await asyncio.wait_for(fetch, 30)
        assert taken is not None and taken.job.task_kwargs == {"run_id": "driven"} and taken.run is None
        assert journal.get_run("driven").owner == "w-other"
    finally:
        await taker.close()
        await submitter.close()
        journal.close()


def test_a_worker_drives_a_run_submitted_while_its_fetch_was_under_way(
    database: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    files(tmp_path)
    ensure_schema(database)
    gate_fetches(database)  # before the worker prepares its fetch statement
    proc = start_worker(database, tmp_path, "w1")
    journal = Journal.open(database)
    try:
        wait_ready({"w1": proc}, tmp_path)
        with FetchGate(database) as gate:
            gate.wait_for_fetch()  # the worker's poll (every 0.3 s) is at the gate
            ids = submit(database, tmp_path, count=1, sleep=0)
        # the run was held for its job for 120 s: it must not wait for that hold to lapse
        states = wait_finished(journal, ids, timeout=20)
        assert states == {ids[0]: RunState.SUCCEEDED}, (states, journal.get_run(ids[0]))
        assert sorted(c["step"] for c in read_calls(tmp_path)) == ["a", "b", "c", "d"]  # each once
        assert {a.worker_id for a in journal.attempts(run_id=ids[0])} == {"w1"}
    finally:
        journal.close()
        codes = stop([proc])
    assert codes == [0], (tmp_path / "w1.log").read_text()[-2000:]


# Procrastinate's heartbeat, refused while the table `heartbeat_fault` has a row
_HEARTBEAT_FAULT = """
CREATE TABLE heartbeat_fault (reason text);
CREATE OR REPLACE FUNCTION procrastinate_update_heartbeat_v1(worker_id bigint) RETURNS void
    LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM heartbeat_fault) THEN
        RAISE EXCEPTION 'heartbeat refused by the test';
    END IF;
    UPDATE procrastinate_workers SET last_heartbeat = NOW() WHERE id = worker_id;
END $$;
"""


def wait_until(proc: subprocess.Popen[bytes], log: Path, done: Callable[[], bool]) -> None:
    end = time.monotonic() + 30
    while not done():
        assert proc.poll() is None, f"the worker exited ({proc.returncode}):\n{log.read_text()[-3000:]}"
        assert time.monotonic() < end, f"not so after 30 s; the worker's log:\n{log.read_text()[-3000:]}"
        time.sleep(0.05)


def wait_for_log(proc: subprocess.Popen[bytes], log: Path, text: str) -> None:
    wait_until(proc, log, lambda: text.encode() in log.read_bytes())


def test_a_worker_rides_out_a_moment_without_its_database(database: str, tmp_path: Path) -> None:  # noqa: F811
    # Procrastinate stopped the worker when its heartbeat or its listener raised once
    files(tmp_path)
    ensure_schema(database)
    name = make_url(database).database
    with psycopg.connect(conninfo(database), autocommit=True) as conn:
        conn.execute(_HEARTBEAT_FAULT)  # type: ignore[arg-type]
    proc = start_worker(database, tmp_path, "w1", lease=1.5)  # a heartbeat every 0.5 s
    log = tmp_path / "w1.log"
    admin = psycopg.connect(ADMIN.format(host="127.0.0.1", port=5432), autocommit=True)
    fault = psycopg.connect(conninfo(database), autocommit=True)
    try:
        wait_ready({"w1": proc}, tmp_path)
        fault.execute("INSERT INTO heartbeat_fault VALUES ('test')")
        wait_for_log(proc, log, "could not record this worker's heartbeat")
        fault.execute("DELETE FROM heartbeat_fault")
        # and it beats again (Procrastinate's loop ended at the first error, for good and silently)
        beats = (
            "SELECT count(*) FROM procrastinate_workers "
            "WHERE last_heartbeat > clock_timestamp() - interval '0.4 s'"
        )
        wait_until(proc, log, lambda: fault.execute(beats).fetchone() == (1,))
        # the database goes away a moment: every session of the worker ends and new ones are
        # refused, so its listener cannot listen again at once
        admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        wait_for_log(proc, log, "stopped listening for jobs")
        admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
        # and it listens again
        wait_until(
            proc,
            log,
            lambda: (
                admin.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND query LIKE 'LISTEN %%'",
                    (name,),
                ).fetchone()
                == (1,)
            ),
        )
        # back: the same worker, still running, drives what is submitted now
        ids = submit(database, tmp_path, count=2, sleep=0)
        journal = Journal.open(database)
        try:
            states = wait_finished(journal, ids, timeout=30)
            assert set(states.values()) == {RunState.SUCCEEDED}, (states, log.read_text()[-3000:])
        finally:
            journal.close()
        assert proc.poll() is None
    finally:
        admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
        admin.close()
        fault.close()
        codes = stop([proc])
    assert codes == [0], log.read_text()[-3000:]


def test_a_run_whose_worker_died_is_taken_over_by_the_orphan_scan(
    database: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    # no job, no NOTIFY: only the worker's periodic orphan scan can find the run
    catalog, flow = files(tmp_path)
    ensure_schema(database)
    document = ensure_valid(read_data(flow), load_catalog(catalog)).to_data()
    journal = Journal.open(database)
    proc = None
    try:
        now = time.time()
        journal.create_run(
            "r",
            workflow_name="diamond",
            workflow_version=None,
            document=document,
            inputs={"sleep": 0},
            now=now,
            deadline_at=None,
            worker_id="dead",
        )
        # a worker took the run, started step a (and died before its call): its lease lapses in 1 s
        assert journal.claim("r", "dead", now=now, ttl=1.0)
        journal.start_attempt(
            run_id="r",
            workflow_name="diamond",
            step_id="a",
            iteration=WHOLE_STEP,
            attempt=1,
            kind="action",
            action="w.work",
            idempotency_key="r:a",
            now=now,
            worker_id="dead",
            runs_in_flight=1,
            propensity=None,
            candidates=None,
            inputs={"label": "a", "sleep": 0},
        )
        proc = start_worker(database, tmp_path, "heir")
        wait_ready({"heir": proc}, tmp_path)
        states = wait_finished(journal, ["r"], timeout=15)  # lease 1 s + polls every 0.3 s
        assert states == {"r": RunState.SUCCEEDED}, (states, journal.get_run("r"))
        outcomes = sorted((a.step_id, a.outcome, a.worker_id) for a in journal.attempts(run_id="r"))
        ran = [(step, "succeeded", "heir") for step in ("a", "b", "c", "d")]
        assert outcomes == sorted([("a", "interrupted", "dead"), *ran])
        assert check_executions(journal, tmp_path, ["r"], None, "dead") == 0  # the lost attempt made no call
        with psycopg.connect(conninfo(database)) as conn:
            assert conn.execute("SELECT count(*) FROM procrastinate_jobs").fetchone() == (0,)
    finally:
        journal.close()
        if proc is not None:
            assert stop([proc]) == [0], (tmp_path / "heir.log").read_text()[-2000:]


APPROVAL_FLOW = """
name: work-then-approve
inputs: {type: object, properties: {sleep: {type: number}}}
steps:
  - {id: a, action: w.work, with: {label: a, sleep: "${{ inputs.sleep }}"}}
  - {id: ok, action: core.approval, needs: [a], with: {prompt: "go on?"}}
"""


def test_a_job_taken_while_this_worker_drove_its_run_does_not_replay_a_stale_read(
    database: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    files(tmp_path)
    flows = tmp_path / "flows"
    flows.mkdir()
    files(flows)
    (flows / "flow.yaml").write_text(APPROVAL_FLOW)
    ensure_schema(database)
    gate_fetches(database)
    proc = start_worker(database, tmp_path, "w1")
    journal = Journal.open(database)
    try:
        wait_ready({"w1": proc}, tmp_path)
        (run_id,) = submit(database, flows, count=1, sleep=1.0)
        end = time.monotonic() + 30
        while not read_calls(tmp_path):  # the worker drives the run: step a is in its call
            assert time.monotonic() < end
            time.sleep(0.02)
        with FetchGate(database) as gate:
            # a fetch reads the journal as it is now (a in flight), then waits at the gate
            gate.wait_for_fetch()
            # meanwhile a second job names the run (a poke, a job swept back), and the worker's
            # driver ends step a and stops at the approval, letting the run go
            asyncio.run(RunQueue(database).enqueue(run_id))
            end = time.monotonic() + 30
            while journal.get_run(run_id).state != RunState.WAITING:
                assert time.monotonic() < end
                time.sleep(0.02)
        # the fetch takes the job and the run, with what it read before step a ended
        end = time.monotonic() + 30
        while jobs_left(database):
            assert time.monotonic() < end, jobs_left(database)
            time.sleep(0.05)
        assert journal.get_run(run_id).state == RunState.WAITING
        assert [c["step"] for c in read_calls(tmp_path)] == ["a"], read_calls(tmp_path)  # a ran once
        assert [(a.step_id, a.outcome) for a in journal.attempts(run_id=run_id)] == [("a", "succeeded")]
    finally:
        journal.close()
        codes = stop([proc])
    assert codes == [0], (tmp_path / "w1.log").read_text()[-2000:]


def jobs_left(url: str) -> int:
    with psycopg.connect(conninfo(url)) as conn:
        row = conn.execute("SELECT count(*) FROM procrastinate_jobs").fetchone()
        return int(row[0]) if row else 0


def test_a_worker_struck_off_the_queues_books_registers_again(database: str, tmp_path: Path) -> None:  # noqa: F811
    files(tmp_path)
    ensure_schema(database)
    proc = start_worker(database, tmp_path, "w1")
    journal = Journal.open(database)
    books = psycopg.connect(conninfo(database), autocommit=True)
    try:
        wait_ready({"w1": proc}, tmp_path)
        count = "SELECT count(*) FROM procrastinate_workers"
        wait_until(proc, tmp_path / "w1.log", lambda: books.execute(count).fetchone() == (1,))  # registered
        # what a worker starting elsewhere does to the row of one it thinks stalled (Procrastinate's
        # prune at start: a worker away longer than its lease TTL, a partition say); a job's fetch
        # names the worker's row, which is gone
        books.execute("DELETE FROM procrastinate_workers")
        ids = submit(database, tmp_path, count=2, sleep=0)
        states = wait_finished(journal, ids, timeout=30)
        assert set(states.values()) == {RunState.SUCCEEDED}, (tmp_path / "w1.log").read_text()[-3000:]
        assert proc.poll() is None
        assert books.execute(count).fetchone() == (1,)  # on the books again
    finally:
        books.close()
        journal.close()
        codes = stop([proc])
    assert codes == [0], (tmp_path / "w1.log").read_text()[-2000:]
