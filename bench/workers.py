"""Scale-out bench: `overture worker` subprocesses on a real PostgreSQL (127.0.0.1:5432, a scratch
database of its own, dropped at the end). For 1, 2 and 4 workers:

- dispatch latency: one run at a time on idle workers, from the run's creation in the journal
  (the submitter journals it, then holds it for the queue and defers its job in one statement)
  to its first action call starting in a worker (NOTIFY wake-up; one statement claims the job
  with SKIP LOCKED, moves the run's lease to the worker and reads the run; first attempt);
- throughput: a batch of runs submitted back to back; runs finished per second, from the first
  run's creation to the last run's end.

    .venv/bin/python bench/workers.py --runs 200 --samples 30

The workflow is four Python no-op steps (a → b ∥ c → d). The last line printed is one JSON object
with the figures; the workers are always stopped and the database dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CATALOG = """
actions:
  - name: b.noop
    input: {type: object, properties: {label: {type: string}}}
    invoke: {kind: python, callable: "workers:noop"}
"""
FLOW = """
name: bench-diamond
steps:
  - {id: a, action: b.noop, with: {label: a}}
  - {id: b, action: b.noop, needs: [a], with: {label: b}}
  - {id: c, action: b.noop, needs: [a], with: {label: c}}
  - {id: d, action: b.noop, needs: [b, c], with: {label: d}}
"""
ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"


async def noop(label: str) -> dict[str, Any]:
    """The benched action (imported by the workers as `workers:noop`)."""
    return {"label": label}


@contextmanager
def scratch_database(synchronous_commit: str) -> Iterator[str]:
    import psycopg

    name = f"overture_workers_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
        # `off` shows what the dispatch path costs without waiting on the disk's flush per commit
        conn.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = {synchronous_commit}')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def start_workers(url: str, folder: Path, count: int, jobs: int) -> list[subprocess.Popen[bytes]]:
    # the repository first: bench/ holds a runtime.py that must not shadow the runtime package
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{Path(__file__).parent}"}
    procs = []
    for i in range(count):
        log = open(folder / f"w{i}.log", "wb")
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "service.cli", "worker", "start", "--database-url", url,
             "--catalog", str(folder / "catalog.yaml"), "--worker-id", f"bench-{count}-{i}",
             "--jobs", str(jobs), "--poll-interval", "1", "--log-level", "warning"],
            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO))
    end = time.monotonic() + 120
    for i, proc in enumerate(procs):
        while b"ready" not in (folder / f"w{i}.log").read_bytes():
            if proc.poll() is not None or time.monotonic() > end:
                stop(procs)
                raise SystemExit(f"worker {i} did not start: {(folder / f'w{i}.log').read_text()[-2000:]}")
            time.sleep(0.05)
    return procs


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(url: str, folder: Path, samples: int, runs: int) -> dict[str, float]:
    from runtime.invokers import build_invoker
    from runtime.journal import Journal
    from runtime.records import RunState
    from runtime.secrets import SecretStore
    from runtime.workers import QueueingEngine, RunQueue
    from workflow.loader import load_catalog, read_data
    from workflow.validator import ensure_valid

    catalog = load_catalog(folder / "catalog.yaml")
    workflow = ensure_valid(read_data(folder / "flow.yaml"), catalog)
    journal = Journal.open(url)
    engine = QueueingEngine(catalog, journal, build_invoker(catalog, SecretStore.from_env()),
                            queue=RunQueue(url), worker_id="bench")
    finished = {RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED}

    async def settle(ids: list[str], timeout: float) -> None:
        end = time.monotonic() + timeout
        pending = set(ids)
        while pending:
            # timings come from the journal; a light poll leaves the CPU to the workers (the first
            # look waits too: reading the run at once competed with the worker taking it over)
            await asyncio.sleep(0.02)
            pending = {r for r in pending if journal.get_run(r).state not in finished}
            if time.monotonic() > end:
                raise SystemExit(f"{len(pending)} run(s) did not finish in {timeout:g}s")

    try:
        latencies = []
        for _ in range(samples):
            run_id = await engine.start_run(workflow, {})
            await settle([run_id], 30)
            created = journal.get_run(run_id).created_at
            first = min(a.started_at for a in journal.attempts(run_id=run_id))
            latencies.append((first - created) * 1000)
        ids = [await engine.start_run(workflow, {}) for _ in range(runs)]
        await settle(ids, 600)
        records = [journal.get_run(r) for r in ids]
        bad = [r.id for r in records if r.state != RunState.SUCCEEDED]
        if bad:
            raise SystemExit(f"{len(bad)} run(s) did not succeed, e.g. {bad[0]}")
        span = max(r.ended_at or 0 for r in records) - min(r.created_at for r in records)
        return {"dispatch_p50_ms": round(statistics.median(latencies), 2),
                "dispatch_p95_ms": round(pct(latencies, 0.95), 2),
                "runs_per_s": round(runs / span, 1), "batch_s": round(span, 2)}
    finally:
        await engine.close()
        journal.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200, help="runs in each throughput batch")
    parser.add_argument("--samples", type=int, default=30, help="runs timed one at a time for latency")
    parser.add_argument("--workers", default="1,2,4", help="worker counts to bench")
    parser.add_argument("--jobs", type=int, default=16, help="runs each worker drives at once")
    parser.add_argument("--synchronous-commit", choices=["on", "off"], default="on",
                        help="PostgreSQL synchronous_commit for the bench database")
    args = parser.parse_args()
    from runtime.workers import ensure_schema

    figures: dict[str, Any] = {"runs": args.runs, "samples": args.samples, "steps_per_run": 4,
                               "jobs_per_worker": args.jobs, "cpus": os.cpu_count(),
                               "load_avg_1m": round(os.getloadavg()[0], 1),
                               "synchronous_commit": args.synchronous_commit}
    with tempfile.TemporaryDirectory() as tmp, scratch_database(args.synchronous_commit) as url:
        folder = Path(tmp)
        (folder / "catalog.yaml").write_text(CATALOG)
        (folder / "flow.yaml").write_text(FLOW)
        ensure_schema(url)
        for count in [int(n) for n in args.workers.split(",")]:
            procs = start_workers(url, folder, count, args.jobs)
            load = round(os.getloadavg()[0], 1)  # the machine is shared: each figure with its load
            try:
                result = asyncio.run(measure(url, folder, args.samples, args.runs))
            finally:
                stop(procs)
            result["load_avg_1m"] = load
            print(f"{count} worker(s): dispatch p50 {result['dispatch_p50_ms']} ms, "
                  f"p95 {result['dispatch_p95_ms']} ms; {result['runs_per_s']} runs/s "
                  f"({args.runs} runs in {result['batch_s']} s); load average {load}", flush=True)
            figures[f"workers_{count}"] = result
    medians = [v["dispatch_p50_ms"] for k, v in figures.items() if k.startswith("workers_")]
    figures["dispatch_p50_ms"] = max(medians)  # the worst of the worker counts
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
