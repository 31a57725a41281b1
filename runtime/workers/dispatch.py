"""`QueueingEngine`: the API's engine when workers execute (`OVERTURE_DISPATCH=workers`).

It journals runs, approvals and cancels exactly as the `Engine` does, but where the Engine would
start driving a run in this process it defers a queue job instead, and it runs no scheduler
(timers and takeovers are the workers' business). So the API machine needs no invokers' network
access, and its restarts never touch running work.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from runtime.active_run import TakenRun
from runtime.engine import Engine
from runtime.journal import Journal
from runtime.records import RunRecord
from runtime.workers.handoff import HandoffLink
from runtime.workers.queue import RunQueue
from workflow.document import Workflow


class QueueingEngine(Engine):
    """An `Engine` that enqueues runs for `overture worker` processes instead of driving them."""

    def __init__(self, *args: Any, queue: RunQueue, handoff_ttl_s: float = 120.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = queue
        self.handoff_ttl_s = handoff_ttl_s
        """How long a queued run is left to its job before workers' orphan scans may take it."""
        self._enqueues: dict[str, asyncio.Task[None]] = {}
        assert isinstance(self.journal, Journal)  # the hand-off is SQL
        self._link = HandoffLink(self.journal)

    # the two seams where the Engine would work in this process
    def _ensure_scheduler(self) -> None:
        return None

    def _ensure_driving(self, run_id: str, taken: TakenRun | None = None, *,
                        fresh: RunRecord | None = None) -> asyncio.Task[None]:
        task = self._enqueues.get(run_id)
        if task is None or task.done():
            task = asyncio.get_running_loop().create_task(self._enqueue(run_id), name=f"enqueue-{run_id}")
            self._enqueues[run_id] = task
        return task

    async def _enqueue(self, run_id: str) -> None:
        try:
            # held for its job (no-op while a worker drives it): a worker's orphan scan would
            # otherwise grab a fresh run before the job is picked up, past the job slots' limit;
            # the hold and the job are one statement, and the job's insert sends the NOTIFY
            await self._link.hold_and_defer(run_id, ttl=self.handoff_ttl_s)
        finally:  # keep the map as small as the enqueues in flight
            if self._enqueues.get(run_id) is asyncio.current_task():
                del self._enqueues[run_id]

    async def _settle(self, run_id: str) -> None:
        # the caller hears about a queue that is away instead of getting a run nobody is told of
        task = self._enqueues.get(run_id)
        if task is not None:
            await asyncio.shield(task)

    async def start_run(self, workflow: Workflow, inputs: Mapping[str, Any] | None = None, *,
                        run_id: str | None = None, deadline_s: float | None = None) -> str:
        run_id = await super().start_run(workflow, inputs, run_id=run_id, deadline_s=deadline_s)
        await self._settle(run_id)
        return run_id

    async def approve(self, run_id: str, step_id: str, approved: bool, by: str, comment: str | None = None,
                      *, iteration: int | None = None, drive: bool = True, roles: Sequence[str] = ()) -> None:
        await super().approve(run_id, step_id, approved, by, comment, iteration=iteration, drive=drive,
                              roles=roles)
        await self._settle(run_id)

    async def cancel(self, run_id: str, *, by: str | None = None, drive: bool = True) -> None:
        await super().cancel(run_id, by=by, drive=drive)
        await self._settle(run_id)

    async def recover(self) -> list[str]:
        """Nothing to resume here: the workers' schedulers take over unfinished runs."""
        return []

    async def close(self) -> None:
        pending = [t for t in self._enqueues.values() if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=5)
        await super().close()
        await self._link.close()
        await self.queue.close()
