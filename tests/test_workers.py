"""Scale-out on a real PostgreSQL: `overture worker` subprocesses share one journal and queue.

Three workers run a batch of workflows; one is SIGKILLed while it has steps in flight. Every run
must succeed; a step finished before the kill ran once, a step in flight at the kill ran at most
twice (with the same idempotency key), and each second call matches an `interrupted` attempt.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
from workers_support import CALLS_ENV, CATALOG, FLOW, STEPS, postgres_reason, read_calls, scratch_database

from runtime.invokers import build_invoker
from runtime.journal import Journal
from runtime.records import RunState
from runtime.secrets import SecretStore
from runtime.workers import QueueingEngine, RunQueue, ensure_schema
from workflow.loader import load_catalog, read_data
from workflow.validator import ensure_valid

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
OVERTURE = [sys.executable, "-m", "service.cli"]
FINISHED = {RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED}


@pytest.fixture
def database() -> Iterator[str]:
    reason = postgres_reason()
    if reason:
        pytest.skip(reason)
    with scratch_database() as url:
        yield url


def files(folder: Path) -> tuple[Path, Path]:
    (folder / "catalog.yaml").write_text(CATALOG)
    (folder / "flow.yaml").write_text(FLOW)
    return folder / "catalog.yaml", folder / "flow.yaml"


def start_worker(url: str, folder: Path, name: str, *, prefix: list[str] | None = None,
                 lease: float = 5.0, extra: list[str] | None = None) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": f"{TESTS}{os.pathsep}{ROOT}", CALLS_ENV: str(folder)}
    command = [*(prefix or []), *OVERTURE, "worker", "start", "--database-url", url,
               "--catalog", str(folder / "catalog.yaml"), "--worker-id", name, "--jobs", "8",
               "--lease-ttl", str(lease), "--poll-interval", "0.3", "--drain-timeout", "30",
               *(extra or [])]
    log = open(folder / f"{name}.log", "wb")
    return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)


def wait_ready(procs: dict[str, subprocess.Popen[bytes]], folder: Path, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    for name, proc in procs.items():
        log = folder / f"{name}.log"
        while b"ready" not in log.read_bytes():
            if proc.poll() is not None or time.monotonic() > end:
                proc.kill()
                raise AssertionError(f"worker {name} did not start:\n{log.read_text()}")
            time.sleep(0.05)


def submit(url: str, folder: Path, count: int, sleep: float) -> list[str]:
    catalog = load_catalog(folder / "catalog.yaml")
    workflow = ensure_valid(read_data(folder / "flow.yaml"), catalog)
    ensure_schema(url)
    journal = Journal.open(url)

    async def go() -> list[str]:
        engine = QueueingEngine(catalog, journal, build_invoker(catalog, SecretStore.from_env()),
                                queue=RunQueue(url), worker_id="test-submit")
        try:
            return [await engine.start_run(workflow, {"sleep": sleep}) for _ in range(count)]
        finally:
            await engine.close()

    try:
        return asyncio.run(go())
    finally:
        journal.close()


def wait_finished(journal: Journal, ids: list[str], timeout: float) -> dict[str, RunState]:
    end = time.monotonic() + timeout
    while True:
        states = {r: journal.get_run(r).state for r in ids}
        if all(s in FINISHED for s in states.values()) or time.monotonic() > end:
            return states
        time.sleep(0.1)


def stop(procs: list[subprocess.Popen[bytes]]) -> list[int]:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    codes = []
    for proc in procs:
        try:
            codes.append(proc.wait(60))
        except subprocess.TimeoutExpired:
            proc.kill()
            codes.append(proc.wait())
    return codes


def check_executions(journal: Journal, folder: Path, ids: list[str], victim_pid: int | None,
                     victim: str | None = None) -> int:
    """Assert the runtime's guarantees over the calls every worker recorded; returns how many
    steps ran twice (each must be one the victim had in flight)."""
    calls = read_calls(folder)
    by_step: dict[tuple[str, str], list[dict[str, object]]] = defaultdict(list)
    for call in calls:
        by_step[(str(call["run"]), str(call["step"]))].append(call)
    twice = 0
    for run_id in ids:
        outcomes: dict[str, Counter[str]] = defaultdict(Counter)
        for attempt in journal.attempts(run_id=run_id):
            outcomes[attempt.step_id][attempt.outcome] += 1
            if attempt.outcome == "interrupted":  # only the killed worker lost attempts
                assert attempt.worker_id == victim, (run_id, attempt)
        for step in STEPS:
            made = by_step[(run_id, step)]
            assert 1 <= len(made) <= 2, (run_id, step, made)
            assert len({c["key"] for c in made}) == 1, f"{run_id}:{step} ran with different keys: {made}"
            assert outcomes[step]["succeeded"] == 1, (run_id, step, outcomes[step])
            if len(made) == 2:
                twice += 1
                # the first call was the killed worker's, lost in flight and journaled as interrupted
                assert made[0]["pid"] == victim_pid, (run_id, step, made)
                assert made[1]["pid"] != victim_pid
                assert outcomes[step]["interrupted"] == 1, (run_id, step, outcomes[step])
            else:
                # killed between journaling the attempt's start and calling the action: the lost
                # attempt made no call, so the step ran once
                assert outcomes[step]["interrupted"] <= 1, (run_id, step, outcomes[step])
    return twice


def test_three_workers_one_killed_every_run_ends_correctly(database: str, tmp_path: Path) -> None:
    files(tmp_path)
    ensure_schema(database)
    procs = {name: start_worker(database, tmp_path, name) for name in ("w1", "w2", "w3")}
    try:
        wait_ready(procs, tmp_path)
        ids = submit(database, tmp_path, count=30, sleep=0.4)
        victim = procs["w2"]
        mine = tmp_path / f"calls-{victim.pid}.jsonl"
        end = time.monotonic() + 60
        # kill once the victim has moved several runs past their first step (steps in flight)
        while not (mine.exists() and len(mine.read_text().splitlines()) >= 8):
            assert time.monotonic() < end, "the victim never got work"
            time.sleep(0.02)
        victim.send_signal(signal.SIGKILL)
        assert victim.wait(10) == -signal.SIGKILL
        journal = Journal.open(database)
        try:
            states = wait_finished(journal, ids, timeout=90)
            assert Counter(states.values()) == {RunState.SUCCEEDED: len(ids)}, states
            twice = check_executions(journal, tmp_path, ids, victim.pid, "w2")
            taken_over = {a.run_id for a in journal.attempts() if a.outcome == "interrupted"}
            assert taken_over, "the kill interrupted nothing; no takeover was exercised"
            assert twice <= len([a for a in journal.attempts() if a.outcome == "interrupted"])
            # every worker did part of the work
            assert {int(c["pid"]) for c in read_calls(tmp_path)} >= {p.pid for p in procs.values()}
        finally:
            journal.close()
    finally:
        codes = stop([p for n, p in procs.items() if n != "w2"])
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
    assert codes == [0, 0], [(tmp_path / f"{n}.log").read_text()[-2000:] for n in ("w1", "w3")]


def test_sigterm_drains_a_worker_its_runs_finish_there(database: str, tmp_path: Path) -> None:
    files(tmp_path)
    ensure_schema(database)
    proc = start_worker(database, tmp_path, "solo", lease=30.0)
    later = None
    try:
        wait_ready({"solo": proc}, tmp_path)
        ids = submit(database, tmp_path, count=6, sleep=0.5)
        mine = tmp_path / f"calls-{proc.pid}.jsonl"
        while not (mine.exists() and len(mine.read_text().splitlines()) >= 6):
            assert proc.poll() is None
            time.sleep(0.02)
        assert stop([proc]) == [0], (tmp_path / "solo.log").read_text()
        journal = Journal.open(database)
        try:
            # drained, not abandoned: every run it started finished there, its lease released;
            # runs whose job it had not fetched yet are still queued, untouched
            started = {str(c["run"]) for c in read_calls(tmp_path)}
            assert started
            for run_id in ids:
                record = journal.get_run(run_id)
                if run_id in started:
                    assert (record.state, record.owner) == (RunState.SUCCEEDED, None), record
                else:
                    assert record.state == RunState.RUNNING and not journal.attempts(run_id=run_id)
            # and a worker started later runs what was left, nothing twice
            later = start_worker(database, tmp_path, "later", lease=30.0)
            wait_ready({"later": later}, tmp_path)
            states = wait_finished(journal, ids, timeout=60)
            assert set(states.values()) == {RunState.SUCCEEDED}, states
            assert check_executions(journal, tmp_path, ids, None) == 0
        finally:
            journal.close()
    finally:
        for p in (proc, later):
            if p is not None and p.poll() is None:
                p.kill()


def test_cli_submit_waits_for_the_workers_and_errors_are_one_line(database: str, tmp_path: Path) -> None:
    catalog, flow = files(tmp_path)
    env = {**os.environ, "PYTHONPATH": f"{TESTS}{os.pathsep}{ROOT}"}
    wrong = subprocess.run([*OVERTURE, "worker", "start", "--database-url", f"sqlite:///{tmp_path}/j.db",
                            "--catalog", str(catalog)], env=env, cwd=ROOT, capture_output=True, text=True)
    assert wrong.returncode == 2
    assert wrong.stderr.strip().splitlines() == [
        "error: workers share a PostgreSQL journal; `sqlite` will not do"], wrong.stderr
    proc = start_worker(database, tmp_path, "cli")
    try:
        wait_ready({"cli": proc}, tmp_path)
        done = subprocess.run([*OVERTURE, "worker", "submit", str(flow), "--database-url", database,
                               "--catalog", str(catalog), "-i", "sleep=0", "-n", "3", "--wait", "60"],
                              env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert len(done.stdout.split()) == 3
        assert '{"succeeded": 3}' in done.stderr
    finally:
        assert stop([proc]) == [0]
