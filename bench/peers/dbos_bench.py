"""DBOS Transact with a SQLite system database: the workloads of bench/runtime.py.

Run by bench/runtime.py in the peers venv; prints one JSON object as its last line. Not part of
the project's package (it imports `dbos`, which only the peers venv has).

- chain: one workflow calling N no-op steps one after another (gaps between step calls);
- fan-out: one async workflow running N no-op steps at once (asyncio.gather);
- runs: N one-step async workflows started at once;
- parked: workflows each waiting in `DBOS.recv_async` (DBOS's way to wait for outside input).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from dbos import DBOS, DBOSConfig

STAMPS: list[float] = []


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@DBOS.step()
def noop() -> None:
    STAMPS.append(time.perf_counter())


@DBOS.step()
async def noop_async() -> None:
    STAMPS.append(time.perf_counter())


@DBOS.workflow()
def chain(n: int) -> None:
    for _ in range(n):
        noop()


@DBOS.workflow()
async def fanout(n: int) -> None:
    await asyncio.gather(*(noop_async() for _ in range(n)))


@DBOS.workflow()
async def one() -> None:
    await noop_async()


@DBOS.workflow()
async def parked() -> None:
    await DBOS.recv_async("go", timeout_seconds=3600)


async def main_async(sizes: dict[str, int]) -> dict[str, Any]:
    figures: dict[str, Any] = {}

    n = sizes["chain"]
    STAMPS.clear()
    t0, c0 = time.perf_counter(), time.process_time()
    await asyncio.to_thread(chain, n)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    gaps = [(b - a) * 1000 for a, b in itertools.pairwise(STAMPS)]
    figures["chain"] = {
        "steps": n,
        "p50_ms": quantile(gaps, 0.5),
        "p99_ms": quantile(gaps, 0.99),
        "mean_ms": statistics.fmean(gaps),
        "steps_per_s": n / wall,
        "cpu_ms_per_step": cpu * 1000 / n,
        "wall_s": wall,
    }
    print(json.dumps({"chain": figures["chain"]}), file=sys.stderr, flush=True)

    n = sizes["fanout"]
    t0, c0 = time.perf_counter(), time.process_time()
    await fanout(n)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    figures["fanout"] = {
        "steps": n,
        "ms_per_step": wall * 1000 / n,
        "steps_per_s": n / wall,
        "cpu_ms_per_step": cpu * 1000 / n,
        "wall_s": wall,
    }
    print(json.dumps({"fanout": figures["fanout"]}), file=sys.stderr, flush=True)

    n = sizes["runs"]
    latencies: list[float] = []

    async def timed() -> None:
        t = time.perf_counter()
        handle = await DBOS.start_workflow_async(one)
        await handle.get_result()
        latencies.append((time.perf_counter() - t) * 1000)

    t0, c0 = time.perf_counter(), time.process_time()
    await asyncio.gather(*(timed() for _ in range(n)))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    figures["runs"] = {
        "runs": n,
        "runs_per_s": n / wall,
        "ms_per_run": wall * 1000 / n,
        "p50_run_ms": quantile(latencies, 0.5),
        "p99_run_ms": quantile(latencies, 0.99),
        "cpu_ms_per_run": cpu * 1000 / n,
        "wall_s": wall,
    }
    print(json.dumps({"runs": figures["runs"]}), file=sys.stderr, flush=True)

    n = sizes["parked"]
    for _ in range(20):  # warm-up, as for ours
        await DBOS.start_workflow_async(parked)
    await asyncio.sleep(0.5)
    gc.collect()
    before = rss_bytes()
    t0 = time.perf_counter()
    handles = [await DBOS.start_workflow_async(parked) for _ in range(n)]
    # parked = every workflow is inside recv (its status row exists and its coroutine waits)
    await asyncio.sleep(1.0)
    wall = time.perf_counter() - t0
    gc.collect()
    after = rss_bytes()
    figures["parked"] = {
        "runs": len(handles),
        "kb_per_parked_run": (after - before) / n / 1024,
        "parked_per_s": n / wall,
        "wall_s": wall,
    }
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--sizes", required=True)
    parser.add_argument(
        "--wal-normal",
        action="store_true",
        help="WAL with synchronous=NORMAL instead of DBOS's SQLite defaults (rollback journal, FULL)",
    )
    args = parser.parse_args()
    sizes = json.loads(args.sizes)
    # parked workflows each hold a coroutine and its recv; 10k of them take minutes to start at
    # DBOS's per-workflow cost, so fewer are measured (the figure is per run)
    sizes["parked"] = min(sizes["parked"], 2000)
    db = Path(args.dir).resolve() / "dbos.sqlite"
    config: DBOSConfig = {
        "name": "overture-bench",
        "system_database_url": f"sqlite:///{db}",
        "log_level": "WARNING",
    }
    if args.wal_normal:
        import sqlalchemy as sa

        engine = sa.create_engine(f"sqlite:///{db}", connect_args={"timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            # what DBOS does on connect, plus the same WAL/NORMAL setting as our `normal` mode
            dbapi_conn.isolation_level = "IMMEDIATE"
            dbapi_conn.execute("PRAGMA journal_mode=WAL")
            dbapi_conn.execute("PRAGMA synchronous=NORMAL")
            dbapi_conn.execute("PRAGMA busy_timeout=30000")
            dbapi_conn.execute("PRAGMA foreign_keys=ON")

        config["system_database_engine"] = engine
    DBOS(config=config)
    DBOS.launch()
    try:
        figures = asyncio.run(main_async(sizes))
    finally:
        DBOS.destroy(destroy_registry=False)
    figures["version"] = "3.4.0"  # as pinned in requirements-peers.txt (dbos has no __version__)
    figures["system_database"] = "sqlite, WAL, synchronous=NORMAL" if args.wal_normal else "sqlite (defaults)"
    print(json.dumps(figures))
    sys.stdout.flush()
    os._exit(0)  # parked workflows' threads would keep the process alive


if __name__ == "__main__":
    main()
