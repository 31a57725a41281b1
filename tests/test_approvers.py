"""`approvers:` on a `core.approval` step, enforced by the engine (so the API, the CLI and the UI all
follow it): only a listed name decides, compared trimmed and case-insensitively; a refusal records
nothing and the run keeps waiting. On SQLite and PostgreSQL journals."""

from __future__ import annotations

from typing import Any

import pytest
from runtime_support import pause, settle, workflow
from test_runtime_engine import make_engine

from runtime import Engine, Journal, ManualClock, RunState
from runtime.builtins import may_decide
from runtime.errors import NotAnApprover
from runtime.testing import ScriptedInvoker


def engine_for(journal: Journal, clock: ManualClock) -> Engine:
    return make_engine(journal, clock, ScriptedInvoker({"work.do": lambda call: {"done": True}}))


def gated(approval: dict[str, Any], **step: Any) -> Any:
    return workflow(
        {
            "inputs": {"type": "object"},
            "steps": [
                {"id": "gate", "action": "core.approval", "with": {"prompt": "ship it?", **approval}, **step},
                {"id": "ship", "action": "work.do", "needs": ["gate"]},
            ],
        }
    )


def test_the_matching_rule_is_trimmed_and_case_insensitive() -> None:
    assert may_decide(["Ann", "finance-leads"], "  ann ")
    assert may_decide(["Ann", "finance-leads"], "FINANCE-LEADS")
    assert not may_decide(["Ann"], "anne")
    assert not may_decide(["vp-sales"], "vp sales")  # inner characters count
    assert not may_decide(["Ann"], "   ")
    assert may_decide(None, "anyone") and may_decide([], "anyone")


def test_a_role_of_the_decider_matches_like_a_name_and_star_matches_every_list() -> None:
    assert may_decide(["manager"], "alice", [" Manager "])
    assert may_decide(["vp-sales", "finance-leads"], "alice", ["support", "FINANCE-LEADS"])
    assert not may_decide(["manager"], "alice", ["managers", "vp sales", ""])
    assert not may_decide(["manager"], "", [])
    assert may_decide(["manager", "vp-sales"], "alice", ["*"])
    assert may_decide(["manager"], "", [" * "])
    # `*` is a role, not a name: a person called `*` is no wildcard
    assert not may_decide(["manager"], "*")
    assert may_decide(["*"], "*")


async def test_a_role_decides_and_the_person_is_recorded(journal: Journal, clock: ManualClock) -> None:
    async with engine_for(journal, clock) as engine:
        run_id = await engine.start_run(gated({"approvers": ["manager"]}))
        await pause(engine, clock, run_id)
        with pytest.raises(NotAnApprover) as refused:
            await engine.approve(run_id, "gate", True, by="alice", roles=["finance-leads"])
        assert refused.value.who == "alice" and refused.value.approvers == ["manager"]
        assert [a.decided_at for a in journal.approvals(run_id)] == [None]

        await engine.approve(run_id, "gate", True, by="alice", roles=["finance-leads", "Manager"])
        result = await settle(engine, clock, run_id)
    assert result.state == RunState.SUCCEEDED
    assert result.outputs["gate"]["by"] == "alice"
    [decided] = journal.approvals(run_id)
    assert decided.decided_by == "alice"


async def test_someone_not_listed_is_refused_with_nothing_recorded_then_a_listed_approver_decides(
    journal: Journal, clock: ManualClock
) -> None:
    async with engine_for(journal, clock) as engine:
        run_id = await engine.start_run(gated({"approvers": [" Ann ", "finance-leads", "  "]}))
        assert (await pause(engine, clock, run_id)).state == RunState.WAITING
        [pending] = journal.approvals(run_id, pending_only=True)
        assert pending.approvers == ["Ann", "finance-leads"]  # trimmed, blanks dropped

        for who in ("bob", "", "annie"):
            with pytest.raises(NotAnApprover) as refused:
                await engine.approve(run_id, "gate", True, by=who)
            err = refused.value
            assert (err.run_id, err.step_id, err.iteration, err.who) == (run_id, "gate", None, who)
            assert err.approvers == ["Ann", "finance-leads"]
            assert "`Ann`, `finance-leads`" in str(err) and "still pending" in str(err)

        # nothing was recorded: no decision, no event, the run still waits
        assert [a.decided_at for a in journal.approvals(run_id)] == [None]
        assert not [e for e in journal.events_since(run_id) if e.type == "approval.given"]
        assert engine.result(run_id).state == RunState.WAITING

        await engine.approve(run_id, "gate", True, by="FINANCE-LEADS", comment="ok")
        result = await settle(engine, clock, run_id)
    assert result.state == RunState.SUCCEEDED
    assert result.outputs["gate"] == {"approved": True, "by": "FINANCE-LEADS", "comment": "ok"}
    [decided] = journal.approvals(run_id)
    assert decided.decided_by == "FINANCE-LEADS" and decided.approved is True


async def test_without_approvers_anyone_decides(journal: Journal, clock: ManualClock) -> None:
    async with engine_for(journal, clock) as engine:
        run_id = await engine.start_run(gated({"approvers": []}))
        await pause(engine, clock, run_id)
        assert journal.approvals(run_id)[0].approvers is None
        await engine.approve(run_id, "gate", False, by="whoever")
        result = await settle(engine, clock, run_id)
    assert result.state == RunState.FAILED
    assert result.error is not None and result.error["message"] == "rejected by whoever"


async def test_per_item_approvers_each_decide_their_own_item(journal: Journal, clock: ManualClock) -> None:
    async with engine_for(journal, clock) as engine:
        flow = gated({"approvers": "${{ item }}"}, for_each=["ann", "bob"])  # one name, as a string
        run_id = await engine.start_run(flow)
        await pause(engine, clock, run_id)
        assert sorted((a.iteration, a.approvers) for a in journal.approvals(run_id)) == [
            (0, ["ann"]),
            (1, ["bob"]),
        ]
        # deciding every item at once needs leave for each: refused for bob's, and neither is decided
        with pytest.raises(NotAnApprover) as refused:
            await engine.approve(run_id, "gate", True, by="ann")
        assert refused.value.iteration == 1 and refused.value.approvers == ["bob"]
        assert all(a.decided_at is None for a in journal.approvals(run_id))
        with pytest.raises(NotAnApprover):
            await engine.approve(run_id, "gate", True, by="ann", iteration=1)

        await engine.approve(run_id, "gate", True, by="ann", iteration=0)
        await engine.approve(run_id, "gate", True, by="Bob", iteration=1)
        result = await settle(engine, clock, run_id)
    assert result.state == RunState.SUCCEEDED
    assert sorted((a.iteration, a.decided_by) for a in journal.approvals(run_id)) == [(0, "ann"), (1, "Bob")]


async def test_approvers_that_are_not_names_fail_the_step_instead_of_letting_anyone_decide(
    journal: Journal, clock: ManualClock
) -> None:
    async with engine_for(journal, clock) as engine:
        run_id = await engine.start_run(gated({"approvers": "${{ inputs.who }}"}), {"who": {"name": "ann"}})
        result = await settle(engine, clock, run_id)
    assert result.state == RunState.FAILED
    assert result.error is not None and result.error["step"] == "gate"
    assert "`approvers` must be a list of names" in result.error["message"]
    assert journal.approvals(run_id) == []
