"""Running one step: `if`, `for_each` fan-out, routing, attempts with retries and timeouts.

The lowest layer of the engine (`StepRunner` → `CoreActions` → `Saga` → `Engine`): each layer
is a class in its own module and the engine is their sum.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
from collections.abc import Mapping, Sequence
from typing import Any

from runtime.active_run import ActiveRun, StepOutcome, as_action_error, idempotency_key, steps_read
from runtime.clock import Clock
from runtime.errors import (
    ActionError,
    TransientActionError,
)
from runtime.invocation import ActionCall, Invoker
from runtime.journal import error_data
from runtime.journal_memory import AnyJournal
from runtime.journal_schema import WHOLE_STEP, item_of
from runtime.records import StepRecord, StepState
from runtime.retry import NO_RETRY, retry_delay
from runtime.routing import Conditions, RouteChoice, Router
from runtime.routing_stats import RoutingStats
from workflow.catalog import ActionSpec, Catalog
from workflow.document import Step
from workflow.errors import ExpressionError
from workflow.expressions import evaluate_condition, render

log = logging.getLogger("overture.runtime")


class StepRunner:
    """Runs steps and their attempts; the attributes are the engine's (see `Engine.__init__`)."""

    catalog: Catalog
    journal: AnyJournal
    invoker: Invoker
    clock: Clock
    concurrency: int
    router: Router
    worker_id: str
    rng: random.Random
    stats_window_s: float
    routing_stats: RoutingStats
    _slots: asyncio.Semaphore
    _timers_changed: asyncio.Event

    @property
    def runs_in_flight(self) -> int:
        raise NotImplementedError

    async def _sleep_unless_stopped(self, run: ActiveRun, seconds: float) -> bool:
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

    # -- steps -----------------------------------------------------------------------------------

    def _replay_rows(self, run: ActiveRun, step_id: str) -> Mapping[tuple[str, int], StepRecord]:
        """The run's step rows for a step about to run, from memory when they can be.

        The driver holds the run's lease, so only it writes step rows: what it read when it first
        needed them is still true for every step it has not started since. Reading the whole run's
        rows again per step made a chain of n steps read n²/2 rows. A step started before by this
        driver (a wait or approval checked again) reads the journal."""
        if run.replay is None:
            run.replay = self.journal.step_results(run.id)
        if step_id in run.replayed:
            return self.journal.step_results(run.id)
        run.replayed.add(step_id)
        return run.replay

    async def _run_step(self, run: ActiveRun, step: Step) -> tuple[StepState, Any, dict[str, Any] | None]:
        rows = self._replay_rows(run, step.id)
        whole = rows.get((step.id, WHOLE_STEP))
        if whole is not None and whole.state.done:
            return whole.state, whole.output, whole.error
        if step.id not in run.reads:
            run.reads[step.id] = steps_read(step)
        context = run.context(run.reads[step.id])
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
            return await self._run_unit(run, step, WHOLE_STEP, context, rows)
        return await self._run_for_each(run, step, context, whole.inputs if whole else None, rows)

    def _fail_step(
        self, run: ActiveRun, step_id: str, iteration: int, error: dict[str, Any], event: str = "step.failed"
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
        run: ActiveRun,
        step: Step,
        context: dict[str, Any],
        stored: Any,
        rows: Mapping[tuple[str, int], StepRecord],
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
                result = await self._run_unit(run, step, index, {**context, "item": item}, rows)
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

    def _cancel_step(self, run: ActiveRun, step_id: str, iteration: int) -> tuple[StepState, Any, None]:
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
        run: ActiveRun,
        step: Step,
        iteration: int,
        context: dict[str, Any],
        rows: Mapping[tuple[str, int], StepRecord],
    ) -> tuple[StepState, Any, dict[str, Any] | None]:
        """One plain step, or one for-each item of a step: render, then call with retries.
        `rows` are the run's step results as read when the step started (one read per step, not
        per item: a for-each over thousands of items stays linear)."""
        row = rows.get((step.id, iteration))
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

    def _route(self, run: ActiveRun, step: Step) -> tuple[RouteChoice, list[str]]:
        candidates = [step.action, *[a for a in step.alternatives if a != step.action]]
        if len(candidates) == 1:
            return RouteChoice(step.action, 1.0), candidates
        now = self.clock.now()
        conditions = Conditions(
            now=now,
            runs_in_flight=self.runs_in_flight,
            worker_id=self.worker_id,
            recent=self.routing_stats.stats(candidates, now=now),
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
        run: ActiveRun,
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
            attempt_id, started_at, output, exc = await self._attempt(
                run,
                step,
                iteration,
                number,
                kind="action",
                action=spec,
                key=key,
                inputs=inputs,
                propensity=choice.propensity,
                candidates=candidates,
            )
            now = self.clock.now()
            if exc is None:
                self._end_attempt(
                    run,
                    attempt_id,
                    choice.action,
                    started_at,
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
                self._end_attempt(
                    run,
                    attempt_id,
                    choice.action,
                    started_at,
                    now,
                    outcome=outcome,
                    error=error,
                    step={"state": StepState.FAILED.value, "error": error},
                    event="step.failed",
                    data={"attempt": number, "action": choice.action, "error": error},
                )
                return StepState.FAILED, None, error
            self._end_attempt(
                run,
                attempt_id,
                choice.action,
                started_at,
                now,
                outcome=outcome,
                error=error,
                step={"state": StepState.RETRYING.value, "error": error, "not_before": now + delay},
                event="step.retrying",
                data={"attempt": number, "action": choice.action, "error": error, "delay_s": delay},
            )
            if not await self._sleep_unless_stopped(run, delay):
                return self._cancel_step(run, step.id, iteration)

    async def _attempt(
        self,
        run: ActiveRun,
        step: Step,
        iteration: int,
        number: int,
        *,
        kind: str,
        action: ActionSpec,
        key: str,
        inputs: Any,
        propensity: float | None = None,
        candidates: Sequence[str] = (),
    ) -> tuple[int, float, Any, ActionError | None]:
        """One journaled call of `action` (a step's, or with kind="compensation" its undo):
        the group commit's barrier, the attempt's start, the call under a slot. Returns the
        attempt's id, its start time and the call's output or error; the caller ends the attempt
        (`_end_attempt`)."""
        async with self._slots:
            # the barrier of the group commit: the earlier steps' results this call may depend
            # on are on disk before anything leaves the process. Before the attempt's start, so
            # that its duration is the action's alone (its start needs no fsync: lost, the
            # step runs once more with the same key, as an in-flight one would)
            await self.journal.flush()
            started_at = self.clock.now()
            attempt_id = self.journal.start_attempt(
                run_id=run.id,
                workflow_name=run.workflow.name,
                step_id=step.id,
                iteration=iteration,
                attempt=number,
                kind=kind,
                action=action.name,
                idempotency_key=key,
                now=started_at,
                worker_id=self.worker_id,
                runs_in_flight=self.runs_in_flight,
                propensity=propensity,
                candidates=candidates if len(candidates) > 1 else None,
                inputs=inputs,
            )
            metadata: dict[str, Any] = {"workflow": run.workflow.name, "worker_id": self.worker_id}
            if kind == "compensation":
                metadata["compensating"] = True
            call = ActionCall(
                action=action,
                inputs=inputs,
                run_id=run.id,
                step_id=step.id,
                iteration=item_of(iteration),
                attempt=number,
                idempotency_key=key,
                metadata=metadata,
            )
            output, exc = await self._invoke(call, step.timeout_s)
        return attempt_id, started_at, output, exc

    def _end_attempt(
        self,
        run: ActiveRun,
        attempt_id: int,
        action: str,
        started_at: float,
        now: float,
        *,
        outcome: str,
        **end: Any,
    ) -> None:
        """`Journal.finish_attempt`, then the attempt counts in this process's routing stats; the
        cancel flag the journal read with it is kept for the driver's next look."""
        seen = self.journal.finish_attempt(attempt_id, now, outcome=outcome, **end)
        if seen is not None:
            run.cancel_seen = seen
        self.routing_stats.finished(action, outcome, attempt_id, started_at, now)

    async def _invoke(self, call: ActionCall, timeout_s: float | None) -> tuple[Any, ActionError | None]:
        """One call with the per-attempt timeout on the engine's clock; never raises ActionError."""
        if not timeout_s:
            # no timeout: the call is awaited in place (a task and a wait per step cost more than
            # the journal's writes for a no-op action)
            try:
                return await self._call(call), None
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                return None, as_action_error(exc)
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
            return None, as_action_error(exc)

    async def _call(self, call: ActionCall) -> Any:
        result = self.invoker.invoke(call)
        if inspect.isawaitable(result):
            return await result
        return result

    async def _run_core(self, run: ActiveRun, step: Step, iteration: int, inputs: Any) -> StepOutcome:
        raise NotImplementedError  # the core.* built-ins, in runtime.builtins
