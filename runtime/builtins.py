"""The `core.*` built-ins: `core.log`, `core.fail`, and the two that pause a run durably —
`core.wait` (a timer row the scheduler wakes) and `core.approval` (a row `approve()` decides).

Who may decide an approval: anyone, unless the step lists `approvers`; then only a decider whose
name or one of whose roles is among them (an API token's roles: plans name roles like `manager`,
tokens belong to people), or who holds the role `*`. Names and roles compare trimmed and
case-insensitively (`" Ann "` is `ann`), in the engine, so the API, the CLI and the UI all follow
the one rule (`may_decide`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from runtime.active_run import ActiveRun, parse_time
from runtime.clock import iso_time
from runtime.journal import error_data
from runtime.journal_schema import item_of
from runtime.records import StepState
from runtime.steps import StepRunner
from workflow.document import Step


def person_key(name: str) -> str:
    """The form names compare in: trimmed and case-folded. Inner spaces and punctuation count, so
    `vp-sales` and `vp sales` stay two different people."""
    return name.strip().casefold()


ANY_ROLE = "*"
"""The role that may decide any approval: for the owner of a local instance (`overture demo`'s
token). Only a role: a person *named* `*` is matched like any other name."""


def may_decide(approvers: list[str] | None, who: str, roles: Sequence[str] = ()) -> bool:
    """Whether `who`, holding `roles`, may decide an approval that lists `approvers` (None or
    empty: anyone): when the name or one of the roles is among them, or a role is `*`."""
    return not approvers or deciding_as(approvers, who, roles) is not None


def deciding_as(approvers: list[str] | None, who: str, roles: Sequence[str] = ()) -> str | None:
    """Which of `approvers` lets `who` decide, as the approval lists it (what `decided_as`
    records): the person's own name first, then a role, then `*` for a role `*`. None when none
    does, or when the approval lists nobody (anyone decides, as no one in particular)."""
    if not approvers:
        return None
    role_keys = {person_key(r) for r in roles} - {""}
    # the most particular match is the one worth recording: a manager who is also `*` decided as
    # the manager the plan asked for
    for keys in ({person_key(who)} - {""}, role_keys):
        for approver in approvers:
            if person_key(approver) in keys:
                return approver.strip()
    return ANY_ROLE if ANY_ROLE in role_keys else None


def _approvers(value: Any) -> list[str] | None:
    """The approvers a step's rendered `with.approvers` names: one name (an expression may yield a
    single string) or a list of them, blanks dropped; None when it lists nobody (anyone decides).
    ValueError for anything else, so a malformed list never silently lets anyone decide."""
    if value is None:
        return None
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(a, str) for a in items):
        raise ValueError(f"`approvers` must be a list of names, found {value!r}")
    names = [a.strip() for a in items if a.strip()]
    return names or None


class CoreActions(StepRunner):
    # core.* built-ins ------------------------------------------------------------------------

    async def _run_core(
        self,
        run: ActiveRun,
        step: Step,
        iteration: int,
        inputs: Any,
    ) -> tuple[StepState, Any, dict[str, Any] | None]:
        now = self.clock.now()
        args = inputs if isinstance(inputs, dict) else {}
        item = item_of(iteration)
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
        run: ActiveRun,
        step: Step,
        iteration: int,
        args: dict[str, Any],
    ) -> tuple[StepState, Any, dict[str, Any] | None]:
        now = self.clock.now()
        timer = self.journal.timers(run.id).get((step.id, iteration))
        if timer is None:
            try:
                if args.get("until"):
                    wake_at = parse_time(str(args["until"]))
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
        run: ActiveRun,
        step: Step,
        iteration: int,
        args: dict[str, Any],
    ) -> tuple[StepState, Any, dict[str, Any] | None]:
        now = self.clock.now()
        found = [
            a for a in self.journal.approvals(run.id) if a.step_id == step.id and a.iteration == iteration
        ]
        if not found:
            try:
                approvers = _approvers(args.get("approvers"))
            except ValueError as exc:
                return self._fail_step(run, step.id, iteration, error_data(exc, type="validation"))
            self.journal.request_approval(
                run.id,
                step.id,
                iteration,
                prompt=str(args.get("prompt") or step.title),
                approvers=approvers,
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
