"""The routing stats a routed step hands its router (`runtime.routing_stats.RoutingStats`): the
journal is read now and then and this process's attempts are merged in, so the router sees what
`Journal.action_stats` would say, without reading the journal at every dispatch."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from runtime_support import CATALOG, settle, workflow

from runtime import Engine, Journal, ManualClock, MemoryJournal
from runtime.errors import TransientActionError
from runtime.invocation import ActionCall
from runtime.journal_memory import AnyJournal
from runtime.routing import ActionStats, Conditions, RouteChoice
from runtime.routing_stats import RoutingStats
from workflow.document import Step

T0 = 1_767_225_600.0
WINDOW_S = 3600.0


class FakeMonotonic:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class FlakyInvoker:
    """Each call takes a second on the engine's clock; the calls numbered in `fail` raise."""

    def __init__(self, clock: ManualClock, fail: set[int]) -> None:
        self.clock, self.fail, self.calls = clock, fail, 0

    async def invoke(self, call: ActionCall) -> dict[str, Any]:
        i = self.calls
        self.calls += 1
        await self.clock.sleep(1.0)
        if i in self.fail:
            raise TransientActionError("down", type="http_503")
        return {"call": i}


class Checking:
    """A router that picks the primary and notes, beside what it was handed, what the journal
    itself says about the same window at that moment."""

    def __init__(self, journal: AnyJournal) -> None:
        self.journal = journal
        self.seen: list[tuple[dict[str, ActionStats], dict[str, ActionStats]]] = []

    def choose(self, step: Step, candidates: Sequence[str], conditions: Conditions) -> RouteChoice:
        truth = self.journal.action_stats(candidates, since=conditions.now - WINDOW_S)
        self.seen.append((dict(conditions.recent), truth))
        return RouteChoice(step.action, 1.0)


def same(a: ActionStats, b: ActionStats) -> bool:
    return (
        (a.calls, a.latest_started_at, a.newest_started_at, a.newest_failed)
        == (b.calls, b.latest_started_at, b.newest_started_at, b.newest_failed)
        and a.error_rate == pytest.approx(b.error_rate, rel=1e-12)
        and (a.mean_latency_s is None) == (b.mean_latency_s is None)
        and (a.mean_latency_s is None or a.mean_latency_s == pytest.approx(b.mean_latency_s, rel=1e-12))
        and a.latest_calls == pytest.approx(b.latest_calls, rel=1e-12)
        and a.latest_error_rate == pytest.approx(b.latest_error_rate, rel=1e-12)
    )


@pytest.fixture(params=["sqlite", "memory"])
def journal(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AnyJournal]:
    j: AnyJournal = Journal.open(tmp_path / "journal.db") if request.param == "sqlite" else MemoryJournal()
    yield j
    j.close()


async def test_the_router_sees_what_the_journal_says_with_few_reads_of_the_window(
    journal: AnyJournal,
) -> None:
    clock = ManualClock(start=T0)
    # every third call fails and is retried, so outcomes, retries and durations all count
    invoker = FlakyInvoker(clock, fail={i for i in range(200) if i % 3 == 1})
    router = Checking(journal)
    wf = workflow({"steps": [{"id": "m", "action": "mail.send", "alternatives": ["mail.send_backup"],
                              "retry": {"max_attempts": 3, "initial_interval_s": 1}}]})
    engine = Engine(CATALOG, journal, invoker, clock=clock, router=router, rng=random.Random(1),
                    worker_id="test", stats_window_s=WINDOW_S)
    engine.routing_stats = RoutingStats(journal, WINDOW_S, monotonic=FakeMonotonic())
    async with engine:
        for _ in range(20):
            run_id = await engine.start_run(wf)
            assert (await settle(engine, clock, run_id)).succeeded
    assert len(router.seen) > 20  # the retries asked again
    assert router.seen[-1][1]["mail.send"].calls > 20 and router.seen[-1][1]["mail.send"].error_rate > 0.2
    for handed, truth in router.seen:
        for action in ("mail.send", "mail.send_backup"):
            assert same(handed[action], truth[action]), (action, handed[action], truth[action])
    # the journal was read again only when the window (an hour) had moved on by a hundredth of
    # itself (36 s of the engine's clock), not at each of the decisions
    moves = (clock.now() - T0) / (WINDOW_S / 100)
    assert 1 <= engine.routing_stats.reads <= 1 + moves < len(router.seen) / 10


def finish(journal: AnyJournal, action: str, started_at: float, *, ok: bool, took: float = 1.0) -> None:
    attempt_id = journal.start_attempt(
        run_id="other", workflow_name="w", step_id="s", iteration=-1, attempt=1, kind="action",
        action=action, idempotency_key=f"k{started_at}", now=started_at, worker_id="elsewhere",
        runs_in_flight=None, propensity=None, candidates=None, inputs={},
    )
    journal.finish_attempt(attempt_id, started_at + took, outcome="succeeded" if ok else "failed")


