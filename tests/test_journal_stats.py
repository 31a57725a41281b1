"""The routing stats the journal hands a router (`runtime.journal_stats.action_stats`), read through a
real engine on a SQLite file, and the optimizer's replay of them (`optimizer.features.WindowStats`,
what training and the benchmark's twin of the engine use) giving the same numbers."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from runtime_support import CATALOG, settle, workflow

from optimizer.features import WindowStats
from optimizer.history import load_history
from runtime import Engine, Journal, ManualClock
from runtime.errors import TransientActionError
from runtime.invocation import ActionCall
from runtime.routing import (
    LATEST_HALF_LIFE_S,
    LATEST_MAX_ATTEMPTS,
    NEWEST_ATTEMPTS,
    ActionStats,
    Conditions,
    RouteChoice,
)
from workflow.document import Step


class TimedInvoker:
    """Each call takes `durations[i]` seconds on the engine's clock; calls listed in `fail` raise."""

    def __init__(self, clock: ManualClock, durations: Sequence[float], fail: set[int]) -> None:
        self.clock = clock
        self.durations = list(durations)
        self.fail = fail
        self.calls = 0

    async def invoke(self, call: ActionCall) -> dict[str, Any]:
        i = self.calls
        self.calls += 1
        await self.clock.sleep(self.durations[min(i, len(self.durations) - 1)])
        if i in self.fail:
            raise TransientActionError("down", type="http_503")
        return {"call": i}


class Recorder:
    """Calls the step's own action and keeps the conditions it was handed."""

    def __init__(self) -> None:
        self.seen: list[Conditions] = []

    def choose(self, step: Step, candidates: Sequence[str], conditions: Conditions) -> RouteChoice:
        self.seen.append(conditions)
        return RouteChoice(step.action, 1.0)


def expected_latest(rows: Sequence[tuple[float, bool, float]]) -> tuple[float, float, float, float]:
    """(latest_calls, latest_error_rate, latest_mean_latency_s, latest_started_at) written out from
    the definition in `ActionStats`: newest first, each weighted 0.5^(age / half-life)."""
    newest = sorted(rows, key=lambda r: r[0], reverse=True)[:LATEST_MAX_ATTEMPTS]
    ref = newest[0][0]
    weights = [0.5 ** ((ref - started) / LATEST_HALF_LIFE_S) for started, _, _ in newest]
    total = sum(weights)
    failed = sum(w for w, (_, ok, _) in zip(weights, newest, strict=True) if not ok)
    latency = sum(w * d for w, (_, _, d) in zip(weights, newest, strict=True))
    return total, failed / total, latency / total, ref


@pytest.fixture()
def journal(tmp_path: Path) -> Any:
    j = Journal.open(tmp_path / "journal.db")
    yield j
    j.close()


