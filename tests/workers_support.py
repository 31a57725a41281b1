"""Shared parts of the worker tests and bench: a throwaway PostgreSQL database, the catalog and
workflow they run, and the Python action the worker subprocesses call (it records every call,
with its idempotency key, in a file per process, so tests can count executions across workers).

The module is on the workers' PYTHONPATH; its action is `workers_support:work`.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CALLS_ENV = "OVERTURE_WORKERS_CALLS"
ADMIN = "host={host} port={port} user=postgres dbname=postgres"

CATALOG = """
actions:
  - name: w.work
    input: {type: object, properties: {label: {type: string}, sleep: {type: number}}}
    invoke: {kind: python, callable: "workers_support:work"}
"""

# a diamond: a → (b ∥ c) → d; `sleep` keeps steps in flight long enough to kill a worker mid-run
FLOW = """
name: diamond
inputs: {type: object, properties: {sleep: {type: number}}}
steps:
  - {id: a, action: w.work, with: {label: a, sleep: "${{ inputs.sleep }}"}}
  - {id: b, action: w.work, needs: [a], with: {label: b, sleep: "${{ inputs.sleep }}"}}
  - {id: c, action: w.work, needs: [a], with: {label: c, sleep: "${{ inputs.sleep }}"}}
  - {id: d, action: w.work, needs: [b, c], with: {label: d, sleep: "${{ inputs.sleep }}"}}
"""

STEPS = ("a", "b", "c", "d")


async def work(label: str, call: Any, sleep: float = 0.0) -> dict[str, Any]:
    """Record the call (fsynced before acting, so a SIGKILL cannot lose it), then take `sleep` s."""
    folder = os.environ.get(CALLS_ENV)
    if folder:
        line = (
            json.dumps(
                {
                    "run": call.run_id,
                    "step": call.step_id,
                    "key": call.idempotency_key,
                    "attempt": call.attempt,
                    "pid": os.getpid(),
                    "t": time.time(),
                }
            )
            + "\n"
        )
        fd = os.open(Path(folder) / f"calls-{os.getpid()}.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
    if sleep:
        await asyncio.sleep(float(sleep))
    return {"label": label, "pid": os.getpid()}


def read_calls(folder: Path) -> list[dict[str, Any]]:
    calls = [json.loads(line) for f in folder.glob("calls-*.jsonl") for line in f.read_text().splitlines()]
    return sorted(calls, key=lambda c: c["t"])


def postgres_reason(host: str = "127.0.0.1", port: int = 5432) -> str | None:
    import psycopg

    try:
        with psycopg.connect(ADMIN.format(host=host, port=port), connect_timeout=2):
            return None
    except Exception as exc:
        return f"PostgreSQL at {host}:{port} (user postgres) is not reachable: {exc}"


@contextmanager
def scratch_database(host: str = "127.0.0.1", port: int = 5432) -> Iterator[str]:
    """A database of its own (`overture_workers_<random>`), dropped afterwards; yields its URL."""
    import psycopg

    name = f"overture_workers_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN.format(host=host, port=port), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@{host}:{port}/{name}"
    finally:
        with psycopg.connect(ADMIN.format(host=host, port=port), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


FETCH_GATE = 0x0F7E_7E57
"""The advisory lock `gate_fetches` makes every job fetch wait on (a key of the tests' own)."""

_GATED_FETCH = """
ALTER FUNCTION procrastinate_fetch_job_v2(character varying[], bigint)
    RENAME TO procrastinate_fetch_job_v2_ungated;
CREATE FUNCTION procrastinate_fetch_job_v2(queues character varying[], worker bigint)
    RETURNS procrastinate_jobs LANGUAGE plpgsql AS $$
DECLARE
    found procrastinate_jobs;
BEGIN
    -- waits while the test holds the gate: after the calling statement took its snapshot,
    -- before the fetch takes its own (where a busy server may preempt a backend anyway)
    PERFORM pg_advisory_lock_shared({gate});
    PERFORM pg_advisory_unlock_shared({gate});
    SELECT * INTO found FROM procrastinate_fetch_job_v2_ungated(queues, worker);
    RETURN found;
END $$;
"""


def gate_fetches(url: str) -> None:
    """Make Procrastinate's job fetch in the database at `url` wait at the gate (`FetchGate`)
    first. Before any worker starts: a statement prepared earlier keeps calling the old function."""
    import psycopg

    from runtime.workers.queue import conninfo

    with psycopg.connect(conninfo(url), autocommit=True) as conn:
        conn.execute(_GATED_FETCH.replace("{gate}", str(FETCH_GATE)))  # type: ignore[arg-type]


class FetchGate:
    """Holds the fetch gate shut while open as a context manager (see `gate_fetches`)."""

    def __init__(self, url: str) -> None:
        from runtime.workers.queue import conninfo

        self._conninfo = conninfo(url)
        self._conn: Any = None

    def __enter__(self) -> FetchGate:
        import psycopg

        self._conn = psycopg.connect(self._conninfo, autocommit=True)
        self._conn.execute("SELECT pg_advisory_lock(%s)", (FETCH_GATE,))
        return self

    def waiting(self) -> int:
        """Fetches waiting at the gate now."""
        row = self._conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
            "AND classid = 0 AND objid = %s AND database = "
            "(SELECT oid FROM pg_database WHERE datname = current_database())",
            (FETCH_GATE,),
        ).fetchone()
        return int(row[0])

    def wait_for_fetch(self, timeout: float = 30.0) -> None:
        end = time.monotonic() + timeout
        while not self.waiting():
            assert time.monotonic() < end, "no fetch reached the gate"
            time.sleep(0.02)

    def __exit__(self, *exc: object) -> None:
        self._conn.close()  # the session's lock goes with it: the fetches go on
