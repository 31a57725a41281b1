"""Worker wake-ups on a real PostgreSQL: a job's NOTIFY wakes the one worker whose turn it is in
the line of workers with a free slot (`runtime.workers.line`), not every idle worker, and no job
waits for the poll: the workers here poll every 60 s, so every run they finish within seconds was
dispatched through the line.

The workers are `Worker`s on tasks of the test's event loop (each with its own journal, queue
connections and line connection, as in a process of its own), the submitter a `QueueingEngine`,
as the API with `OVERTURE_DISPATCH=workers`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from workers_support import CATALOG, FLOW, postgres_reason, scratch_database

from runtime.invokers import build_invoker
from runtime.journal import Journal
from runtime.records import RunState
from runtime.secrets import SecretStore
from runtime.workers import QueueingEngine, RunQueue, Worker, WorkerOptions, ensure_schema
from runtime.workers.line import LINE_LOCK
from runtime.workers.queue import conninfo
from workflow.loader import load_catalog, read_data
from workflow.validator import ensure_valid

POLL_S = 60.0
"""Longer than any test: a run dispatched in time was not found by a poll."""

FINISHED = {RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED}


@pytest.fixture
def database() -> Iterator[str]:
    reason = postgres_reason()
    if reason:
        pytest.skip(reason)
    with scratch_database() as url:
        ensure_schema(url)
        yield url


@dataclass
class Cluster:
    url: str
    workers: list[Worker]
    tasks: list[asyncio.Task[int]]
    engine: QueueingEngine
    journal: Journal
    workflow: object

    def fetches(self) -> int:
        """Fetches that went to the database, over every worker."""
        return sum(w._taking.fetches for w in self.workers if w._taking is not None)

    async def run(self, sleep: float = 0.0) -> str:
        return await self.engine.start_run(self.workflow, {"sleep": sleep})  # type: ignore[arg-type]

    async def settle(self, ids: list[str], timeout: float) -> float:
        """Wait for the runs to finish (each must succeed); returns how long it took."""
        start = time.monotonic()
        pending = set(ids)
        while pending:
            await asyncio.sleep(0.02)
            pending = {r for r in pending if self.journal.get_run(r).state not in FINISHED}
            assert time.monotonic() - start < timeout, (
                f"{len(pending)} run(s) left unclaimed after {timeout}s"
            )
        assert {self.journal.get_run(r).state for r in ids} == {RunState.SUCCEEDED}
        return time.monotonic() - start

    async def quiet(self) -> None:
        """Let the workers' turns settle (the turn that begins after a job is taken fetches)."""
        await asyncio.sleep(0.3)


@asynccontextmanager
async def cluster(
    url: str, folder: Path, count: int, *, jobs: int = 4, line: bool = True
) -> AsyncIterator[Cluster]:
    (folder / "catalog.yaml").write_text(CATALOG)
    (folder / "flow.yaml").write_text(FLOW)
    catalog = load_catalog(folder / "catalog.yaml")
    workflow = ensure_valid(read_data(folder / "flow.yaml"), catalog)
    workers = [
        Worker(
            WorkerOptions(
                database_url=url,
                worker_id=f"w{i}-{'line' if line else 'herd'}",
                jobs=jobs,
                lease_ttl_s=10.0,
                poll_interval_s=POLL_S,
                drain_timeout_s=10.0,
                router="default",
                line=line,
            ),
            catalog=catalog,
        )
        for i in range(count)
    ]
    ready = [asyncio.Event() for _ in workers]
    tasks = [asyncio.ensure_future(w.run(ready=e.set)) for w, e in zip(workers, ready, strict=True)]
    journal = Journal.open(url)
    engine = QueueingEngine(
        catalog,
        journal,
        build_invoker(catalog, SecretStore.from_env()),
        queue=RunQueue(url),
        worker_id="test-submit",
    )
    try:
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in ready)), 60)
        await asyncio.sleep(0.5)  # every worker's first fetch (at its start) is done
        yield Cluster(url, workers, tasks, engine, journal, workflow)
    finally:
        for w in workers:
            w.stop()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 60)
        await engine.close()
        journal.close()
    for task in tasks:
        assert task.exception() is None, task.exception()


