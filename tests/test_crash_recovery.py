"""Crash tests: a real worker process is killed with SIGKILL at chosen points and restarted.

Markers written by the worker say when it has reached the point (no sleep-and-hope). Each step's
calls are counted in a file the worker fsyncs before acting: a completed step must have been
called once, a step in flight at the kill at most twice (with the same idempotency key).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from runtime_support import CRASH_RUN_ID, JOURNAL_KINDS, PG_URL, postgres_available, read_calls

from runtime import Journal, RunState

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(__file__).with_name("runtime_support.py")


@pytest.fixture(params=JOURNAL_KINDS)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str | None]]:
    if request.param == "sqlite":
        yield str(tmp_path / "journal.db"), None
        return
    reason = postgres_available()
    if reason:
        pytest.skip(reason)
    schema = f"overture_crash_{uuid.uuid4().hex[:12]}"
    yield PG_URL, schema
    Journal.open(PG_URL, schema=schema).drop_schema()


def worker(target: tuple[str, str | None], folder: Path, *args: str) -> subprocess.Popen[bytes]:
    journal, schema = target
    command = [sys.executable, str(SCRIPT), "--journal", journal, "--dir", str(folder), *args]
    if schema:
        command += ["--schema", schema]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def kill_at_marker(proc: subprocess.Popen[bytes], folder: Path, timeout: float = 30) -> None:
    marker = folder / "marker"
    end = time.monotonic() + timeout
    while not marker.exists():
        if proc.poll() is not None:
            _, err = proc.communicate()
            raise AssertionError(f"worker exited ({proc.returncode}) before the marker: {err.decode()}")
        if time.monotonic() > end:
            proc.kill()
            raise AssertionError("the worker never reached the kill point")
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    marker.unlink()


def finish(proc: subprocess.Popen[bytes]) -> None:
    _, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err.decode()


def crash_and_resume(target: tuple[str, str | None], folder: Path, workflow: str, *kill: str) -> None:
    kill_at_marker(worker(target, folder, "--workflow", workflow, "--start", *kill), folder)
    finish(worker(target, folder, "--workflow", workflow))


def counts(folder: Path) -> Counter[str]:
    return Counter(label for label, _, _ in read_calls(folder))


def keys(folder: Path, label: str) -> set[str]:
    return {key for lab, _, key in read_calls(folder) if lab == label}


def open_target(target: tuple[str, str | None]) -> Journal:
    return Journal.open(target[0], schema=target[1])


def test_killed_mid_step_the_step_runs_again_once_with_the_same_key(
    target: tuple[str, str | None],
    tmp_path: Path,
) -> None:
    crash_and_resume(target, tmp_path, "chain", "--hang-in", "b:work.do")
    assert counts(tmp_path) == {"a:work.do": 1, "b:work.do": 2, "c:work.do": 1}
    assert keys(tmp_path, "b:work.do") == {f"{CRASH_RUN_ID}:b"}
    journal = open_target(target)
    assert journal.get_run(CRASH_RUN_ID).state == RunState.SUCCEEDED
    outcomes = [(a.step_id, a.outcome) for a in journal.attempts(run_id=CRASH_RUN_ID)]
    assert outcomes == [("a", "succeeded"), ("b", "interrupted"), ("b", "succeeded"), ("c", "succeeded")]
    journal.close()
    assert (tmp_path / "done").read_text() == "succeeded"


def test_killed_between_steps_nothing_runs_twice(target: tuple[str, str | None], tmp_path: Path) -> None:
    crash_and_resume(target, tmp_path, "chain", "--stop-after-event", "step.succeeded:a")
    assert counts(tmp_path) == {"a:work.do": 1, "b:work.do": 1, "c:work.do": 1}
    journal = open_target(target)
    assert journal.get_run(CRASH_RUN_ID).state == RunState.SUCCEEDED
    journal.close()


def test_killed_mid_compensation_the_saga_completes(target: tuple[str, str | None], tmp_path: Path) -> None:
    crash_and_resume(target, tmp_path, "saga", "--hang-in", "b:work.undo")
    assert counts(tmp_path) == {
        "a:work.do": 1,
        "b:work.do": 1,
        "c:work.flaky": 1,
        "b:work.undo": 2,
        "a:work.undo": 1,
    }
    assert keys(tmp_path, "b:work.undo") == {f"{CRASH_RUN_ID}:b:undo"}
    journal = open_target(target)
    run = journal.get_run(CRASH_RUN_ID)
    assert run.state == RunState.FAILED
    assert run.compensation == {"status": "complete", "undone": ["b", "a"], "left": []}
    journal.close()


def test_killed_after_compensation_started_but_before_any_undo(
    target: tuple[str, str | None],
    tmp_path: Path,
) -> None:
    crash_and_resume(target, tmp_path, "saga", "--stop-after-event", "compensation.started")
    assert counts(tmp_path) == {
        "a:work.do": 1,
        "b:work.do": 1,
        "c:work.flaky": 1,
        "b:work.undo": 1,
        "a:work.undo": 1,
    }
    journal = open_target(target)
    assert journal.get_run(CRASH_RUN_ID).state == RunState.FAILED
    journal.close()


def test_killed_while_waiting_the_wait_resumes(target: tuple[str, str | None], tmp_path: Path) -> None:
    crash_and_resume(target, tmp_path, "nap", "--stop-after-event", "step.waiting:nap")
    assert counts(tmp_path) == {"a:work.do": 1, "c:work.do": 1}
    journal = open_target(target)
    assert journal.get_run(CRASH_RUN_ID).state == RunState.SUCCEEDED
    nap = journal.step_results(CRASH_RUN_ID)[("nap", -1)]
    assert nap.output["waited_s"] >= 1
    journal.close()


def test_killed_mid_for_each_only_items_in_flight_run_again(
    target: tuple[str, str | None], tmp_path: Path
) -> None:
    crash_and_resume(target, tmp_path, "fan", "--hang-in", "each:work.do")
    per_item = Counter(
        int(iteration) for label, iteration, _ in read_calls(tmp_path) if label == "each:work.do"
    )
    assert set(per_item) == set(range(6))
    assert all(1 <= n <= 2 for n in per_item.values()) and 2 in per_item.values()  # the hung item ran again
    assert sum(per_item.values()) <= 6 + 2  # at most the concurrency bound (2) were in flight at the kill
    for item in range(6):
        assert keys(tmp_path, "each:work.do") >= {f"{CRASH_RUN_ID}:each:{item}"}
    assert counts(tmp_path)["c:work.do"] == 1
    journal = open_target(target)
    assert journal.get_run(CRASH_RUN_ID).state == RunState.SUCCEEDED
    assert journal.step_results(CRASH_RUN_ID)[("each", -1)].output == [{"step": "each"}] * 6
    journal.close()
