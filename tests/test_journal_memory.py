"""The in-memory journal: the real engine over it, the same records as a SQLite-file `Journal`
for the same runs, and the journal and engine suites run again on it."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import inspect
import random
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import pytest
import test_journal
import test_runtime_engine
from runtime_support import CATALOG, idle, pause, settle, workflow

from runtime import Engine, Event, Journal, ManualClock, RunState, StepState, UndoState
from runtime.errors import InvalidRunState, PermanentActionError, RunNotFound, TransientActionError
from runtime.invocation import ActionCall
from runtime.journal_memory import MemoryJournal
from runtime.report import run_data
from runtime.testing import ScriptedInvoker

AnyJournal = Journal | MemoryJournal


@pytest.fixture
def journal() -> MemoryJournal:
    return MemoryJournal()


def make_engine(journal: AnyJournal, clock: ManualClock, invoker: Any, **kw: Any) -> Engine:
    # the engine is annotated with `Journal`; MemoryJournal has the same methods (see the signature test)
    return Engine(
        CATALOG, cast(Journal, journal), invoker, clock=clock, rng=random.Random(7), worker_id="test", **kw
    )


# -- the workflows, each a scenario run the same way on either journal ------------------------------

Scenario = Callable[[AnyJournal, ManualClock], Awaitable[str]]


async def chain(journal: AnyJournal, clock: ManualClock) -> str:
    """Outputs flow from step to step; one output holds a date (the SQL journal stores its text)."""
    invoker = ScriptedInvoker(
        {
            "crm.create_account": {"account_id": "acc-1"},
            "billing.charge": {"charge_id": "ch-1", "on": datetime.date(2030, 1, 2), "tags": ("a", "b")},
        }
    )
    wf = workflow(
        {
            "steps": [
                {"id": "account", "action": "crm.create_account", "with": {"email": "${{ inputs.email }}"}},
                {
                    "id": "charge",
                    "action": "billing.charge",
                    "with": {"account_id": "${{ steps.account.output.account_id }}"},
                },
                {
                    "id": "note",
                    "action": "core.log",
                    "with": {"message": "${{ steps.charge.output.charge_id }}"},
                },
            ]
        }
    )
    async with make_engine(journal, clock, invoker) as engine:
        run_id = await engine.start_run(wf, {"email": "a@x.io"}, run_id="chain", deadline_s=3600)
        result = await settle(engine, clock, run_id)
    assert result.state == RunState.SUCCEEDED
    assert result.outputs["charge"] == {"charge_id": "ch-1", "on": "2030-01-02", "tags": ["a", "b"]}
    assert result.outputs["note"] == {"message": "ch-1"}
    assert invoker.calls[1].inputs == {"account_id": "acc-1"}
    return run_id


async def fan_out(journal: AnyJournal, clock: ManualClock) -> str:
    async def per_item(call: ActionCall) -> dict[str, Any]:
        await asyncio.sleep(0)  # let the other items start if the bound allowed them
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
                {"id": "after", "action": "work.do", "needs": ["each"], "with": {"n": 0}},
            ]
        }
    )
    async with make_engine(journal, clock, invoker) as engine:
        run_id = await engine.start_run(wf, {"items": [1, 2, 3, 4, 5]}, run_id="fan-out")
        result = await settle(engine, clock, run_id)
    assert result.state == RunState.SUCCEEDED
    assert result.outputs["each"] == [{"n": 10}, {"n": 20}, {"n": 30}, {"n": 40}, {"n": 50}]
    assert invoker.max_in_flight["work.do"] == 2
    return run_id


async def retries(journal: AnyJournal, clock: ManualClock) -> str:
    invoker = ScriptedInvoker(
        {
            "work.flaky": [
                TransientActionError("busy", type="http_503"),
                TransientActionError("slow down", type="http_429", retry_after=30),
                {"ok": True},
            ]
        }
    )
    policy = {"max_attempts": 4, "initial_interval_s": 2, "backoff": 3, "jitter": 0}
    wf = workflow({"steps": [{"id": "s", "action": "work.flaky", "retry": policy}]})
    async with make_engine(journal, clock, invoker) as engine:
        run_id = await engine.start_run(wf, run_id="retries")
        result = await settle(engine, clock, run_id)
    assert result.state == RunState.SUCCEEDED and result.outputs["s"] == {"ok": True}
    return run_id


async def saga(journal: AnyJournal, clock: ManualClock) -> str:
    """A failure after three steps: two undone, one undo failing on every retry, one left."""
    invoker = ScriptedInvoker(
        {
            "crm.create_account": {"account_id": "acc-1"},
            "billing.charge": {"charge_id": "ch-1"},
            "tenant.create": {"tenant_id": "t-1"},
            "work.flaky": PermanentActionError("nope", type="validation"),
            "tenant.delete": TransientActionError("tenant service down", type="http_503"),
        }
    )
    async with make_engine(journal, clock, invoker) as engine:
        run_id = await engine.start_run(workflow(test_runtime_engine.saga_workflow()), run_id="saga")
        result = await settle(engine, clock, run_id)
    assert result.state == RunState.FAILED
    assert result.error is not None and result.error["step"] == "boom"
    assert result.compensation is not None and result.compensation["status"] == "incomplete"
    assert result.compensation["undone"] == ["charge"]
    assert invoker.count("tenant") == 1 + 3
    return run_id


async def approval(journal: AnyJournal, clock: ManualClock) -> str:
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
        run_id = await engine.start_run(wf, run_id="approval")
        assert (await pause(engine, clock, run_id)).state == RunState.WAITING
        assert invoker.calls == []
        clock.advance(60)
        await engine.approve(run_id, "gate", True, by="ann", comment="looks fine")
        result = await settle(engine, clock, run_id)
    assert result.state == RunState.SUCCEEDED
    assert result.outputs["gate"] == {"approved": True, "by": "ann", "comment": "looks fine"}
    assert invoker.calls[0].inputs == {"ok": True}
    return run_id


async def timer(journal: AnyJournal, clock: ManualClock) -> str:
    invoker = ScriptedInvoker()
    wf = workflow(
        {
            "steps": [
                {"id": "hello", "action": "work.do"},
                {"id": "nap", "action": "core.wait", "needs": ["hello"], "with": {"seconds": 120}},
                {"id": "bye", "action": "work.do", "needs": ["nap"]},
            ]
        }
    )
    async with make_engine(journal, clock, invoker) as engine:
        t0 = clock.now()
        run_id = await engine.start_run(wf, run_id="timer")
        await idle()
        # the run waits on the timer, holding no task; nothing moves until the clock does
        assert engine.result(run_id).state == RunState.WAITING and invoker.count("bye") == 0
        assert clock.next_wake() == pytest.approx(t0 + 120)
        result = await settle(engine, clock, run_id)
    assert result.state == RunState.SUCCEEDED and invoker.count("bye") == 1
    assert result.outputs["nap"]["waited_s"] == pytest.approx(120)
    return run_id


async def cancel(journal: AnyJournal, clock: ManualClock) -> str:
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
        run_id = await engine.start_run(wf, run_id="cancel")
        assert (await pause(engine, clock, run_id)).state == RunState.WAITING
        await engine.cancel(run_id, by="ops")
        result = await settle(engine, clock, run_id)
        with pytest.raises(InvalidRunState):
            await engine.cancel(run_id)
    assert result.state == RunState.CANCELLED
    assert result.compensation == {"status": "complete", "undone": ["work"], "left": []}
    assert result.steps["ok"] == StepState.CANCELLED
    return run_id


async def subscribe(journal: AnyJournal, clock: ManualClock) -> str:
    invoker = ScriptedInvoker()
    wf = workflow(
        {"steps": [{"id": "a", "action": "work.do"}, {"id": "b", "action": "work.do", "needs": ["a"]}]}
    )
    async with make_engine(journal, clock, invoker) as engine:
        run_id = await engine.start_run(wf, run_id="subscribe")
        seen = [e async for e in engine.events(run_id)]
    assert [e.type for e in seen] == [
        "run.started",
        "step.started",
        "step.succeeded",
        "step.started",
        "step.succeeded",
        "run.finished",
    ]
    assert [e.seq for e in seen] == sorted({e.seq for e in seen})
    assert journal.events_since(run_id) == seen
    return run_id


SCENARIOS: list[Scenario] = [chain, fan_out, retries, saga, approval, timer, cancel, subscribe]


async def run_all(journal: AnyJournal) -> list[str]:
    clock = ManualClock()
    return [await scenario(journal, clock) for scenario in SCENARIOS]


# -- the engine over MemoryJournal -------------------------------------------------------------------


async def test_a_chain_passes_outputs_and_journals_each_step(
    journal: MemoryJournal, clock: ManualClock
) -> None:
    t0 = clock.now()
    run_id = await chain(journal, clock)
    run = journal.get_run(run_id)
    assert run.state == RunState.SUCCEEDED and run.inputs == {"email": "a@x.io"} and run.owner is None
    rows = journal.step_results(run_id)
    assert [k for k in rows] == [("account", -1), ("charge", -1), ("note", -1)]
    assert rows[("charge", -1)].inputs == {"account_id": "acc-1"} and rows[("charge", -1)].attempts == 1
    assert [a.outcome for a in journal.attempts(run_id=run_id)] == ["succeeded", "succeeded"]
    # the deadline's timer was spent when the run finished
    assert journal.timers(run_id)[("", -1)].fired and journal.pending_timers() == []
    started = journal.events_since(run_id)[0]
    assert started.type == "run.started" and started.data == {
        "workflow": "test-flow",
        "version": None,
        "deadline_at": t0 + 3600,
    }


async def test_a_fan_out_keeps_a_row_per_item(journal: MemoryJournal, clock: ManualClock) -> None:
    run_id = await fan_out(journal, clock)
    rows = journal.step_results(run_id)
    assert [rows[("each", i)].output for i in range(5)] == [{"n": n * 10} for n in range(1, 6)]
    assert rows[("each", -1)].inputs == {"items": [1, 2, 3, 4, 5]}
    started = [e for e in journal.events_since(run_id) if e.type == "step.started" and e.step_id == "each"]
    # the summary row's event names no item; each item's event names its index
    assert [e.iteration for e in started] == [None, 0, 1, 2, 3, 4]


async def test_retries_record_each_attempt_and_wait_as_the_policy_says(
    journal: MemoryJournal, clock: ManualClock
) -> None:
    t0 = clock.now()
    run_id = await retries(journal, clock)
    rows = journal.attempts(run_id=run_id)
    assert [a.outcome for a in rows] == ["failed", "failed", "succeeded"]
    assert [a.started_at - t0 for a in rows] == [0, 2, 32]  # 2 s, then Retry-After's 30 over 6
    assert rows[1].error_type == "http_429" and rows[1].retry_after == 30 and rows[1].transient is True
    assert rows[2].output == {"ok": True} and rows[2].output_size == len('{"ok":true}')
    retrying = [e.data for e in journal.events_since(run_id) if e.type == "step.retrying"]
    assert [d["delay_s"] for d in retrying] == [2, 30]
    step = journal.step_results(run_id)[("s", -1)]
    assert step.attempts == 3 and step.started_at == t0 and step.error is None


async def test_a_failure_compensates_and_says_what_was_left(
    journal: MemoryJournal, clock: ManualClock
) -> None:
    run_id = await saga(journal, clock)
    undos = journal.undo_results(run_id)
    assert {k[0]: u.state for k, u in undos.items()} == {
        "account": UndoState.LEFT,
        "charge": UndoState.UNDONE,
        "tenant": UndoState.FAILED,
    }
    assert undos[("tenant", -1)].attempts == 3 and undos[("charge", -1)].inputs == {
        "reason": "rollback",
        "charge_id": "ch-1",
    }
    kinds = [a.kind for a in journal.attempts(run_id=run_id, step_id="tenant")]
    assert kinds == ["action", "compensation", "compensation", "compensation"]
    run = journal.get_run(run_id)
    assert run.compensation is not None and run.compensation["status"] == "incomplete"
    types = [e.type for e in journal.events_since(run_id)]
    assert types.count("compensation.step_retrying") == 2 and "compensation.step_left" in types


async def test_an_approval_waits_until_it_is_decided(journal: MemoryJournal, clock: ManualClock) -> None:
    t0 = clock.now()
    run_id = await approval(journal, clock)
    [given] = journal.approvals(run_id)
    assert (given.prompt, given.approvers, given.requested_at) == ("ship it?", ["ann"], t0)
    assert (given.approved, given.decided_by, given.decided_at) == (True, "ann", t0 + 60)
    assert journal.approvals(pending_only=True) == []
    assert not journal.decide_approval(run_id, "gate", -1, approved=False, by="bob", comment=None, now=t0)
    types = [e.type for e in journal.events_since(run_id)]
    assert types.index("approval.requested") < types.index("run.waiting") < types.index("approval.given")


async def test_a_wait_is_a_timer_on_the_engine_clock(journal: MemoryJournal, clock: ManualClock) -> None:
    t0 = clock.now()
    run_id = await timer(journal, clock)
    [nap] = [t for t in journal.timers(run_id).values() if t.kind == "wait"]
    assert nap.fired and nap.wake_at == t0 + 120
    assert journal.step_results(run_id)[("nap", -1)].state == StepState.SUCCEEDED
    types = [e.type for e in journal.events_since(run_id)]
    assert types[types.index("step.waiting") :][:3] == ["step.waiting", "run.waiting", "run.resumed"]


async def test_a_cancel_undoes_what_was_done(journal: MemoryJournal, clock: ManualClock) -> None:
    run_id = await cancel(journal, clock)
    run = journal.get_run(run_id)
    assert run.cancel_requested and run.state == RunState.CANCELLED
    assert run.error is not None and run.error["type"] == "cancelled"
    requested = next(e for e in journal.events_since(run_id) if e.type == "run.cancel_requested")
    assert requested.data == {"by": "ops"}
    assert journal.runs_to_wake() == [] and journal.orphaned_runs(now=0) == []


async def test_events_stream_to_subscribers_and_listeners(journal: MemoryJournal, clock: ManualClock) -> None:
    heard: list[Event] = []
    journal.add_listener(heard.append)
    run_id = await subscribe(journal, clock)
    journal.remove_listener(heard.append)
    assert heard == journal.events_since(run_id)
    second = heard[1].seq
    assert [e.seq for e in journal.events_since(run_id, second)] == [e.seq for e in heard[2:]]
    assert len(journal.events_since(run_id, second, limit=2)) == 2


# -- the same runs on a SQLite-file Journal: the same records ------------------------------------------


def per_step(events: list[tuple[Any, ...]]) -> dict[str, list[tuple[Any, ...]]]:
    """Events grouped by step and item, each group in journal order."""
    grouped: dict[str, list[tuple[Any, ...]]] = {}
    for event in events:
        grouped.setdefault(f"{event[1]}[{event[2]}]", []).append(event)
    return grouped


def records(journal: AnyJournal, run_ids: list[str]) -> dict[str, Any]:
    """What the journal says about the runs, without what differs by nature: attempt ids and event
    sequence numbers (their order is kept), and lease times (real time)."""

    def plain(record: Any, *drop: str) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(record).items() if k not in drop}

    found: dict[str, Any] = {}
    for run_id in run_ids:
        events = journal.events_since(run_id)
        assert [e.seq for e in events] == sorted({e.seq for e in events})
        found[run_id] = {
            "run": plain(journal.get_run(run_id), "lease_until"),
            "steps": [(k, plain(r)) for k, r in journal.step_results(run_id).items()],
            # parallel branches interleave as the event loop schedules them (the SQLite journal's
            # group commit yields to the loop at its barriers, the in-memory one has none): the
            # order that is the journal's business is each step's own
            "attempts": sorted(
                (plain(a, "id") for a in journal.attempts(run_id=run_id)),
                key=lambda a: (a["step_id"], a["iteration"], a["kind"], a["attempt"]),
            ),
            "events": per_step([(e.type, e.step_id, e.iteration, e.time, e.data) for e in events]),
            "approvals": [plain(a) for a in journal.approvals(run_id)],
            "undos": [(k, plain(u)) for k, u in journal.undo_results(run_id).items()],
            "timers": [(k, plain(t)) for k, t in journal.timers(run_id).items()],
            "report": run_data(cast(Journal, journal), run_id),  # what `overture runs show` prints
        }
    actions = sorted({a.action for a in journal.attempts()})
    found["all"] = {
        "runs": [r.id for r in journal.list_runs()],
        "cancelled": [r.id for r in journal.list_runs(state=RunState.CANCELLED)],
        "unfinished": [r.id for r in journal.unfinished_runs()],
        "pending_timers": journal.pending_timers(),
        "approvals": [plain(a) for a in journal.approvals()],
        "to_wake": journal.runs_to_wake(),
        "stats": journal.action_stats(actions, since=0),
        "by_action": [plain(a, "id") for a in journal.attempts(action=actions[:2], outcome="failed")],
    }
    return found


async def test_the_same_runs_leave_the_same_records_as_on_sqlite(tmp_path: Path) -> None:
    sqlite = Journal.open(tmp_path / "journal.db")
    memory = MemoryJournal()
    try:
        on_sqlite = await run_all(sqlite)
        on_memory = await run_all(memory)
        assert on_memory == on_sqlite == [s.__name__.replace("_", "-") for s in SCENARIOS]
        expected, got = records(sqlite, on_sqlite), records(memory, on_memory)
        for key in expected:
            assert got[key] == expected[key], key
    finally:
        sqlite.close()


def new_run(journal: AnyJournal, run_id: str, now: float = 100.0, **kw: Any) -> None:
    journal.create_run(
        run_id,
        workflow_name="wf",
        workflow_version=3,
        document={"name": "wf", "steps": []},
        inputs={"x": [1]},
        now=now,
        deadline_at=kw.get("deadline_at"),
        worker_id="w",
    )


def start(journal: AnyJournal, run_id: str, step_id: str, *, kind: str = "action", inputs: Any = None) -> int:
    return journal.start_attempt(
        run_id=run_id,
        workflow_name="wf",
        step_id=step_id,
        iteration=-1,
        attempt=1,
        kind=kind,
        action="a.b",
        idempotency_key=f"{run_id}:{step_id}",
        now=110,
        worker_id="w",
        runs_in_flight=1,
        propensity=None,
        candidates=["a.b", "a.c"],
        inputs=inputs if inputs is not None else {},
    )


def direct_calls(journal: AnyJournal) -> dict[str, Any]:
    """The journal's calls one by one, edge cases included; returns what it then reads back."""
    heard: list[str] = []
    journal.add_listener(lambda e: heard.append(e.type))

    def faulty(event: Event) -> None:
        raise RuntimeError(event.type)

    journal.add_listener(faulty)  # logged; the write stands and the next listeners still hear it
    journal.add_listener(lambda e: heard.append(e.type))
    new_run(journal, "r1", deadline_at=500.0)
    new_run(journal, "r2", now=200)
    value: dict[Any, Any] = {1: (1, 2), 1.5: {"d": datetime.date(2031, 5, 6)}, False: None, None: {2}}
    attempt = start(journal, "r1", "s", inputs={"v": value})
    journal.finish_attempt(
        attempt,
        112,
        outcome="failed",
        error={"type": "http_503", "class": "X", "message": "busy", "transient": True, "retry_after": 3},
        step={"state": "retrying", "error": {"type": "http_503"}, "not_before": 115},
        event="step.retrying",
        data={"delay_s": 3},
    )
    journal.put_step("r1", "t", 0, 113, state=StepState.SUCCEEDED, output=value, event="step.succeeded")
    undo = start(journal, "r1", "s", kind="compensation", inputs={"n": 1})
    journal.finish_attempt(
        undo, 114, outcome="succeeded", output={"ok": 1}, undo={"state": "undone", "output": {}}
    )
    journal.put_undo("r1", "u", -1, 115, state=UndoState.LEFT, action="a.undo", error={"m": 1}, event="x")
    journal.set_timer("r2", "nap", -1, kind="wait", wake_at=400, now=201, event="step.waiting")
    journal.request_approval("r2", "gate", 2, prompt="ok?", approvers=["ann"], now=202, inputs={"p": 1})
    journal.request_approval("r2", "gate", 2, prompt="again?", approvers=None, now=203, inputs={"p": 2})
    journal.set_run_state("r2", RunState.WAITING, 204, event="run.waiting", data={"steps": ["nap", "gate"]})
    to_wake_before = journal.runs_to_wake()
    decided = journal.decide_approval("r2", "gate", 2, approved=False, by="bob", comment="no", now=205)
    again = journal.decide_approval("r2", "gate", 2, approved=True, by="bob", comment=None, now=206)
    unknown = journal.decide_approval("r2", "nope", 2, approved=True, by="bob", comment=None, now=206)
    to_wake = journal.runs_to_wake()
    journal.request_cancel("r2", 207, by="ops")
    with pytest.raises(RunNotFound):
        journal.request_cancel("nope", 207)
    with pytest.raises(RunNotFound):
        journal.cancel_requested("nope")
    with pytest.raises(RunNotFound):
        journal.run_state("nope")
    with pytest.raises(RunNotFound):
        journal.find_run("r")  # two match: ambiguous
    claims = [
        journal.claim("r1", "me", now=1000, ttl=10),
        journal.claim("r1", "you", now=1005, ttl=10),
        journal.claim("r1", "me", now=1005, ttl=10),
        journal.claim("r1", "you", now=1016, ttl=10),
        journal.claim("nope", "me", now=1, ttl=1),
    ]
    journal.release("r1", "me")  # not the owner: nothing changes
    orphans = journal.orphaned_runs(now=1020)
    journal.release("r1", "you")
    pending = journal.pending_timers(due_by=450)
    journal.fire_timer("r2", "nap", -1, 400, output={"waited_s": 199})
    lost = start(journal, "r1", "v")
    interrupted = journal.interrupt_attempts("r1", 300)
    journal.set_run_state(
        "r1", RunState.FAILED, 301, event="run.finished", error={"type": "x"}, compensation={}
    )
    journal.append_event("r1", "log", 302, step_id="s", iteration=3, data={"message": "hi"})
    return {
        "heard": heard,
        "claims": claims,
        "orphans": orphans,
        "decisions": [decided, again, unknown],
        "to_wake": [to_wake_before, to_wake],
        "pending": pending,
        "interrupted": [(a.id, a.outcome, a.step_id) for a in interrupted],
        "lost": lost,
        "records": records(journal, ["r1", "r2"]),
        "found": journal.find_run("r2").id,
        "states": [journal.run_state("r1"), journal.run_state("r2")],
        "runs": [(r.id, r.owner, r.cancel_requested) for r in journal.list_runs(limit=1)],
    }


