"""The durable runtime: run workflow documents with retries, timers, approvals and sagas.

from runtime import Engine, Journal
journal = Journal.open(".overture")              # or a postgresql+psycopg:// URL, or MemoryJournal()
async with Engine(catalog, journal, invoker) as engine:
    run_id = await engine.start_run(workflow, {"email": "a@b.c"})
    result = await engine.wait(run_id)
"""

from runtime.active_run import RunResult, idempotency_key
from runtime.clock import Clock, ManualClock, SystemClock
from runtime.engine import Engine
from runtime.journal import Journal
from runtime.journal_memory import AnyJournal, MemoryJournal
from runtime.records import AttemptRecord, Event, RunRecord, RunState, StepRecord, StepState, UndoState
from runtime.routing import ActionStats, Conditions, DefaultRouter, RouteChoice, Router

__all__ = [
    "ActionStats",
    "AnyJournal",
    "AttemptRecord",
    "Clock",
    "Conditions",
    "DefaultRouter",
    "Engine",
    "Event",
    "Journal",
    "ManualClock",
    "MemoryJournal",
    "RouteChoice",
    "Router",
    "RunRecord",
    "RunResult",
    "RunState",
    "StepRecord",
    "StepState",
    "SystemClock",
    "UndoState",
    "idempotency_key",
]
