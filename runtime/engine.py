"""The durable engine: runs validated workflow documents against the journal.

One driver task per active run starts every ready step at once (bounded by `concurrency` for
action calls), applies `if`, fans `for_each` out per item, retries with the step's policy, and on
failure, cancellation or a passed deadline undoes the completed steps (saga). A run that only
waits (a `core.wait` timer, a `core.approval`) holds no task: its wake time or pending approval is
in the journal, and the scheduler loop (timers) or `approve()` drives it again.

Durability rule: an attempt is journaled as started before its action is called, and its end,
the step's result and the event are written in one transaction. On restart `recover()` resumes
every unfinished run; completed steps are never called again, and a step that was in flight runs
once more with the same idempotency key. On SQLite the engine's commits are fsynced in groups:
everything committed is on disk before the next action call and before a caller is told a run
started, ended or took a decision (`Journal.flush`); a power cut can only lose a step's end that
nothing has acted on yet, and that step then runs once more with the same key.

The engine is built in layers, one module each: `steps.StepRunner` (if, for_each, attempts,
retries, timeouts, routing) → `builtins.CoreActions` (core.*) → `saga.Saga` (cancel what is
left, undo what completed) → `Engine` (public API, scheduler, one driver per run).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

from runtime.active_run import PASSED, RESUMABLE, ActiveRun, RunResult, TakenRun
from runtime.builtins import deciding_as, may_decide
from runtime.clock import Clock, SystemClock
from runtime.compensation import run_graph
from runtime.errors import (
    InvalidRunState,
    NotAnApprover,
)
from runtime.invocation import Invoker
from runtime.journal_memory import AnyJournal
from runtime.journal_schema import WHOLE_STEP
from runtime.records import Event, RunRecord, RunState, StepState
from runtime.routing import DefaultRouter, Router
from runtime.routing_stats import RoutingStats
from runtime.saga import Saga
from runtime.wakeup import Wakeup
from workflow.catalog import Catalog
from workflow.document import Step, Workflow

log = logging.getLogger("overture.runtime")


class Engine(Saga):
    """Runs workflows durably. Use as `async with Engine(...) as engine:` or call `close()`."""

    def __init__(
        self,
        catalog: Catalog,
        journal: AnyJournal,
        invoker: Invoker,
        *,
        clock: Clock | None = None,
        concurrency: int = 64,
        router: Router | None = None,
        secrets: Any = None,
        worker_id: str | None = None,
        rng: random.Random | None = None,
        stats_window_s: float = 3600.0,
        poll_interval_s: float | None = 2.0,
        lease_ttl_s: float = 30.0,
    ) -> None:
        self.catalog = catalog
        self.journal = journal
        self.invoker = invoker
        self.clock: Clock = clock or SystemClock()
        self.concurrency = concurrency
        self.router: Router = router or DefaultRouter()
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}"
        self.rng = rng or random.Random()
        self.stats_window_s = stats_window_s
        self.routing_stats = RoutingStats(journal, stats_window_s)
        self.poll_interval_s = poll_interval_s
        """How often (real seconds) to look for approvals and cancels recorded by other processes."""
        self.lease_ttl_s = lease_ttl_s
        """A driver holds its run for this long (real seconds) and renews at a third of it; a run
        whose worker died is picked up by another engine's scheduler once the lease runs out."""
        if secrets is not None and hasattr(secrets, "redact"):
            journal.redact = secrets.redact
        self._slots = asyncio.Semaphore(concurrency)
        self._drivers: dict[str, asyncio.Task[None]] = {}
        self._pokes: dict[str, Wakeup] = {}
        self._subscribers: dict[str, list[asyncio.Queue[Event]]] = defaultdict(list)
        self._waiters: dict[str, list[asyncio.Future[None]]] = defaultdict(list)
        self._scheduler: asyncio.Task[None] | None = None
        self._timers_changed = asyncio.Event()
        self._closed = False
        # group commit: this engine flushes before each action call and before it reports to
        # its caller (see `runtime.journal_sync`)
        journal.defer_fsync = True
        journal.add_listener(self._on_event)

    # -- public API ------------------------------------------------------------------------------

    async def __aenter__(self) -> Engine:
        self._ensure_scheduler()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start_run(
        self,
        workflow: Workflow,
        inputs: Mapping[str, Any] | None = None,
        *,
        run_id: str | None = None,
        deadline_s: float | None = None,
    ) -> str:
        """Journal a new run and start driving it; returns its id at once."""
        run_id = run_id or uuid.uuid4().hex
        now = self.clock.now()
        limit = deadline_s if deadline_s is not None else workflow.deadline_s
        record = self.journal.create_run(
            run_id,
            workflow_name=workflow.name,
            workflow_version=workflow.version,
            document=workflow.to_data(),
            inputs=dict(inputs or {}),
            now=now,
            deadline_at=now + limit if limit else None,
            worker_id=self.worker_id,
        )
        self._timers_changed.set()
        self._ensure_scheduler()
        self._ensure_driving(run_id, fresh=record)
        await self.journal.flush()  # the caller is told the run exists: it must
        return run_id

    async def wait(self, run_id: str, *, timeout: float | None = None) -> RunResult:
        """Wait until the run has finished (timers are woken by the scheduler meanwhile)."""
        state = self.journal.run_state(run_id)
        if state.finished:
            return await self._reported(run_id)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters[run_id].append(future)
        self._ensure_scheduler()
        driver = self._drivers.get(run_id)
        if state != RunState.WAITING and (driver is None or driver.done()):
            # (a driver here is not poked: a poke makes it look at its waiting steps again)
            self._ensure_driving(run_id)
        loop = asyncio.get_running_loop()
        end = None if timeout is None else loop.time() + timeout
        while not future.done():
            # the finish event arrives only from this process; another worker's run is polled
            step = self.poll_interval_s or 2.0
            if end is not None:
                step = min(step, end - loop.time())
                if step <= 0:
                    future.cancel()
                    raise TimeoutError(f"run `{run_id}` did not finish within {timeout:g}s")
            await asyncio.wait({future}, timeout=step)
            if not future.done() and self.journal.run_state(run_id).finished:
                future.set_result(None)
        future.result()
        return await self._reported(run_id)

    async def run_until_settled(
        self, run_id: str, *, follow_timers_s: float = 0.0, taken: TakenRun | None = None
    ) -> RunResult:
        """Drive the run until it has finished or pauses: on an approval, or on a timer more than
        `follow_timers_s` away (nearer timers are waited for).

        `taken`: the caller already holds the run's lease and read the run with it (a worker's
        queue hand-off): the driver starts from that instead of claiming and reading again."""
        while True:
            task = self._ensure_driving(run_id, taken)
            taken = None
            await asyncio.shield(task)
            record = self.journal.get_run(run_id)
            if record.state.finished:
                return await self._reported(run_id)
            if record.state != RunState.WAITING:
                foreign = record.owner not in (None, self.worker_id)
                if foreign and (record.lease_until or 0) > self._lease_clock():
                    raise InvalidRunState(
                        f"run `{run_id}` is being run by {record.owner}; it continues there", run_id=run_id
                    )
                await asyncio.sleep(0)
                continue
            if self.journal.approvals(run_id, pending_only=True):
                return await self._reported(run_id)
            pending = [t for t in self.journal.timers(run_id).values() if not t.fired and t.kind == "wait"]
            if not pending:
                return await self._reported(run_id)
            delay = min(t.wake_at for t in pending) - self.clock.now()
            if delay > follow_timers_s:
                return await self._reported(run_id)
            await self.clock.sleep(delay)

    async def _reported(self, run_id: str) -> RunResult:
        await self.journal.flush()  # what the caller is told is on disk
        return self.result(run_id)

    async def recover(self) -> list[str]:
        """Resume every unfinished run in the journal; returns their ids."""
        ids = [r.id for r in self.journal.unfinished_runs()]
        for run_id in ids:
            self._ensure_driving(run_id)
        self._ensure_scheduler()
        return ids

    async def approve(
        self,
        run_id: str,
        step_id: str,
        approved: bool,
        by: str,
        comment: str | None = None,
        *,
        iteration: int | None = None,
        drive: bool = True,
        roles: Sequence[str] = (),
    ) -> None:
        """Approve or reject a waiting `core.approval` step; the run continues (or fails) at once.

        When the step lists `approvers`, `by` or one of its `roles` (an API token's) must be among
        them, or a role `*` (`builtins.may_decide`): otherwise `NotAnApprover`, and nothing is
        recorded. `by`, the person, is what `decided_by` records, never the role; `decided_as`
        records which approver allowed it (the name, a role, `*`; None when anyone may). With
        `iteration=None` every pending item is decided, so `by` must be allowed for each of them.

        `drive=False` only records the decision (a process without the catalog's invokers, like
        `overture approve` without `--catalog`); whoever resumes the run next acts on it."""
        record = self.journal.get_run(run_id)
        if record.state.finished:
            raise InvalidRunState(f"run `{run_id}` has already {record.state.value}", run_id=run_id)
        pending = [
            a
            for a in self.journal.approvals(run_id, pending_only=True)
            if a.step_id == step_id and (iteration is None or a.iteration == iteration)
        ]
        if not pending:
            raise InvalidRunState(
                f"step `{step_id}` of run `{run_id}` is not waiting for an approval",
                run_id=run_id,
                step_id=step_id,
            )
        for approval in pending:  # all checked before any is decided: a refusal records nothing
            if not may_decide(approval.approvers, by, roles):
                raise NotAnApprover(
                    run_id=run_id,
                    step_id=step_id,
                    iteration=None if approval.iteration == WHOLE_STEP else approval.iteration,
                    who=by,
                    approvers=list(approval.approvers or []),
                )
        for approval in pending:
            self.journal.decide_approval(
                run_id,
                step_id,
                approval.iteration,
                approved=approved,
                by=by,
                comment=comment,
                now=self.clock.now(),
                decided_as=deciding_as(approval.approvers, by, roles),
            )
        await self.journal.flush()
        if drive:
            self._ensure_driving(run_id)

    async def cancel(self, run_id: str, *, by: str | None = None, drive: bool = True) -> None:
        """Cancel a run: nothing new starts, in-flight calls finish, completed steps are undone.
        (`drive=False`: record the request only, as for `approve`.)"""
        record = self.journal.get_run(run_id)
        if record.state.finished:
            raise InvalidRunState(f"run `{run_id}` has already {record.state.value}", run_id=run_id)
        self.journal.request_cancel(run_id, self.clock.now(), by=by)
        await self.journal.flush()
        if drive:
            self._ensure_driving(run_id)

    def result(self, run_id: str) -> RunResult:
        record = self.journal.get_run(run_id)
        rows = self.journal.step_results(run_id)
        steps = {sid: row.state for (sid, it), row in rows.items() if it == WHOLE_STEP}
        outputs = {
            sid: row.output
            for (sid, it), row in rows.items()
            if it == WHOLE_STEP and row.state == StepState.SUCCEEDED
        }
        return RunResult(
            run_id=run_id,
            state=record.state,
            steps=steps,
            outputs=outputs,
            error=record.error,
            compensation=record.compensation,
        )

    async def events(self, run_id: str, since: int = 0) -> AsyncIterator[Event]:
        """The run's events after `since` (from the journal), then live ones, until it finishes."""
        queue: asyncio.Queue[Event] = asyncio.Queue()
        self._subscribers[run_id].append(queue)  # subscribe before replaying: no gap
        try:
            last = since
            for event in self.journal.events_since(run_id, since):
                last = event.seq
                yield event
                if event.type == "run.finished":
                    return
            while True:
                event = await queue.get()
                if event.seq <= last:
                    continue
                last = event.seq
                yield event
                if event.type == "run.finished":
                    return
        finally:
            self._subscribers[run_id].remove(queue)
            if not self._subscribers[run_id]:
                del self._subscribers[run_id]

    @property
    def runs_in_flight(self) -> int:
        # a finished driver leaves the map in its done callback, right after it ends (counting
        # the live ones here was a scan of every run per attempt)
        return len(self._drivers)

    async def close(self) -> None:
        """Stop driving (as a crash would, minus the crash): in-flight attempts stay journaled as
        started, and the next `recover()` runs them again."""
        self._closed = True
        tasks = [t for t in [self._scheduler, *self._drivers.values()] if t is not None and not t.done()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        try:
            await self.journal.flush()
        except Exception:  # the journal went away first; its close() syncs what it holds
            log.exception("could not flush the journal on close")
        self.journal.remove_listener(self._on_event)

    async def drain(self, timeout_s: float | None = None) -> int:
        """Graceful stop: take up no more runs (timers, orphans, other processes' decisions), let
        the runs being driven finish or pause for at most `timeout_s`, then `close()`. Returns how
        many were still being driven; their leases run out and another engine takes them over."""
        if self._scheduler is not None:
            self._scheduler.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._scheduler
        # a scheduler started again (by wait() or recover()) would take up runs while draining
        self._ensure_scheduler = lambda: None  # type: ignore[method-assign]
        drivers = [t for t in self._drivers.values() if not t.done()]
        if drivers:
            await asyncio.wait(drivers, timeout=timeout_s)
        left = self.runs_in_flight
        await self.close()
        return left

    # -- plumbing --------------------------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        for queue in self._subscribers.get(event.run_id, []):
            queue.put_nowait(event)
        if event.type == "run.finished":
            for future in self._waiters.pop(event.run_id, []):
                if not future.done():
                    future.set_result(None)

    def _ensure_driving(
        self, run_id: str, taken: TakenRun | None = None, *, fresh: RunRecord | None = None
    ) -> asyncio.Task[None]:
        """Drive the run unless a driver here does (then poke it). `taken`: see
        `run_until_settled`; `fresh`: the record of a run just created here (no steps, no attempts
        yet: the driver claims it but reads nothing back)."""
        if self._closed:
            raise InvalidRunState("the engine is closed", run_id=run_id)
        task = self._drivers.get(run_id)
        if task is not None and not task.done():
            self._pokes[run_id].set()
            return task
        self._pokes[run_id] = Wakeup()
        driving = self._drive(run_id, taken, fresh)
        task = asyncio.get_running_loop().create_task(driving, name=f"run-{run_id}")
        task.add_done_callback(self._driver_done)
        self._drivers[run_id] = task
        return task

    def _driver_done(self, task: asyncio.Task[None]) -> None:
        run_id = task.get_name().removeprefix("run-")
        if self._drivers.get(run_id) is task:  # keep the maps as small as the runs in flight
            del self._drivers[run_id]
            self._pokes.pop(run_id, None)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            # a journal outage or an engine bug: the run stays unfinished in the journal (the next
            # recover() resumes it), and whoever waits for it hears about the fault now
            log.error("driver of run %s stopped: %r", run_id, exc, exc_info=exc)
            for future in self._waiters.pop(run_id, []):
                if not future.done():
                    future.set_exception(exc)

    def _ensure_scheduler(self) -> None:
        if self._scheduler is None or self._scheduler.done():
            self._scheduler = asyncio.get_running_loop().create_task(self._schedule(), name="scheduler")

    async def _schedule(self) -> None:
        """Wake runs whose timers (waits, deadlines) are due, and waiting runs another process has
        moved on (an approval or cancel recorded by `overture approve`); sleep until the next."""
        dispatched: set[tuple[str, str, int, float]] = set()
        while True:
            self._timers_changed.clear()
            now = self.clock.now()
            upcoming: float | None = None
            try:
                pending = self.journal.pending_timers()
                outside = self.journal.runs_to_wake()
                # here, not on its own: a scan failing at every poll must say so in the log, or
                # runs stay untaken with nothing to tell why
                orphans = self._orphaned_runs()
            except Exception:  # the database may be away for a moment; try again at the next poll
                log.exception("the scheduler could not read the journal")
                pending, outside, orphans = [], [], []
            keys = {(t.run_id, t.step_id, t.iteration, t.wake_at) for t in pending}
            dispatched &= keys  # forget fired timers, so the set stays small in a long-lived service
            for timer in pending:
                key = (timer.run_id, timer.step_id, timer.iteration, timer.wake_at)
                if timer.wake_at <= now:
                    if key not in dispatched:
                        dispatched.add(key)
                        self._ensure_driving(timer.run_id)
                elif upcoming is None or timer.wake_at < upcoming:
                    upcoming = timer.wake_at
            for run_id in [*outside, *orphans]:
                driver = self._drivers.get(run_id)
                if driver is None or driver.done():
                    self._ensure_driving(run_id)
            waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(self._timers_changed.wait())]
            if upcoming is not None:
                waits.append(asyncio.ensure_future(self.clock.sleep(upcoming - now)))
            if self.poll_interval_s:
                # real time on purpose: this looks for other processes, which the test clock does not move
                waits.append(asyncio.ensure_future(asyncio.sleep(self.poll_interval_s)))
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waits:
                    waiter.cancel()

    # -- the driver ------------------------------------------------------------------------------

    def _load(self, run_id: str, taken: TakenRun | None = None, fresh: RunRecord | None = None) -> ActiveRun:
        record = taken.record if taken is not None else fresh or self.journal.get_run(run_id)
        workflow = Workflow.model_validate(record.document)
        graph = run_graph(workflow)
        deps = {sid: set(graph.predecessors(sid)) for sid in workflow.step_ids}
        run = ActiveRun(record=record, workflow=workflow, deps=deps)
        if taken is not None:
            rows = run.replay = dict(taken.steps)
        else:
            rows = run.replay = {} if fresh is not None else self.journal.step_results(run_id)
        for step in workflow.steps:
            row = rows.get((step.id, WHOLE_STEP))
            run.status[step.id] = row.state if row else None
            if row is not None and row.state == StepState.SUCCEEDED:
                run.outputs[step.id] = row.output
        return run

    async def _drive(
        self, run_id: str, taken: TakenRun | None = None, fresh: RunRecord | None = None
    ) -> None:
        if taken is None and not self._claim(run_id):
            log.info("run %s is driven by another worker; leaving it alone", run_id)
            return
        keeper = asyncio.ensure_future(self._keep_lease(run_id))
        driving = asyncio.ensure_future(self._drive_claimed(run_id, taken, fresh))
        try:
            await asyncio.wait({driving, keeper}, return_when=asyncio.FIRST_COMPLETED)
            if not driving.done():
                # the lease was lost (this loop stalled past it and another worker took the run
                # over): stop at once, so two drivers overlap as briefly as possible
                driving.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await driving
            else:
                driving.result()
        finally:
            keeper.cancel()
            driving.cancel()
            try:
                self.journal.release(run_id, self.worker_id)
            except Exception:  # the lease runs out by itself; another worker takes over then
                log.exception("could not release run %s", run_id)

    # leases are real time, not the injected clock (they are between processes, which a test's
    # clock does not move); timed by the database server on PostgreSQL, where machines' clocks
    # disagree (one behind would take a dead worker's runs late, one ahead steal live leases)
    wall_clock: Callable[[], float] = staticmethod(time.time)
    """This machine's clock, for leases on a journal of one machine (SQLite, memory)."""

    def _claim(self, run_id: str) -> bool:
        # PostgreSQL (`server_clock`): None, the claim's statement reads the server's clock
        now = None if self.journal.server_clock else self.wall_clock()
        return self.journal.claim(run_id, self.worker_id, now=now, ttl=self.lease_ttl_s)

    def _orphaned_runs(self) -> list[str]:
        return self.journal.orphaned_runs(now=None if self.journal.server_clock else self.wall_clock())

    def _lease_clock(self) -> float:
        """The lease clock's time, to compare a lease read from the journal with."""
        return self.journal.lease_now() if self.journal.server_clock else self.wall_clock()

    async def _keep_lease(self, run_id: str) -> None:
        while True:
            await asyncio.sleep(self.lease_ttl_s / 3)
            try:
                if not self._claim(run_id):
                    log.error("lost the lease on run %s to another worker; stopping here", run_id)
                    return
            except Exception:
                log.exception("could not renew the lease on run %s", run_id)

    async def _drive_claimed(
        self, run_id: str, taken: TakenRun | None = None, fresh: RunRecord | None = None
    ) -> None:
        run = self._load(run_id, taken, fresh)
        if run.record.state.finished:
            return
        now = self.clock.now()
        # this driver is the only one for the run: any attempt still `started` was lost in a crash
        if (taken is None and fresh is None) or (taken is not None and taken.started_attempts):
            self.journal.interrupt_attempts(run_id, now)
        if run.record.state == RunState.COMPENSATING:
            run.fail(
                run.record.error or {"type": "unknown", "message": "the run failed"},
                # what stopped the run decides its end state, not a cancel asked for during the undo
                cancelled=(run.record.error or {}).get("type") == "cancelled",
            )
            await self._wind_down(run)
            return
        if run.record.state == RunState.WAITING:
            self.journal.set_run_state(run_id, RunState.RUNNING, now, event="run.resumed")
        tasks: dict[str, asyncio.Task[tuple[StepState, Any, dict[str, Any] | None]]] = {}
        wake = self._pokes.setdefault(run_id, Wakeup())
        recheck_waiting = True
        # after the first pass only the dependents of steps that just finished can become ready:
        # looking at every step after every completion made a long chain quadratic
        order = {sid: i for i, sid in enumerate(run.workflow.step_ids)}
        dependents: dict[str, set[str]] = {sid: set() for sid in order}
        for sid, needs in run.deps.items():
            for need in needs:
                dependents[need].add(sid)
        check: list[Step] | None = None  # None: every step
        loop = asyncio.get_running_loop()
        # the taken run's row is as fresh as a read now would be: its cancel flag is known
        cancel_known = taken.record.cancel_requested if taken is not None else None
        try:
            while True:
                self._check_stop_requests(run, cancel_known)
                cancel_known = None
                if not run.stop.is_set():
                    for step in run.workflow.steps if check is None else check:
                        if step.id in tasks:
                            continue
                        state = run.status[step.id]
                        ready = (
                            (state is None and all(run.status[d] in PASSED for d in run.deps[step.id]))
                            or state in RESUMABLE
                            or (state == StepState.WAITING and recheck_waiting)
                        )
                        if ready:
                            task = loop.create_task(self._run_step(run, step))
                            task.add_done_callback(wake.wake)
                            tasks[step.id] = task
                    recheck_waiting = False
                if not tasks:
                    break
                deadline = run.record.deadline_at if not run.stop.is_set() else None
                await wake.wait(
                    lambda: any(t.done() for t in tasks.values()),
                    None if deadline is None else self.clock.sleep(deadline - self.clock.now()),
                )
                if wake.take_poke():
                    recheck_waiting = True
                ended: set[str] = set()
                for step_id, task in list(tasks.items()):
                    if not task.done():
                        continue
                    del tasks[step_id]
                    ended |= dependents[step_id]
                    state, output, error = task.result()
                    run.status[step_id] = state
                    if state == StepState.SUCCEEDED:
                        run.outputs[step_id] = output
                    elif state == StepState.FAILED:
                        run.fail({"step": step_id, **(error or {"type": "error", "message": "failed"})})
                check = (
                    None
                    if recheck_waiting
                    else [run.workflow.steps[i] for i in sorted(order[sid] for sid in ended)]
                )
        finally:
            for task in tasks.values():
                task.cancel()
        await self._finish(run)

    def _check_stop_requests(self, run: ActiveRun, cancel_known: bool | None = None) -> None:
        if run.stop.is_set():
            return
        # another process may have asked to cancel; the rest of the run row is known (and its
        # document is large: reading all of it after every step cost more than the step's writes)
        record = run.record
        if cancel_known is None:  # read with the last step's end, if one ended since the last look
            cancel_known, run.cancel_seen = run.cancel_seen, None
        requested = cancel_known if cancel_known is not None else self.journal.cancel_requested(run.id)
        if requested:
            run.fail({"type": "cancelled", "message": "the run was cancelled"}, cancelled=True)
        elif record.deadline_at is not None and self.clock.now() >= record.deadline_at:
            limit = record.deadline_at - record.created_at
            run.fail({"type": "deadline", "message": f"the run passed its deadline ({limit:g}s after start)"})

    async def _finish(self, run: ActiveRun) -> None:
        now = self.clock.now()
        if run.failure is not None:
            await self._wind_down(run)
        elif all(run.status[s] in PASSED for s in run.workflow.step_ids):
            self.journal.set_run_state(run.id, RunState.SUCCEEDED, now, event="run.finished")
        elif any(run.status[s] == StepState.WAITING for s in run.workflow.step_ids):
            if self.journal.run_state(run.id) != RunState.WAITING:
                waiting = [s for s in run.workflow.step_ids if run.status[s] == StepState.WAITING]
                self.journal.set_run_state(
                    run.id, RunState.WAITING, now, event="run.waiting", data={"steps": waiting}
                )
        else:  # nothing runs, nothing waits, yet not all passed: only a bug gets here
            run.fail({"type": "stuck", "message": "no step can start; this is a bug in the engine"})
            await self._wind_down(run)
