"""What a durable chain step cannot go below on this machine: SQLite and the disk alone, no engine.

    .venv/bin/python -m bench.runtime_floor [--steps 1000] [--rounds 3]

Three figures, each the median over `--rounds` fresh databases (the journal's own tables and
indexes, `runtime.journal_schema`, in WAL mode, under `bench/out/`):

- `floor_ms`: the leanest durable step SQLite allows: per step ONE transaction of three
  statements (the attempt's row, complete; the step's row; one event) and a synchronous=FULL
  commit, which fsyncs the log before the next step starts. Our journal records more than this
  (the attempt's start before the call, and a `step.started` event) and the engine decides what
  runs next; DBOS's step is one row and, on SQLite's defaults, a rollback journal.
- `one_insert_floor_ms`: the same with one statement (the attempt's row) per step.
- `after_fsync_us` vs `no_fsync_us`: a fixed piece of SQLite work (two INSERTs and a commit
  without fsync) timed right after an fdatasync, and without one. On a VM the vCPU halts while
  the fsync is in flight and comes back with cold caches: everything a step does after its
  barrier runs slower than the same work in a loop without fsyncs.

The `bench.runtime` chain's target (5x fewer ms than DBOS's step in the same run) compares with
these: see bench/README.md. The last line is one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import time
from pathlib import Path

import sqlalchemy as sa

from runtime.journal_schema import metadata

OUT = Path(__file__).resolve().parent / "out"

_ATTEMPT = (
    "INSERT INTO overture_attempts (run_id, workflow_name, step_id, iteration, attempt, kind, action,"
    " idempotency_key, started_at, ended_at, duration_s, outcome, output, output_truncated)"
    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,0)"
)
_STEP = (
    "INSERT INTO overture_step_results (run_id, step_id, iteration, state, action, output, attempts,"
    " updated_at) VALUES (?,?,?,?,?,?,?,?)"
)
_EVENT = "INSERT INTO overture_events (run_id, time, type, step_id, data) VALUES (?,?,?,?,?)"


def fresh_database(path: Path) -> sqlite3.Connection:
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        name.unlink(missing_ok=True)
    engine = sa.create_engine(f"sqlite:///{path}")
    metadata.create_all(engine)
    engine.dispose()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    return conn


def durable_chain(conn: sqlite3.Connection, steps: int, statements: int) -> float:
    """Median ms from one step's durable commit to the next's."""
    gaps: list[float] = []
    last = time.perf_counter()
    for i in range(steps):
        now = time.time()
        conn.execute("BEGIN")
        key = f"r1:s{i}"
        attempt = ("r1", "bench-chain", f"s{i}", -1, 1, "action", "bench.noop", key, now, now, 0.0)
        conn.execute(_ATTEMPT, (*attempt, "succeeded", "{}"))
        if statements > 1:
            conn.execute(_STEP, ("r1", f"s{i}", -1, "succeeded", "bench.noop", "{}", 1, now))
            conn.execute(_EVENT, ("r1", now, "step.succeeded", f"s{i}", json.dumps({"attempt": 1})))
        conn.execute("COMMIT")
        stamp = time.perf_counter()
        gaps.append(stamp - last)
        last = stamp
    return statistics.median(gaps) * 1000


def after_fsync(path: Path, steps: int) -> tuple[float, float]:
    """Median µs of the same small SQLite transaction without and right after an fdatasync."""
    conn = fresh_database(path)
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT, c TEXT)")
    conn.execute("CREATE INDEX ti ON t (b)")
    fd = os.open(f"{path}-wal", os.O_RDONLY)
    figures: dict[bool, list[float]] = {False: [], True: []}
    try:
        for i in range(steps * 2):
            synced = i % 2 == 1
            if synced:
                os.fdatasync(fd)
            t = time.perf_counter()
            conn.execute("BEGIN")
            conn.execute("INSERT INTO t (b, c) VALUES (?, ?)", (f"{i}a", "x" * 200))
            conn.execute("INSERT INTO t (b, c) VALUES (?, ?)", (f"{i}b", "x" * 200))
            conn.execute("COMMIT")
            figures[synced].append((time.perf_counter() - t) * 1e6)
    finally:
        os.close(fd)
        conn.close()
    return statistics.median(figures[False]), statistics.median(figures[True])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    path = OUT / "floor.db"
    three: list[float] = []
    one: list[float] = []
    plain: list[float] = []
    synced: list[float] = []
    try:
        for _ in range(args.rounds):
            for statements, into in ((3, three), (1, one)):
                conn = fresh_database(path)
                into.append(durable_chain(conn, args.steps, statements))
                conn.close()
            no, yes = after_fsync(path, args.steps)
            plain.append(no)
            synced.append(yes)
    finally:
        for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            name.unlink(missing_ok=True)
    figures = {
        "bench": "runtime_floor",
        "load_avg_1m": os.getloadavg()[0],
        "floor_ms": statistics.median(three),
        "one_insert_floor_ms": statistics.median(one),
        "no_fsync_us": statistics.median(plain),
        "after_fsync_us": statistics.median(synced),
    }
    print(
        f"one durable commit of three statements per step: {figures['floor_ms']:.3f} ms (rounds: "
        + ", ".join(f"{x:.3f}" for x in three)
        + ")"
    )
    print(f"one durable commit of one statement per step:    {figures['one_insert_floor_ms']:.3f} ms")
    print(
        f"a small transaction: {figures['no_fsync_us']:.1f} µs in a loop, "
        f"{figures['after_fsync_us']:.1f} µs right after an fdatasync"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
