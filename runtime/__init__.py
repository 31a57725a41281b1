"""The durable runtime: run workflow documents with retries, timers, approvals and sagas.

from runtime import Engine, Journal
journal = Journal.open(".overture")              # or a postgresql+psycopg:// URL, or MemoryJournal()
async with Engine(catalog, journal, invoker) as engine:
    run_id = await engine.start_run(workflow, {"email": "a@b.c"})
    result = await engine.wait(run_id)

The names below are loaded on first use (PEP 562): importing one light submodule (the records, the
clock) must not pull in the engine and SQLAlchemy, which cost ~0.4 s of every CLI command's start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runtime.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from runtime.active_run import RunResult, idempotency_key
    from runtime.clock import Clock, ManualClock, SystemClock
    from runtime.engine import Engine
    from runtime.journal import Journal
    from runtime.journal_memory import AnyJournal, MemoryJournal
    from runtime.records import AttemptRecord, Event, RunRecord, RunState, StepRecord, StepState, UndoState
    from runtime.routing import ActionStats, Conditions, DefaultRouter, RouteChoice, Router

_HOMES = {
    "runtime.active_run": ("RunResult", "idempotency_key"),
    "runtime.clock": ("Clock", "ManualClock", "SystemClock"),
    "runtime.engine": ("Engine",),
    "runtime.journal": ("Journal",),
    "runtime.journal_memory": ("AnyJournal", "MemoryJournal"),
    "runtime.records": (
        "AttemptRecord",
        "Event",
        "RunRecord",
        "RunState",
        "StepRecord",
        "StepState",
        "UndoState",
    ),
    "runtime.routing": ("ActionStats", "Conditions", "DefaultRouter", "RouteChoice", "Router"),
}

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


__getattr__, __dir__ = lazy_exports(__name__, _HOMES, globals(), __all__)
