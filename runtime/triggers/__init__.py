"""Triggers: schedules that fire runs by cron in a time zone, and signed webhook deliveries.

    from runtime.triggers import FireStore, Scheduler, TriggeredWorkflow
    store = FireStore.open(journal_url)
    scheduler = Scheduler(store, source, target, clock=clock)   # source: live workflows; target: starts runs
    scheduler.start()                                            # recover, then fire at each due time

Every fire has a deterministic id (a hash of workflow, trigger and scheduled time, or of webhook
and delivery id) that is also its run's id; the fire store's primary key makes a fire start once.

The names below are loaded on first use (PEP 562): the fire store needs SQLAlchemy (~0.2 s to
import), which listing a document's next fire times or signing a delivery does not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runtime.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from runtime.triggers.cron import CronRule, ScheduleError
    from runtime.triggers.ids import (
        delivery_fire_id,
        schedule_fire_id,
        schedule_trigger_id,
        webhook_trigger_id,
    )
    from runtime.triggers.scheduler import (
        PAUSED_BY_REFUSAL,
        FireRefused,
        RunTarget,
        Scheduler,
        TriggeredWorkflow,
        Upcoming,
        upcoming,
    )
    from runtime.triggers.signature import (
        DELIVERY_HEADER,
        SIGNATURE_HEADER,
        TOLERANCE_S,
        SignatureError,
        sign,
        verify,
    )
    from runtime.triggers.store import FireRecord, FireStore, NewFire, TriggerState

_HOMES = {
    "runtime.triggers.cron": ("CronRule", "ScheduleError"),
    "runtime.triggers.ids": (
        "delivery_fire_id",
        "schedule_fire_id",
        "schedule_trigger_id",
        "webhook_trigger_id",
    ),
    "runtime.triggers.scheduler": (
        "PAUSED_BY_REFUSAL",
        "FireRefused",
        "RunTarget",
        "Scheduler",
        "TriggeredWorkflow",
        "Upcoming",
        "upcoming",
    ),
    "runtime.triggers.signature": (
        "DELIVERY_HEADER",
        "SIGNATURE_HEADER",
        "TOLERANCE_S",
        "SignatureError",
        "sign",
        "verify",
    ),
    "runtime.triggers.store": ("FireRecord", "FireStore", "NewFire", "TriggerState"),
}

__all__ = [
    "DELIVERY_HEADER",
    "PAUSED_BY_REFUSAL",
    "SIGNATURE_HEADER",
    "TOLERANCE_S",
    "CronRule",
    "FireRecord",
    "FireRefused",
    "FireStore",
    "NewFire",
    "RunTarget",
    "ScheduleError",
    "Scheduler",
    "SignatureError",
    "TriggerState",
    "TriggeredWorkflow",
    "Upcoming",
    "delivery_fire_id",
    "schedule_fire_id",
    "schedule_trigger_id",
    "sign",
    "upcoming",
    "verify",
    "webhook_trigger_id",
]


__getattr__, __dir__ = lazy_exports(__name__, _HOMES, globals(), __all__)
