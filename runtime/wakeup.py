"""What a run's driver sleeps on between steps."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any


class Wakeup:
    """Wakes a driver when one of its steps finishes (`wake`, a task done callback) or when the
    run is poked (`set`: an approval, a cancel, a due timer, another process's decision).

    One future per wait: the driver used to start a task for the poke and an `asyncio.wait` over
    every step per step finished, which cost more than the journal's writes for a no-op step."""

    __slots__ = ("_future", "_poked")

    def __init__(self) -> None:
        self._future: asyncio.Future[None] | None = None
        self._poked = False

    def set(self) -> None:
        """Poke: the driver looks again at waiting steps and stop requests."""
        self._poked = True
        self.wake()

    def wake(self, _task: object = None) -> None:
        future = self._future
        if future is not None and not future.done():
            future.set_result(None)

    def take_poke(self) -> bool:
        """Whether the run was poked since the last look (and forget it)."""
        poked, self._poked = self._poked, False
        return poked

    async def wait(
        self, ready: Callable[[], bool], deadline: Coroutine[Any, Any, Any] | None = None
    ) -> None:
        """Return when `ready()` holds, after a poke, or once `deadline` (a sleep) is over."""
        if self._poked or ready():
            if deadline is not None:
                deadline.close()
            return
        future = self._future = asyncio.get_running_loop().create_future()
        timer = asyncio.ensure_future(deadline) if deadline is not None else None
        if timer is not None:
            timer.add_done_callback(self.wake)
        try:
            await future
        finally:
            self._future = None
            if timer is not None:
                timer.cancel()
