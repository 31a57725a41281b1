"""The routing stats a routed step hands its router, without reading the journal at each dispatch.

`ActionStats` is made of two reads (`runtime.journal_stats`): the window totals (calls, error rate
and mean latency over the last hour), which scan every attempt of the window, and the newest
attempts (at most `LATEST_MAX_ATTEMPTS`, for the age-weighted `latest_*` and the outcomes one by
one). Read at every dispatch, the scan grows with traffic: 4.5 ms at 2,000 attempts an hour per
candidate, 94 ms at 100,000 (`bench/routing_stats.py`). `RoutingStats` reads both at most once per
`max_age_s` of wall time per action, or again once the window has moved on by a hundredth of its
length, and adds the attempts this process ended since (`finished`), merged in the journal's order
(start time, then id). Within one process the router then sees what `Journal.action_stats` would
say at that moment, but for attempts that left the window since the read; another process's
attempts reach it within `max_age_s`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from runtime.journal_stats import FINISHED, RecentAttempt, StatsSource, WindowTotals, compose
from runtime.routing import LATEST_MAX_ATTEMPTS, ActionStats

MAX_AGE_S = 1.0
"""How long (wall time) an action's window totals are used before they are read again."""


@dataclass
class _Read:
    totals: WindowTotals | None
    newest: list[RecentAttempt]
    """The newest attempts when read, newest first."""
    since: float
    """The window's start when read."""
    read_at: float
    """`monotonic()` when read."""
    since_read: list[RecentAttempt] = field(default_factory=list)
    """Attempts this process ended after the read, in the order they ended."""
    last: tuple[tuple[int, int, int], ActionStats] | None = None
    """The last answer and what it was made of (attempts ended since the read; of those, and of
    the newest, how many were in the window): attempts only arrive or leave the window, so the
    same counts mean the same attempts, which give the same stats (their ages count from the
    newest of them, not from now)."""


class RoutingStats:
    """Per action, the journal's window read now and then plus this process's attempts since."""

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
        self._reads: dict[str, _Read] = {}
        self.reads = 0
        """How many times the journal was read (for tests and benchmarks)."""

    def stats(self, actions: Sequence[str], *, now: float) -> dict[str, ActionStats]:
        """`ActionStats` per action over the window ending at `now` (the engine's clock)."""
        since = now - self.window_s
        wall = self._monotonic()
        stale = [a for a in dict.fromkeys(actions) if self._stale(a, since, wall)]
        if stale:
            totals = self.journal.action_totals(stale, since=since)
            newest = self.journal.recent_attempts(stale, since=since)
            self.reads += 1
            for action in stale:
                self._reads[action] = _Read(totals.get(action), newest.get(action, []), since, wall)
        return {a: self._current(self._reads[a], since) for a in actions}

    def finished(
        self, action: str, outcome: str, attempt_id: int, started_at: float, ended_at: float
    ) -> None:
        """Count an attempt of `action` this process just ended (after its journal commit)."""
        read = self._reads.get(action)
        if read is not None and outcome in FINISHED:
            failed = outcome != "succeeded"
            read.since_read.append((started_at, attempt_id, failed, max(0.0, ended_at - started_at)))

    def _stale(self, action: str, since: float, wall: float) -> bool:
        read = self._reads.get(action)
        return (
            read is None
            or wall - read.read_at >= self.max_age_s
            or since - read.since > self.window_s / 100.0
            or since < read.since  # a clock set back: the read covers another window
        )

    @staticmethod
    def _current(read: _Read, since: float) -> ActionStats:
        added = [a for a in read.since_read if a[0] >= since] if read.since_read else []
        newest = read.newest
        if added:
            newest = sorted([*added, *newest], key=lambda a: (a[0], a[1]), reverse=True)
        if newest and newest[-1][0] < since:
            newest = [a for a in newest if a[0] >= since]
        made_of = (len(read.since_read), len(added), len(newest))
        if read.last is not None and read.last[0] == made_of:
            return read.last[1]
        calls, failed, duration, timed = read.totals or (0, 0, 0.0, 0)
        for _, _, failed_now, took in added:
            calls += 1
            failed += failed_now
            if took is not None:
                duration += took
                timed += 1
        stats = compose((calls, failed, duration, timed) if calls else None, newest[:LATEST_MAX_ATTEMPTS])
        read.last = (made_of, stats)
        return stats
