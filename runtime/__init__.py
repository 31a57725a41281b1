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

import importlib
from typing import TYPE_CHECKING, Any

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
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}

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


def __getattr__(name: str) -> Any:
    home = _HOME_OF.get(name)
    if home is None:
        # an AttributeError (not an ImportError) lets `from runtime import journal_stats` fall back
        # to importing the submodule
        raise AttributeError(f"module 'runtime' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
