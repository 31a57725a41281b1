"""The engine against a real journal (SQLite file and PostgreSQL), time driven by a ManualClock."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from runtime_support import CATALOG, idle, pause, settle, workflow

from runtime import (
    Conditions,
    Engine,
    Journal,
    ManualClock,
    RouteChoice,
    RunState,
    StepState,
    idempotency_key,
)
from runtime.errors import InvalidRunState, PermanentActionError, TransientActionError
from runtime.invocation import ActionCall
from runtime.testing import ScriptedInvoker
from workflow.document import Step


def make_engine(journal: Journal, clock: ManualClock, invoker: Any, **kw: Any) -> Engine:
    return Engine(CATALOG, journal, invoker, clock=clock, rng=random.Random(7), worker_id="test", **kw)


async def test_steps_pass_outputs_and_independent_steps_run_at_once(
    journal: Journal, clock: ManualClock
) -> None:
    both_started = asyncio.Event()
    started: list[str] = []

    async def gated(call: ActionCall) -> dict[str, Any]:
        started.append(call.step_id)
        if len(started) == 2:
            both_started.set()
        await both_started.wait()  # only returns if the two calls are in flight together
        return {"account_id": f"acc-{call.step_id}"}

    invoker = ScriptedInvoker(
        {"crm.create_account": gated, "billing.charge": lambda c: {"charge_id": "ch-1"}}
    )
    wf = workflow(
        {
            "steps": [
                {"id": "a", "action": "crm.create_account", "with": {"email": "${{ inputs.email }}"}},
                {"id": "b", "action": "crm.create_account", "with": {"email": "b@x.io"}},
                {
                    "id": "charge",
                    "action": "billing.charge",
                    "with": {
                        "account_id": "${{ steps.a.output.account_id }}",
                        "note": "for ${{ inputs.email }}",
                    },
                },
            ]
        }
    )
    async with make_engine(journal, clock, invoker) as engine:
        run_id = await engine.start_run(wf, {"email": "a@x.io"})
        result = await settle(engine, clock, run_id)
    assert result.state == RunState.SUCCEEDED
    assert sorted(started) == ["a", "b"]
    charge = next(c for c in invoker.calls if c.step_id == "charge")
    assert charge.inputs == {"account_id": "acc-a", "note": "for a@x.io"}
    assert charge.idempotency_key == idempotency_key(run_id, "charge", -1)
    assert result.outputs["charge"] == {"charge_id": "ch-1"}
    types = [e.type for e in journal.events_since(run_id)]
    assert types[0] == "run.started" and types[-1] == "run.finished"
    assert types.count("step.succeeded") == 3


async def test_a_skip_does_not_spread(journal: Journal, clock: ManualClock) -> None:
    invoker = ScriptedInvoker()
    wf = workflow(
        {
            "steps": [
                {
                    "id": "approve",
                    "action": "core.approval",
                    "with": {"prompt": "big order?"},
                    "if": "${{ inputs.amount > 5000 }}",
                },
                {
                    "id": "charge",
                    "action": "billing.charge",
                    "needs": ["approve"],
                    "with": {"account_id": "x", "approval": "${{ steps.approve.status }}"},
                },
            ]
        }
    )
    async with make_engine(journal, clock, invoker) as engine:
        run_id = await engine.start_run(wf, {"amount": 10})
        result = await settle(engine, clock, run_id)
    assert result.state == RunState.SUCCEEDED
    assert result.steps == {"approve": StepState.SKIPPED, "charge": StepState.SUCCEEDED}
    assert invoker.calls[0].inputs["approval"] == "skipped"


async def test_retry_delays_follow_the_policy_and_retry_after(journal: Journal, clock: ManualClock) -> None:
    invoker = ScriptedInvoker(
        {
            "work.flaky": [
                TransientActionError("busy", type="http_503"),
                TransientActionError("slow down", type="http_429", retry_after=30),
                TransientActionError("busy", type="http_503"),
                {"ok": True},
            ]
        }
    )
    wf = workflow(
        {
            "steps": [
                {
                    "id": "s",
                    "action": "work.flaky",
                    "retry": {
                        "max_attempts": 5,
                        "initial_interval_s": 2,
                        "backoff": 3,
                        "max_interval_s": 10,
                        "jitter": 0,
                    },
                }
            ]
        }
    )
    async with make_engine(journal, clock, invoker) as engine:
        t0 = clock.now()
        run_id = await engine.start_run(wf)
        result = await settle(engine, clock, run_id)
    assert result.state == RunState.SUCCEEDED
    rows = journal.attempts(run_id=run_id)
    starts = [round(a.started_at - t0, 6) for a in rows]
    # delays: 2 (policy), max(6, Retry-After 30) = 30, then 18 capped at 10
    assert starts == [0, 2, 32, 42]
    assert [a.outcome for a in rows] == ["failed", "failed", "failed", "succeeded"]
    assert rows[1].retry_after == 30 and rows[1].error_type == "http_429" and rows[1].transient is True
    assert {a.idempotency_key for a in rows} == {idempotency_key(run_id, "s", -1)}
    assert [a.attempt for a in rows] == [1, 2, 3, 4]


async def test_jitter_comes_from_the_injected_rng(journal: Journal, clock: ManualClock) -> None:
    invoker = ScriptedInvoker({"work.flaky": [TransientActionError("busy"), {"ok": True}]})
    wf = workflow(
        {
            "steps": [
                {
                    "id": "s",
                    "action": "work.flaky",
                    "retry": {"max_attempts": 2, "initial_interval_s": 10, "jitter": 0.5},
                }
            ]
        }
    )
    async with make_engine(journal, clock, invoker) as engine:
        run_id = await engine.start_run(wf)
        await settle(engine, clock, run_id)
    first, second = journal.attempts(run_id=run_id)
    expected = 10 * (1 + 0.5 * random.Random(7).uniform(-1, 1))
    assert second.started_at - first.started_at == pytest.approx(expected)


async def test_non_retryable_and_unexpected_errors_end_the_step_at_once(
    journal: Journal,
    clock: ManualClock,
) -> None:
    invoker = ScriptedInvoker(
        {
            "work.flaky": TransientActionError("gone", type="http_404_ish"),
            "work.do": ValueError("bad input"),
        }
    )
    policy = {"max_attempts": 4, "initial_interval_s": 1, "non_retryable": ["http_404_ish"]}
    for action in ("work.flaky", "work.do"):
        wf = workflow({"steps": [{"id": "s", "action": action, "retry": policy}]})
        async with make_engine(journal, clock, invoker) as engine:
            run_id = await engine.start_run(wf)
            result = await settle(engine, clock, run_id)
        assert result.state == RunState.FAILED
        assert len(journal.attempts(run_id=run_id)) == 1
    assert result.error is not None
    assert result.error["type"] == "ValueError" and result.error["step"] == "s"
    assert result.error["transient"] is False


async def test_attempt_timeout_on_the_engine_clock(journal: Journal, clock: ManualClock) -> None:
    async def slow(call: ActionCall) -> dict[str, Any]:
        if call.attempt == 1:
            await clock.sleep(100)
        return {"attempt": call.attempt}

    invoker = ScriptedInvoker({"work.do": slow})
    wf = workflow(
        {
            "steps": [
                {
                    "id": "s",
                    "action": "work.do",
                    "timeout_s": 5,
                    "retry": {"max_attempts": 2, "initial_interval_s": 1, "jitter": 0},
                }
            ]
        }
    )
    async with make_engine(journal, clock, invoker) as engine:
        t0 = clock.now()
        run_id = await engine.start_run(wf)
        result = await settle(engine, clock, run_id)
    assert result.outputs["s"] == {"attempt": 2}
    first, second = journal.attempts(run_id=run_id)
    assert first.outcome == "timeout" and first.error_type == "timeout"
    assert first.duration_s == pytest.approx(5)
    assert second.started_at - t0 == pytest.approx(6)


async def test_deadline_fails_the_run_and_compensates(journal: Journal, clock: ManualClock) -> None:
    invoker = ScriptedInvoker({"work.do": {"id": "w1"}})
    wf = workflow(
        {
            "deadline_s": 30,
            "steps": [
                {
                    "id": "work",
                    "action": "work.do",
                    "compensate": {"action": "work.undo", "with": {"id": "${{ steps.work.output.id }}"}},
                },
                {"id": "nap", "action": "core.wait", "needs": ["work"], "with": {"seconds": 3600}},
                {"id": "after", "action": "work.do", "needs": ["nap"]},
            ],
        }
    )
    async with make_engine(journal, clock, invoker) as engine:
        t0 = clock.now()
        run_id = await engine.start_run(wf)
        result = await settle(engine, clock, run_id)
    assert result.state == RunState.FAILED
    assert result.error is not None and result.error["type"] == "deadline"
    assert journal.get_run(run_id).ended_at == pytest.approx(t0 + 30)
    assert result.compensation == {"status": "complete", "undone": ["work"], "left": []}
    assert [c.inputs for c in invoker.calls if c.action.name == "work.undo"] == [{"id": "w1"}]
    assert result.steps["nap"] == StepState.CANCELLED and "after" not in result.steps


def saga_workflow(fail_undo_of: str | None = None) -> dict[str, Any]:
    return {
        "steps": [
            {
                "id": "account",
                "action": "crm.create_account",
                "with": {"email": "a@x.io"},
                "compensate": {"action": "crm.delete_account"},
            },
            {
                "id": "charge",
                "action": "billing.charge",
                "with": {"account_id": "${{ steps.account.output.account_id }}"},
                "compensate": {"action": "billing.refund", "with": {"reason": "rollback"}},
            },
            {
                "id": "tenant",
                "action": "tenant.create",
                "needs": ["account"],
                "compensate": {
                    "action": "tenant.delete",
                    "with": {"tenant_id": "${{ steps.tenant.output.tenant_id }}"},
                    "retry": {"max_attempts": 3, "initial_interval_s": 1, "jitter": 0},
                },
            },
            {"id": "boom", "action": "work.flaky", "needs": ["charge", "tenant"]},
        ]
    }


async def test_compensation_runs_in_reverse_dependency_order_in_parallel(
    journal: Journal,
    clock: ManualClock,
) -> None:
    order: list[str] = []
    both = asyncio.Event()
    in_flight: set[str] = set()

    async def undo(call: ActionCall) -> dict[str, Any]:
        in_flight.add(call.step_id)
        order.append(call.step_id)
        if call.step_id in ("charge", "tenant"):
            if {"charge", "tenant"} <= in_flight:
                both.set()
            await both.wait()  # refund and tenant delete must be in flight together
        in_flight.discard(call.step_id)
        return {"undone": call.step_id}

    invoker = ScriptedInvoker(
        {
            "crm.create_account": {"account_id": "acc-1"},
            "billing.charge": {"charge_id": "ch-1"},
            "tenant.create": {"tenant_id": "t-1"},
            "work.flaky": PermanentActionError("nope", type="validation"),
            "crm.delete_account": undo,
            "billing.refund": undo,
            "tenant.delete": undo,
        }
    )
    async with make_engine(journal, clock, invoker) as engine:
        run_id = await engine.start_run(workflow(saga_workflow()))
        result = await settle(engine, clock, run_id)
    assert result.state == RunState.FAILED
    assert result.error is not None and result.error["step"] == "boom"
    assert result.compensation is not None and result.compensation["status"] == "complete"
    assert sorted(order[:2]) == ["charge", "tenant"] and order[2] == "account"
    calls = {
        c.step_id: c for c in invoker.calls if c.action.name.endswith(("delete_account", "refund", "delete"))
    }
    # required inputs not given in `with` are filled by name from the output, then the inputs
    assert calls["charge"].inputs == {"reason": "rollback", "charge_id": "ch-1"}
    assert calls["account"].inputs == {"account_id": "acc-1"}
    assert calls["tenant"].inputs == {"tenant_id": "t-1"}
    assert calls["account"].idempotency_key == idempotency_key(run_id, "account", -1, undo=True)
    assert invoker.count("boom") == 1
    types = [e.type for e in journal.events_since(run_id)]
    assert "compensation.started" in types and types.count("compensation.step_undone") == 3


async def test_incomplete_compensation_says_what_is_left_and_why(
    journal: Journal, clock: ManualClock
) -> None:
    invoker = ScriptedInvoker(
        {
            "crm.create_account": {"account_id": "acc-1"},
            "billing.charge": {"charge_id": "ch-1"},
            "tenant.create": {"tenant_id": "t-1"},
            "work.flaky": PermanentActionError("nope"),
            "tenant.delete": TransientActionError("tenant service down", type="http_503"),
        }
    )
    async with make_engine(journal, clock, invoker) as engine:
        run_id = await engine.start_run(workflow(saga_workflow()))
        result = await settle(engine, clock, run_id)
    assert result.state == RunState.FAILED
    summary = result.compensation
    assert summary is not None and summary["status"] == "incomplete"
    assert summary["undone"] == ["charge"]
    left = {item["step"]: item["reason"] for item in summary["left"]}
    assert "tenant.delete failed after 3 attempt(s)" in left["tenant"]
    assert left["account"] == "not undone because tenant could not be undone first"
    assert invoker.count("tenant") == 1 + 3  # the step once, its undo with its own 3 attempts


async def test_cancel_compensates_and_ends_cancelled(journal: Journal, clock: ManualClock) -> None:
    invoker = ScriptedInvoker({"work.do": {"id": "w"}})
    wf = workflow(
        {
            "steps": [
                {"id": "work", "action": "work.do", "compensate": {"action": "work.undo"}},
                {"id": "ok", "action": "core.approval", "needs": ["work"], "with": {"prompt": "go on?"}},
            ]
        }
    )
    async with make_engine(journal, clock, invoker) as engine:
        run_id = await engine.start_run(wf)
        paused = await pause(engine, clock, run_id)
        assert paused.state == RunState.WAITING
        await engine.cancel(run_id, by="ops")
        result = await settle(engine, clock, run_id)
        with pytest.raises(InvalidRunState):
            await engine.cancel(run_id)
    assert result.state == RunState.CANCELLED
    assert result.compensation == {"status": "complete", "undone": ["work"], "left": []}
    assert result.steps["ok"] == StepState.CANCELLED


@pytest.mark.parametrize("approved", [True, False])
async def test_approval_approve_or_reject_with_comment(
    journal: Journal,
    clock: ManualClock,
    approved: bool,
) -> None:
    invoker = ScriptedInvoker()
    wf = workflow(
        {
            "steps": [
                {
                    "id": "gate",
                    "action": "core.approval",
                    "with": {"prompt": "ship it?", "approvers": ["ann"]},
                },
                {"id": "ship", "action": "work.do", "with": {"ok": "${{ steps.gate.output.approved }}"}},
            ]
        }
    )
    async with make_engine(journal, clock, invoker) as engine:
        run_id = await engine.start_run(wf)
        paused = await pause(engine, clock, run_id)
        assert paused.state == RunState.WAITING and invoker.calls == []
        [pending] = journal.approvals(run_id, pending_only=True)
        assert pending.prompt == "ship it?" and pending.approvers == ["ann"]
        with pytest.raises(InvalidRunState):
            await engine.approve(run_id, "ship", True, by="ann")
        await engine.approve(
            run_id, "gate", approved, by="ann", comment="looks fine" if approved else "too risky"
        )
        result = await settle(engine, clock, run_id)
    if approved:
        assert result.state == RunState.SUCCEEDED
        assert result.outputs["gate"] == {"approved": True, "by": "ann", "comment": "looks fine"}
        assert invoker.calls[0].inputs == {"ok": True}
    else:
        assert result.state == RunState.FAILED
        assert result.error is not None and result.error["type"] == "rejected"
        assert result.error["message"] == "rejected by ann: too risky"
        assert invoker.calls == []
    given = [e for e in journal.events_since(run_id) if e.type == "approval.given"]
    assert given[0].data["by"] == "ann"


async def test_for_each_runs_per_item_within_its_concurrency_bound(
    journal: Journal, clock: ManualClock
) -> None:
    async def per_item(call: ActionCall) -> dict[str, Any]:
        await asyncio.sleep(0)  # let the others start if the bound allowed them
        await asyncio.sleep(0)
        return {"n": call.inputs["n"] * 10}

    invoker = ScriptedInvoker({"work.do": per_item})
    wf = workflow(
        {
            "steps": [
                {
                    "id": "each",
                    "action": "work.do",
                    "for_each": "${{ inputs.items }}",
                    "concurrency": 2,
                    "with": {"n": "${{ item }}"},
                },
                {
                    "id": "total",
                    "action": "core.log",
                    "with": {"message": "${{ steps.each.output | map(attribute='n') | sum }}"},
                },
            ]
        }
    )
    async with make_engine(journal, clock, invoker) as engine:
        run_id = await engine.start_run(wf, {"items": [1, 2, 3, 4, 5, 6]})
        result = await settle(engine, clock, run_id)
    assert result.state == RunState.SUCCEEDED
    assert result.outputs["each"] == [{"n": 10}, {"n": 20}, {"n": 30}, {"n": 40}, {"n": 50}, {"n": 60}]
    assert result.outputs["total"] == {"message": "210"}
    assert invoker.max_in_flight["work.do"] == 2
    keys = sorted(c.idempotency_key for c in invoker.calls)
    assert keys == sorted(idempotency_key(run_id, "each", i) for i in range(6))
    rows = journal.step_results(run_id)
    assert all(rows[("each", i)].state == StepState.SUCCEEDED for i in range(6))


async def test_for_each_failure_compensates_each_completed_item_of_earlier_steps(
    journal: Journal,
    clock: ManualClock,
) -> None:
    invoker = ScriptedInvoker(
        {
            "work.do": lambda call: {"made": call.inputs["n"]},
            "work.flaky": PermanentActionError("nope"),
        }
    )
    wf = workflow(
        {
            "steps": [
                {
                    "id": "make",
                    "action": "work.do",
                    "for_each": [1, 2, 3],
                    "with": {"n": "${{ item }}"},
                    "compensate": {
                        "action": "work.undo",
                        "with": {"n": "${{ item }}", "made": "${{ steps.make.output.made }}"},
                    },
                },
                {"id": "boom", "action": "work.flaky", "needs": ["make"]},
            ]
        }
    )
    async with make_engine(journal, clock, invoker) as engine:
        run_id = await engine.start_run(wf)
        result = await settle(engine, clock, run_id)
    assert result.compensation is not None
    assert sorted(result.compensation["undone"]) == ["make[0]", "make[1]", "make[2]"]
    undo = sorted((c.inputs["n"], c.inputs["made"]) for c in invoker.calls if c.action.name == "work.undo")
    assert undo == [(1, 1), (2, 2), (3, 3)]


async def test_wait_survives_a_restart_and_holds_no_task(tmp_path: Any, clock: ManualClock) -> None:
    path = tmp_path / "journal.db"
    invoker = ScriptedInvoker()
    wf = workflow(
        {
            "steps": [
                {"id": "hello", "action": "work.do"},
                {"id": "nap", "action": "core.wait", "needs": ["hello"], "with": {"seconds": 2 * 86400}},
                {"id": "bye", "action": "work.do", "needs": ["nap"]},
            ]
        }
    )
    first = Journal.open(path)
    engine = make_engine(first, clock, invoker)
    run_id = await engine.start_run(wf)
    paused = await engine.run_until_settled(run_id)
    assert paused.state == RunState.WAITING and paused.steps["nap"] == StepState.WAITING
    assert engine.runs_in_flight == 0  # waiting holds no driver task
    await engine.close()
    first.close()

    clock.advance(2 * 86400 + 1)
    second = Journal.open(path)
    async with make_engine(second, clock, invoker) as engine:
        assert await engine.recover() == [run_id]
        result = await settle(engine, clock, run_id)
    assert result.state == RunState.SUCCEEDED
    assert invoker.count("hello") == 1 and invoker.count("bye") == 1
    assert result.outputs["nap"]["waited_s"] == pytest.approx(2 * 86400 + 1)
    second.close()


async def test_wait_until_a_time_is_woken_by_the_scheduler(journal: Journal, clock: ManualClock) -> None:
    invoker = ScriptedInvoker()
    wf = workflow(
        {
            "steps": [
                {"id": "nap", "action": "core.wait", "with": {"until": "2030-01-01T00:00:00Z"}},
                {"id": "bye", "action": "work.do", "needs": ["nap"]},
            ]
        }
    )
    async with make_engine(journal, clock, invoker) as engine:
        run_id = await engine.start_run(wf)
        result = await settle(engine, clock, run_id)
    assert result.state == RunState.SUCCEEDED
    assert clock.now() == pytest.approx(1893456000.0)


async def test_an_attempt_in_flight_when_the_engine_stops_runs_again_with_the_same_key(
    journal: Journal,
    clock: ManualClock,
) -> None:
    started = asyncio.Event()
    hang = asyncio.Event()

    async def first_hangs(call: ActionCall) -> dict[str, Any]:
        if call.attempt == 1:
            started.set()
            await hang.wait()
        return {"attempt": call.attempt}

    invoker = ScriptedInvoker({"work.do": first_hangs})
    wf = workflow(
        {
            "steps": [
                {"id": "a", "action": "core.log", "with": {"message": "hi"}},
                {"id": "b", "action": "work.do", "needs": ["a"]},
            ]
        }
    )
    engine = make_engine(journal, clock, invoker)
    run_id = await engine.start_run(wf)
    await asyncio.wait_for(started.wait(), 5)
    await engine.close()
    assert [a.outcome for a in journal.attempts(run_id=run_id)] == ["started"]

    async with make_engine(journal, clock, invoker) as engine:
        await engine.recover()
        result = await settle(engine, clock, run_id)
    assert result.state == RunState.SUCCEEDED
    rows = journal.attempts(run_id=run_id)
    assert [a.outcome for a in rows] == ["interrupted", "succeeded"]
    assert rows[0].idempotency_key == rows[1].idempotency_key == idempotency_key(run_id, "b", -1)
    assert invoker.count("b") == 2 and result.outputs["b"] == {"attempt": 2}


async def test_events_stream_live_to_subscribers(journal: Journal, clock: ManualClock) -> None:
    invoker = ScriptedInvoker()
    wf = workflow(
        {"steps": [{"id": "a", "action": "work.do"}, {"id": "b", "action": "work.do", "needs": ["a"]}]}
    )
    async with make_engine(journal, clock, invoker) as engine:
        run_id = await engine.start_run(wf)
        seen = [e async for e in engine.events(run_id)]
        replay = [e.seq for e in journal.events_since(run_id, seen[1].seq)]
    assert [e.type for e in seen] == [
        "run.started",
        "step.started",
        "step.succeeded",
        "step.started",
        "step.succeeded",
        "run.finished",
    ]
    assert [e.seq for e in seen] == sorted(e.seq for e in seen)
    assert replay == [e.seq for e in seen[2:]]


class PickBackup:
    def __init__(self) -> None:
        self.seen: list[tuple[Sequence[str], Conditions]] = []

    def choose(self, step: Step, candidates: Sequence[str], conditions: Conditions) -> RouteChoice:
        self.seen.append((list(candidates), conditions))
        return RouteChoice("mail.send_backup", 0.25)


async def test_router_picks_among_alternatives_and_the_attempt_records_it(
    journal: Journal,
    clock: ManualClock,
) -> None:
    router = PickBackup()
    invoker = ScriptedInvoker()
    wf = workflow({"steps": [{"id": "m", "action": "mail.send", "alternatives": ["mail.send_backup"]}]})
    async with make_engine(journal, clock, invoker, router=router) as engine:
        run_id = await engine.start_run(wf)
        await settle(engine, clock, run_id)
    [row] = journal.attempts(action="mail.send_backup")
    assert row.propensity == 0.25 and row.candidates == ["mail.send", "mail.send_backup"]
    assert row.worker_id == "test" and row.runs_in_flight == 1
    assert router.seen[0][0] == ["mail.send", "mail.send_backup"]
    assert invoker.actions_called() == ["mail.send_backup"]


async def test_attempts_are_queryable_by_action_and_time(journal: Journal, clock: ManualClock) -> None:
    invoker = ScriptedInvoker()
    wf = workflow({"steps": [{"id": "a", "action": "work.do"}]})
    async with make_engine(journal, clock, invoker) as engine:
        t0 = clock.now()
        first = await engine.start_run(wf)
        await settle(engine, clock, first)
        clock.advance(100)
        second = await engine.start_run(wf)
        await settle(engine, clock, second)
    assert [a.run_id for a in journal.attempts(action="work.do")] == [first, second]
    assert [a.run_id for a in journal.attempts(action="work.do", since=t0 + 50)] == [second]
    assert [a.run_id for a in journal.attempts(action=["work.do"], until=t0 + 50)] == [first]
    assert journal.attempts(action="nothing") == []
    stats = journal.action_stats(["work.do"], since=t0)
    assert stats["work.do"].calls == 2 and stats["work.do"].error_rate == 0


async def test_core_fail_and_core_log(journal: Journal, clock: ManualClock) -> None:
    wf = workflow(
        {
            "steps": [
                {"id": "note", "action": "core.log", "with": {"message": "hello ${{ inputs.who }}"}},
                {"id": "stop", "action": "core.fail", "needs": ["note"], "with": {"message": "no more"}},
            ]
        }
    )
    async with make_engine(journal, clock, ScriptedInvoker()) as engine:
        run_id = await engine.start_run(wf, {"who": "ann"})
        result = await settle(engine, clock, run_id)
    assert result.state == RunState.FAILED
    assert (
        result.error is not None and result.error["message"] == "no more" and result.error["type"] == "fail"
    )
    logs = [e.data["message"] for e in journal.events_since(run_id) if e.type == "log"]
    assert logs == ["hello ann"]


async def test_secrets_are_redacted_before_writing(journal: Journal, clock: ManualClock) -> None:
    class Secrets:
        def redact(self, value: Any) -> Any:
            if isinstance(value, str):
                return value.replace("s3cr3t", "***")
            if isinstance(value, dict):
                return {k: self.redact(v) for k, v in value.items()}
            if isinstance(value, list):
                return [self.redact(v) for v in value]
            return value

    invoker = ScriptedInvoker({"work.do": {"token": "s3cr3t"}})
    wf = workflow({"steps": [{"id": "a", "action": "work.do", "with": {"key": "${{ inputs.key }}"}}]})
    async with make_engine(journal, clock, invoker, secrets=Secrets()) as engine:
        run_id = await engine.start_run(wf, {"key": "s3cr3t"})
        await settle(engine, clock, run_id)
    assert invoker.calls[0].inputs == {"key": "s3cr3t"}  # the action itself gets the real value
    assert journal.step_results(run_id)[("a", -1)].inputs == {"key": "***"}
    assert journal.attempts(run_id=run_id)[0].output == {"token": "***"}
    started = next(e for e in journal.events_since(run_id) if e.type == "run.started")
    assert "s3cr3t" not in str([e.data for e in journal.events_since(run_id)]) and started


async def test_runs_in_flight_share_the_concurrency_limit(journal: Journal, clock: ManualClock) -> None:
    async def slowish(call: ActionCall) -> dict[str, Any]:
        for _ in range(5):
            await asyncio.sleep(0)
        return {}

    invoker = ScriptedInvoker({"work.do": slowish})
    wf = workflow({"steps": [{"id": f"s{i}", "action": "work.do"} for i in range(6)]})
    async with make_engine(journal, clock, invoker, concurrency=3) as engine:
        runs = [await engine.start_run(wf) for _ in range(2)]
        await idle(500)
        for run_id in runs:
            assert (await settle(engine, clock, run_id)).succeeded
    assert invoker.max_in_flight["work.do"] == 3


async def test_an_approval_recorded_by_another_process_is_picked_up(
    journal: Journal, clock: ManualClock
) -> None:
    invoker = ScriptedInvoker()
    wf = workflow(
        {
            "steps": [
                {"id": "gate", "action": "core.approval", "with": {"prompt": "go?"}},
                {"id": "after", "action": "work.do", "needs": ["gate"]},
            ]
        }
    )
    async with make_engine(journal, clock, invoker, poll_interval_s=0.01) as service:
        run_id = await service.start_run(wf)
        assert (await pause(service, clock, run_id)).state == RunState.WAITING
        # what `overture approve` without --catalog does: record only, from another engine
        cli = make_engine(journal, clock, ScriptedInvoker())
        await cli.approve(run_id, "gate", True, by="ann", drive=False)
        await cli.close()
        result = await asyncio.wait_for(service.wait(run_id), 5)
    assert result.state == RunState.SUCCEEDED and invoker.count("after") == 1


async def test_outputs_that_are_not_plain_json_are_stored_as_text(
    journal: Journal, clock: ManualClock
) -> None:
    import datetime

    invoker = ScriptedInvoker({"work.do": {"when": datetime.date(2030, 1, 2)}})
    wf = workflow({"steps": [{"id": "a", "action": "work.do"}]})
    async with make_engine(journal, clock, invoker) as engine:
        run_id = await engine.start_run(wf)
        result = await settle(engine, clock, run_id)
    assert result.succeeded
    assert journal.step_results(run_id)[("a", -1)].output == {"when": "2030-01-02"}


async def test_cancel_lets_the_call_in_flight_finish_and_undoes_it(
    journal: Journal, clock: ManualClock
) -> None:
    started, release = asyncio.Event(), asyncio.Event()

    async def slow(call: ActionCall) -> dict[str, Any]:
        started.set()
        await release.wait()
        return {"id": "w"}

    invoker = ScriptedInvoker({"work.do": slow})
    wf = workflow(
        {
            "steps": [
                {"id": "work", "action": "work.do", "compensate": {"action": "work.undo"}},
                {"id": "next", "action": "work.flaky", "needs": ["work"]},
            ]
        }
    )
    async with make_engine(journal, clock, invoker) as engine:
        run_id = await engine.start_run(wf)
        await asyncio.wait_for(started.wait(), 5)
        await engine.cancel(run_id, by="ops")
        await idle()
        assert engine.result(run_id).state == RunState.RUNNING  # the call is still in flight
        release.set()
        result = await settle(engine, clock, run_id)
    assert result.state == RunState.CANCELLED
    assert result.steps["work"] == StepState.SUCCEEDED and "next" not in result.steps
    assert result.compensation == {"status": "complete", "undone": ["work"], "left": []}
    assert invoker.actions_called() == ["work.do", "work.undo"]


async def test_a_large_for_each_stays_quick(journal: Journal, clock: ManualClock) -> None:
    import time

    invoker = ScriptedInvoker({"work.do": lambda call: {"n": call.inputs["n"]}})
    wf = workflow(
        {
            "steps": [
                {
                    "id": "each",
                    "action": "work.do",
                    "for_each": "${{ inputs.items }}",
                    "with": {"n": "${{ item }}"},
                }
            ]
        }
    )
    began = time.monotonic()
    async with make_engine(journal, clock, invoker) as engine:
        run_id = await engine.start_run(wf, {"items": list(range(200))})
        result = await asyncio.wait_for(engine.wait(run_id), 60)
    assert result.succeeded and len(result.outputs["each"]) == 200
    assert time.monotonic() - began < 60  # two commits per item; fsync dominates


async def test_two_engines_on_one_journal_never_drive_the_same_run(
    journal: Journal, clock: ManualClock
) -> None:
    started, release = asyncio.Event(), asyncio.Event()

    async def slow(call: ActionCall) -> dict[str, Any]:
        started.set()
        await release.wait()
        return {}

    invoker = ScriptedInvoker({"work.do": slow})
    wf = workflow({"steps": [{"id": "a", "action": "work.do"}]})
    first = Engine(CATALOG, journal, invoker, clock=clock, worker_id="first")
    second = Engine(CATALOG, journal, invoker, clock=clock, worker_id="second")
    run_id = await first.start_run(wf)
    await asyncio.wait_for(started.wait(), 5)
    assert journal.get_run(run_id).owner == "first"
    assert await second.recover() == [run_id]
    with pytest.raises(InvalidRunState, match="is being run by first"):
        await second.run_until_settled(run_id)
    release.set()
    result = await asyncio.wait_for(first.wait(run_id), 5)
    assert result.succeeded and invoker.count("a") == 1
    assert journal.get_run(run_id).owner is None  # released when the driver finished
    await first.close()
    await second.close()


async def test_a_run_whose_worker_died_is_taken_over_when_its_lease_runs_out(
    journal: Journal,
    clock: ManualClock,
) -> None:
    import time

    invoker = ScriptedInvoker()
    wf = workflow(
        {"steps": [{"id": "a", "action": "work.do"}, {"id": "b", "action": "work.do", "needs": ["a"]}]}
    )
    # a worker that died while holding the run: its lease is already over
    journal.create_run(
        "orphan",
        workflow_name=wf.name,
        workflow_version=None,
        document=wf.to_data(),
        inputs={},
        now=clock.now(),
        deadline_at=None,
        worker_id="dead",
    )
    assert journal.claim("orphan", "dead", now=time.time() - 100, ttl=1)
    assert not journal.claim("orphan", "other", now=time.time() - 100, ttl=1)  # still held back then
    async with make_engine(journal, clock, invoker, poll_interval_s=0.01) as engine:
        result = await asyncio.wait_for(engine.wait("orphan"), 5)
    assert result.succeeded and invoker.count("a") == 1 and invoker.count("b") == 1


async def test_a_run_started_here_is_driven_without_reading_it_back(
    tmp_path: Path, clock: ManualClock
) -> None:
    """`start_run` hands its driver the record it just wrote: the driver claims the run but reads
    neither the run, its steps nor its in-flight attempts again before the first call (it still
    looks for a cancel); a run it did not create here is read as before."""
    journal = Journal.open(tmp_path / "j.db")
    statements: list[str] = []
    journal._writer_connection().connection.dbapi_connection.set_trace_callback(statements.append)  # type: ignore[union-attr]
    # the run's whole row, its step rows, its attempts left `started`
    reads_back = ("SELECT overture_runs.id, overture_runs.workflow_name", "FROM overture_step_results",
                  "WHERE overture_attempts.run_id")

    def before_first_call() -> list[str]:
        first = next(i for i, sql in enumerate(statements) if sql.startswith("INSERT INTO overture_attempts"))
        return [" ".join(sql.split()) for sql in statements[:first]]

    invoker = ScriptedInvoker({"crm.create_account": lambda call: {"account_id": "a1"}})
    wf = workflow({"steps": [{"id": "a", "action": "crm.create_account", "with": {"email": "x@y.z"}}]})
    try:
        async with make_engine(journal, clock, invoker) as engine:
            fresh = await engine.start_run(wf)
            assert (await engine.wait(fresh)).state == RunState.SUCCEEDED
            early = before_first_call()
            assert not [sql for sql in early if any(part in sql for part in reads_back)], early
            assert any("cancel_requested" in sql for sql in early)
            assert any(sql.startswith("UPDATE overture_runs SET owner") for sql in early)  # claimed

            statements.clear()
            journal.create_run("elsewhere", workflow_name=wf.name, workflow_version=None,
                               document=wf.to_data(), inputs={}, now=clock.now(), deadline_at=None,
                               worker_id="another")
            assert (await engine.wait("elsewhere")).state == RunState.SUCCEEDED
            early = before_first_call()
            for part in reads_back:
                assert any(part in sql for sql in early), (part, early)
    finally:
        journal.close()


async def test_a_cancel_asked_elsewhere_during_a_step_is_read_with_its_end(
    tmp_path: Path, clock: ManualClock
) -> None:
    """The step's end reads the run's cancel flag in its own transaction: a cancel another process
    asks for while the step runs stops the run before the next step, and the driver's look at
    stop requests after the step reads nothing more."""
    journal = Journal.open(tmp_path / "j.db")
    other = Journal.open(tmp_path / "j.db")
    statements: list[str] = []
    journal._writer_connection().connection.dbapi_connection.set_trace_callback(statements.append)  # type: ignore[union-attr]

    def create(call: ActionCall) -> dict[str, Any]:
        other.request_cancel(call.run_id, clock.now(), by="someone")
        return {"account_id": "a1"}

    invoker = ScriptedInvoker(
        {"crm.create_account": create, "billing.charge": lambda call: {"charge_id": "c"}}
    )
    wf = workflow({"steps": [
        {"id": "a", "action": "crm.create_account", "with": {"email": "x@y.z"}},
        {"id": "b", "action": "billing.charge", "needs": ["a"], "with": {"amount": 1}},
    ]})
    try:
        async with make_engine(journal, clock, invoker) as engine:
            run_id = await engine.start_run(wf)
            result = await engine.wait(run_id)
        assert result.state == RunState.CANCELLED
        assert result.steps == {"a": StepState.SUCCEEDED}  # b never started
        statements[:] = [sql.strip() for sql in statements]
        ended = next(
            i for i, sql in enumerate(statements) if sql.startswith("UPDATE overture_attempts SET ended_at")
        )
        commit = next(i for i in range(ended, len(statements)) if statements[i] == "COMMIT")
        reads = [i for i, sql in enumerate(statements) if "SELECT overture_runs.cancel_requested" in sql]
        after = [i for i in reads if i > ended]
        assert after and after[0] < commit  # read inside the end's transaction
        # and not again before the saga's writes begin (the next write after the end's commit)
        next_write = next(i for i in range(commit + 1, len(statements)) if statements[i] == "BEGIN")
        assert not [i for i in after if commit < i < next_write]
    finally:
        other.close()
        journal.close()
