"""The durable engine: runs validated workflow documents against the journal.

One driver task per active run starts every ready step at once (bounded by `concurrency` for
action calls), applies `if`, fans `for_each` out per item, retries with the step's policy, and on
failure, cancellation or a passed deadline undoes the completed steps (saga). A run that only
waits (a `core.wait` timer, a `core.approval`) holds no task: its wake time or pending approval is
in the journal, and the scheduler loop (timers) or `approve()` drives it again.

Durability rule: an attempt is journaled as started before its action is called, and its end,
the step's result and the event are written in one transaction. On restart `recover()` resumes
every unfinished run; completed steps are never called again, and a step that was in flight runs
once more with the same idempotency key.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import random
import socket
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from runtime.clock import Clock, SystemClock, iso_time
from runtime.compensation import UndoUnit, plan_undo, run_graph, undo_inputs, unit_label
from runtime.errors import (
    ActionError,
    InvalidRunState,
    PermanentActionError,
    TransientActionError,
)
from runtime.invocation import ActionCall, Invoker
from runtime.journal import Journal, error_data
from runtime.journal_schema import WHOLE_STEP
from runtime.records import Event, RunRecord, RunState, StepState, UndoState
from runtime.retry import NO_RETRY, UNDO_RETRY, retry_delay
from runtime.routing import Conditions, DefaultRouter, RouteChoice, Router
from workflow.catalog import Catalog
from workflow.document import Step, Workflow
from workflow.errors import ExpressionError
from workflow.expressions import evaluate_condition, render

log = logging.getLogger("overture.runtime")

_RESUMABLE = (StepState.RUNNING, StepState.RETRYING)
_PASSED = (StepState.SUCCEEDED, StepState.SKIPPED)


@dataclass(frozen=True)
class RunResult:
    """Where a run stands: its state, each step's state and output, the error and the saga summary."""

    run_id: str
    state: RunState
    steps: dict[str, StepState]
    outputs: dict[str, Any]
    error: dict[str, Any] | None
    compensation: dict[str, Any] | None

    @property
    def succeeded(self) -> bool:
        return self.state == RunState.SUCCEEDED


def idempotency_key(run_id: str, step_id: str, iteration: int, *, undo: bool = False) -> str:
    """Deterministic per (run, step, iteration): the same across retries and crash recovery."""
    key = f"{run_id}:{step_id}" if iteration == WHOLE_STEP else f"{run_id}:{step_id}:{iteration}"
    return key + ":undo" if undo else key


def _parse_time(text: str) -> float:
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)  # a time without zone is read as UTC, as the journal is
    return when.timestamp()


def _as_action_error(exc: BaseException) -> ActionError:
    if isinstance(exc, ActionError):
        return exc
    # an invoker that raises anything else has a bug or met bad input: retrying will not fix it
    return PermanentActionError(f"{type(exc).__name__}: {exc}", type=type(exc).__name__)


@dataclass
class _Run:
    """A run's in-memory state while a driver holds it."""

    record: RunRecord
    workflow: Workflow
    deps: dict[str, set[str]]
    status: dict[str, StepState | None] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    failure: dict[str, Any] | None = None
    cancelled: bool = False
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def id(self) -> str:
        return self.record.id

    def context(self) -> dict[str, Any]:
        steps = {
            sid: {"output": self.outputs.get(sid), "status": (st.value if st else "pending")}
            for sid, st in self.status.items()
        }
        return {"inputs": self.record.inputs, "steps": steps}

    def fail(self, error: dict[str, Any], *, cancelled: bool = False) -> None:
        if self.failure is None:
            self.failure = error
            self.cancelled = cancelled
        self.stop.set()


