"""The durable scheduler on a real engine, a real SQLite journal and a ManualClock: fires across a
restart (no miss, no double), missed-while-down policies, daylight saving, pausing, business days,
two workers, and crashes between claiming a fire and starting its run."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from runtime_support import PG_URL, postgres_available

from runtime import Engine, Journal, ManualClock
from runtime.testing import ScriptedInvoker
from runtime.triggers import (
    PAUSED_BY_REFUSAL,
    FireRefused,
    FireStore,
    Scheduler,
    TriggeredWorkflow,
    schedule_fire_id,
    schedule_trigger_id,
)
from runtime.triggers.engine_target import EngineTarget
from workflow.catalog import Catalog
from workflow.document import ScheduleTrigger, Workflow

BERLIN = ZoneInfo("Europe/Berlin")
UTC_ZONE = ZoneInfo("UTC")


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, *,
       zone: ZoneInfo = UTC_ZONE, fold: int = 0) -> float:
    return datetime(year, month, day, hour, minute, second, tzinfo=zone, fold=fold).timestamp()


def workflow(*schedules: ScheduleTrigger, name: str = "digest") -> Workflow:
    return Workflow.model_validate({
        "name": name,
        "triggers": {"schedule": [s.model_dump(exclude_none=True) for s in schedules]},
        "inputs": {"type": "object", "properties": {"team": {"type": "string"}}},
        "steps": [{"id": "note", "action": "core.log", "with": {"message": "digest for ${{ inputs.team }}"}}],
    })


@dataclass
class Worker:
    """One process's worth of parts over the shared SQLite file."""

    journal: Journal
    engine: Engine
    store: FireStore
    scheduler: Scheduler

    def run_ids(self) -> set[str]:
        return {r.id for r in self.journal.list_runs(limit=500)}


@dataclass(frozen=True)
class Database:
    """Where the workers keep journal and fires: a SQLite file, or a PostgreSQL schema of its own."""

    target: Path | str
    schema: str | None = None


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        yield Database(tmp_path / "journal.db")
        return
    reason = postgres_available()
    if reason:
        pytest.skip(reason)
    found = Database(PG_URL, f"overture_test_{uuid.uuid4().hex[:12]}")
    yield found
    journal = Journal.open(PG_URL, schema=found.schema)
    journal.drop_schema()
    journal.close()


@asynccontextmanager
async def worker(db: Path | Database, clock: ManualClock, targets: list[TriggeredWorkflow],
                 target_factory: Callable[[Engine], Any] = EngineTarget) -> AsyncIterator[Worker]:
    where = db if isinstance(db, Database) else Database(db)
    journal = Journal.open(where.target, schema=where.schema)
    engine = Engine(Catalog([]), journal, ScriptedInvoker(), clock=clock)
    store = FireStore.open(where.target, schema=where.schema)
    scheduler = Scheduler(store, lambda: targets, target_factory(engine), clock=clock, grace_s=60)
    try:
        yield Worker(journal, engine, store, scheduler)
    finally:
        await scheduler.stop()
        await engine.close()
        store.close()
        journal.close()


def fire_id(target: TriggeredWorkflow, trigger: ScheduleTrigger, when: float) -> str:
    return schedule_fire_id(target.key, schedule_trigger_id(trigger), when)


HOURLY = ScheduleTrigger(cron="0 * * * *", inputs={"team": "ops"})


