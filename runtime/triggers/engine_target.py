"""Fires become runs on a `runtime.Engine`: the `RunTarget` a worker process uses."""

from __future__ import annotations

from typing import Any

from runtime.engine import Engine
from runtime.errors import RunNotFound
from runtime.triggers.scheduler import TriggeredWorkflow


class EngineTarget:
    """Starts each fire's run on `engine` with the fire id as the run id."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def run_exists(self, run_id: str) -> bool:
        try:
            self.engine.journal.get_run(run_id)
        except RunNotFound:
            return False
        return True

    async def start(self, target: TriggeredWorkflow, inputs: dict[str, Any], run_id: str) -> None:
        await self.engine.start_run(target.workflow, inputs, run_id=run_id)
