"""The journal's writes on PostgreSQL that used to be transactions of several statements (BEGIN,
the statements, COMMIT: a round trip each) and are now ONE statement in autocommit each
(`runtime.journal_pg`): a cancel request, an approval's request and decision, a timer set and
fired, a compensation row, an appended event, the attempts a crash left in flight.

Each test runs the call twice on a real PostgreSQL, in two schemas of their own (dropped after):
in one through the call as it is, in the other through the transaction it replaced (the same
journal with `single_statements = False`: the transactions SQLite still runs), and checks

- that the call is one round trip on the writer's connection (counted by libpq's own protocol
  trace: one `ReadyForQuery` per round trip, BEGIN and COMMIT included) and took no pooled one;
- that both schemas hold exactly the same rows, byte for byte (every column as text, the events'
  seqs and the attempts' ids included), and that listeners were told the same events.
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa

from runtime.errors import RunNotFound
from runtime.journal import Journal
from runtime.journal_schema import metadata
from runtime.records import Event, UndoState


def _redact(value: Any) -> Any:
    """A redactor with one secret (`s3cret`), so the tests see that event data is redacted."""
    if isinstance(value, str):
        return value.replace("s3cret", "***")
    if isinstance(value, dict):
        return {k: _redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value


@dataclass
class Side:
    journal: Journal
    told: list[Event]


@dataclass
class Pair:
    now: Side
    before: Side


@pytest.fixture
def pair() -> Iterator[Pair]:
    from runtime_support import PG_URL, postgres_available

    reason = postgres_available()
    if reason:
        pytest.skip(reason)
    sides = []
    for single in (True, False):
        journal = Journal.open(PG_URL, schema=f"t_{uuid.uuid4().hex[:10]}", redact=_redact)
        journal.single_statements = single
        told: list[Event] = []
        journal.add_listener(told.append)
        sides.append(Side(journal, told))
    try:
        yield Pair(*sides)
    finally:
        for side in sides:
            side.journal.drop_schema()
            side.journal.close()


@dataclass
class Trips:
    writer: int = 0
    """Round trips on the journal's writer connection (libpq's ReadyForQuery messages)."""
    pooled: int = 0
    """Connections taken from the pool meanwhile (each one at least a round trip more)."""


@contextmanager
def round_trips(journal: Journal) -> Iterator[Trips]:
    import psycopg

    trips = Trips()
    conn = journal._writer_connection()  # connected and fresh: the call pings nothing
    pgconn = conn.connection.dbapi_connection.pgconn  # type: ignore[union-attr]
    pool = journal._engine.pool

    def checkout(*_: Any) -> None:
        trips.pooled += 1

    sa.event.listen(pool, "checkout", checkout)
    with tempfile.TemporaryFile() as trace:
        pgconn.trace(trace.fileno())
        pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS | psycopg.pq.Trace.REGRESS_MODE)
        try:
            yield trips
        finally:
            pgconn.untrace()
            sa.event.remove(pool, "checkout", checkout)
            trace.seek(0)
            messages = trace.read().decode(errors="replace").splitlines()
            trips.writer = sum(1 for m in messages if m.split("\t")[2:3] == ["ReadyForQuery"])


def in_loop(call: Callable[[], Any]) -> Any:
    """Run `call` on an event loop's thread, where the engine makes its journal calls (its reads
    then go to the writer's connection, not the pool)."""

    async def run() -> Any:
        return call()

    return asyncio.run(run())


def counted(journal: Journal, call: Callable[[], Any]) -> tuple[Any, Trips]:
    with round_trips(journal) as trips:
        result = in_loop(call)
    return result, trips


def dump(journal: Journal) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, each column as PostgreSQL's text of it, in key order."""
    out = {}
    with journal._engine.connect() as conn:
        for table in metadata.sorted_tables:
            keys = [c for c in table.primary_key.columns]
            query = sa.select(*[sa.cast(c, sa.Text) for c in table.columns]).order_by(*keys)
            out[table.name] = [tuple(r) for r in conn.execute(query)]
    return out