def test_direct_calls_read_back_as_on_sqlite(tmp_path: Path) -> None:
    sqlite = Journal.open(tmp_path / "journal.db")
    try:
        expected = direct_calls(sqlite)
    finally:
        sqlite.close()
    got = direct_calls(MemoryJournal())
    for key in expected:
        assert got[key] == expected[key], key
    assert got["claims"] == [True, False, True, True, False]


def routing_history(journal: AnyJournal) -> dict[str, Any]:
    """Attempts of three actions, more than the stats' newest cut, with ties in start time and
    every outcome; the routing stats of several windows then."""
    from runtime.routing import LATEST_MAX_ATTEMPTS

    new_run(journal, "r")
    rng = random.Random(3)
    for i in range(LATEST_MAX_ATTEMPTS + 40):
        action = ("a.b", "a.c", "a.b")[i % 3]
        started = 1000.0 + i // 2  # two attempts per second: ties in start time
        attempt = journal.start_attempt(
            run_id="r",
            workflow_name="wf",
            step_id=f"s{i}",
            iteration=-1,
            attempt=1,
            kind="action",
            action=action,
            idempotency_key=f"k{i}",
            now=started,
            worker_id="w",
            runs_in_flight=1,
            propensity=None,
            candidates=None,
            inputs={},
        )
        outcome = rng.choice(["succeeded", "succeeded", "failed", "timeout", "started"])
        if outcome != "started":
            journal.finish_attempt(attempt, started + rng.choice([0.5, 1.25, 3.0]), outcome=outcome)
    journal.interrupt_attempts("r", 2000.0)
    return {
        f"since {since}": journal.action_stats(["a.b", "a.c", "a.none", "a.b"], since=since)
        for since in (0.0, 1030.0, 1100.0, 5000.0)
    }


