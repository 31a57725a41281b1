"""What a new user hit walking the README, each now a normal outcome or one clear line: a second
demo in the same folder, follow-up hints that keep the options given, runs refused before they are
recorded when an action cannot be called, core-only workflows without a catalog, the state an
approval answers with, what `overture serve` says it uses, `worker submit --wait` on a paused run,
`optimize` taking `--data-dir`/`--database-url` like every other command, and a never-firing
schedule in the scheduler."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from runtime import Engine, Journal, ManualClock
from runtime.testing import ScriptedInvoker
from runtime.triggers import FireStore, Scheduler, TriggeredWorkflow
from runtime.triggers.cron import CronRule, ScheduleError
from runtime.triggers.engine_target import EngineTarget
from workflow.catalog import Catalog
from workflow.document import Workflow


def cli(
    *args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 120
) -> tuple[int, str, str]:
    """The real console entry point in a subprocess; never a traceback."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "OVERTURE_"))}
    result = subprocess.run(
        [sys.executable, "-c", "from service.cli import main; main()", *(str(a) for a in args)],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        stdin=subprocess.DEVNULL,
        timeout=timeout,
        cwd=cwd,
    )
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr
    return result.returncode, result.stdout, result.stderr


# -- 9. a schedule that never fires -------------------------------------------------------------


def _at(*parts: int) -> float:
    return datetime(*parts, tzinfo=UTC).timestamp()  # type: ignore[misc]


def test_a_cron_that_never_fires_is_a_schedule_error_not_croniter_s() -> None:
    rule = CronRule("0 0 30 2 *")  # 30 February: valid cron syntax, no date ever matches
    with pytest.raises(ScheduleError, match="never fires"):
        rule.next_after(_at(2030, 1, 1))
    with pytest.raises(ScheduleError, match="never fires"):
        rule.latest_at_or_before(_at(2030, 1, 1))
    with pytest.raises(ScheduleError, match="never fires"):
        rule.between(_at(2030, 1, 1), _at(2031, 1, 1))


async def test_the_scheduler_skips_a_never_firing_schedule_and_fires_the_others(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # stored before the validator refused such schedules: the scheduler must not trip over it
    workflow = Workflow.model_validate(
        {
            "name": "digest",
            "triggers": {"schedule": [{"cron": "0 0 30 2 *"}, {"cron": "0 * * * *"}]},
            "steps": [{"id": "note", "action": "core.log", "with": {"message": "hi"}}],
        }
    )
    target = TriggeredWorkflow("wf_1", workflow)
    clock = ManualClock(_at(2030, 1, 7, 8, 30))
    journal = Journal.open(tmp_path / "journal.db")
    engine = Engine(Catalog([]), journal, ScriptedInvoker(), clock=clock)
    store = FireStore.open(tmp_path / "journal.db")
    scheduler = Scheduler(store, lambda: [target], EngineTarget(engine), clock=clock, grace_s=60)
    try:
        with caplog.at_level(logging.WARNING, logger="overture.triggers"):
            assert await scheduler.tick() == []
            clock.set_time(_at(2030, 1, 7, 9, 0, 5))
            fired = await scheduler.tick()
        assert [f.scheduled_at for f in fired] == [_at(2030, 1, 7, 9, 0)]
        assert "never fires" in caplog.text
        assert scheduler.next_due() == _at(2030, 1, 7, 10, 0)  # the other schedule's next fire
        assert next(u.times for u in scheduler.upcoming(target)) == []
    finally:
        await scheduler.stop()
        await engine.close()
        store.close()
        journal.close()
