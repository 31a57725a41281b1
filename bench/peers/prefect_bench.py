"""Prefect 3, in process (its temporary local server on SQLite): the workloads of bench/runtime.py.

Run by bench/runtime.py in the peers venv; prints one JSON object as its last line. Not part of
the project's package (it imports `prefect`, which only the peers venv has).

- chain: one flow calling N no-op tasks one after another (gaps between task calls);
- fan-out: one flow mapping a no-op task over N items (`.map`, the default thread-pool runner);
- runs: concurrent one-task async flow runs (fewer than ours: a flow run costs about a second);
- parked: not measured. A flow run waiting for input is `suspend_flow_run` (needs a deployment and
  a worker, so not in process) or `pause_flow_run` (keeps the flow's process and polls the API).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

STAMPS: list[float] = []


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--sizes", required=True)
    args = parser.parse_args()
    sizes = json.loads(args.sizes)
    home = Path(args.dir).resolve()
    # a Prefect home of its own: its SQLite database, no profile or server of the user's
    os.environ["PREFECT_HOME"] = str(home)
    os.environ["PREFECT_API_DATABASE_CONNECTION_URL"] = f"sqlite+aiosqlite:///{home / 'prefect.db'}"
    os.environ["PREFECT_SERVER_ALLOW_EPHEMERAL_MODE"] = "true"
    # its temporary server takes a while to come up on a busy 2-core machine (default 20 s)
    os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "180"
    os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    os.environ.pop("PREFECT_API_URL", None)

    import prefect
    from prefect import flow, task

    @task
    def noop(_: Any = None) -> None:
        STAMPS.append(time.perf_counter())

    @task
    async def noop_async() -> None:
        STAMPS.append(time.perf_counter())

    @flow
    def chain(n: int) -> None:
        for _ in range(n):
            noop()

    @flow
    def fanout(n: int) -> None:
        futures = noop.map(list(range(n)))
        futures.wait()

    @flow
    async def one() -> None:
        await noop_async()

    figures: dict[str, Any] = {"version": prefect.__version__}
    chain(2)  # starts the temporary server and warms up, not counted
    for name, workload in (("chain", bench_chain), ("fanout", bench_fanout), ("runs", bench_runs)):
        try:
            figures[name] = workload(sizes, chain, fanout, one)
        except Exception as exc:  # one failing workload must not lose the others' figures
            figures[name] = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
        print(json.dumps({name: figures[name]}), file=sys.stderr, flush=True)
    figures["parked"] = {"skipped": "needs a deployment and a worker (suspend) or a live process (pause)"}
    print(json.dumps(figures))
    sys.stdout.flush()
    os._exit(0)  # the temporary server's threads would delay the exit


def bench_chain(sizes: dict[str, int], chain: Any, fanout: Any, one: Any) -> dict[str, Any]:
    n = sizes["chain"]
    STAMPS.clear()
    t0, c0 = time.perf_counter(), time.process_time()
    chain(n)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    gaps = [(b - a) * 1000 for a, b in itertools.pairwise(STAMPS)]
    return {
        "steps": n,
        "p50_ms": quantile(gaps, 0.5),
        "p99_ms": quantile(gaps, 0.99),
        "mean_ms": statistics.fmean(gaps),
        "steps_per_s": n / wall,
        "cpu_ms_per_step": cpu * 1000 / n,
        "wall_s": wall,
    }


def bench_fanout(sizes: dict[str, int], chain: Any, fanout: Any, one: Any) -> dict[str, Any]:
    n = sizes["fanout"]
    t0, c0 = time.perf_counter(), time.process_time()
    fanout(n)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {
        "steps": n,
        "ms_per_step": wall * 1000 / n,
        "steps_per_s": n / wall,
        "cpu_ms_per_step": cpu * 1000 / n,
        "wall_s": wall,
    }


RUNS_AT_ONCE = 8
"""Prefect's temporary server answers 503 to 50 or more flow runs started at once on this
machine; at most this many are in flight (the figure says so)."""


def bench_runs(sizes: dict[str, int], chain: Any, fanout: Any, one: Any) -> dict[str, Any]:
    # fewer than ours: a flow run costs tens of milliseconds to a second
    n = min(sizes["runs"], 50)
    latencies: list[float] = []
    bound = asyncio.Semaphore(RUNS_AT_ONCE)

    async def timed() -> None:
        async with bound:
            t = time.perf_counter()
            await one()
            latencies.append((time.perf_counter() - t) * 1000)

    async def many() -> None:
        await asyncio.gather(*(timed() for _ in range(n)))

    t0, c0 = time.perf_counter(), time.process_time()
    asyncio.run(many())
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {
        "runs": n,
        "at_once": RUNS_AT_ONCE,
        "runs_per_s": n / wall,
        "ms_per_run": wall * 1000 / n,
        "p50_run_ms": quantile(latencies, 0.5),
        "p99_run_ms": quantile(latencies, 0.99),
        "cpu_ms_per_run": cpu * 1000 / n,
        "wall_s": wall,
    }


if __name__ == "__main__":
    main()