def test_routing_stats_are_those_of_the_sql_journal(tmp_path: Path) -> None:
    sqlite = Journal.open(tmp_path / "journal.db")
    try:
        expected = routing_history(sqlite)
    finally:
        sqlite.close()
    got = routing_history(MemoryJournal())
    assert got.keys() == expected.keys()
    for window, stats in expected.items():
        assert list(got[window]) == list(stats), window
        for action, theirs in stats.items():
            ours = dataclasses.asdict(got[window][action])
            for field, value in dataclasses.asdict(theirs).items():
                assert ours[field] == (value if value is None else pytest.approx(value, rel=1e-12)), (
                    window,
                    action,
                    field,
                )
    assert expected["since 0.0"]["a.b"].calls > 50 and expected["since 5000.0"]["a.c"].calls == 0


def test_a_new_run_with_a_used_id_is_refused_as_on_sqlite(tmp_path: Path) -> None:
    sqlite = Journal.open(tmp_path / "journal.db")
    try:
        new_run(sqlite, "r")
        with pytest.raises(Exception) as on_sqlite:
            new_run(sqlite, "r")
    finally:
        sqlite.close()
    memory = MemoryJournal()
    new_run(memory, "r")
    with pytest.raises(type(on_sqlite.value)):
        new_run(memory, "r")
    assert [e.type for e in memory.events_since("r")] == ["run.started"]  # the refused write left nothing