def told(side: Side) -> list[tuple[Any, ...]]:
    return [(e.seq, e.run_id, e.time, e.type, e.step_id, e.iteration, e.data) for e in side.told]


def same(pair: Pair) -> None:
    rows = dump(pair.now.journal)
    assert rows == dump(pair.before.journal)
    assert rows["overture_events"]  # (something was compared)
    assert told(pair.now) == told(pair.before)


def new_run(journal: Journal, run_id: str) -> None:
    journal.create_run(
        run_id,
        workflow_name="wf",
        workflow_version=1,
        document={"name": "wf", "steps": []},
        inputs={},
        now=1.0,
        deadline_at=None,
        worker_id="w",
    )


def both(pair: Pair, *run_ids: str) -> None:
    for side in (pair.now, pair.before):
        for run_id in run_ids:
            new_run(side.journal, run_id)


# -- the tests -------------------------------------------------------------------------------------


def test_a_cancel_request_is_one_round_trip_with_the_same_rows(pair: Pair) -> None:
    both(pair, "r")
    _, trips = counted(pair.now.journal, lambda: pair.now.journal.request_cancel("r", 2.0, by="s3cret ops"))
    _, before = counted(
        pair.before.journal, lambda: pair.before.journal.request_cancel("r", 2.0, by="s3cret ops")
    )
    assert (trips.writer, trips.pooled) == (1, 0)
    assert before.writer == 4  # BEGIN, UPDATE, INSERT, COMMIT
    # asked twice: the flag stays, a second event
    pair.now.journal.request_cancel("r", 3.0)
    pair.before.journal.request_cancel("r", 3.0)
    same(pair)
    assert pair.now.journal.cancel_requested("r")
    assert pair.now.told[-1].data == {"by": None} and pair.now.told[-2].data == {"by": "*** ops"}


def test_a_cancel_request_for_no_run_raises_and_writes_nothing(pair: Pair) -> None:
    both(pair, "r")
    with round_trips(pair.now.journal) as trips, pytest.raises(RunNotFound):
        pair.now.journal.request_cancel("nope", 2.0)
    with pytest.raises(RunNotFound):
        pair.before.journal.request_cancel("nope", 2.0)
    assert trips.writer == 1
    same(pair)
    assert [e.type for e in pair.now.told] == ["run.started"]


def test_an_approval_request_is_one_round_trip_with_the_same_rows(pair: Pair) -> None:
    both(pair, "r")
    asks: list[dict[str, Any]] = [
        {
            "step_id": "ok",
            "iteration": -1,
            "prompt": "ship s3cret?",
            "approvers": ["ann"],
            "inputs": {"k": "s3cret"},
        },
        {"step_id": "each", "iteration": 2, "prompt": None, "approvers": None, "inputs": None},
        # asked again (a resumed run): the approval keeps its first prompt and time, the step and
        # the event are written again
        {"step_id": "ok", "iteration": -1, "prompt": "again", "approvers": [], "inputs": [1]},
    ]
    for i, ask in enumerate(asks):
        args = {**ask, "now": 2.0 + i}
        _, trips = counted(pair.now.journal, lambda a=args: pair.now.journal.request_approval("r", **a))  # type: ignore[misc]
        _, before = counted(
            pair.before.journal, lambda a=args: pair.before.journal.request_approval("r", **a)
        )  # type: ignore[misc]
        assert (trips.writer, trips.pooled) == (1, 0)
        assert before.writer in (
            5,
            7,
        )  # BEGIN, SELECT, (INSERT,) UPDATE (+ INSERT) of the step, event, COMMIT
    same(pair)
    (ok,) = [a for a in pair.now.journal.approvals("r") if a.step_id == "ok"]
    assert (ok.prompt, ok.requested_at) == ("ship s3cret?", 2.0)  # the first request's, as it was
    assert pair.now.journal.step_results("r")[("ok", -1)].inputs == [1]


