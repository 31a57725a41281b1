"""Runtime benchmark: orchestration overhead per no-op step, side by side with DBOS and Prefect.

    .venv/bin/python -m bench.runtime [--quick] [--no-peers] [--modes full,normal,memory]

Workloads (every action is a no-op, so what is measured is the engine and its journal):

- chain: one run of 1,000 steps, each needing the one before. The overhead of a step is the gap
  between one action call and the next (finish of one step, journal writes, start of the next);
  p50/p99 of those gaps, and steps per second over the whole run.
- fan-out: one run with a `for_each` over 1,000 items (all parallel, bounded by the engine's
  64 slots); wall time per item and items per second.
- concurrent runs: 1,000 one-step runs started at once; steps (= runs) per second and the p50/p99
  of a run's start-to-finish latency.
- parked: 10,000 runs each waiting on a `core.approval`; resident memory per parked run (RSS
  growth over the runs, after a GC: an upper bound, it includes SQLite's page cache).

Journals ("modes"): `full` is the shipped default (SQLite WAL, every commit durable before anything
depends on it: group commit, one fsync of the log at each barrier, before every action call);
`normal` is SQLite WAL with synchronous=NORMAL and no fsync at all (commits survive a process
crash, the last ones may be lost on power loss); `memory` is the same engine on `MemoryJournal`
(plain Python, nothing outlives the process). The database files live under `bench/out/` (the
disk the project lives on). `postgresql` (not measured unless named in `--modes`) is the journal
on PostgreSQL, as workers share it (`$OVERTURE_BENCH_DATABASE_URL`, default the local server's
`test` database; each workload in a scratch schema, dropped after): every commit durable on the
server (synchronous_commit as the server has it), one round trip per attempt's start and end.

Peers run the same workloads in their own venv (`bench/.peers-venv`, created from
`bench/requirements-peers.txt` on first use) in subprocesses of this same invocation; their
figures and the ratios are printed at the end, with the disk's floor (`fsync_floor_ms`: one
fdatasync after a 4 KB append, the least a step costs when the next must wait for it to be on disk).
The last line is one JSON object of all figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from runtime.engine import Engine
from runtime.invocation import ActionCall
from runtime.journal import Journal
from runtime.journal_memory import AnyJournal, MemoryJournal
from workflow.catalog import ActionSpec, Catalog
from workflow.document import Workflow

HERE = Path(__file__).resolve().parent
PEERS_VENV = HERE / ".peers-venv"
OUT = HERE / "out"

CATALOG = Catalog([ActionSpec(name="bench.noop", description="does nothing")])


class NoopInvoker:
    """Returns at once and notes when it was called (the chain's per-step gaps come from here)."""

    def __init__(self) -> None:
        self.stamps: list[float] = []

    async def invoke(self, call: ActionCall) -> dict[str, Any]:
        self.stamps.append(time.perf_counter())
        return {}


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def calibration_us() -> float:
    """Microseconds for a fixed pure-Python loop (best of 5): how fast this machine is right now.
    About 8-10 µs on an idle modern core; a shared, loaded machine reads several times that, and
    every absolute figure of the run scales with it (ratios measured side by side do not)."""
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(200):
            sum(range(1000))
        best = min(best, (time.perf_counter() - t) / 200)
    return best * 1e6


def fsync_floor_ms(directory: Path, n: int = 300) -> float:
    """Median milliseconds of one fdatasync after appending 4 KB to a file in `directory`: the
    least a durable step can cost on this disk when the next step must wait for it (DBOS on
    SQLite's defaults pays several per step; the full journal pays one)."""
    path = directory / "fsync-floor"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND)
    times: list[float] = []
    try:
        for _ in range(n):
            os.write(fd, b"x" * 4096)
            t = time.perf_counter()
            os.fdatasync(fd)
            times.append((time.perf_counter() - t) * 1000)
    finally:
        os.close(fd)
        path.unlink()
    return statistics.median(times)


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# -- journals ------------------------------------------------------------------------------------


