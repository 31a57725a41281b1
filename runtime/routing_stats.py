"""The routing stats a routed step hands its router, without reading the whole window each time.

`ActionStats` has two halves (`runtime.journal_stats`): the window totals (calls, error rate and
mean latency over the last hour) and the newest attempts (the age-weighted `latest_*` and the
outcomes one by one). The newest attempts are one indexed read of at most `LATEST_MAX_ATTEMPTS`
rows per candidate, so they are read at every dispatch: another worker's failures reach the
router's change detection at once. The totals read every attempt of the window, which grows with
traffic (~9-17 ms per dispatch at 20,000 attempts an hour on SQLite): `RoutingStats` reads them at
most once per `max_age_s` of wall time per action, or again once the window has moved on by a
hundredth of its length, and adds the attempts this process finished since (`finished`). Within
one process the totals are then exact but for attempts that left the window since the read; other
processes' attempts are at most `max_age_s` late.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from runtime.journal_stats import FINISHED, WindowTotals, compose
from runtime.routing import ActionStats, Attempt

MAX_AGE_S = 1.0
"""How long (wall time) an action's window totals are used before they are read again."""


class StatsSource(Protocol):
    """What `RoutingStats` reads (both journals provide it)."""

    def action_totals(self, actions: Sequence[str], *, since: float) -> dict[str, WindowTotals]: ...

    def recent_attempts(self, actions: Sequence[str], *, since: float) -> dict[str, list[Attempt]]: ...


@dataclass
class _Totals:
    totals: WindowTotals | None
    since: float
    """The window's start when the totals were read."""
    read_at: float
    """`monotonic()` when they were read."""
    since_read: list[Attempt] = field(default_factory=list)
    """Attempts this process finished after the read: (started_at, failed, duration_s)."""


class RoutingStats:
    """Per action, window totals read now and then plus this process's attempts since."""

    def __init__(
        self,
        journal: StatsSource,
        window_s: float,
        *,
        max_age_s: float = MAX_AGE_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.journal = journal
        self.window_s = window_s
        self.max_age_s = max_age_s
        self._monotonic = monotonic
        self._totals: dict[str, _Totals] = {}
        self.reads = 0
        """How many times the window totals were read (for tests and benchmarks)."""

    def stats(self, actions: Sequence[str], *, now: float) -> dict[str, ActionStats]:
        """`ActionStats` per action over the window ending at `now` (the engine's clock)."""
        since = now - self.window_s
        wall = self._monotonic()
        stale = [a for a in dict.fromkeys(actions) if self._stale(a, since, wall)]
        if stale:
            read = self.journal.action_totals(stale, since=since)
            self.reads += 1
            for action in stale:
                self._totals[action] = _Totals(read.get(action), since, wall)
        recent = self.journal.recent_attempts(actions, since=since)
        return {a: compose(self._current(a, since), recent.get(a, ())) for a in actions}

    def finished(self, action: str, outcome: str, started_at: float, ended_at: float) -> None:
        """Count an attempt of `action` this process just ended (after its journal commit)."""
        entry = self._totals.get(action)
        if entry is not None and outcome in FINISHED:
            entry.since_read.append((started_at, outcome != "succeeded", max(0.0, ended_at - started_at)))

    def _stale(self, action: str, since: float, wall: float) -> bool:
        entry = self._totals.get(action)
        return (
            entry is None
            or wall - entry.read_at >= self.max_age_s
            or since - entry.since > self.window_s / 100.0
            or since < entry.since  # a clock set back: the read covers a different window
        )

    def _current(self, action: str, since: float) -> WindowTotals | None:
        entry = self._totals[action]
        calls, failed, duration, timed = entry.totals or (0, 0, 0.0, 0)
        for started_at, failed_now, took in entry.since_read:
            if started_at >= since:
                calls += 1
                failed += failed_now
                if took is not None:
                    duration += took
                    timed += 1
        return (calls, failed, duration, timed) if calls else None
