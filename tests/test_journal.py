"""The journal on its own, on a real SQLite file and a real PostgreSQL schema."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from runtime import Event, Journal, RunState, StepState
from runtime.errors import RunNotFound
from runtime.journal import OUTPUT_CAP_BYTES


def new_run(journal: Journal, run_id: str, now: float = 100.0) -> None:
    journal.create_run(
        run_id,
        workflow_name="wf",
        workflow_version=3,
        document={"name": "wf", "steps": []},
        inputs={"x": 1},
        now=now,
        deadline_at=None,
        worker_id="w",
    )


def test_runs_are_found_by_id_and_prefix(journal: Journal) -> None:
    new_run(journal, "abc123")
    new_run(journal, "abd456", now=200)
    assert journal.get_run("abc123").workflow_version == 3
    assert journal.find_run("abc").id == "abc123"
    with pytest.raises(RunNotFound):
        journal.find_run("ab")  # two match: ambiguous
    with pytest.raises(RunNotFound):
        journal.get_run("zzz")
    assert [r.id for r in journal.list_runs()] == ["abd456", "abc123"]
    journal.set_run_state("abc123", RunState.SUCCEEDED, 300, event="run.finished")
    assert [r.id for r in journal.unfinished_runs()] == ["abd456"]
    assert [r.id for r in journal.list_runs(state=RunState.SUCCEEDED)] == ["abc123"]
    assert journal.get_run("abc123").ended_at == 300


def test_events_have_one_increasing_sequence_and_are_read_per_run(journal: Journal) -> None:
    seen: list[Event] = []
    journal.add_listener(seen.append)
    new_run(journal, "r1")
    new_run(journal, "r2")
    journal.append_event("r1", "log", 101, step_id="s", data={"message": "hi"})
    r1 = journal.events_since("r1")
    assert [e.type for e in r1] == ["run.started", "log"]
    assert r1[0].seq < r1[1].seq
    assert journal.events_since("r1", r1[0].seq) == [r1[1]]
    assert [e.seq for e in seen] == sorted(e.seq for e in seen) and len(seen) == 3


def test_completion_writes_step_attempt_and_event_together(journal: Journal) -> None:
    new_run(journal, "r")
    attempt = journal.start_attempt(
        run_id="r",
        workflow_name="wf",
        step_id="s",
        iteration=-1,
        attempt=1,
        kind="action",
        action="a.b",
        idempotency_key="r:s",
        now=110,
        worker_id="w",
        runs_in_flight=1,
        propensity=1.0,
        candidates=None,
        inputs={"k": "v"},
    )
    assert journal.step_results("r")[("s", -1)].state == StepState.RUNNING
    big = {"blob": "x" * (OUTPUT_CAP_BYTES + 10)}
    journal.finish_attempt(
        attempt,
        112.5,
        outcome="succeeded",
        output=big,
        step={"state": "succeeded", "output": big},
        event="step.succeeded",
    )
    [row] = journal.attempts(run_id="r")
    assert row.outcome == "succeeded" and row.duration_s == 2.5
    assert row.output_truncated and row.output_size is not None and row.output_size > OUTPUT_CAP_BYTES
    assert journal.step_results("r")[("s", -1)].output == big  # the step keeps all of it
    assert journal.events_since("r")[-1].type == "step.succeeded"


def test_interrupted_attempts_are_marked_on_recovery(journal: Journal) -> None:
    new_run(journal, "r")
    journal.start_attempt(
        run_id="r",
        workflow_name="wf",
        step_id="s",
        iteration=2,
        attempt=1,
        kind="action",
        action="a.b",
        idempotency_key="r:s:2",
        now=110,
        worker_id="w",
        runs_in_flight=1,
        propensity=None,
        candidates=None,
        inputs={},
    )
    [lost] = journal.interrupt_attempts("r", 120)
    assert lost.iteration == 2
    assert [a.outcome for a in journal.attempts(run_id="r")] == ["interrupted"]
    assert journal.interrupt_attempts("r", 130) == []


def test_sqlite_runs_in_wal_mode_with_full_sync(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path / "data")  # a folder: journal.db inside it
    assert (tmp_path / "data" / "journal.db").exists()
    with journal._engine.connect() as conn:
        assert conn.execute(sa.text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(sa.text("PRAGMA synchronous")).scalar() == 2  # FULL
    journal.close()


def test_default_location_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OVERTURE_DATABASE_URL", raising=False)
    monkeypatch.setenv("OVERTURE_DATA_DIR", str(tmp_path / "d"))
    journal = Journal.open()
    assert journal.url.endswith(str(tmp_path / "d" / "journal.db"))
    journal.close()


def test_a_journal_from_an_earlier_version_gets_the_new_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:  # the runs table as it was before leases existed
        conn.execute(
            sa.text(
                "CREATE TABLE overture_runs (id VARCHAR(64) PRIMARY KEY, "
                "workflow_name VARCHAR(200) NOT NULL, workflow_version INTEGER, document JSON NOT NULL, "
                "inputs JSON NOT NULL, state VARCHAR(20) NOT NULL, "
                "created_at FLOAT NOT NULL, updated_at FLOAT NOT NULL, ended_at FLOAT, deadline_at FLOAT, "
                "error JSON, compensation JSON, cancel_requested BOOLEAN NOT NULL, worker_id VARCHAR(200))"
            )
        )
    engine.dispose()
    journal = Journal.open(path)
    new_run(journal, "r")
    assert journal.claim("r", "me", now=1.0, ttl=10)
    assert journal.get_run("r").owner == "me"
    journal.close()