DATABASE_URL = os.environ.get("OVERTURE_BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
"""The PostgreSQL of the `postgresql` mode (each workload in a scratch schema, dropped after)."""


def open_journal(mode: str, directory: Path) -> AnyJournal:
    if mode == "memory":
        return MemoryJournal()
    if mode == "postgresql":
        return Journal.open(DATABASE_URL, schema=f"overture_bench_{time.monotonic_ns()}")
    path = directory / f"journal-{mode}-{time.monotonic_ns()}.db"
    journal = Journal.open(path)
    if mode == "normal":
        journal.fsync = False  # WAL commits that are not fsynced (they survive a process crash)
    return journal


def close_journal(journal: AnyJournal) -> None:
    if isinstance(journal, Journal) and journal.schema:
        journal.drop_schema()
    journal.close()


def journal_bytes(journal: AnyJournal) -> int:
    if not isinstance(journal, Journal):
        return 0
    database = journal._engine.url.database  # a benchmark's look inside, not an API
    if not database or database == ":memory:":
        return 0
    return sum(os.path.getsize(p) for p in (database, database + "-wal") if os.path.exists(p))


def make_engine(journal: AnyJournal, invoker: NoopInvoker) -> Engine:
    return Engine(CATALOG, journal, invoker, poll_interval_s=None)


def chain_workflow(n: int) -> Workflow:
    steps: list[dict[str, Any]] = [{"id": "s0", "action": "bench.noop"}]
    steps += [{"id": f"s{i}", "action": "bench.noop", "needs": [f"s{i - 1}"]} for i in range(1, n)]
    return Workflow.model_validate({"name": "bench-chain", "steps": steps})


def fanout_workflow() -> Workflow:
    return Workflow.model_validate(
        {
            "name": "bench-fanout",
            "steps": [{"id": "each", "action": "bench.noop", "for_each": "${{ inputs.items }}"}],
        }
    )


ONE_STEP = Workflow.model_validate({"name": "bench-one", "steps": [{"id": "a", "action": "bench.noop"}]})
PARKED = Workflow.model_validate(
    {"name": "bench-parked", "steps": [{"id": "ok", "action": "core.approval", "with": {"prompt": "go?"}}]}
)


# -- workloads -----------------------------------------------------------------------------------


async def bench_chain(mode: str, directory: Path, n: int) -> dict[str, float]:
    journal = open_journal(mode, directory)
    invoker = NoopInvoker()
    workflow = chain_workflow(n)
    async with make_engine(journal, invoker) as engine:
        t0, c0 = time.perf_counter(), time.process_time()
        run_id = await engine.start_run(workflow)
        result = await engine.wait(run_id)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    close_journal(journal)
    assert result.succeeded, result
    gaps = [(b - a) * 1000 for a, b in zip(invoker.stamps, invoker.stamps[1:], strict=False)]
    return {
        "steps": n,
        "p50_ms": quantile(gaps, 0.5),
        "p99_ms": quantile(gaps, 0.99),
        "mean_ms": statistics.fmean(gaps),
        "steps_per_s": n / wall,
        "cpu_ms_per_step": cpu * 1000 / n,
        "wall_s": wall,
    }


async def bench_fanout(mode: str, directory: Path, n: int) -> dict[str, float]:
    journal = open_journal(mode, directory)
    invoker = NoopInvoker()
    async with make_engine(journal, invoker) as engine:
        t0, c0 = time.perf_counter(), time.process_time()
        run_id = await engine.start_run(fanout_workflow(), {"items": list(range(n))})
        result = await engine.wait(run_id)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    close_journal(journal)
    assert result.succeeded, result
    return {
        "steps": n,
        "ms_per_step": wall * 1000 / n,
        "steps_per_s": n / wall,
        "cpu_ms_per_step": cpu * 1000 / n,
        "wall_s": wall,
    }


async def bench_runs(mode: str, directory: Path, n: int) -> dict[str, float]:
    journal = open_journal(mode, directory)
    invoker = NoopInvoker()
    latencies: list[float] = []
    async with make_engine(journal, invoker) as engine:

        async def one() -> None:
            t = time.perf_counter()
            run_id = await engine.start_run(ONE_STEP)
            result = await engine.wait(run_id)
            assert result.succeeded, result
            latencies.append((time.perf_counter() - t) * 1000)

        t0, c0 = time.perf_counter(), time.process_time()
        await asyncio.gather(*(one() for _ in range(n)))
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    close_journal(journal)
    return {
        "runs": n,
        "runs_per_s": n / wall,
        "ms_per_run": wall * 1000 / n,
        "p50_run_ms": quantile(latencies, 0.5),
        "p99_run_ms": quantile(latencies, 0.99),
        "cpu_ms_per_run": cpu * 1000 / n,
        "wall_s": wall,
    }


async def bench_parked(mode: str, directory: Path, n: int) -> dict[str, float]:
    journal = open_journal(mode, directory)
    invoker = NoopInvoker()
    async with make_engine(journal, invoker) as engine:
        # warm up the code paths first, so their one-off allocations are not counted as per-run
        for _ in range(50):
            await engine.start_run(PARKED)
        while engine.runs_in_flight:
            await asyncio.sleep(0.01)
        gc.collect()
        before, disk_before = rss_bytes(), journal_bytes(journal)
        t0 = time.perf_counter()
        for _ in range(n):
            await engine.start_run(PARKED)
            if engine.runs_in_flight > 500:  # as a service would: don't hold 10k drivers at once
                while engine.runs_in_flight > 100:
                    await asyncio.sleep(0.001)
        while engine.runs_in_flight:
            await asyncio.sleep(0.01)
        wall = time.perf_counter() - t0
        gc.collect()
        after, disk_after = rss_bytes(), journal_bytes(journal)
        parked = len(journal.approvals(pending_only=True))
    close_journal(journal)
    assert parked == n + 50, parked
    return {
        "runs": n,
        "kb_per_parked_run": (after - before) / n / 1024,
        # where a parked run's state lives: the journal (run row, step row, approval, events)
        "journal_kb_per_parked_run": (disk_after - disk_before) / n / 1024,
        "parked_per_s": n / wall,
        "wall_s": wall,
    }


async def run_ours(modes: list[str], sizes: dict[str, int], directory: Path) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for mode in modes:
        figures[mode] = {
            "chain": await bench_chain(mode, directory, sizes["chain"]),
            "fanout": await bench_fanout(mode, directory, sizes["fanout"]),
            "runs": await bench_runs(mode, directory, sizes["runs"]),
        }
        print(f"  ours/{mode}: {json.dumps(figures[mode])}", flush=True)
    # one file journal is enough for memory per parked run (the journal keeps none of it in the
    # process; an in-memory journal would count its own rows), and without fsyncs 10k runs park fast
    parked_mode = "normal" if "normal" in modes else modes[0]
    figures["parked"] = {"mode": parked_mode, **await bench_parked(parked_mode, directory, sizes["parked"])}
    print(f"  ours/parked ({parked_mode}): {json.dumps(figures['parked'])}", flush=True)
    return figures


# -- peers ---------------------------------------------------------------------------------------


def ensure_peers_venv() -> Path | None:
    python = PEERS_VENV / "bin" / "python"
    if python.exists():
        return python
    print(f"creating {PEERS_VENV} (first use) ...", flush=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(PEERS_VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "-r", str(HERE / "requirements-peers.txt")],
            check=True,
        )
    except subprocess.CalledProcessError as exc:
        print(f"could not set up the peers venv: {exc}", flush=True)
        shutil.rmtree(PEERS_VENV, ignore_errors=True)
        return None
    return python


PEERS = {
    # name: (script, extra arguments, our mode of the same durability)
    "dbos": ("dbos_bench.py", [], "full"),
    "dbos_wal_normal": ("dbos_bench.py", ["--wal-normal"], "normal"),
    "prefect": ("prefect_bench.py", [], "full"),
}


def run_peer(
    python: Path, name: str, sizes: dict[str, int], directory: Path, timeout: float
) -> dict[str, Any]:
    script, extra, _ = PEERS[name]
    args = [str(python), str(HERE / "peers" / script), "--dir", str(directory), "--sizes", json.dumps(sizes)]
    args += extra
    env = {**os.environ, "PYTHONPATH": ""}
    # the peer's output goes to files, not pipes: a server the peer starts (Prefect's temporary
    # one) inherits them and would hold a pipe open past the peer's own exit, so that waiting for
    # its end of file waited out the whole timeout; its own session, so that whatever it left
    # running is stopped with it
    out_path, err_path = directory / f"{name}.stdout", directory / f"{name}.stderr"
    with out_path.open("w") as out, err_path.open("w") as err:
        peer = subprocess.Popen(args, stdout=out, stderr=err, env=env, cwd=directory, start_new_session=True)
        try:
            returncode: int | None = peer.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            returncode = None
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(peer.pid, signal.SIGKILL)
            peer.wait()
    stdout, stderr = out_path.read_text(), err_path.read_text()
    if returncode is None:
        # keep what finished: the peer scripts print each workload's figures on stderr as they go
        partial: dict[str, Any] = {"error": f"timed out after {timeout:g}s"}
        for line in stderr.splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    partial.update(json.loads(line))
        return partial
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if returncode != 0 or not lines:
        tail = (stderr or stdout).strip().splitlines()[-5:]
        return {"error": f"exit {returncode}: {' | '.join(tail)}"}
    figures: dict[str, Any] = json.loads(lines[-1])
    return figures


def ratio(theirs: Any, ours: Any) -> float | None:
    if not isinstance(theirs, int | float) or not isinstance(ours, int | float) or ours <= 0:
        return None
    return theirs / ours


# -- main ----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a tenth of each workload")
    parser.add_argument("--no-peers", action="store_true", help="skip DBOS and Prefect")
    parser.add_argument("--modes", default="full,normal,memory", help="journals to measure")
    parser.add_argument("--peer-timeout", type=float, default=900.0)
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    sizes = {
        "chain": 1000 // scale,
        "fanout": 1000 // scale,
        "runs": 1000 // scale,
        "parked": 10_000 // scale,
    }
    modes = [m for m in args.modes.split(",") if m]
    OUT.mkdir(parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix="runtime-bench-", dir=OUT))
    report: dict[str, Any] = {
        "bench": "runtime",
        "sizes": sizes,
        "cpus": os.cpu_count(),
        "load_avg_1m": os.getloadavg()[0],
        "calibration_us": calibration_us(),
    }
    try:
        report["fsync_floor_ms"] = fsync_floor_ms(directory)
        print(f"Overture runtime, sizes {sizes}", flush=True)
        report["ours"] = asyncio.run(run_ours(modes, sizes, directory))
        if not args.no_peers:
            python = ensure_peers_venv()
            report["peers"] = {}
            if python is not None:
                for name in PEERS:
                    print(f"{name} ...", flush=True)
                    peer_dir = directory / name
                    peer_dir.mkdir()
                    report["peers"][name] = run_peer(python, name, sizes, peer_dir, args.peer_timeout)
                    print(f"  {name}: {json.dumps(report['peers'][name])}", flush=True)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    report["calibration_us_after"] = calibration_us()
    print_summary(report)
    print(json.dumps(report, sort_keys=True))