async def test_fires_across_a_restart_neither_miss_nor_double(database: Database) -> None:
    db = database
    target = TriggeredWorkflow("wf_1", workflow(HOURLY))
    clock = ManualClock(at(2030, 1, 7, 8, 30))
    async with worker(db, clock, [target]) as w:
        assert await w.scheduler.tick() == []          # first sight: the cursor starts now, no back-fire
        clock.set_time(at(2030, 1, 7, 9, 0))
        first = await w.scheduler.tick()
        assert [f.scheduled_at for f in first] == [at(2030, 1, 7, 9, 0)]
        assert await w.scheduler.tick() == []          # the same instant again: nothing new
        result = await w.engine.wait(first[0].id, timeout=5)
        assert result.succeeded
        assert w.journal.get_run(first[0].id).inputs == {"team": "ops"}

    clock.set_time(at(2030, 1, 7, 9, 0, 30))            # restarted 30 s later, within the grace time
    async with worker(db, clock, [target]) as w:
        assert await w.scheduler.recover() == []
        assert await w.scheduler.tick() == []          # 09:00 was fired before the restart
        clock.set_time(at(2030, 1, 7, 10, 0, 5))
        second = await w.scheduler.tick()
        assert [f.scheduled_at for f in second] == [at(2030, 1, 7, 10, 0)]
        assert w.run_ids() == {fire_id(target, HOURLY, at(2030, 1, 7, 9, 0)),
                               fire_id(target, HOURLY, at(2030, 1, 7, 10, 0))}
        fires = w.store.fires(workflow_key="wf_1")
        assert {f.state for f in fires} == {"started"} and len(fires) == 2


async def test_a_restart_just_after_a_due_time_fires_it_late_but_once(tmp_path: Path) -> None:
    db = tmp_path / "journal.db"
    target = TriggeredWorkflow("wf_1", workflow(HOURLY))
    clock = ManualClock(at(2030, 1, 7, 8, 59))
    async with worker(db, clock, [target]) as w:
        await w.scheduler.tick()
    clock.set_time(at(2030, 1, 7, 9, 0, 40))            # down across 09:00, back 40 s later
    async with worker(db, clock, [target]) as w:
        fired = await w.scheduler.tick()
        assert [(f.scheduled_at, f.catch_up) for f in fired] == [(at(2030, 1, 7, 9, 0), False)]
        assert w.run_ids() == {fired[0].id}


@pytest.mark.parametrize("policy", ["skip", "catch_up"])
async def test_fires_missed_while_down_follow_the_trigger_policy(tmp_path: Path, policy: str) -> None:
    trigger = ScheduleTrigger(cron="0 * * * *", missed=policy)
    target = TriggeredWorkflow("wf_1", workflow(trigger))
    db = tmp_path / "journal.db"
    clock = ManualClock(at(2030, 1, 7, 9, 30))
    async with worker(db, clock, [target]) as w:
        await w.scheduler.tick()
    clock.set_time(at(2030, 1, 7, 12, 10))             # down over 10:00, 11:00 and 12:00
    async with worker(db, clock, [target]) as w:
        fired = await w.scheduler.tick()
        if policy == "skip":
            assert fired == [] and w.run_ids() == set()
        else:  # catch up once: the latest missed fire only, marked as a catch-up
            assert [(f.scheduled_at, f.catch_up) for f in fired] == [(at(2030, 1, 7, 12, 0), True)]
            assert w.run_ids() == {fire_id(target, trigger, at(2030, 1, 7, 12, 0))}
        assert await w.scheduler.tick() == []          # and never again on a later pass
        clock.set_time(at(2030, 1, 7, 13, 0))
        assert [f.scheduled_at for f in await w.scheduler.tick()] == [at(2030, 1, 7, 13, 0)]


async def hour_by_hour(w: Worker, clock: ManualClock, until: float, step_s: float = 600) -> list[float]:
    fired: list[float] = []
    while clock.now() < until:
        clock.advance(step_s)
        fired.extend(f.scheduled_at for f in await w.scheduler.tick() if f.scheduled_at is not None)
    return fired


async def test_daylight_saving_fall_back_fires_a_repeated_wall_time_once(tmp_path: Path) -> None:
    trigger = ScheduleTrigger(cron="30 2 * * *", timezone="Europe/Berlin")
    target = TriggeredWorkflow("wf_1", workflow(trigger))
    clock = ManualClock(at(2030, 10, 26, 12, 0, zone=BERLIN))   # clocks go back on Sunday 27 Oct 2030
    async with worker(tmp_path / "j.db", clock, [target]) as w:
        await w.scheduler.tick()
        fired = await hour_by_hour(w, clock, at(2030, 10, 28, 12, 0, zone=BERLIN))
    assert fired == [at(2030, 10, 27, 2, 30, zone=BERLIN, fold=0), at(2030, 10, 28, 2, 30, zone=BERLIN)]
    assert datetime.fromtimestamp(fired[0], BERLIN).utcoffset().total_seconds() == 7200  # type: ignore[union-attr]


