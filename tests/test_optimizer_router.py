"""The router's outage filter, driven through the window stats the journal reports (replayed by
`WindowStats`): each attempt of the newest few taken in one by one, so that a few failures in a row
after a long healthy run move traffic, a lucky success in the middle of an outage does not bring it
back, and a recovery does."""

from __future__ import annotations

import pytest
from optimizer_support import T0, router_models

from optimizer.features import WindowStats
from optimizer.models import ModelSet
from optimizer.records import ERROR, OK, AttemptRecord
from optimizer.router import LearnedRouter
from runtime.routing import ActionStats, Conditions
from workflow.document import Step

STEP = Step(id="g", action="geo.fast", alternatives=["geo.slow"])
CANDIDATES = ["geo.fast", "geo.slow"]
NOON = T0 + 12 * 3600
SPACING_S = 120.0

_MODELS: list[ModelSet] = []


def models() -> ModelSet:
    if not _MODELS:
        _MODELS.append(router_models())
    return _MODELS[0]


class Replay:
    """geo.fast called every two minutes with the outcomes given; geo.slow healthy all along.
    `conditions()` is what the engine would hand the router at the next call."""

    def __init__(self) -> None:
        self.window = WindowStats(window_s=3600.0)
        self.i = 0

    def now(self) -> float:
        return NOON + self.i * SPACING_S

    def call(self, *outcomes: bool, router: LearnedRouter | None = None) -> None:
        """One call per outcome; `router` is asked before each, as the engine asks at each dispatch."""
        for ok in outcomes:
            if router is not None:
                verdict(router, self)
            at = self.now()
            for action, duration, good in (("geo.fast", 1.0, ok), ("geo.slow", 3.0, True)):
                self.window.add(AttemptRecord(run_id=f"r{self.i}-{action}", workflow="w", step_id="g",
                                              action=action, started_at=at, ended_at=at + duration,
                                              outcome=OK if good else ERROR))
            self.i += 1

    def conditions(self) -> Conditions:
        now = self.now()
        recent = {}
        for action in CANDIDATES:
            r = self.window.query(action, now)
            recent[action] = ActionStats(r.calls, r.error_rate, r.mean_latency_s, r.latest_calls,
                                         r.latest_error_rate, r.latest_mean_latency_s, r.latest_started_at,
                                         r.newest_started_at, r.newest_failed)
        return Conditions(now, 3, "w", recent)


def greedy() -> LearnedRouter:
    return LearnedRouter(models(), epsilon=0.0, uncertainty=0.0)


def verdict(router: LearnedRouter, replay: Replay) -> tuple[str, float]:
    """(the router's choice, its probability that geo.fast is degraded) at the next call."""
    cond = replay.conditions()
    score = router.score("geo.fast", cond)
    assert score is not None
    return router.choose(STEP, CANDIDATES, cond).action, score.change_probability


def test_failures_in_a_row_after_an_hour_of_successes_move_the_router() -> None:
    router, replay = greedy(), Replay()
    replay.call(*[True] * 30)
    action, healthy = verdict(router, replay)
    assert action == "geo.fast" and healthy < 0.01
    # geo.slow costs three times as much: a failure at a service that fails 2% of the time raises
    # the suspicion without being worth leaving it yet; a second in a row is a close call (the two
    # costs within a few percent of each other, which side wins turns on the models' third digit)
    replay.call(False)
    action, one = verdict(router, replay)
    assert action == "geo.fast" and healthy < one
    replay.call(False)
    _, two = verdict(router, replay)
    assert one < two < 0.5
    # the third in a row is an outage (the aggregate test of the newest attempts, be976b1, needed a
    # fourth on this replay)
    replay.call(False)
    action, three = verdict(router, replay)
    assert action == "geo.slow" and three > 0.5


def test_a_lucky_success_in_an_outage_does_not_bring_the_router_back() -> None:
    router, replay = greedy(), Replay()
    replay.call(*[True] * 30)
    verdict(router, replay)
    replay.call(False, False, False, router=router)
    _, down = verdict(router, replay)
    # a probe that happens to succeed while most calls fail
    replay.call(True)
    action, after_lucky = verdict(router, replay)
    # it is evidence (the suspicion falls) but not enough to go back to a service just seen failing
    assert action == "geo.slow"
    assert 0.1 < after_lucky < down
    # the outage goes on: one more failure and the verdict is firmer than before the lucky call
    replay.call(False)
    action, again = verdict(router, replay)
    assert action == "geo.slow" and again > down


def test_a_recovery_is_noticed_after_a_few_successes() -> None:
    router, replay = greedy(), Replay()
    replay.call(*[True] * 30)
    verdict(router, replay)
    replay.call(False, False, False, router=router)
    assert verdict(router, replay)[0] == "geo.slow"
    successes = 0
    while verdict(router, replay)[0] == "geo.slow":
        replay.call(True)
        successes += 1
        assert successes <= 3, "the recovery was not noticed"
    assert verdict(router, replay)[1] < 0.3


def test_the_verdict_fades_without_news_and_each_attempt_counts_once() -> None:
    router, replay = greedy(), Replay()
    replay.call(*[True] * 30)
    verdict(router, replay)
    replay.call(False, False, False, router=router)
    cond = replay.conditions()
    first = router.score("geo.fast", cond)
    # asked again about the same attempts, the router has nothing new to take in
    again = router.score("geo.fast", cond)
    assert first is not None and again is not None
    assert again.change_probability == first.change_probability > 0.5
    # two hours without news: the suspicion drifts back towards the prior (outages end)
    later = Conditions(cond.now + 7200.0, 3, "w", {})
    faded = router.score("geo.fast", later)
    assert faded is not None and faded.change_probability < 0.2


def test_a_window_moves_a_rate_backed_by_many_training_attempts_less():
    # the same window (12 failures in 40 calls) beside a model fitted on a few attempts at this time
    # of day, and beside one fitted on many: the model's rate counts as the attempts behind it (at
    # least `prior_calls`, at most the window's calls), so the window moves the well-supported rate
    # less, and never less than halfway: a full window has as much say as the past
    from optimizer_support import attempts, lognormal

    from optimizer.models import train

    def fitted(n: int, spacing_s: float) -> LearnedRouter:
        recs = attempts("geo.fast", n, duration=lognormal(1.0), p_fail=lambda t: 0.02, step_id="g",
                        spacing_s=spacing_s, start=NOON - n * spacing_s)
        return LearnedRouter(train(recs, window_s=3600), epsilon=0.0, uncertainty=0.0, change_prior=0.0)

    window = ActionStats(40, 0.3, 1.0)
    cond = Conditions(NOON + 86_400.0, 0, "w", {"geo.fast": window})
    few = fitted(40, 3600.0).score("geo.fast", cond)
    many = fitted(3000, 60.0).score("geo.fast", cond)
    assert few is not None and many is not None
    # few rows at noon: the configured prior (10 calls) against the window's 40
    assert few.failure_probability == pytest.approx((0.02 * 10 + 0.3 * 40) / 50, abs=0.02)
    # hundreds of rows at noon: worth as much as the window's 40 calls, no more
    assert many.failure_probability == pytest.approx((0.02 * 40 + 0.3 * 40) / 80, abs=0.02)
