"""Time as the engine sees it: an injectable clock so retries, timeouts, deadlines and waits can be
tested in milliseconds (time skipping, as in Temporal's test environment).

Every timestamp the runtime writes is `clock.now()`: seconds since the Unix epoch, as a float.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable


def iso_time(ts: float) -> str:
    """An epoch timestamp as ISO-8601 UTC, e.g. `2030-01-01T00:00:00Z`."""
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


@runtime_checkable
class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the Unix epoch."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Return after `seconds` of this clock's time have passed."""
        ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class ManualClock:
    """A clock that moves only when told to; `advance` wakes every sleeper whose time has come.

    Tests read `sleepers` (the pending wake times) to see what the engine waits for, and use
    `wait_for_sleepers(n)` instead of real sleeps to know when it has got there.
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._heap: list[tuple[float, int, asyncio.Future[None]]] = []
        self._ids = itertools.count()
        self._changed: asyncio.Event | None = None

    def now(self) -> float:
        return self._now

    def _event(self) -> asyncio.Event:
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._heap, (self._now + seconds, next(self._ids), future))
        self._event().set()
        await future

    @property
    def sleepers(self) -> list[float]:
        """Wake times of the sleepers still waiting, earliest first."""
        return sorted(when for when, _, fut in self._heap if not fut.done())

    def next_wake(self) -> float | None:
        pending = self.sleepers
        return pending[0] if pending else None

    def advance(self, seconds: float) -> None:
        """Move time forward and wake every sleeper due by then."""
        self.set_time(self._now + seconds)

    def set_time(self, when: float) -> None:
        self._now = max(self._now, when)
        while self._heap and self._heap[0][0] <= self._now:
            _, _, future = heapq.heappop(self._heap)
            if not future.done():
                future.set_result(None)

    def advance_to_next(self) -> float:
        """Jump to the earliest pending wake time; returns the seconds skipped (0 when none)."""
        nxt = self.next_wake()
        if nxt is None:
            return 0.0
        skipped = max(0.0, nxt - self._now)
        self.set_time(nxt)
        return skipped

    async def wait_for_sleepers(self, count: int = 1, *, timeout: float = 5.0) -> None:
        """Block (in real time, at most `timeout`) until at least `count` sleepers wait."""

        async def _until() -> None:
            while len(self.sleepers) < count:
                event = self._event()
                event.clear()
                await event.wait()

        await asyncio.wait_for(_until(), timeout)