async def test_daylight_saving_spring_forward_shifts_a_missing_wall_time_not_drops_it(tmp_path: Path) -> None:
    daily = ScheduleTrigger(cron="30 2 * * *", timezone="Europe/Berlin")
    hourly = ScheduleTrigger(cron="30 * * * *", timezone="Europe/Berlin")
    clock = ManualClock(at(2030, 3, 30, 23, 0, zone=BERLIN))    # clocks go forward on Sunday 31 Mar 2030
    daily_wf = TriggeredWorkflow("wf_daily", workflow(daily))
    hourly_wf = TriggeredWorkflow("wf_hourly", workflow(hourly))
    async with worker(tmp_path / "j.db", clock, [daily_wf, hourly_wf]) as w:
        await w.scheduler.tick()
        await hour_by_hour(w, clock, at(2030, 3, 31, 5, 0, zone=BERLIN))
        fires = {key: sorted(x.scheduled_at or 0 for x in w.store.fires(workflow_key=key))
                 for key in ("wf_daily", "wf_hourly")}
    local = {k: [datetime.fromtimestamp(t, BERLIN).strftime("%H:%M%z") for t in v] for k, v in fires.items()}
    assert local["wf_daily"] == ["03:30+0200"]       # 02:30 does not exist that night: one hour later
    assert local["wf_hourly"] == ["23:30+0100", "00:30+0100", "01:30+0100", "03:30+0200", "04:30+0200"]


async def follow_due_times(w: Worker, clock: ManualClock, until: float) -> list[float]:
    """Jump from due time to due time, as the running loop does."""
    fired: list[float] = []
    while (due := w.scheduler.next_due()) is not None and due <= until:
        clock.set_time(due)
        fired.extend(f.scheduled_at for f in await w.scheduler.tick() if f.scheduled_at is not None)
    return fired


async def test_first_business_day_of_the_month(tmp_path: Path) -> None:
    trigger = ScheduleTrigger(cron="0 9 * * *", timezone="Europe/Berlin", business_day="first")
    target = TriggeredWorkflow("wf_1", workflow(trigger))
    clock = ManualClock(at(2030, 5, 20, zone=BERLIN))
    async with worker(tmp_path / "j.db", clock, [target]) as w:
        await w.scheduler.tick()
        fired = await follow_due_times(w, clock, at(2030, 9, 10, zone=BERLIN))
    days = [datetime.fromtimestamp(t, BERLIN).strftime("%a %d %b %H:%M") for t in fired]
    # 1 Jun 2030 is a Saturday, 1 Sep a Sunday: the first business days are Mon 3 Jun and Mon 2 Sep
    assert days == ["Mon 03 Jun 09:00", "Mon 01 Jul 09:00", "Thu 01 Aug 09:00", "Mon 02 Sep 09:00"]


async def test_last_business_day_of_the_month(tmp_path: Path) -> None:
    trigger = ScheduleTrigger(cron="0 17 * * *", timezone="America/New_York", business_day="last")
    target = TriggeredWorkflow("wf_1", workflow(trigger))
    clock = ManualClock(at(2030, 8, 1))
    async with worker(tmp_path / "j.db", clock, [target]) as w:
        await w.scheduler.tick()
        fired = await follow_due_times(w, clock, at(2030, 11, 5))
    zone = ZoneInfo("America/New_York")
    # 31 Aug 2030 is a Saturday: Friday the 30th; 30 Sep a Monday; 31 Oct a Thursday
    assert [datetime.fromtimestamp(t, zone).strftime("%a %d %b %H:%M") for t in fired] == [
        "Fri 30 Aug 17:00", "Mon 30 Sep 17:00", "Thu 31 Oct 17:00"]


