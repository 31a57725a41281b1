"""The run queue on Procrastinate: one job per run to drive, in the journal's own database.

Procrastinate keeps its jobs in PostgreSQL tables next to the journal, wakes workers with
LISTEN/NOTIFY when a job is deferred and hands each job to exactly one worker with
`SELECT … FOR UPDATE SKIP LOCKED`. A job only says "drive run X": the run itself (its document,
inputs, steps) is in the journal, so a lost or duplicated job costs nothing but a wake-up.
"""

from __future__ import annotations

import logging

import psycopg
from procrastinate import App, PsycopgConnector
from procrastinate.exceptions import AlreadyEnqueued
from procrastinate.schema import SchemaManager
from sqlalchemy.engine import make_url

from runtime import journal_pg
from runtime.journal import Journal

log = logging.getLogger("overture.workers")

TASK_NAME = "overture.drive_run"
QUEUE_NAME = "overture-runs"
QUEUED_OWNER = "queue"
"""The lease owner of a run that waits in the queue: no worker's orphan scan takes it up (the job
will, with admission by the worker's job slots) until the hand-off lease runs out."""
_SCHEMA_LOCK = 0x0F7E_2E01  # pg advisory lock key: two workers starting at once apply the schema once


class QueueUnavailable(RuntimeError):
    """The queue's database cannot be used (not PostgreSQL, unreachable, no schema)."""

    def __init__(self, message: str, *, url: str) -> None:
        super().__init__(message)
        self.url = url


def conninfo(url: str) -> str:
    """The libpq connection string for a journal URL (`postgresql+psycopg://…` → `postgresql://…`),
    with the TCP keepalive and timeout options the URL does not set itself (the queue's pool, its
    listener, the hand-off link and the line all connect with it)."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("postgresql"):
        raise QueueUnavailable(
            f"workers need a PostgreSQL journal (got `{parsed.drivername}`); pass "
            "--database-url postgresql+psycopg://USER@HOST/DB",
            url=parsed.render_as_string(hide_password=True),
        )
    query = {**parsed.query, **journal_pg.tcp_options(parsed.query)}
    return parsed.set(drivername="postgresql", query=query).render_as_string(hide_password=False)


def ensure_schema(url: str) -> bool:
    """Create the journal's and Procrastinate's tables when missing, one process at a time
    (workers starting together would race on CREATE TABLE); True when the queue's were created."""
    try:
        with psycopg.connect(conninfo(url), autocommit=False) as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            Journal.open(url).close()
            row = conn.execute("SELECT to_regclass('procrastinate_jobs')").fetchone()
            if row is not None and row[0] is not None:
                return False
            conn.execute(SchemaManager.get_schema())
            conn.commit()
            log.info("created the run queue's tables")
            return True
    except psycopg.Error as exc:
        shown = make_url(url).render_as_string(hide_password=True)
        reason = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())  # one line
        raise QueueUnavailable(f"cannot prepare the run queue at {shown}: {reason}", url=shown) from exc


class RunQueue:
    """Defers "drive this run" jobs; `async with RunQueue(url) as queue: await queue.enqueue(id)`.

    The `QueueingEngine` defers through `handoff.HandoffLink.hold_and_defer` instead, which holds
    the run for the queue in the same statement; this is the plain way, through Procrastinate's
    own deferrer, for a run someone else holds."""

    def __init__(self, url: str, *, pool_size: int = 4) -> None:
        self.url = url
        self.app = App(connector=PsycopgConnector(conninfo=conninfo(url), min_size=1, max_size=pool_size))
        self._open = False

    async def open(self) -> RunQueue:
        if not self._open:
            await self.app.open_async()
            self._open = True
        return self

    async def close(self) -> None:
        if self._open:
            self._open = False
            await self.app.close_async()

    async def __aenter__(self) -> RunQueue:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def enqueue(self, run_id: str) -> int | None:
        """Ask some worker to drive the run; None when a job for it is already waiting (the
        queueing lock keeps one waiting job per run, so pokes do not pile up)."""
        await self.open()
        try:
            # the deferring side only needs the task's name; workers register the task with its body
            deferrer = self.app.configure_task(name=TASK_NAME, queue=QUEUE_NAME, queueing_lock=run_id)
            return await deferrer.defer_async(run_id=run_id)
        except AlreadyEnqueued:
            return None