async def test_the_engine_hands_the_router_age_weighted_stats_of_the_newest_attempts(
    journal: Journal,
) -> None:
    clock = ManualClock(start=1_767_225_600.0)
    # runs two minutes apart: five quick successes, two slower failures, then the run looked at
    invoker = TimedInvoker(clock, [1.0] * 5 + [4.0, 6.0, 1.0], fail={5, 6})
    router = Recorder()
    wf = workflow({"steps": [{"id": "m", "action": "mail.send", "alternatives": ["mail.send_backup"]}]})
    engine = Engine(CATALOG, journal, invoker, clock=clock, router=router, rng=random.Random(1),
                    worker_id="test", stats_window_s=600.0)
    async with engine:
        for _ in range(8):
            run_id = await engine.start_run(wf)
            await settle(engine, clock, run_id)
            clock.advance(120.0)

    attempts = journal.attempts(action="mail.send")
    assert len(attempts) == 8 and [a.outcome for a in attempts[5:7]] == ["failed", "failed"]
    last = router.seen[-1]
    # the window (600 s before the eighth decision) holds the attempts of runs 4 to 7
    in_window = [(a.started_at, a.outcome == "succeeded", a.duration_s or 0.0)
                 for a in attempts[:7] if a.started_at >= last.now - 600.0]
    assert [a.started_at >= last.now - 600.0 for a in attempts[:7]] == [False] * 3 + [True] * 4
    stats = last.recent["mail.send"]
    assert stats.calls == 4
    assert stats.error_rate == pytest.approx(2 / 4)
    assert stats.mean_latency_s == pytest.approx((1.0 + 1.0 + 4.0 + 6.0) / 4)
    calls, error_rate, latency, newest = expected_latest(in_window)
    assert stats.latest_started_at == newest == attempts[6].started_at
    assert stats.latest_calls == pytest.approx(calls, rel=1e-12)
    assert stats.latest_error_rate == pytest.approx(error_rate, rel=1e-12)
    assert stats.latest_mean_latency_s == pytest.approx(latency, rel=1e-12)
    # the two newest attempts failed: weighted by age they outweigh the two older successes
    assert stats.latest_error_rate > 0.6
    # evidence ages by the same factor for every attempt: carried forward to the decision's moment
    age = last.now - newest
    assert stats.latest_calls_at(last.now) == pytest.approx(calls * 0.5 ** (age / LATEST_HALF_LIFE_S))
    # and one by one, newest first
    by_start = sorted(in_window, reverse=True)
    assert stats.newest_started_at == tuple(s for s, _, _ in by_start)
    assert stats.newest_failed == (True, True, False, False) == tuple(not ok for _, ok, _ in by_start)
    # an action without attempts reports no evidence at all
    assert last.recent["mail.send_backup"] == ActionStats(calls=0, error_rate=0.0, mean_latency_s=None)

    # the optimizer's replay of the same journal gives the router's numbers
    replay = WindowStats(window_s=600.0)
    for rec in sorted(load_history(journal), key=lambda r: r.ended_at):
        if rec.ended_at <= last.now:
            replay.add(rec)
    mine = replay.query("mail.send", last.now)
    assert (mine.calls, mine.latest_started_at) == (stats.calls, stats.latest_started_at)
    assert mine.error_rate == pytest.approx(stats.error_rate, rel=1e-12)
    assert mine.mean_latency_s == pytest.approx(stats.mean_latency_s, rel=1e-12)
    assert mine.latest_calls == pytest.approx(stats.latest_calls, rel=1e-12)
    assert mine.latest_error_rate == pytest.approx(stats.latest_error_rate, rel=1e-12)
    assert mine.latest_mean_latency_s == pytest.approx(stats.latest_mean_latency_s, rel=1e-12)
    assert mine.newest_started_at == pytest.approx(stats.newest_started_at, rel=1e-12)
    assert mine.newest_failed == stats.newest_failed


async def test_the_weighted_stats_read_only_the_newest_attempts(journal: Journal) -> None:
    clock = ManualClock(start=1_767_225_600.0)
    n = LATEST_MAX_ATTEMPTS + 30
    # one attempt per second, every seventh failing
    invoker = TimedInvoker(clock, [1.0], fail={i for i in range(n) if i % 7 == 0})
    wf = workflow({"steps": [{"id": "each", "action": "work.do", "for_each": list(range(n)), "concurrency": 1,
                              "retry": {"max_attempts": 2, "initial_interval_s": 1}}]})
    engine = Engine(CATALOG, journal, invoker, clock=clock, rng=random.Random(1), worker_id="test")
    async with engine:
        run_id = await engine.start_run(wf)
        await settle(engine, clock, run_id, max_jumps=10 * n)
    attempts = journal.attempts(action="work.do")
    finished = [(a.started_at, a.outcome == "succeeded", a.duration_s or 0.0)
                for a in attempts if a.outcome in ("succeeded", "failed", "timeout")]
    assert len(finished) > LATEST_MAX_ATTEMPTS
    stats = journal.action_stats(["work.do"], since=clock.now() - 3600.0)["work.do"]
    assert stats.calls == len(finished)
    calls, error_rate, latency, newest = expected_latest(finished)
    assert stats.latest_started_at == newest
    assert stats.latest_calls == pytest.approx(calls, rel=1e-12)
    assert stats.latest_error_rate == pytest.approx(error_rate, rel=1e-12)
    assert stats.latest_mean_latency_s == pytest.approx(latency, rel=1e-12)
    # one by one: only the newest few, newest first
    by_start = sorted(finished, key=lambda r: r[0], reverse=True)
    assert len(stats.newest_started_at) == len(stats.newest_failed) == NEWEST_ATTEMPTS
    assert stats.newest_started_at == tuple(s for s, _, _ in by_start[:NEWEST_ATTEMPTS])
    assert stats.newest_failed == tuple(not ok for _, ok, _ in by_start[:NEWEST_ATTEMPTS])
    # the cut is real: all finished attempts would weigh more
    everything = sum(0.5 ** ((newest - s) / LATEST_HALF_LIFE_S) for s, _, _ in finished)
    assert stats.latest_calls < everything - 1e-9
