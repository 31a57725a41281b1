"""Routing: which of a step's candidate actions to call at dispatch.

The engine asks a `Router` whenever a step lists `alternatives`; the optimizer implements the
protocol with a learned policy. The chosen action and its propensity (the probability with which
the router picked it) go on the attempt row so off-policy evaluation can reweigh outcomes later.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from workflow.document import Step

LATEST_HALF_LIFE_S = 300.0
"""Age at which an attempt counts half in the `latest_*` stats of `ActionStats`."""
LATEST_MAX_ATTEMPTS = 100
"""How many of an action's newest attempts the `latest_*` stats read at most."""
NEWEST_ATTEMPTS = 20
"""How many of an action's newest attempts `ActionStats.newest_*` list one by one."""

Attempt = tuple[float, bool, float | None]
"""(started_at, failed, duration_s) of one finished attempt."""


@dataclass(frozen=True)
class ActionStats:
    """Recent outcomes of one action, from the journal's attempts table.

    `calls`, `error_rate` and `mean_latency_s` cover the finished attempts that started within the
    window the engine asks about. An hour-long window reacts slowly: an outage's first failures are
    outnumbered by the hour's successes. The `latest_*` fields weigh the same attempts by age
    instead (the newest `LATEST_MAX_ATTEMPTS` of them, each counting 0.5^(age / LATEST_HALF_LIFE_S)),
    so the last few minutes decide them. Ages are measured from `latest_started_at`, the newest
    attempt's start: the journal does not know the caller's clock, and exponential weights can be
    carried forward to any later moment by one factor (`latest_calls_at`).
    """

    calls: int
    error_rate: float
    """Share of finished attempts that failed (0..1)."""
    mean_latency_s: float | None
    """Mean duration of the finished attempts, seconds."""
    latest_calls: float = 0.0
    """Sum of the age weights as of `latest_started_at` (1.0 for the newest attempt)."""
    latest_error_rate: float = 0.0
    """Age-weighted share of those attempts that failed (0..1)."""
    latest_mean_latency_s: float | None = None
    """Age-weighted mean duration of those attempts, seconds."""
    latest_started_at: float | None = None
    """When the newest finished attempt in the window started (None: no attempt)."""
    newest_started_at: tuple[float, ...] = ()
    """When each of the newest `NEWEST_ATTEMPTS` finished attempts in the window started, newest
    first: aggregates lose the order of outcomes, and whether the last few failures came in a row
    after a long run of successes is what tells an outage from a service's usual failures."""
    newest_failed: tuple[bool, ...] = ()
    """Whether each of those attempts failed, in the same order."""

    def latest_calls_at(self, now: float) -> float:
        """The age-weighted evidence as of `now`: every weight halves again per half-life since
        `latest_started_at`."""
        if self.latest_started_at is None or self.latest_calls <= 0.0:
            return 0.0
        return self.latest_calls * 0.5 ** (max(0.0, now - self.latest_started_at) / LATEST_HALF_LIFE_S)


@dataclass(frozen=True)
class Conditions:
    """What the world looked like when the step was dispatched."""

    now: float
    """Wall-clock time, seconds since the Unix epoch."""
    runs_in_flight: int
    """Runs this engine was driving at that moment."""
    worker_id: str
    recent: Mapping[str, ActionStats] = field(default_factory=dict)
    """Per candidate action: stats over the journal's recent window."""


@dataclass(frozen=True)
class RouteChoice:
    action: str
    propensity: float
    """Probability with which the router picked this action (1.0 for a deterministic choice)."""


@runtime_checkable
class Router(Protocol):
    def choose(self, step: Step, candidates: Sequence[str], conditions: Conditions) -> RouteChoice:
        """Pick one of `candidates` (the step's own action first, then its alternatives)."""
        ...


class DefaultRouter:
    """Always the step's own action: the document says what to call."""

    def choose(self, step: Step, candidates: Sequence[str], conditions: Conditions) -> RouteChoice:
        return RouteChoice(action=step.action, propensity=1.0)
