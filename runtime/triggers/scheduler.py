"""The durable scheduler: fires schedule triggers, once each, across restarts and workers.

Each tick, for every schedule of every workflow the source lists:

1. fires in `(cursor, now]` are due. Those due within `grace_s` fire normally; older ones were
   missed while nothing was running, and the trigger's `missed` policy decides: `skip` drops
   them, `catch_up` fires the latest of them once (a catch-up never fires a backlog).
2. the due fires are claimed in the fire store by their deterministic id, and the cursor moves
   to `now`, in one transaction. A claim that already exists inserts nothing, so two workers or a
   restarted worker never start a fire twice.
3. each claimed fire starts a run whose id is the fire id. After a crash between claim and start,
   `recover()` starts the claimed fires; a run that already exists is not started again.

A trigger seen for the first time starts its cursor when its workflow version went live (at most
one poll interval back), else at `now`: accepting a workflow never fires its past. A paused
trigger's cursor stays put; resuming moves it to the resume time, so the fires a pause
suppressed are not caught up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from runtime.clock import Clock, SystemClock
from runtime.triggers.cron import CronRule, ScheduleError
from runtime.triggers.ids import schedule_fire_id, schedule_trigger_id, webhook_trigger_id
from workflow.document import ScheduleTrigger, Workflow

if TYPE_CHECKING:
    # the store is SQLAlchemy: `upcoming` and TriggeredWorkflow (`overture triggers list FILE`) need
    # none of it, and a Scheduler is given an open store
    from runtime.triggers.store import FireRecord, FireStore

log = logging.getLogger("overture.triggers")


@dataclass(frozen=True)
class TriggeredWorkflow:
    """A workflow whose triggers are live; `key` names it stably (the service's workflow id)."""

    key: str
    workflow: Workflow
    live_since: float | None = None
    """When these triggers went live (the version's acceptance): a trigger first seen by a pass
    shortly after starts from then, so a fire between acceptance and that pass is not lost."""

    def schedules(self) -> list[tuple[str, ScheduleTrigger]]:
        triggers = self.workflow.triggers
        seen: dict[str, ScheduleTrigger] = {}
        for trigger in triggers.schedule if triggers else []:
            seen.setdefault(schedule_trigger_id(trigger), trigger)  # identical schedules fire once
        return list(seen.items())

    def schedule(self, trigger_id: str) -> ScheduleTrigger | None:
        return dict(self.schedules()).get(trigger_id)

    def trigger_ids(self) -> list[str]:
        """Every trigger's id: the schedules', then the webhook's (what pause/resume take)."""
        ids = [tid for tid, _ in self.schedules()]
        hook = self.workflow.triggers.webhook if self.workflow.triggers else None
        if hook is not None:
            ids.append(webhook_trigger_id(hook))
        return ids


class FireRefused(Exception):
    """Raised by `RunTarget.start` when the workflow cannot run as it stands (e.g. it calls actions
    nothing can invoke), so every later fire would fail the same way: the scheduler records the
    fire as failed with this message and pauses the trigger, so the failure is recorded once, not
    at every tick. The message should say where the problem is and how to fix it."""


PAUSED_BY_REFUSAL = "overture: the workflow cannot run"
"""`paused_by` of a trigger the scheduler paused after a `FireRefused`."""


WorkflowSource = Callable[[], Iterable[TriggeredWorkflow]]
"""Lists the workflows whose triggers are live, with their current documents."""


class RunTarget(Protocol):
    """Where fires become runs (the service: its engine plus its run links)."""

    def run_exists(self, run_id: str) -> bool: ...

    async def start(self, target: TriggeredWorkflow, inputs: dict[str, Any], run_id: str) -> None:
        """Start a run with exactly this id; raise when it cannot be started (`FireRefused` when
        no later fire could start either)."""
        ...


@dataclass(frozen=True)
class Upcoming:
    trigger_id: str
    trigger: ScheduleTrigger
    times: list[float]


class Scheduler:
    def __init__(
        self,
        store: FireStore,
        source: WorkflowSource,
        target: RunTarget,
        *,
        clock: Clock | None = None,
        grace_s: float = 60.0,
        poll_s: float = 30.0,
    ) -> None:
        self.store = store
        self.source = source
        self.target = target
        self.clock: Clock = clock or SystemClock()
        self.grace_s = grace_s
        self.poll_s = poll_s
        self._task: asyncio.Task[None] | None = None
        self._poke = asyncio.Event()
        self._stopping = False

    # -- one pass ---------------------------------------------------------------------------------

    async def tick(self) -> list[FireRecord]:
        """Claim and start every due fire; returns the fires this pass claimed."""
        now = self.clock.now()
        claimed: list[tuple[TriggeredWorkflow, FireRecord]] = []
        for target in list(self.source()):
            for trigger_id, trigger in target.schedules():
                try:
                    fires = self._claim_due(target, trigger_id, trigger, now)
                except ScheduleError as exc:
                    log.warning("workflow %s: schedule %s skipped: %s", target.key, trigger.cron, exc)
                    continue
                claimed.extend((target, fire) for fire in fires)
        refused: dict[tuple[str, str], str] = {}
        for target, fire in claimed:
            why = refused.get((target.key, fire.trigger_id))
            if why is not None:  # a catch-up and a due fire in one pass: the second is not tried
                self.store.mark_failed(fire.id, why, now=self.clock.now())
                continue
            why = await self._launch(target, fire)
            if why is not None:
                refused[(target.key, fire.trigger_id)] = why
        return [fire for _, fire in claimed]

    def _claim_due(
        self, target: TriggeredWorkflow, trigger_id: str, trigger: ScheduleTrigger, now: float
    ) -> list[FireRecord]:
        from runtime.triggers.store import NewFire  # loaded already: the scheduler's store is one

        rule = CronRule.of(trigger)
        state = self.store.state(target.key, trigger_id) or self.store.ensure_state(
            target.key, trigger_id, cursor=self._first_cursor(target, now), now=now
        )
        if state.paused or state.cursor is None or state.cursor >= now:
            return []
        cursor = state.cursor
        late_edge = now - self.grace_s
        new = [
            NewFire(schedule_fire_id(target.key, trigger_id, t), "schedule", scheduled_at=t)
            for t in rule.between(max(cursor, late_edge), now)
        ]
        latest_missed = rule.latest_at_or_before(late_edge) if cursor < late_edge else None
        missed = latest_missed is not None and latest_missed > cursor
        if missed and trigger.missed == "catch_up" and latest_missed is not None:
            new.insert(
                0,
                NewFire(
                    schedule_fire_id(target.key, trigger_id, latest_missed),
                    "schedule",
                    scheduled_at=latest_missed,
                    catch_up=True,
                ),
            )
        if not new and not missed:
            return []  # nothing was due since the cursor: no write, so an idle pass costs one read
        return self.store.claim(target.key, target.workflow.name, trigger_id, new, now=now, cursor=now)

    def _first_cursor(self, target: TriggeredWorkflow, now: float) -> float:
        # look back at most one poll interval (plus grace): far enough to cover the gap between
        # acceptance and the first pass, never so far that an old workflow catches up on its past
        if target.live_since is None:
            return now
        return min(now, max(target.live_since, now - self.poll_s - self.grace_s))

    async def _launch(self, target: TriggeredWorkflow, fire: FireRecord) -> str | None:
        """Start the fire's run; returns the recorded error when the target refused it for good."""
        now = self.clock.now()
        if self.target.run_exists(fire.id):
            self.store.mark_started(fire.id, fire.id, now=now)
            return None
        trigger = target.schedule(fire.trigger_id)
        if trigger is None:
            self.store.mark_failed(fire.id, "the schedule is no longer in the workflow", now=now)
            return None
        try:
            await self.target.start(target, dict(trigger.inputs), fire.id)
        except Exception as exc:  # a fire that cannot start is recorded, never retried in a loop
            if self.target.run_exists(fire.id):  # another worker started it meanwhile
                self.store.mark_started(fire.id, fire.id, now=self.clock.now())
                return None
            log.warning("workflow %s: fire %s did not start: %s", target.key, fire.id, exc)
            if isinstance(exc, FireRefused):
                return self._refused(target, fire, exc)
            self.store.mark_failed(fire.id, f"{type(exc).__name__}: {exc}", now=self.clock.now())
            return None
        self.store.mark_started(fire.id, fire.id, now=self.clock.now())
        return None

    def _refused(self, target: TriggeredWorkflow, fire: FireRecord, exc: FireRefused) -> str:
        # every later fire would fail alike: pausing records the failure once instead of at every
        # tick, and resuming (refused while the problem lasts) is the explicit "fixed, go on"
        error = (
            f"{exc}; the schedule was paused so that this is recorded once: fix it, then resume the trigger"
        )
        now = self.clock.now()
        self.store.mark_failed(fire.id, error, now=now)
        self.store.set_paused(target.key, fire.trigger_id, True, now=now, by=PAUSED_BY_REFUSAL)
        return error

    async def recover(self) -> list[FireRecord]:
        """Start the schedule fires a crash left claimed but not started; returns them."""
        by_key = {t.key: t for t in self.source()}
        done: list[FireRecord] = []
        for fire in self.store.unstarted():
            if fire.kind != "schedule":
                continue  # webhook deliveries are finished by their own retry (same delivery id)
            target = by_key.get(fire.workflow_key)
            if target is None:
                self.store.mark_failed(fire.id, "the workflow no longer has triggers", now=self.clock.now())
                continue
            await self._launch(target, fire)
            done.append(fire)
        return done

    # -- reading ----------------------------------------------------------------------------------

    def upcoming(self, target: TriggeredWorkflow, count: int = 3) -> list[Upcoming]:
        """The next fire times of each schedule (from the cursor or now, whichever is later)."""
        return upcoming(target, count=count, now=self.clock.now())

    # -- the loop ---------------------------------------------------------------------------------

    def poke(self) -> None:
        """Look again now (a workflow was accepted, edited, paused or resumed)."""
        self._poke.set()

    def next_due(self) -> float | None:
        now = self.clock.now()
        best: float | None = None
        for item in upcoming_all(self.source(), now=now):
            if item.times and (best is None or item.times[0] < best):
                best = item.times[0]
        return best

    async def run(self) -> None:
        """Recover, then tick at every due time (and at least every `poll_s`) until stopped."""
        await self.recover()
        while not self._stopping:
            try:
                await self.tick()
                due = self.next_due()
            except Exception:  # keep scheduling whatever one pass hit; the next pass retries
                log.exception("trigger scheduler pass failed")
                due = None
            now = self.clock.now()
            delay = self.poll_s if due is None else min(self.poll_s, max(0.0, due - now))
            await self._sleep(delay)

    async def _sleep(self, delay: float) -> None:
        self._poke.clear()
        sleeper = asyncio.ensure_future(self.clock.sleep(delay))
        poked = asyncio.ensure_future(self._poke.wait())
        try:
            await asyncio.wait({sleeper, poked}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, poked):
                task.cancel()

    def start(self) -> asyncio.Task[None]:
        if self._task is None or self._task.done():
            self._stopping = False
            self._poke = asyncio.Event()
            self._task = asyncio.create_task(self.run(), name="overture-trigger-scheduler")
        return self._task

    async def stop(self) -> None:
        self._stopping = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass


def upcoming(target: TriggeredWorkflow, *, count: int, now: float) -> list[Upcoming]:
    items = []
    for trigger_id, trigger in target.schedules():
        try:
            times = CronRule.of(trigger).next_after(now, count)
        except ScheduleError:
            times = []
        items.append(Upcoming(trigger_id, trigger, times))
    return items


def upcoming_all(targets: Iterable[TriggeredWorkflow], *, now: float, count: int = 1) -> list[Upcoming]:
    return [item for target in targets for item in upcoming(target, count=count, now=now)]