def test_keys_json_cannot_write_are_refused_and_nothing_is_written() -> None:
    memory = MemoryJournal()
    new_run(memory, "r")
    with pytest.raises(TypeError):
        memory.put_step(
            "r", "s", -1, 1, state=StepState.SUCCEEDED, output={(1, 2): "x"}, event="step.succeeded"
        )
    assert memory.step_results("r") == {} and len(memory.events_since("r")) == 1


# -- what callers do with their values afterwards does not change the journal -------------------------


def test_values_are_the_journals_own_copies() -> None:
    memory = MemoryJournal()
    inputs = {"items": [1, 2]}
    memory.create_run(
        "r",
        workflow_name="wf",
        workflow_version=None,
        document={"steps": [{"id": "s"}]},
        inputs=inputs,
        now=1,
        deadline_at=None,
        worker_id=None,
    )
    called_with = {"list": [1]}
    attempt = start(memory, "r", "s", inputs=called_with)
    output = {"nested": {"n": 1}}
    memory.finish_attempt(
        attempt, 2, outcome="succeeded", output=output, step={"state": "succeeded", "output": output}
    )
    data = {"message": ["hi"]}
    memory.append_event("r", "log", 3, data=data)
    # the caller changes what it handed over ...
    inputs["items"].append(3)
    called_with["list"].append(2)
    output["nested"]["n"] = 2
    data["message"].append("there")
    # ... and a reader changes what it was handed
    memory.get_run("r").document["steps"].clear()
    memory.step_results("r")[("s", -1)].output["nested"]["n"] = 3
    memory.attempts()[0].output["nested"]["n"] = 4
    memory.events_since("r")[-1].data["message"].clear()
    assert memory.get_run("r").inputs == {"items": [1, 2]}
    assert memory.get_run("r").document == {"steps": [{"id": "s"}]}
    step = memory.step_results("r")[("s", -1)]
    assert step.inputs == {"list": [1]} and step.output == {"nested": {"n": 1}}
    assert memory.attempts()[0].output == {"nested": {"n": 1}}
    assert memory.events_since("r")[-1].data == {"message": ["hi"]}


