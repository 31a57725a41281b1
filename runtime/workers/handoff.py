"""The queue's hand-off of a run between the submitter and a worker, one SQL statement each way.

The journal's lease says who drives a run; the queue's job says that some worker should. The two
move together:

- `hold_and_defer` (the submitter): the run's lease goes to the queue's hand-off holder
  (`QUEUED_OWNER`, so no worker's orphan scan takes the fresh run past its job slots) and the
  Procrastinate job is deferred (its insert trigger sends the NOTIFY) — one statement;
- `take` (a woken worker): Procrastinate's own `procrastinate_fetch_job_v2` claims a job with
  `SKIP LOCKED`, the run's lease moves from the hand-off holder to the worker in the same
  statement, and the run's row, its step rows and how many of its attempts are still `started`
  come back with it — what the engine reads before its first attempt. When the job came without
  its run (the fetch's own snapshot saw a job whose run the statement's did not, or another
  worker held the run), a second statement moves the lease and reads the run (`_RETAKE`).

Before, the same path took a lease write and a defer on the submitter's side, then a job fetch,
a release of the hand-off lease, the engine's claim and five reads on the worker's: ten calls,
six of them commits. Each statement here runs alone (autocommit) and commits asynchronously
(`synchronous_commit` off for that transaction only): losing either to a crash of PostgreSQL
loses nothing the runtime's guarantees rest on. A lost hold-and-defer leaves the run without an
owner, and every worker's orphan scan takes it up; a lost take leaves the job `todo` and the
lease with the queue, so the job is fetched again (and nothing after it was kept either: a later
durable commit flushes the log up to itself). The run itself (`create_run`) and every step's
result are committed by the journal, durably, as before.

The SQL uses the journal's tables (`runtime.journal_schema`), on a connection of its own to the
journal's database, and
Procrastinate's functions and tables as its schema defines them (`procrastinate_defer_jobs_v1`,
`procrastinate_fetch_job_v2`, the `queueing_lock` of a waiting job).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import psycopg
import psycopg.errors
import sqlalchemy as sa
from procrastinate.jobs import Job
from psycopg.rows import dict_row
from sqlalchemy.engine import make_url

from runtime.journal import Journal
from runtime.journal_schema import attempts, runs, step_results
from runtime.records import RunRecord, StepRecord
from runtime.workers.queue import QUEUE_NAME, QUEUED_OWNER, TASK_NAME, QueueUnavailable, conninfo


def _table(journal: Journal, table: sa.Table) -> str:
    # raw statements bypass the engine's schema_translate_map: qualify by hand
    return f'"{journal.schema}".{table.name}' if journal.schema else table.name


@dataclass(frozen=True)
class Taken:
    """A job claimed from the queue, with the run it names when its lease came with it."""

    job: Job
    run: RunRecord | None
    """None: the lease stayed where it was (another worker drives the run) or no such run."""
    steps: dict[tuple[str, int], StepRecord] = field(default_factory=dict)
    started_attempts: int = 0
    lease_until: float = 0.0


class HandoffLink:
    """A connection of its own to the journal's database, in autocommit, for the hand-off
    statements; asynchronous, so a worker's engine keeps running while its next fetch waits.

    Held rather than taken from the journal's pool per call: a checkout pings the server first
    and a transaction adds BEGIN and COMMIT, three round trips around the one that matters (each
    ~0.2 ms when the loop was idle). Calls are serialized; a broken connection is replaced at
    the next call."""

    def __init__(self, journal: Journal) -> None:
        self._url = journal._engine.url.render_as_string(hide_password=False)
        self._conninfo = conninfo(self._url)
        self._conn: psycopg.AsyncConnection[dict[str, Any]] | None = None
        self._lock = asyncio.Lock()
        self._hold_sql = _HOLD_AND_DEFER.format(runs=_table(journal, runs))
        tables = {
            "runs": _table(journal, runs),
            "steps": _table(journal, step_results),
            "attempts": _table(journal, attempts),
        }
        self._take_sql = _TAKE.format(**tables)
        self._retake_sql = _RETAKE.format(**tables)

    async def _one(self, sql: str, params: dict[str, Any]) -> dict[str, Any]:
        async with self._lock:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = await psycopg.AsyncConnection.connect(
                        self._conninfo, autocommit=True, row_factory=dict_row
                    )
                cur = await self._conn.execute(sql, params)
                row = await cur.fetchone()
            except psycopg.OperationalError as exc:
                await self._drop()
                shown = make_url(self._url).render_as_string(hide_password=True)
                reason = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
                raise QueueUnavailable(f"cannot reach the run queue at {shown}: {reason}", url=shown) from exc
            assert row is not None  # both statements always return one row
            return row

    async def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
            self._conn = None

    async def close(self) -> None:
        async with self._lock:
            await self._drop()

    async def hold_and_defer(self, run_id: str, *, ttl: float, now: float | None = None) -> int | None:
        """Hand the run to the queue: its lease to `QUEUED_OWNER` for `ttl` seconds (unless a
        worker holds it: that worker's engine sees the poke through the job) and a job deferred
        for it. Returns the job's id, or None when a job for the run was already waiting.

        `now`: the lease clock's time; None (outside tests) is the database server's clock, as
        for every lease (`Journal.claim`)."""
        params = {
            "queued": QUEUED_OWNER,
            "ttl": ttl,
            "now": now,
            "run_id": run_id,
            "queue_name": QUEUE_NAME,
            "task_name": TASK_NAME,
            "args": json.dumps({"run_id": run_id}),
        }
        try:
            row = await self._one(self._hold_sql, params)
        except psycopg.errors.UniqueViolation:
            # another poke deferred the run's job between our check and our insert; it is
            # waiting, and its statement held the lease for the queue as ours would have
            return None
        return None if row["job_id"] is None else int(row["job_id"])

    async def take(
        self, *, queues: list[str] | None, worker_id: int, owner: str, ttl: float, now: float | None = None
    ) -> Taken | None:
        """Claim the next job (Procrastinate's fetch, `SKIP LOCKED`) and, in the same statement,
        move its run's lease to `owner` from the queue's hold (or from nobody, or from a lapsed
        lease) and read the run back. None when no job is waiting. `now` as for `hold_and_defer`."""
        params = {
            "queues": queues,
            "worker_id": worker_id,
            "owner": owner,
            "ttl": ttl,
            "now": now,
            "queued": QUEUED_OWNER,
            "task_name": TASK_NAME,
        }
        row = await self._one(self._take_sql, params)
        if row["id"] is None:
            return None
        job = Job.from_row(row)
        run_id = (row["args"] or {}).get("run_id") if row["task_name"] == TASK_NAME else None
        if row["run"] is None and isinstance(run_id, str):
            # Procrastinate's fetch is a VOLATILE function: it looks at the jobs with a snapshot
            # of its own, taken after the statement's, which the lease move uses. A run created
            # and handed to the queue in between (a worker fetching again just as the submitter
            # journals the next run) has its job claimed here while the move does not see its
            # row: the job is used up, and the run would stay with the queue's hold until it
            # lapses (2 minutes) before an orphan scan took it. Move the lease again, in a
            # statement of its own, which sees the run (it was committed before its job).
            row = await self._one(self._retake_sql, {**params, "run_id": run_id})
        if row["run"] is None:
            return Taken(job=job, run=None)
        steps = [Journal._step(SimpleNamespace(**s)) for s in row["steps"]]
        return Taken(
            job=job,
            run=Journal._run(SimpleNamespace(**row["run"])),
            steps={(s.step_id, s.iteration): s for s in steps},
            started_attempts=int(row["started"]),
            lease_until=float(row["run"]["lease_until"]),
        )


# the lease clock: the database server's, which every machine shares (or a test's made-up time)
_NOW = "coalesce(%(now)s::float8, extract(epoch FROM clock_timestamp())::float8)"


# the lease moves from the queue's hold, from nobody or from a lapsed lease; never from a live one
_MOVABLE = f"(r.owner IS NULL OR r.owner IN (%(queued)s, %(owner)s) OR r.lease_until < {_NOW})"

# the run the lease move returned (`taken`), its step rows and its attempts left `started`
_READ_BACK = """(SELECT row_to_json(taken) FROM taken) AS run,
           (SELECT coalesce(json_agg(s), '[]') FROM {steps} AS s
             WHERE s.run_id = (SELECT id FROM taken)) AS steps,
           (SELECT count(*) FROM {attempts} AS a
             WHERE a.run_id = (SELECT id FROM taken) AND a.outcome = 'started') AS started"""


def _fill(sql: str) -> str:
    """The statement with its parts and the lease clock (`NOW`) written in."""
    return sql.replace("MOVABLE", _MOVABLE).replace("READ_BACK", _READ_BACK).replace("NOW", _NOW)


_HOLD_AND_DEFER = _fill("""
    WITH held AS (
        UPDATE {runs} SET owner = %(queued)s, lease_until = NOW + %(ttl)s
        WHERE id = %(run_id)s
          AND (owner IS NULL OR owner = %(queued)s OR lease_until < NOW)
        RETURNING id
    ), deferred AS (
        SELECT unnest(procrastinate_defer_jobs_v1(ARRAY[ROW(
                   %(queue_name)s, %(task_name)s, 0, NULL, %(run_id)s, %(args)s::jsonb, NULL
               )::procrastinate_job_to_defer_v1])) AS id
        -- one waiting job per run (the queueing lock): a second poke adds nothing
        WHERE NOT EXISTS (SELECT 1 FROM procrastinate_jobs
                          WHERE queueing_lock = %(run_id)s AND status = 'todo')
    )
    SELECT set_config('synchronous_commit', 'off', true) AS async_commit,
           (SELECT count(*) FROM held) AS held,
           (SELECT id FROM deferred) AS job_id
""")

_TAKE = _fill("""
    WITH job AS MATERIALIZED (
        SELECT * FROM procrastinate_fetch_job_v2(%(queues)s::varchar[], %(worker_id)s)
    ), taken AS (
        UPDATE {runs} AS r SET owner = %(owner)s, lease_until = NOW + %(ttl)s
        FROM job
        WHERE job.id IS NOT NULL AND job.task_name = %(task_name)s
          AND r.id = job.args ->> 'run_id' AND MOVABLE
        RETURNING r.*
    )
    SELECT set_config('synchronous_commit', 'off', true) AS async_commit,
           job.id, job.status, job.task_name, job.priority, job.lock, job.queueing_lock,
           job.args, job.scheduled_at, job.queue_name, job.attempts, job.worker_id,
           READ_BACK
    FROM job
""")

_RETAKE = _fill("""
    WITH taken AS (
        UPDATE {runs} AS r SET owner = %(owner)s, lease_until = NOW + %(ttl)s
        WHERE r.id = %(run_id)s AND MOVABLE
        RETURNING r.*
    )
    SELECT set_config('synchronous_commit', 'off', true) AS async_commit, READ_BACK
""")