async def test_a_paused_trigger_does_not_fire_and_resuming_does_not_catch_up(tmp_path: Path) -> None:
    trigger = ScheduleTrigger(cron="0 * * * *", missed="catch_up")
    target = TriggeredWorkflow("wf_1", workflow(trigger))
    tid = schedule_trigger_id(trigger)
    clock = ManualClock(at(2030, 1, 7, 8, 30))
    async with worker(tmp_path / "j.db", clock, [target]) as w:
        await w.scheduler.tick()
        w.store.set_paused("wf_1", tid, True, now=clock.now(), by="ops")
        clock.set_time(at(2030, 1, 7, 9, 0))
        assert await w.scheduler.tick() == []
        clock.set_time(at(2030, 1, 7, 11, 15))
        assert await w.scheduler.tick() == []
        state = w.store.set_paused("wf_1", tid, False, now=clock.now())
        assert not state.paused and state.cursor == clock.now()
        assert await w.scheduler.tick() == []          # 09:00-11:00 fell in the pause: not caught up
        clock.set_time(at(2030, 1, 7, 12, 0))
        assert [f.scheduled_at for f in await w.scheduler.tick()] == [at(2030, 1, 7, 12, 0)]
        assert len(w.run_ids()) == 1


async def test_two_workers_on_one_database_start_each_fire_once(database: Database) -> None:
    db = database
    target = TriggeredWorkflow("wf_1", workflow(HOURLY))
    clock = ManualClock(at(2030, 1, 7, 8, 30))
    async with worker(db, clock, [target]) as a, worker(db, clock, [target]) as b:
        await a.scheduler.tick()
        clock.set_time(at(2030, 1, 7, 9, 0))
        fired_a, fired_b = await asyncio.gather(a.scheduler.tick(), b.scheduler.tick())
        assert len(fired_a) + len(fired_b) == 1
        assert len(a.run_ids()) == 1


class Crash(BaseException):
    """Stands for the process dying: not an `Exception`, so nothing on the way catches it."""


class CrashBeforeStart(EngineTarget):
    async def start(self, target: TriggeredWorkflow, inputs: dict[str, Any], run_id: str) -> None:
        raise Crash


class CrashAfterStart(EngineTarget):
    async def start(self, target: TriggeredWorkflow, inputs: dict[str, Any], run_id: str) -> None:
        await super().start(target, inputs, run_id)
        raise Crash


@pytest.mark.parametrize("crash", [CrashBeforeStart, CrashAfterStart])
async def test_a_crash_between_claim_and_start_neither_loses_nor_doubles(database: Database, crash: Any
                                                                        ) -> None:
    db = database
    target = TriggeredWorkflow("wf_1", workflow(HOURLY))
    clock = ManualClock(at(2030, 1, 7, 8, 30))
    async with worker(db, clock, [target], crash) as w:
        await w.scheduler.tick()
        clock.set_time(at(2030, 1, 7, 9, 0))
        with pytest.raises(Crash):
            await w.scheduler.tick()
        assert [f.state for f in w.store.fires()] == ["claimed"]
    clock.set_time(at(2030, 1, 7, 9, 5))               # restarted later than the grace time
    async with worker(db, clock, [target]) as w:
        recovered = await w.scheduler.recover()
        assert [f.scheduled_at for f in recovered] == [at(2030, 1, 7, 9, 0)]
        assert await w.scheduler.tick() == []
        assert w.run_ids() == {fire_id(target, HOURLY, at(2030, 1, 7, 9, 0))}
        assert [f.state for f in w.store.fires()] == ["started"]
        assert (await w.engine.wait(recovered[0].id, timeout=5)).succeeded


async def test_the_running_loop_sleeps_until_the_next_fire(tmp_path: Path) -> None:
    target = TriggeredWorkflow("wf_1", workflow(HOURLY))
    clock = ManualClock(at(2030, 1, 7, 8, 59, 50))
    async with worker(tmp_path / "j.db", clock, [target]) as w:
        w.scheduler.start()
        await clock.wait_for_sleepers(1)
        assert clock.sleepers == [at(2030, 1, 7, 9, 0)]  # wakes at the due time, not after a poll
        clock.advance_to_next()
        for _ in range(100):
            if w.run_ids():
                break
            await asyncio.sleep(0.01)
        assert w.run_ids() == {fire_id(target, HOURLY, at(2030, 1, 7, 9, 0))}


