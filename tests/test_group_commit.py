"""Group commit on a real SQLite file: the engine commits without an fsync each and makes them
durable together before anything outside depends on them (see runtime/journal_sync.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from runtime import Engine, Event, Journal
from runtime.invocation import ActionCall
from workflow.catalog import ActionSpec, Catalog
from workflow.document import Workflow

CATALOG = Catalog([ActionSpec(name="t.call", description="records what was on disk when called")])


class DiskChecker:
    """At each call: were the step results that came before it on disk already?"""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.finished_at: list[int] = []  # commit number of each step.succeeded
        self.commit_of: dict[str, int] = {}  # event type -> commit number of its last one
        self.unsynced_at_call: list[int] = []
        journal.add_listener(self.on_event)

    def on_event(self, event: Event) -> None:
        assert self.journal._wal is not None
        self.commit_of[event.type] = self.journal._wal.commits
        if event.type == "step.succeeded":
            self.finished_at.append(self.journal._wal.commits)

    async def invoke(self, call: ActionCall) -> dict[str, Any]:
        wal = self.journal._wal
        assert wal is not None
        last = max(self.finished_at, default=0)
        self.unsynced_at_call.append(max(0, last - wal.synced))
        await asyncio.sleep(0)  # let the other branches reach their own barrier meanwhile
        return {"ok": True}


def chain(n: int) -> Workflow:
    steps: list[dict[str, Any]] = [{"id": "s0", "action": "t.call"}]
    steps += [{"id": f"s{i}", "action": "t.call", "needs": [f"s{i - 1}"]} for i in range(1, n)]
    return Workflow.model_validate({"name": "chain", "steps": steps})


FANOUT = Workflow.model_validate(
    {"name": "fan", "steps": [{"id": "each", "action": "t.call", "for_each": "${{ inputs.items }}"}]}
)


def test_every_call_comes_after_the_results_before_it_are_on_disk(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path / "j.db")
    checker = DiskChecker(journal)

    async def main() -> None:
        async with Engine(CATALOG, journal, checker, poll_interval_s=None) as engine:
            assert journal.defer_fsync
            run_id = await engine.start_run(chain(30))
            wal = journal._wal
            assert wal is not None
            assert wal.synced >= checker.commit_of["run.started"]  # the caller is told: it's on disk
            result = await engine.wait(run_id)
            assert result.succeeded
            assert wal.synced >= checker.commit_of["run.finished"]  # and so is its end

    asyncio.run(main())
    assert len(checker.unsynced_at_call) == 30
    assert checker.unsynced_at_call == [0] * 30
    journal.close()


def test_parallel_steps_share_fsyncs(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path / "j.db")
    checker = DiskChecker(journal)
    items = list(range(300))

    async def main() -> None:
        async with Engine(CATALOG, journal, checker, poll_interval_s=None) as engine:
            result = await engine.wait(await engine.start_run(FANOUT, {"items": items}))
            assert result.succeeded
            assert result.outputs["each"] == [{"ok": True}] * 300

    asyncio.run(main())
    wal = journal._wal
    assert wal is not None
    # 300 attempts (a start and an end commit each) behind far fewer fsyncs than calls
    assert wal.commits > 600
    assert 0 < wal.fsyncs < 150, wal.fsyncs
    journal.close()


def test_without_fsync_nothing_waits_and_a_journal_without_engine_syncs_each_commit(tmp_path: Path) -> None:
    fast = Journal.open(tmp_path / "fast.db")
    fast.fsync = False
    checker = DiskChecker(fast)

    async def main() -> None:
        async with Engine(CATALOG, fast, checker, poll_interval_s=None) as engine:
            assert (await engine.wait(await engine.start_run(chain(5)))).succeeded

    asyncio.run(main())
    assert fast._wal is not None and fast._wal.fsyncs == 0
    fast.close()

    plain = Journal.open(tmp_path / "plain.db")  # the CLI's journal: no engine, no deferral
    plain.create_run(
        "r",
        workflow_name="w",
        workflow_version=None,
        document={"name": "w", "steps": []},
        inputs={},
        now=1.0,
        deadline_at=None,
        worker_id=None,
    )
    assert plain._wal is not None and plain._wal.synced == plain._wal.commits == 1
    plain.close()
