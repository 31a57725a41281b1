"""When a schedule trigger fires: cron in a time zone, with daylight saving and business days.

Cron is evaluated on the zone's wall clock (croniter over naive local times), then each wall time
is placed on the time line with `fold=0`. That gives the two daylight-saving rules people expect:

- a wall time that happens twice (clocks go back) fires once, at its first occurrence;
- a wall time that never happens (clocks go forward) fires once, shifted by the gap
  (02:30 on a spring-forward night in Berlin fires at 03:30 CEST) — never dropped.

Two wall times that land on the same instant after the shift (an hourly `30 * * * *` around the
gap) fire once. `business_day` keeps only the fires on the month's first or last weekday.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo

from runtime.errors import RuntimeFault
from workflow.document import ScheduleTrigger

MAX_SCAN = 5_000
"""Cron candidates looked at per query; a business-day filter over a per-minute cron stops here."""


class ScheduleError(RuntimeFault):
    """A schedule trigger that cannot be evaluated (bad cron, unknown zone)."""

    def __init__(self, message: str, *, cron: str, timezone: str) -> None:
        super().__init__(message)
        self.cron = cron
        self.timezone = timezone


def _croniter() -> Any:
    # imported on first use: a deployment without croniter still serves everything but schedules
    try:
        from croniter import croniter
    except ImportError as exc:
        raise ScheduleError("schedules need the `croniter` package (pip install croniter)",
                            cron="", timezone="") from exc
    return croniter


def first_business_day(year: int, month: int) -> date:
    day = date(year, month, 1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def last_business_day(year: int, month: int) -> date:
    day = date(year, month, calendar.monthrange(year, month)[1])
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    return day


@dataclass(frozen=True)
class CronRule:
    """A schedule trigger's firing rule; times are Unix seconds."""

    cron: str
    timezone: str = "UTC"
    business_day: str | None = None

    @classmethod
    def of(cls, trigger: ScheduleTrigger) -> CronRule:
        rule = cls(trigger.cron, trigger.timezone, trigger.business_day)
        rule.check()
        return rule

    @cached_property
    def zone(self) -> ZoneInfo:
        try:
            return ZoneInfo(self.timezone)
        except (ValueError, KeyError, OSError) as exc:
            raise ScheduleError(
                f"unknown time zone `{self.timezone}`", cron=self.cron, timezone=self.timezone
            ) from exc

    def check(self) -> None:
        """Raise `ScheduleError` when the cron or the zone cannot be used."""
        _ = self.zone
        if not _croniter().is_valid(self.cron):
            raise ScheduleError(f"cron `{self.cron}` is not valid", cron=self.cron, timezone=self.timezone)

    def _wall(self, ts: float) -> datetime:
        return datetime.fromtimestamp(ts, UTC).astimezone(self.zone).replace(tzinfo=None)

    def _instant(self, wall: datetime) -> float:
        return wall.replace(tzinfo=self.zone, fold=0).timestamp()

    def _keeps(self, wall: datetime) -> bool:
        if self.business_day == "first":
            return wall.date() == first_business_day(wall.year, wall.month)
        if self.business_day == "last":
            return wall.date() == last_business_day(wall.year, wall.month)
        return True

    def _walk(self, start: float, *, forward: bool) -> Iterator[float]:
        # Start one hour back (or ahead) on the wall clock: a fire shifted by a DST gap can land
        # after `start` while its wall time lies before it.
        margin = timedelta(hours=-2 if forward else 2)
        croniter = _croniter()
        try:
            it = croniter(self.cron, self._wall(start) + margin)
        except (ValueError, KeyError) as exc:  # croniter's errors are ValueErrors
            raise ScheduleError(f"cron `{self.cron}` is not valid: {exc}", cron=self.cron,
                                timezone=self.timezone) from exc
        last: float | None = None
        for _ in range(MAX_SCAN):
            try:
                wall = it.get_next(datetime) if forward else it.get_prev(datetime)
            except ValueError as exc:  # CroniterBadDateError: a date no calendar has (`0 0 30 2 *`)
                raise ScheduleError(
                    f"cron `{self.cron}` never fires (no date matches it); fix its day and month fields",
                    cron=self.cron, timezone=self.timezone) from exc
            if not self._keeps(wall):
                continue
            instant = self._instant(wall)
            if instant == last:
                continue
            last = instant
            if (forward and instant > start) or (not forward and instant <= start):
                yield instant

    def next_after(self, after: float, count: int = 1) -> list[float]:
        """The next `count` fire times strictly after `after`, in order."""
        found: list[float] = []
        for instant in self._walk(after, forward=True):
            if found and instant <= found[-1]:
                continue
            found.append(instant)
            if len(found) >= count:
                break
        return found

    def between(self, after: float, until: float, *, limit: int = MAX_SCAN) -> list[float]:
        """Fire times in `(after, until]`, at most `limit` (the earliest ones)."""
        found: list[float] = []
        for instant in self._walk(after, forward=True):
            if instant > until or len(found) >= limit:
                break
            if found and instant <= found[-1]:
                continue
            found.append(instant)
        return found

    def latest_at_or_before(self, until: float) -> float | None:
        """The last fire time at or before `until` (None when the scan finds none)."""
        best: float | None = None
        for instant in self._walk(until, forward=False):
            # wall times walk backwards, but a DST shift can reorder two neighbours; take the max
            # of the first few candidates rather than the first one
            best = instant if best is None else max(best, instant)
            if best is not None and instant < best - 7200:
                break
        return best