def test_an_approval_decision_is_one_round_trip_with_the_same_rows(pair: Pair) -> None:
    both(pair, "r")
    for side, ask in ((pair.now, Journal.request_approval), (pair.before, Journal.request_approval)):
        ask(side.journal, "r", "ok", -1, prompt="go?", approvers=None, now=2.0, inputs={})  # type: ignore[operator]
        ask(side.journal, "r", "each", 0, prompt="go?", approvers=None, now=2.0, inputs={})  # type: ignore[operator]
    cases = [
        ("ok", -1, True, "ann", "fine s3cret"),  # pending: decided, told
        ("ok", -1, False, "bob", None),  # decided already: False, nothing written
        ("none", -1, True, "ann", None),  # no such approval: False
        ("each", 0, False, "cy", None),
    ]
    for step_id, iteration, approved, by, comment in cases:
        args = {"approved": approved, "by": by, "comment": comment, "now": 3.0}
        got, trips = counted(
            pair.now.journal,
            lambda s=step_id, i=iteration, a=args: pair.now.journal.decide_approval("r", s, i, **a),  # type: ignore[misc]
        )
        want, before = counted(
            pair.before.journal,
            lambda s=step_id, i=iteration, a=args: pair.before.journal.decide_approval("r", s, i, **a),  # type: ignore[misc]
        )
        assert got == want
        assert (trips.writer, trips.pooled) == (1, 0)
        assert before.writer in (3, 4)  # BEGIN, UPDATE, (event,) COMMIT or ROLLBACK
    same(pair)
    assert [e.type for e in pair.now.told].count("approval.given") == 2


def test_setting_and_firing_a_timer_are_one_round_trip_each_with_the_same_rows(pair: Pair) -> None:
    both(pair, "r")
    sets: list[dict[str, Any]] = [
        {
            "step_id": "w",
            "iteration": -1,
            "kind": "wait",
            "wake_at": 9.0,
            "now": 2.0,
            "event": "step.waiting",
            "data": {"until": 9.0, "s": "s3cret"},
        },
        {"step_id": "w2", "iteration": 1, "kind": "wait", "wake_at": 8.0, "now": 2.0},
        # set again (a resumed run): the timer's row is updated in place
        {
            "step_id": "w",
            "iteration": -1,
            "kind": "wait",
            "wake_at": 10.0,
            "now": 3.0,
            "event": "step.waiting",
        },
    ]
    for args in sets:
        step_id, iteration = args.pop("step_id"), args.pop("iteration")
        _, trips = counted(
            pair.now.journal,
            lambda s=step_id, i=iteration, a=args: pair.now.journal.set_timer("r", s, i, **a),  # type: ignore[misc]
        )
        _, before = counted(
            pair.before.journal,
            lambda s=step_id, i=iteration, a=args: pair.before.journal.set_timer("r", s, i, **a),  # type: ignore[misc]
        )
        assert (trips.writer, trips.pooled) == (1, 0)
        assert before.writer >= 5
    same(pair)
    fires: list[dict[str, Any]] = [
        {"step_id": "w", "iteration": -1, "now": 10.0, "output": {"waited": 8.0, "s": "s3cret"}},
        {"step_id": "w2", "iteration": 1, "now": 10.0, "output": None, "event": None},
        {
            "step_id": "gone",
            "iteration": -1,
            "now": 10.0,
            "output": 1,
            "event": "step.succeeded",
            "data": {"x": 1},
        },
    ]
    for args in fires:
        step_id, iteration, now = args.pop("step_id"), args.pop("iteration"), args.pop("now")
        _, trips = counted(
            pair.now.journal,
            lambda s=step_id, i=iteration, n=now, a=args: pair.now.journal.fire_timer("r", s, i, n, **a),  # type: ignore[misc]
        )
        _, before = counted(
            pair.before.journal,
            lambda s=step_id, i=iteration, n=now, a=args: pair.before.journal.fire_timer("r", s, i, n, **a),  # type: ignore[misc]
        )
        assert (trips.writer, trips.pooled) == (1, 0)
        assert before.writer >= 4
    same(pair)
    assert {k: t.fired for k, t in pair.now.journal.timers("r").items()} == {("w", -1): True, ("w2", 1): True}