def test_secrets_are_redacted_where_people_read_them() -> None:
    def redact(value: Any) -> Any:
        if isinstance(value, str):
            return value.replace("s3cr3t", "***")
        if isinstance(value, dict):
            return {k: redact(v) for k, v in value.items()}
        return value

    memory = MemoryJournal(redact=redact)
    new_run(memory, "r")
    attempt = start(memory, "r", "s", inputs={"key": "s3cr3t"})
    output = {"token": "s3cr3t"}
    memory.finish_attempt(
        attempt,
        2,
        outcome="failed",
        output=output,
        error={"type": "x", "message": "bad s3cr3t"},
        step={"state": "failed", "output": output, "error": {"message": "bad s3cr3t"}},
        event="step.failed",
        data={"error": "bad s3cr3t"},
    )
    step = memory.step_results("r")[("s", -1)]
    [row] = memory.attempts()
    assert step.inputs == {"key": "***"} and step.error == {"message": "bad ***"}
    assert step.output == {"token": "s3cr3t"}  # what the next step reads after a restart stays whole
    assert row.output == {"token": "***"} and row.error_message == "bad ***"
    assert memory.events_since("r")[-1].data == {"error": "bad ***"}


def test_a_large_output_is_cut_to_a_preview_on_the_attempt_only() -> None:
    from runtime.journal import OUTPUT_CAP_BYTES

    memory = MemoryJournal()
    new_run(memory, "r")
    big = {"blob": "x" * (OUTPUT_CAP_BYTES + 10)}
    attempt = start(memory, "r", "s")
    memory.finish_attempt(
        attempt, 2, outcome="succeeded", output=big, step={"state": "succeeded", "output": big}
    )
    [row] = memory.attempts()
    assert row.output_truncated and row.output_size == len('{"blob":""}') + OUTPUT_CAP_BYTES + 10
    assert len(row.output["preview"]) == 4096 and memory.attempts() == [row]
    assert memory.step_results("r")[("s", -1)].output == big