class Refuses(EngineTarget):
    async def start(self, target: TriggeredWorkflow, inputs: dict[str, Any], run_id: str) -> None:
        raise RuntimeError("the engine is shutting down")


async def test_a_fire_that_cannot_start_is_recorded_as_failed_and_not_retried(tmp_path: Path) -> None:
    target = TriggeredWorkflow("wf_1", workflow(HOURLY))
    clock = ManualClock(at(2030, 1, 7, 8, 30))
    async with worker(tmp_path / "j.db", clock, [target], Refuses) as w:
        await w.scheduler.tick()
        clock.set_time(at(2030, 1, 7, 9, 0))
        await w.scheduler.tick()
        assert await w.scheduler.recover() == []
        [fire] = w.store.fires()
        assert fire.state == "failed" and fire.error == "RuntimeError: the engine is shutting down"
        assert w.run_ids() == set()


class RefusesForGood(EngineTarget):
    """Refuses as the service does for a workflow whose actions nothing can invoke."""

    tries = 0

    async def start(self, target: TriggeredWorkflow, inputs: dict[str, Any], run_id: str) -> None:
        RefusesForGood.tries += 1
        raise FireRefused("cannot run: step `note` (x.y at workflow.steps[0].action)")


async def test_a_refused_fire_is_recorded_once_and_pauses_its_schedule(tmp_path: Path) -> None:
    RefusesForGood.tries = 0
    trigger = ScheduleTrigger(cron="0 * * * *", missed="catch_up")
    target = TriggeredWorkflow("wf_1", workflow(trigger))
    clock = ManualClock(at(2030, 1, 7, 8, 30))
    async with worker(tmp_path / "j.db", clock, [target], RefusesForGood) as w:
        await w.scheduler.tick()
        clock.set_time(at(2030, 1, 7, 10, 0))               # the 9:00 fire is caught up, 10:00 is due
        assert len(await w.scheduler.tick()) == 2
        assert RefusesForGood.tries == 1                     # the second fire of the pass is not tried
        fires = w.store.fires()
        assert [f.state for f in fires] == ["failed", "failed"]
        refusal = "cannot run: step `note` (x.y at workflow.steps[0].action); the schedule was paused"
        assert all(f.error and f.error.startswith(refusal) for f in fires)
        state = w.store.state("wf_1", schedule_trigger_id(trigger))
        assert state is not None and state.paused and state.paused_by == PAUSED_BY_REFUSAL
        clock.set_time(at(2030, 1, 7, 11, 0))
        assert await w.scheduler.tick() == [] and RefusesForGood.tries == 1
        assert len(w.store.fires()) == 2 and w.run_ids() == set()


async def test_a_fire_between_acceptance_and_the_first_pass_is_not_lost(tmp_path: Path) -> None:
    accepted = at(2030, 1, 7, 8, 59, 50)
    target = TriggeredWorkflow("wf_1", workflow(HOURLY), live_since=accepted)
    clock = ManualClock(at(2030, 1, 7, 9, 0, 20))       # the first pass comes 30 s after acceptance
    async with worker(tmp_path / "j.db", clock, [target]) as w:
        fired = await w.scheduler.tick()
        assert [(f.scheduled_at, f.catch_up) for f in fired] == [(at(2030, 1, 7, 9, 0), False)]


async def test_an_old_workflow_seen_for_the_first_time_does_not_catch_up_its_past(tmp_path: Path) -> None:
    trigger = ScheduleTrigger(cron="0 * * * *", missed="catch_up")
    target = TriggeredWorkflow("wf_1", workflow(trigger), live_since=at(2029, 6, 1))
    clock = ManualClock(at(2030, 1, 7, 9, 30))
    async with worker(tmp_path / "j.db", clock, [target]) as w:
        assert await w.scheduler.tick() == []
        clock.set_time(at(2030, 1, 7, 10, 0))
        assert [f.scheduled_at for f in await w.scheduler.tick()] == [at(2030, 1, 7, 10, 0)]