class Engine:
    """Runs workflows durably. Use as `async with Engine(...) as engine:` or call `close()`."""

    def __init__(
        self,
        catalog: Catalog,
        journal: Journal,
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
        self.poll_interval_s = poll_interval_s
        """How often (real seconds) to look for approvals and cancels recorded by other processes."""
        if secrets is not None and hasattr(secrets, "redact"):
            journal.redact = secrets.redact
        self._slots = asyncio.Semaphore(concurrency)
        self._drivers: dict[str, asyncio.Task[None]] = {}
        self._pokes: dict[str, asyncio.Event] = {}
        self._subscribers: dict[str, list[asyncio.Queue[Event]]] = defaultdict(list)
        self._waiters: dict[str, list[asyncio.Future[None]]] = defaultdict(list)
        self._scheduler: asyncio.Task[None] | None = None
        self._timers_changed = asyncio.Event()
        self._closed = False
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
        self.journal.create_run(
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
        self._ensure_driving(run_id)
        return run_id

    async def wait(self, run_id: str, *, timeout: float | None = None) -> RunResult:
        """Wait until the run has finished (timers are woken by the scheduler meanwhile)."""
        record = self.journal.get_run(run_id)
        if record.state.finished:
            return self.result(run_id)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters[run_id].append(future)
        self._ensure_scheduler()
        if record.state != RunState.WAITING:
            self._ensure_driving(run_id)
        await asyncio.wait_for(future, timeout)
        return self.result(run_id)

    async def run_until_settled(self, run_id: str, *, follow_timers_s: float = 0.0) -> RunResult:
        """Drive the run until it has finished or pauses: on an approval, or on a timer more than
        `follow_timers_s` away (nearer timers are waited for)."""
        while True:
            task = self._ensure_driving(run_id)
            await asyncio.shield(task)
            record = self.journal.get_run(run_id)
            if record.state.finished or record.state != RunState.WAITING:
                if record.state.finished:
                    return self.result(run_id)
                continue
            if self.journal.approvals(run_id, pending_only=True):
                return self.result(run_id)
            pending = [t for t in self.journal.timers(run_id).values() if not t.fired and t.kind == "wait"]
            if not pending:
                return self.result(run_id)
            delay = min(t.wake_at for t in pending) - self.clock.now()
            if delay > follow_timers_s:
                return self.result(run_id)
            await self.clock.sleep(delay)

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
    ) -> None:
        """Approve or reject a waiting `core.approval` step; the run continues (or fails) at once.

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
        for approval in pending:
            self.journal.decide_approval(
                run_id,
                step_id,
                approval.iteration,
                approved=approved,
                by=by,
                comment=comment,
                now=self.clock.now(),
            )
        if drive:
            self._ensure_driving(run_id)

    async def cancel(self, run_id: str, *, by: str | None = None, drive: bool = True) -> None:
        """Cancel a run: nothing new starts, in-flight calls finish, completed steps are undone.
        (`drive=False`: record the request only, as for `approve`.)"""
        record = self.journal.get_run(run_id)
        if record.state.finished:
            raise InvalidRunState(f"run `{run_id}` has already {record.state.value}", run_id=run_id)
        self.journal.request_cancel(run_id, self.clock.now(), by=by)
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

    @property
    def runs_in_flight(self) -> int:
        return sum(1 for t in self._drivers.values() if not t.done())

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
        self.journal.remove_listener(self._on_event)

    # -- plumbing --------------------------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        for queue in self._subscribers.get(event.run_id, []):
            queue.put_nowait(event)
        if event.type == "run.finished":
            for future in self._waiters.pop(event.run_id, []):
                if not future.done():
                    future.set_result(None)

    def _ensure_driving(self, run_id: str) -> asyncio.Task[None]:
        if self._closed:
            raise InvalidRunState("the engine is closed", run_id=run_id)
        task = self._drivers.get(run_id)
        if task is not None and not task.done():
            self._pokes[run_id].set()
            return task
        self._pokes[run_id] = asyncio.Event()
        task = asyncio.get_running_loop().create_task(self._drive(run_id), name=f"run-{run_id}")
        task.add_done_callback(self._driver_done)
        self._drivers[run_id] = task
        return task

    def _driver_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            # a journal outage or an engine bug: the run stays unfinished in the journal (the next
            # recover() resumes it), and whoever waits for it hears about the fault now
            run_id = task.get_name().removeprefix("run-")
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
            except Exception:  # the database may be away for a moment; try again at the next poll
                log.exception("the scheduler could not read the journal")
                pending, outside = [], []
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
            for run_id in outside:
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

    async def _sleep_unless_stopped(self, run: _Run, seconds: float) -> bool:
        """Sleep on the engine's clock; False when the run was stopped first."""
        if run.stop.is_set():
            return False
        if seconds <= 0:
            return True
        sleeper = asyncio.ensure_future(self.clock.sleep(seconds))
        stopper = asyncio.ensure_future(run.stop.wait())
        try:
            await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            stopper.cancel()
        return not run.stop.is_set()

    # -- the driver ------------------------------------------------------------------------------

    def _load(self, run_id: str) -> _Run:
        record = self.journal.get_run(run_id)
        workflow = Workflow.model_validate(record.document)
        graph = run_graph(workflow)
        deps = {sid: set(graph.predecessors(sid)) for sid in workflow.step_ids}
        run = _Run(record=record, workflow=workflow, deps=deps)
        rows = self.journal.step_results(run_id)
        for step in workflow.steps:
            row = rows.get((step.id, WHOLE_STEP))
            run.status[step.id] = row.state if row else None
            if row is not None and row.state == StepState.SUCCEEDED:
                run.outputs[step.id] = row.output
        return run

    async def _drive(self, run_id: str) -> None:
        run = self._load(run_id)
        if run.record.state.finished:
            return
        now = self.clock.now()
        # this driver is the only one for the run: any attempt still `started` was lost in a crash
        self.journal.interrupt_attempts(run_id, now)
        if run.record.state == RunState.COMPENSATING:
            run.fail(
                run.record.error or {"type": "unknown", "message": "the run failed"},
                cancelled=run.record.cancel_requested,
            )
            await self._wind_down(run)
            return
        if run.record.state == RunState.WAITING:
            self.journal.set_run_state(run_id, RunState.RUNNING, now, event="run.resumed")
        tasks: dict[str, asyncio.Task[tuple[StepState, Any, dict[str, Any] | None]]] = {}
        poke = self._pokes.setdefault(run_id, asyncio.Event())
        recheck_waiting = True
        try:
            while True:
                self._check_stop_requests(run)
                if not run.stop.is_set():
                    for step in run.workflow.steps:
                        if step.id in tasks:
                            continue
                        state = run.status[step.id]
                        ready = (
                            (state is None and all(run.status[d] in _PASSED for d in run.deps[step.id]))
                            or state in _RESUMABLE
                            or (state == StepState.WAITING and recheck_waiting)
                        )
                        if ready:
                            tasks[step.id] = asyncio.ensure_future(self._run_step(run, step))
                    recheck_waiting = False
                if not tasks:
                    break
                poke.clear()
                waits: set[asyncio.Future[Any]] = set(tasks.values())
                poker = asyncio.ensure_future(poke.wait())
                waits.add(poker)
                deadline = None
                if run.record.deadline_at is not None and not run.stop.is_set():
                    deadline = asyncio.ensure_future(
                        self.clock.sleep(run.record.deadline_at - self.clock.now())
                    )
                    waits.add(deadline)
                try:
                    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    poker.cancel()
                    if deadline is not None:
                        deadline.cancel()
                if poke.is_set():
                    recheck_waiting = True
                for step_id, task in list(tasks.items()):
                    if not task.done():
                        continue
                    del tasks[step_id]
                    state, output, error = task.result()
                    run.status[step_id] = state
                    if state == StepState.SUCCEEDED:
                        run.outputs[step_id] = output
                    elif state == StepState.FAILED:
                        run.fail({"step": step_id, **(error or {"type": "error", "message": "failed"})})
        finally:
            for task in tasks.values():
                task.cancel()
        await self._finish(run)

    def _check_stop_requests(self, run: _Run) -> None:
        if run.stop.is_set():
            return
        record = self.journal.get_run(run.id)
        if record.cancel_requested:
            run.fail({"type": "cancelled", "message": "the run was cancelled"}, cancelled=True)
        elif record.deadline_at is not None and self.clock.now() >= record.deadline_at:
            limit = record.deadline_at - record.created_at
            run.fail({"type": "deadline", "message": f"the run passed its deadline ({limit:g}s after start)"})

    async def _finish(self, run: _Run) -> None:
        now = self.clock.now()
        if run.failure is not None:
            await self._wind_down(run)
        elif all(run.status[s] in _PASSED for s in run.workflow.step_ids):
            self.journal.set_run_state(run.id, RunState.SUCCEEDED, now, event="run.finished")
        elif any(run.status[s] == StepState.WAITING for s in run.workflow.step_ids):
            if self.journal.get_run(run.id).state != RunState.WAITING:
                waiting = [s for s in run.workflow.step_ids if run.status[s] == StepState.WAITING]
                self.journal.set_run_state(
                    run.id, RunState.WAITING, now, event="run.waiting", data={"steps": waiting}
                )
        else:  # nothing runs, nothing waits, yet not all passed: only a bug gets here
            run.fail({"type": "stuck", "message": "no step can start; this is a bug in the engine"})
            await self._wind_down(run)

    # -- steps -----------------------------------------------------------------------------------

    async def _run_step(self, run: _Run, step: Step) -> tuple[StepState, Any, dict[str, Any] | None]:
        rows = self.journal.step_results(run.id)
        whole = rows.get((step.id, WHOLE_STEP))
        if whole is not None and whole.state.done:
            return whole.state, whole.output, whole.error
        context = run.context()
        now = self.clock.now()
        if step.if_ and whole is None:
            try:
                holds = evaluate_condition(step.if_, context)
            except ExpressionError as exc:
                return self._fail_step(run, step.id, WHOLE_STEP, error_data(exc, type="expression"))
            if not holds:
                self.journal.put_step(
                    run.id,
                    step.id,
                    WHOLE_STEP,
                    now,
                    state=StepState.SKIPPED,
                    event="step.skipped",
                    data={"if": step.if_},
                )
                return StepState.SKIPPED, None, None
        if step.for_each is None:
            return await self._run_unit(run, step, WHOLE_STEP, context)
        return await self._run_for_each(run, step, context, whole.inputs if whole else None)

    def _fail_step(
        self, run: _Run, step_id: str, iteration: int, error: dict[str, Any], event: str = "step.failed"
    ) -> tuple[StepState, Any, dict[str, Any]]:
        self.journal.put_step(
            run.id,
            step_id,
            iteration,
            self.clock.now(),
            state=StepState.FAILED,
            error=error,
            event=event,
            data={"error": error},
        )
        return StepState.FAILED, None, error

    async def _run_for_each(
        self,
        run: _Run,
        step: Step,
        context: dict[str, Any],
        stored: Any,
    ) -> tuple[StepState, Any, dict[str, Any] | None]:
        if isinstance(stored, dict) and isinstance(stored.get("items"), list):
            items = stored["items"]  # the list as first expanded: a resumed run keeps its items
        else:
            try:
                items = render(step.for_each, context)
            except ExpressionError as exc:
                return self._fail_step(run, step.id, WHOLE_STEP, error_data(exc, type="expression"))
            if not isinstance(items, list):
                return self._fail_step(
                    run,
                    step.id,
                    WHOLE_STEP,
                    {
                        "type": "expression",
                        "class": "TypeError",
                        "transient": False,
                        "message": f"for_each must give a list, got {type(items).__name__}",
                    },
                )
            self.journal.put_step(
                run.id,
                step.id,
                WHOLE_STEP,
                self.clock.now(),
                state=StepState.RUNNING,
                action=step.action,
                inputs={"items": items},
                started_at=self.clock.now(),
                event="step.started",
                data={"items": len(items)},
            )
        bound = asyncio.Semaphore(step.concurrency or self.concurrency)

        async def one(index: int, item: Any) -> tuple[StepState, Any, dict[str, Any] | None]:
            async with bound:
                if run.stop.is_set():
                    return StepState.CANCELLED, None, None
                result = await self._run_unit(run, step, index, {**context, "item": item})
                if result[0] == StepState.FAILED:
                    run.fail({"step": step.id, "iteration": index, **(result[2] or {})})
                return result

        results = await asyncio.gather(*(one(i, item) for i, item in enumerate(items)))
        states = [r[0] for r in results]
        now = self.clock.now()
        if all(s == StepState.SUCCEEDED for s in states):
            output = [r[1] for r in results]
            self.journal.put_step(
                run.id,
                step.id,
                WHOLE_STEP,
                now,
                state=StepState.SUCCEEDED,
                output=output,
                event="step.succeeded",
                data={"items": len(items)},
            )
            return StepState.SUCCEEDED, output, None
        failed = [(i, r[2]) for i, r in enumerate(results) if r[0] == StepState.FAILED]
        if failed:
            index, error = failed[0]
            return self._fail_step(run, step.id, WHOLE_STEP, {"iteration": index, **(error or {})})
        if StepState.CANCELLED in states:
            return self._cancel_step(run, step.id, WHOLE_STEP)
        waiting = [i for i, s in enumerate(states) if s == StepState.WAITING]
        self.journal.put_step(
            run.id,
            step.id,
            WHOLE_STEP,
            now,
            state=StepState.WAITING,
            event=None if stored else "step.waiting",
            data={"items": waiting},
        )
        return StepState.WAITING, None, None

    def _cancel_step(self, run: _Run, step_id: str, iteration: int) -> tuple[StepState, Any, None]:
        self.journal.put_step(
            run.id,
            step_id,
            iteration,
            self.clock.now(),
            state=StepState.CANCELLED,
            event="step.cancelled",
            data={"reason": (run.failure or {}).get("type")},
        )
        return StepState.CANCELLED, None, None

    async def _run_unit(
        self,
        run: _Run,
        step: Step,
        iteration: int,
        context: dict[str, Any],
    ) -> tuple[StepState, Any, dict[str, Any] | None]:
        """One plain step, or one for-each item of a step: render, then call with retries."""
        row = self.journal.step_results(run.id).get((step.id, iteration))
        if row is not None and row.state.done:
            return row.state, row.output, row.error
        try:
            inputs = render(step.with_, context)
        except ExpressionError as exc:
            return self._fail_step(run, step.id, iteration, error_data(exc, type="expression"))
        if step.action.startswith("core."):
            return await self._run_core(run, step, iteration, inputs)
        return await self._call_with_retries(
            run, step, iteration, inputs, row.attempts if row else 0, row.not_before if row else None
        )

    def _route(self, run: _Run, step: Step) -> tuple[RouteChoice, list[str]]:
        candidates = [step.action, *[a for a in step.alternatives if a != step.action]]
        if len(candidates) == 1:
            return RouteChoice(step.action, 1.0), candidates
        now = self.clock.now()
        conditions = Conditions(
            now=now,
            runs_in_flight=self.runs_in_flight,
            worker_id=self.worker_id,
            recent=self.journal.action_stats(candidates, since=now - self.stats_window_s),
        )
        choice = self.router.choose(step, candidates, conditions)
        if choice.action not in candidates or choice.action not in self.catalog:
            log.warning(
                "router chose %r for step %s, not a candidate; using %s", choice.action, step.id, step.action
            )
            choice = RouteChoice(step.action, 1.0)
        return choice, candidates

    async def _call_with_retries(
        self,
        run: _Run,
        step: Step,
        iteration: int,
        inputs: Any,
        attempts_so_far: int,
        not_before: float | None,
    ) -> tuple[StepState, Any, dict[str, Any] | None]:
        policy = step.retry or NO_RETRY
        # interrupted attempts (lost in a crash) do not count against max_attempts
        failures = (
            sum(
                1
                for a in self.journal.attempts(run_id=run.id, step_id=step.id, kind="action")
                if a.iteration == iteration and a.outcome in ("failed", "timeout")
            )
            if attempts_so_far
            else 0
        )
        number = attempts_so_far
        if not_before is not None and not await self._sleep_unless_stopped(
            run, not_before - self.clock.now()
        ):
            return self._cancel_step(run, step.id, iteration)
        key = idempotency_key(run.id, step.id, iteration)
        while True:
            if run.stop.is_set():
                return self._cancel_step(run, step.id, iteration)
            number += 1
            choice, candidates = self._route(run, step)
            spec = self.catalog.get(choice.action)
            if spec is None:
                return self._fail_step(
                    run,
                    step.id,
                    iteration,
                    {
                        "type": "unknown_action",
                        "class": "KeyError",
                        "transient": False,
                        "message": f"action `{choice.action}` is not in the catalog",
                    },
                )
            async with self._slots:
                attempt_id = self.journal.start_attempt(
                    run_id=run.id,
                    workflow_name=run.workflow.name,
                    step_id=step.id,
                    iteration=iteration,
                    attempt=number,
                    kind="action",
                    action=choice.action,
                    idempotency_key=key,
                    now=self.clock.now(),
                    worker_id=self.worker_id,
                    runs_in_flight=self.runs_in_flight,
                    propensity=choice.propensity,
                    candidates=candidates if len(candidates) > 1 else None,
                    inputs=inputs,
                )
                call = ActionCall(
                    action=spec,
                    inputs=inputs,
                    run_id=run.id,
                    step_id=step.id,
                    iteration=None if iteration == WHOLE_STEP else iteration,
                    attempt=number,
                    idempotency_key=key,
                    metadata={"workflow": run.workflow.name, "worker_id": self.worker_id},
                )
                output, exc = await self._invoke(call, step.timeout_s)
            now = self.clock.now()
            if exc is None:
                self.journal.finish_attempt(
                    attempt_id,
                    now,
                    outcome="succeeded",
                    output=output,
                    step={"state": StepState.SUCCEEDED.value, "output": output, "error": None},
                    event="step.succeeded",
                    data={"attempt": number, "action": choice.action},
                )
                return StepState.SUCCEEDED, output, None
            failures += 1
            error = error_data(exc)
            outcome = "timeout" if exc.type == "timeout" else "failed"
            retryable = (
                exc.transient and exc.type not in policy.non_retryable and failures < policy.max_attempts
            )
            delay = retry_delay(policy, failures + 1, self.rng, exc.retry_after) if retryable else 0.0
            deadline = run.record.deadline_at
            if retryable and deadline is not None and now + delay >= deadline:
                retryable = False  # a retry after the deadline would be cut off anyway
                error["gave_up"] = "the retry would come after the run's deadline"
            if not retryable:
                self.journal.finish_attempt(
                    attempt_id,
                    now,
                    outcome=outcome,
                    error=error,
                    step={"state": StepState.FAILED.value, "error": error},
                    event="step.failed",
                    data={"attempt": number, "action": choice.action, "error": error},
                )
                return StepState.FAILED, None, error
            self.journal.finish_attempt(
                attempt_id,
                now,
                outcome=outcome,
                error=error,
                step={"state": StepState.RETRYING.value, "error": error, "not_before": now + delay},
                event="step.retrying",
                data={"attempt": number, "action": choice.action, "error": error, "delay_s": delay},
            )
            if not await self._sleep_unless_stopped(run, delay):
                return self._cancel_step(run, step.id, iteration)

    async def _invoke(self, call: ActionCall, timeout_s: float | None) -> tuple[Any, ActionError | None]:
        """One call with the per-attempt timeout on the engine's clock; never raises ActionError."""
        task = asyncio.ensure_future(self._call(call))
        timer = asyncio.ensure_future(self.clock.sleep(timeout_s)) if timeout_s else None
        try:
            await asyncio.wait({task} | ({timer} if timer else set()), return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()
            raise
        finally:
            if timer is not None:
                timer.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            return None, TransientActionError(f"no answer within {timeout_s:g}s", type="timeout")
        try:
            return task.result(), None
        except Exception as exc:
            return None, _as_action_error(exc)

    async def _call(self, call: ActionCall) -> Any:
        result = self.invoker.invoke(call)
        if inspect.isawaitable(result):
            return await result
        return result

    # -- core.* built-ins ------------------------------------------------------------------------

    async def _run_core(
        self,
        run: _Run,
        step: Step,
        iteration: int,
        inputs: Any,
    ) -> tuple[StepState, Any, dict[str, Any] | None]:
        now = self.clock.now()
        args = inputs if isinstance(inputs, dict) else {}
        item = None if iteration == WHOLE_STEP else iteration
        if step.action == "core.log":
            message = str(args.get("message", ""))
            output = {"message": message}
            self.journal.append_event(run.id, "log", now, step_id=step.id, iteration=item, data=output)
            self.journal.put_step(
                run.id,
                step.id,
                iteration,
                now,
                state=StepState.SUCCEEDED,
                action=step.action,
                inputs=args,
                output=output,
                started_at=now,
                event="step.succeeded",
                data={"action": step.action},
            )
            return StepState.SUCCEEDED, output, None
        if step.action == "core.fail":
            message = str(args.get("message") or "the workflow failed (core.fail)")
            return self._fail_step(
                run,
                step.id,
                iteration,
                {"type": "fail", "class": "core.fail", "message": message, "transient": False},
            )
        if step.action == "core.wait":
            return self._core_wait(run, step, iteration, args)
        if step.action == "core.approval":
            return self._core_approval(run, step, iteration, args)
        return self._fail_step(
            run,
            step.id,
            iteration,
            {
                "type": "unknown_action",
                "class": "KeyError",
                "transient": False,
                "message": f"`{step.action}` is not a core action (wait, approval, log, fail)",
            },
        )

    def _core_wait(
        self,
        run: _Run,
        step: Step,
        iteration: int,
        args: dict[str, Any],
    ) -> tuple[StepState, Any, dict[str, Any] | None]:
        now = self.clock.now()
        timer = self.journal.timers(run.id).get((step.id, iteration))
        if timer is None:
            try:
                if args.get("until"):
                    wake_at = _parse_time(str(args["until"]))
                else:
                    wake_at = now + float(args.get("seconds", 0))
            except (TypeError, ValueError) as exc:
                return self._fail_step(run, step.id, iteration, error_data(exc, type="validation"))
            self.journal.set_timer(
                run.id,
                step.id,
                iteration,
                kind="wait",
                wake_at=wake_at,
                now=now,
                event="step.waiting",
                data={"until": iso_time(wake_at), "wake_at": wake_at},
            )
            self._timers_changed.set()
            started = now
        else:
            wake_at = timer.wake_at
            row = self.journal.step_results(run.id).get((step.id, iteration))
            started = row.started_at if row and row.started_at else now
        if wake_at > now:
            return StepState.WAITING, None, None
        output = {"waited_s": max(0.0, now - started), "until": iso_time(wake_at)}
        self.journal.fire_timer(run.id, step.id, iteration, now, output=output, data={"action": step.action})
        return StepState.SUCCEEDED, output, None

    def _core_approval(
        self,
        run: _Run,
        step: Step,
        iteration: int,
        args: dict[str, Any],
    ) -> tuple[StepState, Any, dict[str, Any] | None]:
        now = self.clock.now()
        found = [
            a for a in self.journal.approvals(run.id) if a.step_id == step.id and a.iteration == iteration
        ]
        if not found:
            approvers = args.get("approvers")
            self.journal.request_approval(
                run.id,
                step.id,
                iteration,
                prompt=str(args.get("prompt") or step.title),
                approvers=list(approvers) if isinstance(approvers, list) else None,
                now=now,
                inputs=args,
            )
            return StepState.WAITING, None, None
        approval = found[0]
        if approval.decided_at is None:
            return StepState.WAITING, None, None
        output = {
            "approved": bool(approval.approved),
            "by": approval.decided_by or "",
            "comment": approval.comment or "",
        }
        if approval.approved:
            self.journal.put_step(
                run.id,
                step.id,
                iteration,
                now,
                state=StepState.SUCCEEDED,
                output=output,
                event="step.succeeded",
                data={"action": step.action, **output},
            )
            return StepState.SUCCEEDED, output, None
        reason = f": {approval.comment}" if approval.comment else ""
        return self._fail_step(
            run,
            step.id,
            iteration,
            {
                "type": "rejected",
                "class": "core.approval",
                "transient": False,
                "message": f"rejected by {approval.decided_by or 'someone'}{reason}",
                "by": approval.decided_by,
                "comment": approval.comment,
            },
        )

    # -- failure: cancel what is left, then undo what completed ----------------------------------

    async def _wind_down(self, run: _Run) -> None:
        assert run.failure is not None
        now = self.clock.now()
        rows = self.journal.step_results(run.id)
        for (step_id, iteration), row in rows.items():
            if not row.state.done:
                self._cancel_step(run, step_id, iteration)
        record = self.journal.get_run(run.id)
        if record.state != RunState.COMPENSATING:
            self.journal.set_run_state(
                run.id,
                RunState.COMPENSATING,
                now,
                error=run.failure,
                event="compensation.started",
                data={"error": run.failure},
            )
        summary = await self._compensate(run)
        final = RunState.CANCELLED if run.cancelled else RunState.FAILED
        self.journal.set_run_state(
            run.id,
            final,
            self.clock.now(),
            error=run.failure,
            compensation=summary,
            event="run.finished",
            data={"error": run.failure, "compensation": summary},
        )

    async def _compensate(self, run: _Run) -> dict[str, Any]:
        rows = self.journal.step_results(run.id)
        plan = plan_undo(run.workflow, rows)
        done = self.journal.undo_results(run.id)
        outcome: dict[tuple[str, int], asyncio.Future[bool]] = {
            unit.key: asyncio.get_running_loop().create_future() for unit in plan
        }
        left: list[dict[str, Any]] = []
        undone: list[str] = []  # in the order the undos finished

        async def undo(unit: UndoUnit) -> None:
            blockers = []
            for before in unit.after:
                if not await outcome[before]:
                    blockers.append(unit_label(before))
            previous = done.get(unit.key)
            if previous is not None and previous.state == UndoState.UNDONE:
                undone.append(unit.label)
                outcome[unit.key].set_result(True)
                return
            if blockers:
                reason = f"not undone because {', '.join(sorted(blockers))} could not be undone first"
                left.append({"step": unit.step.id, "iteration": _item(unit.iteration), "reason": reason})
                assert unit.step.compensate is not None
                self.journal.put_undo(
                    run.id,
                    unit.step.id,
                    unit.iteration,
                    self.clock.now(),
                    state=UndoState.LEFT,
                    action=unit.step.compensate.action,
                    error={"type": "blocked", "message": reason},
                    event="compensation.step_left",
                    data={"reason": reason},
                )
                outcome[unit.key].set_result(False)
                return
            ok, reason = await self._undo_unit(run, unit, rows, done.get(unit.key))
            if not ok:
                left.append({"step": unit.step.id, "iteration": _item(unit.iteration), "reason": reason})
            if ok:
                undone.append(unit.label)
            outcome[unit.key].set_result(ok)

        await asyncio.gather(*(undo(unit) for unit in plan))
        return {"status": "incomplete" if left else "complete", "undone": undone, "left": left}

    async def _undo_unit(
        self, run: _Run, unit: UndoUnit, rows: Mapping[tuple[str, int], Any], previous: Any
    ) -> tuple[bool, str]:
        step = unit.step
        assert step.compensate is not None
        row = rows[unit.key]
        spec = self.catalog.get(step.compensate.action)
        if spec is None:
            reason = f"compensation action `{step.compensate.action}` is not in the catalog"
            self._undo_failed(run, unit, {"type": "unknown_action", "message": reason})
            return False, reason
        context = run.context()
        context["steps"] = {**context["steps"], step.id: {"output": row.output, "status": row.state.value}}
        if unit.iteration != WHOLE_STEP:
            whole = rows.get((step.id, WHOLE_STEP))
            items = (whole.inputs or {}).get("items", []) if whole else []
            context["item"] = items[unit.iteration] if unit.iteration < len(items) else None
        try:
            inputs = undo_inputs(step, spec, context, row.output, row.inputs)
        except ExpressionError as bad:
            error = error_data(bad, type="expression")
            self._undo_failed(run, unit, error)
            return False, error["message"]
        policy = step.compensate.retry or UNDO_RETRY
        failures = sum(
            1
            for a in self.journal.attempts(run_id=run.id, step_id=step.id, kind="compensation")
            if a.iteration == unit.iteration and a.outcome in ("failed", "timeout")
        )
        number = previous.attempts if previous is not None else 0
        key = idempotency_key(run.id, step.id, unit.iteration, undo=True)
        while True:
            number += 1
            async with self._slots:
                attempt_id = self.journal.start_attempt(
                    run_id=run.id,
                    workflow_name=run.workflow.name,
                    step_id=step.id,
                    iteration=unit.iteration,
                    attempt=number,
                    kind="compensation",
                    action=spec.name,
                    idempotency_key=key,
                    now=self.clock.now(),
                    worker_id=self.worker_id,
                    runs_in_flight=self.runs_in_flight,
                    propensity=None,
                    candidates=None,
                    inputs=inputs,
                )
                call = ActionCall(
                    action=spec,
                    inputs=inputs,
                    run_id=run.id,
                    step_id=step.id,
                    iteration=_item(unit.iteration),
                    attempt=number,
                    idempotency_key=key,
                    metadata={
                        "workflow": run.workflow.name,
                        "worker_id": self.worker_id,
                        "compensating": True,
                    },
                )
                output, exc = await self._invoke(call, step.timeout_s)
            now = self.clock.now()
            if exc is None:
                self.journal.finish_attempt(
                    attempt_id,
                    now,
                    outcome="succeeded",
                    output=output,
                    undo={"state": UndoState.UNDONE.value, "output": output, "error": None},
                    event="compensation.step_undone",
                    data={"action": spec.name, "attempt": number},
                )
                return True, ""
            failures += 1
            error = error_data(exc)
            outcome = "timeout" if exc.type == "timeout" else "failed"
            if exc.transient and exc.type not in policy.non_retryable and failures < policy.max_attempts:
                delay = retry_delay(policy, failures + 1, self.rng, exc.retry_after)
                self.journal.finish_attempt(
                    attempt_id,
                    now,
                    outcome=outcome,
                    error=error,
                    undo={"state": UndoState.RUNNING.value, "error": error},
                    event="compensation.step_retrying",
                    data={"attempt": number, "error": error, "delay_s": delay},
                )
                await self.clock.sleep(delay)
                continue
            self.journal.finish_attempt(
                attempt_id,
                now,
                outcome=outcome,
                error=error,
                undo={"state": UndoState.FAILED.value, "error": error},
                event="compensation.step_failed",
                data={"attempt": number, "error": error},
            )
            return False, f"{spec.name} failed after {number} attempt(s): {error['message']}"

    def _undo_failed(self, run: _Run, unit: UndoUnit, error: dict[str, Any]) -> None:
        assert unit.step.compensate is not None
        self.journal.put_undo(
            run.id,
            unit.step.id,
            unit.iteration,
            self.clock.now(),
            state=UndoState.FAILED,
            action=unit.step.compensate.action,
            error=error,
            event="compensation.step_failed",
            data={"error": error},
        )


def _item(iteration: int) -> int | None:
    return None if iteration == WHOLE_STEP else iteration
