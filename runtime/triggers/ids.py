"""Deterministic ids: the same fire always gets the same id, on any worker, after any restart.

A fire's id is also the id of the run it starts, so the journal itself records which fire a run
came from, and a second attempt to start the same fire finds the run already there.
"""

from __future__ import annotations

import hashlib

from workflow.document import ScheduleTrigger, WebhookTrigger

ID_LENGTH = 32
"""Hex characters kept from the sha256: as long as the engine's uuid4 run ids."""


def _digest(*parts: str) -> str:
    # the unit separator cannot occur in names or cron expressions, so the join is unambiguous
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def schedule_trigger_id(trigger: ScheduleTrigger) -> str:
    """Names a schedule by what it means (cron, zone, business day), not by its list position, so
    reordering or adding schedules in an edit keeps each one's history and pause state."""
    return "schedule-" + _digest(trigger.cron.strip(), trigger.timezone, trigger.business_day or "")[:10]


def webhook_trigger_id(trigger: WebhookTrigger) -> str:
    return f"webhook-{trigger.name}"


def schedule_fire_id(workflow_key: str, trigger_id: str, scheduled_at: float) -> str:
    """hash(workflow, trigger, scheduled time): the scheduled time in whole milliseconds."""
    return _digest("schedule", workflow_key, trigger_id, str(round(scheduled_at * 1000)))[:ID_LENGTH]


def delivery_fire_id(webhook_name: str, delivery_id: str) -> str:
    """hash(webhook, delivery id): a redelivery of the same delivery maps to the same run."""
    return _digest("webhook", webhook_name, delivery_id)[:ID_LENGTH]