def print_summary(report: dict[str, Any]) -> None:
    ours = report["ours"]
    print(
        f"\nmachine: {report['cpus']} cpus, load {report['load_avg_1m']:.1f}, calibration "
        f"{report['calibration_us']:.0f} / {report['calibration_us_after']:.0f} µs (before / after; ~9 idle)"
    )
    print("\nper-step overhead, 1,000-step chain (p50 / p99 ms) and throughput (steps/s):")
    for mode, figures in ours.items():
        if mode == "parked":
            continue
        chain, fan, runs = figures["chain"], figures["fanout"], figures["runs"]
        print(
            f"  ours/{mode:7s} chain {chain['p50_ms']:.3f} / {chain['p99_ms']:.3f} ms "
            f"(cpu {chain['cpu_ms_per_step']:.3f} ms), {chain['steps_per_s']:.0f} steps/s; "
            f"fan-out {fan['steps_per_s']:.0f} steps/s; runs {runs['runs_per_s']:.0f} runs/s"
        )
    parked = ours["parked"]
    print(f"  ours parked: {parked['kb_per_parked_run']:.1f} KB per parked run ({parked['runs']} runs)")
    ratios: dict[str, Any] = {}
    for name, theirs in report.get("peers", {}).items():
        if "error" in theirs:
            print(f"  {name}: {theirs['error']}")
            continue
        print(f"  {name}: {json.dumps(theirs)}")
        for mode, figures in ours.items():
            if mode == "parked":
                continue
            key = f"{name}_vs_{mode}"
            ratios[key] = {
                "chain_p50": ratio(theirs.get("chain", {}).get("p50_ms"), figures["chain"]["p50_ms"]),
                "chain_mean": ratio(theirs.get("chain", {}).get("mean_ms"), figures["chain"]["mean_ms"]),
                "fanout_ms_per_step": ratio(
                    theirs.get("fanout", {}).get("ms_per_step"), figures["fanout"]["ms_per_step"]
                ),
                "runs_ms_per_run": ratio(
                    theirs.get("runs", {}).get("ms_per_run"), figures["runs"]["ms_per_run"]
                ),
            }
        ratios[f"{name}_parked_kb"] = ratio(
            theirs.get("parked", {}).get("kb_per_parked_run"), parked["kb_per_parked_run"]
        )
    if ratios:
        print("\nratios (their milliseconds / ours; above 1 means we are faster):")
        for key, value in ratios.items():
            print(f"  {key}: {json.dumps(value)}")
    report["ratios"] = ratios
    floor, dbos = report.get("fsync_floor_ms"), report.get("peers", {}).get("dbos", {}).get("chain", {})
    full = ours.get("full", {}).get("chain", {})
    if floor and full:
        print(
            f"\nfloor: one fdatasync on this disk takes {floor:.3f} ms (median); the full journal's "
            f"chain step is that plus {full['p50_ms'] - floor:.3f} ms of engine and SQLite"
            + (f"; 5x DBOS's chain would need {dbos['p50_ms'] / 5:.3f} ms" if dbos.get("p50_ms") else "")
        )


if __name__ == "__main__":
    main()