def test_a_compensation_row_and_an_appended_event_are_one_round_trip_each_with_the_same_rows(
    pair: Pair,
) -> None:
    both(pair, "r")
    undos: list[dict[str, Any]] = [
        {"step_id": "a", "iteration": -1, "state": UndoState.RUNNING, "action": "a.undo"},
        {
            "step_id": "a",
            "iteration": -1,
            "state": UndoState.FAILED,
            "action": "a.undo",
            "error": {"message": "s3cret"},
            "event": "compensation.step_failed",
            "data": {"m": "s3cret"},
        },
        {
            "step_id": "b",
            "iteration": 3,
            "state": UndoState.LEFT,
            "action": "b.undo",
            "event": "compensation.step_left",
        },
    ]
    for args in undos:
        step_id, iteration = args.pop("step_id"), args.pop("iteration")
        _, trips = counted(
            pair.now.journal,
            lambda s=step_id, i=iteration, a=args: pair.now.journal.put_undo("r", s, i, 2.0, **a),  # type: ignore[misc]
        )
        counted(
            pair.before.journal,
            lambda s=step_id, i=iteration, a=args: pair.before.journal.put_undo("r", s, i, 2.0, **a),  # type: ignore[misc]
        )
        assert (trips.writer, trips.pooled) == (1, 0)
    event, trips = counted(
        pair.now.journal,
        lambda: pair.now.journal.append_event(
            "r", "log", 3.0, step_id="l", iteration=1, data={"m": "s3cret"}
        ),
    )
    want, before = counted(
        pair.before.journal,
        lambda: pair.before.journal.append_event(
            "r", "log", 3.0, step_id="l", iteration=1, data={"m": "s3cret"}
        ),
    )
    assert event == want
    assert (trips.writer, trips.pooled, before.writer) == (1, 0, 3)
    same(pair)


def _start(journal: Journal, step_id: str, iteration: int, kind: str, attempt: int = 1) -> int:
    return journal.start_attempt(
        run_id="r", workflow_name="wf", step_id=step_id, iteration=iteration, attempt=attempt, kind=kind,
        action=f"{step_id}.s3cret" if kind == "action" else f"{step_id}.undo",
        idempotency_key=f"r:{step_id}:{iteration}",
        now=2.0, worker_id="w", runs_in_flight=None, propensity=None, candidates=None, inputs={},
    )  # fmt: skip


def test_interrupting_the_attempts_a_crash_left_is_one_write_statement_with_the_same_rows(pair: Pair) -> None:
    both(pair, "r", "other")
    for side in (pair.now, pair.before):
        j = side.journal
        done = _start(j, "first", -1, "action")
        j.finish_attempt(done, 2.5, outcome="succeeded", output={}, step={"state": "succeeded", "output": {}},
                         event="step.succeeded")  # fmt: skip
        _start(j, "a", -1, "action", attempt=2)
        _start(j, "b", 4, "action")
        _start(j, "c", -1, "compensation")
    # a run with none in flight: the one read, as before
    got, trips = counted(pair.now.journal, lambda: pair.now.journal.interrupt_attempts("other", 5.0))
    assert (got, trips.writer, trips.pooled) == ([], 1, 0)
    got, trips = counted(pair.now.journal, lambda: pair.now.journal.interrupt_attempts("r", 5.0))
    want, before = counted(pair.before.journal, lambda: pair.before.journal.interrupt_attempts("r", 5.0))
    # the read of those in flight, then one statement (was: the read, BEGIN, the read again,
    # an UPDATE and an INSERT per attempt, COMMIT)
    assert (trips.writer, trips.pooled) == (2, 0)
    assert before.writer == 4 + 2 * 3
    assert got == want and [a.step_id for a in got] == ["a", "b", "c"]
    same(pair)
    assert [e.type for e in pair.now.told[-3:]] == ["step.interrupted"] * 2 + [
        "compensation.step_interrupted"
    ]
    assert pair.now.told[-1].data == {"attempt": 1, "action": "c.undo"}
    assert pair.now.told[-3].data == {"attempt": 2, "action": "a.***"}
    assert not pair.now.journal._open_attempts
    # again: nothing left in flight
    assert pair.now.journal.interrupt_attempts("r", 6.0) == []