def test_another_processes_attempts_reach_the_totals_within_max_age(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    mine, theirs = Journal.open(path), Journal.open(path)
    try:
        wall = FakeMonotonic()
        stats = RoutingStats(mine, WINDOW_S, max_age_s=1.0, monotonic=wall)
        now = T0
        for i in range(10):
            finish(theirs, "geo.a", now - 100 + i, ok=True)
        first = stats.stats(["geo.a"], now=now)["geo.a"]
        assert (first.calls, first.error_rate) == (10, 0.0)
        # another worker's outage: its failures reach this process's router with the next read,
        # once max_age_s of wall time has passed, in the totals and the newest attempts alike
        for i in range(3):
            finish(theirs, "geo.a", now + i, ok=False)
        now += 5.0
        soon = stats.stats(["geo.a"], now=now)["geo.a"]
        assert (soon.calls, soon.error_rate, soon.newest_failed[:3]) == (10, 0.0, (False,) * 3)
        wall.t += 1.0
        later = stats.stats(["geo.a"], now=now)["geo.a"]
        assert later.calls == 13 and later.error_rate == pytest.approx(3 / 13)
        assert later.newest_failed[:4] == (True, True, True, False)
        assert stats.reads == 2
        assert same(later, mine.action_stats(["geo.a"], since=now - WINDOW_S)["geo.a"])
    finally:
        mine.close()
        theirs.close()


def test_the_window_moving_on_drops_what_left_it(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path / "journal.db")
    try:
        stats = RoutingStats(journal, WINDOW_S, monotonic=FakeMonotonic())
        finish(journal, "geo.a", T0, ok=False)
        finish(journal, "geo.a", T0 + 1000, ok=True)
        assert stats.stats(["geo.a"], now=T0 + 1500)["geo.a"].calls == 2
        # within a hundredth of the window (36 s) the totals stand as read
        assert stats.stats(["geo.a"], now=T0 + 1530)["geo.a"].calls == 2 and stats.reads == 1
        # the first attempt left the window: the move past 36 s reads the totals again
        moved = stats.stats(["geo.a"], now=T0 + WINDOW_S + 100)["geo.a"]
        assert (moved.calls, moved.error_rate, stats.reads) == (1, 0.0, 2)
        # and a clock set back reads them again too (the read covered another window)
        back = stats.stats(["geo.a"], now=T0 + 1500)["geo.a"]
        assert (back.calls, stats.reads) == (2, 3)
    finally:
        journal.close()


def test_attempts_counted_in_process_are_not_counted_twice_after_a_read(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path / "journal.db")
    try:
        wall = FakeMonotonic()
        stats = RoutingStats(journal, WINDOW_S, monotonic=wall)
        assert stats.stats(["geo.a"], now=T0)["geo.a"].calls == 0
        # as the engine does: the journal's commit, then the count in process
        finish(journal, "geo.a", T0, ok=False, took=2.0)
        stats.finished("geo.a", "failed", 1, T0, T0 + 2.0)
        stats.finished("geo.a", "interrupted", 2, T0, T0 + 2.0)  # not a finished attempt: not counted
        stats.finished("geo.b", "succeeded", 3, T0, T0 + 2.0)  # never asked about: nothing kept
        before = stats.stats(["geo.a"], now=T0 + 3)["geo.a"]
        assert (before.calls, before.error_rate, before.mean_latency_s) == (1, 1.0, 2.0)
        wall.t += 5.0
        after = stats.stats(["geo.a"], now=T0 + 3)["geo.a"]
        assert (after.calls, after.error_rate, after.mean_latency_s, stats.reads) == (1, 1.0, 2.0, 2)
    finally:
        journal.close()


def test_newest_attempts_leave_the_window_between_reads(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path / "journal.db")
    try:
        stats = RoutingStats(journal, WINDOW_S, monotonic=FakeMonotonic())
        finish(journal, "geo.a", T0, ok=False)
        finish(journal, "geo.a", T0 + 30, ok=True)
        both = stats.stats(["geo.a"], now=T0 + WINDOW_S - 1)["geo.a"]
        assert both.newest_failed == (False, True)
        # six seconds on, no read: the failure left the window and the age-weighted stats with it
        # (the totals stand as read until the window has moved on by 1%)
        one = stats.stats(["geo.a"], now=T0 + WINDOW_S + 5)["geo.a"]
        assert (one.newest_failed, one.latest_error_rate, one.calls, stats.reads) == ((False,), 0.0, 2, 1)
        assert one.latest_started_at == both.latest_started_at == T0 + 30
    finally:
        journal.close()