def test_it_has_every_public_method_of_journal_with_the_same_signature() -> None:
    journal_api = {n for n in dir(Journal) if not n.startswith("_")} - {"open"}  # `open` builds a database
    for name in sorted(journal_api):
        ours = getattr(MemoryJournal, name, None)
        assert ours is not None, name
        assert inspect.signature(ours) == inspect.signature(getattr(Journal, name)), name
    memory = MemoryJournal()
    for attribute in ("fsync", "defer_fsync", "redact", "schema", "url"):
        assert hasattr(memory, attribute), attribute
    with pytest.raises(ValueError):
        memory.drop_schema()


# -- the journal's and the engine's own suites, again on MemoryJournal -------------------------------


def _on_memory(module: Any) -> dict[str, Callable[..., Any]]:
    """The module's tests that take the `journal` fixture, to run here with this module's fixture."""
    return {
        f"{name}_on_memory": test
        for name, test in vars(module).items()
        if name.startswith("test_") and callable(test) and "journal" in inspect.signature(test).parameters
    }


_SUITES = {**_on_memory(test_journal), **_on_memory(test_runtime_engine)}
globals().update(_SUITES)


def test_the_suites_run_here_are_not_empty() -> None:
    assert len(_SUITES) > 30, sorted(_SUITES)
