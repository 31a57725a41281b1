"""Failure handling: cancel what is left of a stopped run, then undo its completed steps
(saga), each undo with its own retries, in reverse dependency order (see `runtime.compensation`)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from runtime.active_run import ActiveRun, idempotency_key
from runtime.builtins import CoreActions
from runtime.compensation import UndoUnit, plan_undo, undo_inputs, unit_label
from runtime.journal import error_data
from runtime.journal_schema import WHOLE_STEP, item_of
from runtime.records import RunState, UndoState
from runtime.retry import UNDO_RETRY, retry_delay
from workflow.errors import ExpressionError


class Saga(CoreActions):
    # -- failure: cancel what is left, then undo what completed ----------------------------------

    async def _wind_down(self, run: ActiveRun) -> None:
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

    async def _compensate(self, run: ActiveRun) -> dict[str, Any]:
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
                left.append({"step": unit.step.id, "iteration": item_of(unit.iteration), "reason": reason})
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
                left.append({"step": unit.step.id, "iteration": item_of(unit.iteration), "reason": reason})
            if ok:
                undone.append(unit.label)
            outcome[unit.key].set_result(ok)

        await asyncio.gather(*(undo(unit) for unit in plan))
        return {"status": "incomplete" if left else "complete", "undone": undone, "left": left}

    async def _undo_unit(
        self, run: ActiveRun, unit: UndoUnit, rows: Mapping[tuple[str, int], Any], previous: Any
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
            attempt_id, started_at, output, exc = await self._attempt(
                run, step, unit.iteration, number, kind="compensation", action=spec, key=key, inputs=inputs
            )
            now = self.clock.now()
            if exc is None:
                self._end_attempt(
                    run,
                    attempt_id,
                    spec.name,
                    started_at,
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
                self._end_attempt(
                    run,
                    attempt_id,
                    spec.name,
                    started_at,
                    now,
                    outcome=outcome,
                    error=error,
                    undo={"state": UndoState.RUNNING.value, "error": error},
                    event="compensation.step_retrying",
                    data={"attempt": number, "error": error, "delay_s": delay},
                )
                await self.clock.sleep(delay)
                continue
            self._end_attempt(
                run,
                attempt_id,
                spec.name,
                started_at,
                now,
                outcome=outcome,
                error=error,
                undo={"state": UndoState.FAILED.value, "error": error},
                event="compensation.step_failed",
                data={"attempt": number, "error": error},
            )
            return False, f"{spec.name} failed after {number} attempt(s): {error['message']}"

    def _undo_failed(self, run: ActiveRun, unit: UndoUnit, error: dict[str, Any]) -> None:
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