def start_undo(j: Journal, step_id: str, iteration: int, attempt: int, now: float) -> int:
    return j.start_attempt(
        run_id="r", workflow_name="wf", step_id=step_id, iteration=iteration, attempt=attempt,
        kind="compensation", action=f"{step_id}.undo", idempotency_key=f"r:{step_id}:{iteration}:undo",
        now=now, worker_id="w", runs_in_flight=None, propensity=None, candidates=None, inputs={"k": "s3cret"},
    )  # fmt: skip


def test_a_compensations_attempt_start_and_end_are_one_round_trip_each_with_the_same_rows(pair: Pair) -> None:
    both(pair, "r")
    ends: list[dict[str, Any]] = [
        {"outcome": "failed", "error": {"type": "x", "class": "X", "message": "s3cret", "transient": True},
         "undo": {"state": UndoState.RUNNING.value, "error": {"message": "s3cret"}},
         "event": "compensation.step_retrying", "data": {"attempt": 1}},
        {"outcome": "succeeded", "output": {"done": "s3cret"},
         "undo": {"state": UndoState.UNDONE.value, "output": {"done": 1}, "error": None},
         "event": "compensation.step_undone", "data": {"attempt": 2}},
    ]  # fmt: skip
    for number, end in enumerate(ends, start=1):
        now = 2.0 + number
        new_id, trips = counted(
            pair.now.journal, lambda n=number, t=now: start_undo(pair.now.journal, "a", -1, n, t)
        )  # type: ignore[misc]
        old_id, before = counted(
            pair.before.journal,
            lambda n=number, t=now: start_undo(pair.before.journal, "a", -1, n, t),  # type: ignore[misc]
        )
        assert new_id == old_id
        assert (trips.writer, trips.pooled) == (1, 0)
        assert before.writer == (6 if number == 1 else 5)  # BEGIN, attempt, UPDATE (+ INSERT), event, COMMIT
        _, trips = counted(
            pair.now.journal,
            lambda i=new_id, t=now, e=end: pair.now.journal.finish_attempt(i, t + 0.5, **e),  # type: ignore[misc]
        )
        _, before = counted(
            pair.before.journal,
            lambda i=old_id, t=now, e=end: pair.before.journal.finish_attempt(i, t + 0.5, **e),  # type: ignore[misc]
        )
        assert (trips.writer, trips.pooled) == (1, 0)
        assert before.writer == 5  # BEGIN, the attempt, the compensation's UPDATE, the event, COMMIT
    same(pair)
    # an undo's end for a compensation without a row (started by a version that wrote none) inserts it
    attempt_id = start_undo(pair.now.journal, "b", 1, 1, 5.0)
    with pair.now.journal._engine.begin() as conn:
        from runtime.journal_schema import compensations

        conn.execute(compensations.delete().where(compensations.c.step_id == "b"))
    pair.now.journal.finish_attempt(
        attempt_id, 6.0, outcome="succeeded", undo={"state": "undone", "action": "b.undo"}, event=None
    )
    assert pair.now.journal.undo_results("r")[("b", 1)].state == UndoState.UNDONE