async def fetches_per_run(url: str, folder: Path, *, line: bool, workers: int, runs: int) -> float:
    async with cluster(url, folder, workers, line=line) as c:
        before = c.fetches()
        for _ in range(runs):
            # one at a time, on idle workers: each job is announced to every one of them
            await c.settle([await c.run()], timeout=20)
            await c.quiet()
        return (c.fetches() - before) / runs


async def test_a_job_wakes_one_worker_not_every_idle_one(database: str, tmp_path: Path) -> None:
    herd = await fetches_per_run(database, tmp_path, line=False, workers=4, runs=5)
    line = await fetches_per_run(database, tmp_path, line=True, workers=4, runs=5)
    # without the line every idle worker fetches on every NOTIFY (and the winner once more);
    # with it, the taker fetches (and takes the job), fetches again (finds the queue drained and
    # hands the turn on), and the next worker's turn begins with a fetch: 3, whatever the number
    # of workers
    assert herd >= 4, herd
    assert line <= 3.2, line


async def test_a_burst_is_claimed_through_the_line_without_waiting_for_the_poll(
    database: str, tmp_path: Path
) -> None:
    # 3 workers of 2 slots each and 12 runs that hold their slot a while: workers fill up, leave
    # the line and join it again as their runs end; every job is taken, none by a poll
    async with cluster(database, tmp_path, 3, jobs=2) as c:
        ids = [await c.run(sleep=0.2) for _ in range(12)]
        took = await c.settle(ids, timeout=30)
        assert took < POLL_S / 2
        jobs = [w.stats.jobs for w in c.workers]
        assert sum(jobs) == 12
        assert sum(1 for n in jobs if n) >= 2, jobs  # spread over the workers, not one worker's
        # (a run is journaled as finished a moment before its job's task returns)
        for _ in range(100):
            if all(w._taking is not None and w._taking.running == 0 for w in c.workers):
                break
            await asyncio.sleep(0.02)
        assert [w._taking.running for w in c.workers if w._taking is not None] == [0, 0, 0]
        # each worker got back in line when a run ended and freed a slot
        await c.quiet()
        lines = [w._taking.line for w in c.workers if w._taking is not None]
        assert [line is not None and line.in_line for line in lines] == [True, True, True]
        assert sum(1 for line in lines if line is not None and line.taker) == 1


async def _taker(url: str) -> tuple[int, str]:
    """The backend pid and application name of the line's lock holder."""
    async with await psycopg.AsyncConnection.connect(conninfo(url), autocommit=True) as conn:
        for _ in range(100):
            cur = await conn.execute(
                "SELECT a.pid, a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
                " WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 0 AND l.objid = %s"
                " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                (LINE_LOCK,),
            )
            row = await cur.fetchone()
            if row is not None:
                return int(row[0]), str(row[1])
            await asyncio.sleep(0.05)
    raise AssertionError("nobody holds the line")


async def test_when_the_takers_session_ends_or_it_stops_the_next_worker_takes_the_jobs(
    database: str, tmp_path: Path
) -> None:
    async with cluster(database, tmp_path, 3) as c:
        await c.settle([await c.run()], timeout=20)
        await c.quiet()
        # the server ends the taker's line session (as when its process is killed)
        pid, name = await _taker(database)
        async with await psycopg.AsyncConnection.connect(conninfo(database), autocommit=True) as admin:
            await admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        took = await c.settle([await c.run()], timeout=10)
        assert took < 5, took
        _, after = await _taker(database)
        assert after != name
        # a worker that stops leaves the line at once (its drain takes no job)
        holder = next(w for w in c.workers if after.endswith(w.options.worker_id))
        jobs = holder.stats.jobs
        holder.stop()
        await c.quiet()
        took = await c.settle([await c.run()], timeout=10)
        assert took < 5, took
        assert holder.stats.jobs == jobs
        _, last = await _taker(database)
        assert not last.endswith(holder.options.worker_id)
