"""`approvers:` on a `core.approval` step, enforced by the engine (so the API, the CLI and the UI all
follow it): only a listed name decides, compared trimmed and case-insensitively; a refusal records
nothing and the run keeps waiting. On SQLite and PostgreSQL journals."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from runtime_support import pause, settle, workflow
from test_runtime_engine import make_engine

from runtime import Engine, Journal, ManualClock, RunState
from runtime.builtins import deciding_as, may_decide
from runtime.errors import NotAnApprover
from runtime.journal_memory import AnyJournal, MemoryJournal
from runtime.testing import ScriptedInvoker


def engine_for(journal: AnyJournal, clock: ManualClock) -> Engine:
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


def test_the_approver_a_decision_is_recorded_as_is_the_most_particular_match() -> None:
    # the person's own name before a role before `*`, spelled as the approval lists it
    assert deciding_as([" Ann ", "manager"], "ann", ["Manager", "*"]) == "Ann"
    assert deciding_as(["vp-sales", "Manager"], "alice", ["*", " manager "]) == "Manager"
    assert deciding_as(["manager"], "owner", ["*"]) == "*"
    assert deciding_as(["manager"], "alice", ["support"]) is None
    assert deciding_as(["manager"], "*") is None  # a person named `*` is no wildcard
    assert deciding_as(["manager"], "", [""]) is None
    assert deciding_as(None, "anyone") is None and deciding_as([], "anyone", ["*"]) is None


async def test_the_decision_records_which_approver_allowed_it(journal: Journal, clock: ManualClock) -> None:
    await decide_four_ways(journal, clock)


async def test_the_memory_journal_records_it_too(clock: ManualClock) -> None:
    await decide_four_ways(MemoryJournal(), clock)


async def decide_four_ways(journal: AnyJournal, clock: ManualClock) -> None:
    """Four items, each allowed by another approver: a role, the name, `*`, nobody listed."""
    async with engine_for(journal, clock) as engine:
        flow = gated({"approvers": "${{ item }}"}, for_each=["manager", "Ann", "vp-sales", ""])
        run_id = await engine.start_run(flow)
        await pause(engine, clock, run_id)
        await engine.approve(run_id, "gate", True, by="alice", roles=["Manager"], iteration=0)
        await engine.approve(run_id, "gate", True, by=" ann ", roles=["manager"], iteration=1, comment="mine")
        await engine.approve(run_id, "gate", True, by="owner", roles=["*"], iteration=2)
        await engine.approve(run_id, "gate", True, by="bob", roles=["*"], iteration=3)  # lists nobody
        result = await settle(engine, clock, run_id)
    assert result.state == RunState.SUCCEEDED
    expected = [(0, "alice", "manager"), (1, " ann ", "Ann"), (2, "owner", "*"), (3, "bob", None)]
    decided = sorted(journal.approvals(run_id), key=lambda a: a.iteration)
    assert [(a.iteration, a.decided_by, a.decided_as) for a in decided] == expected
    given = sorted(
        (e for e in journal.events_since(run_id) if e.type == "approval.given"),
        key=lambda e: e.iteration or 0,
    )
    assert [(e.iteration, e.data["by"], e.data["as"]) for e in given] == expected
    assert given[1].data == {"approved": True, "by": " ann ", "as": "Ann", "comment": "mine"}


async def test_a_journal_made_before_decided_as_gains_it_and_keeps_its_decisions(
    tmp_path: Path, clock: ManualClock
) -> None:
    path = tmp_path / "old.db"
    journal = Journal.open(path)
    async with engine_for(journal, clock) as engine:
        old_run = await engine.start_run(gated({"approvers": ["manager"]}))
        await pause(engine, clock, old_run)
        await engine.approve(old_run, "gate", True, by="alice", roles=["manager"])
        await settle(engine, clock, old_run)
    journal.close()
    with sqlite3.connect(path) as db:  # as an earlier version left it: no such column
        db.execute("ALTER TABLE overture_approvals DROP COLUMN decided_as")
        assert "decided_as" not in {r[1] for r in db.execute("PRAGMA table_info(overture_approvals)")}

    journal = Journal.open(path)
    try:
        [before] = journal.approvals(old_run)
        assert (before.decided_by, before.decided_as) == ("alice", None)  # not known then
        async with engine_for(journal, clock) as engine:
            run_id = await engine.start_run(gated({"approvers": ["manager"]}))
            await pause(engine, clock, run_id)
            await engine.approve(run_id, "gate", True, by="alice", roles=["manager"])
            await settle(engine, clock, run_id)
        [after] = journal.approvals(run_id)
        assert (after.decided_by, after.decided_as) == ("alice", "manager")
    finally:
        journal.close()
