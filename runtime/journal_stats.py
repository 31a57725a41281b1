"""Recent outcomes per action, read from the journal's attempts table for routing decisions."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import sqlalchemy as sa

from runtime.journal_schema import attempts
from runtime.routing import LATEST_HALF_LIFE_S, LATEST_MAX_ATTEMPTS, NEWEST_ATTEMPTS, ActionStats, Attempt

FINISHED = ("succeeded", "failed", "timeout")

LatestStats = tuple[float, float, float | None, float | None, tuple[float, ...], tuple[bool, ...]]
"""(latest_calls, latest_error_rate, latest_mean_latency_s, latest_started_at, newest_started_at,
newest_failed) of `ActionStats`."""


def latest_stats(newest_first: Sequence[Attempt]) -> LatestStats:
    """The age-weighted `latest_*` fields and the one-by-one `newest_*` ones from (started_at, failed,
    duration_s) of an action's newest finished attempts, newest first, at most `LATEST_MAX_ATTEMPTS`.

    One definition for the journal and for the optimizer's replay of history, so a model is trained
    on the numbers the router will be handed."""
    if not newest_first:
        return 0.0, 0.0, None, None, (), ()
    ref = newest_first[0][0]
    weights = failed_w = timed_w = latency_w = 0.0
    for started_at, failed, duration in newest_first[:LATEST_MAX_ATTEMPTS]:
        w = 0.5 ** ((ref - started_at) / LATEST_HALF_LIFE_S)
        weights += w
        if failed:
            failed_w += w
        if duration is not None:
            timed_w += w
            latency_w += w * duration
    few = newest_first[:NEWEST_ATTEMPTS]
    return (weights, failed_w / weights, (latency_w / timed_w if timed_w > 0.0 else None), ref,
            tuple(a[0] for a in few), tuple(a[1] for a in few))


# an action's newest finished attempts in a window, newest first (ties in start time broken by
# insertion order, so the cut at LATEST_MAX_ATTEMPTS is deterministic): one action at a time with a
# limit, so the (action, started_at) index hands over those rows without reading the rest of the window
NEWEST = (
    sa.select(attempts.c.started_at, attempts.c.id, attempts.c.outcome, attempts.c.duration_s)
    .where(
        attempts.c.action == sa.bindparam("action"),
        attempts.c.started_at >= sa.bindparam("since"),
        # not IN: the journal runs this as a prepared statement, whose parameters are one value each
        sa.or_(*(attempts.c.outcome == outcome for outcome in FINISHED)),
    )
    .order_by(attempts.c.started_at.desc(), attempts.c.id.desc())
    .limit(LATEST_MAX_ATTEMPTS)
)


WindowTotals = tuple[int, int, float, int]
"""(calls, failures, sum of durations, attempts with a duration) of an action's finished attempts in
a window: what `ActionStats.calls`, `error_rate` and `mean_latency_s` are made of, in a form that
adds up (`runtime.routing_stats` adds the attempts this process finished since it read them)."""


def action_totals(engine: sa.Engine, actions: Iterable[str], *, since: float) -> dict[str, WindowTotals]:
    """`WindowTotals` per action over the finished attempts started since `since` (actions with
    none are left out). Reads every attempt of the window: the costly half of `action_stats`."""
    ok = sa.case((attempts.c.outcome == "succeeded", 0), else_=1)
    totals = (
        sa.select(
            attempts.c.action,
            sa.func.count(),
            sa.func.sum(ok),
            sa.func.sum(attempts.c.duration_s),
            sa.func.count(attempts.c.duration_s),
        )
        .where(
            attempts.c.action.in_(list(actions)),
            attempts.c.started_at >= since,
            attempts.c.outcome.in_(FINISHED),
        )
        .group_by(attempts.c.action)
    )
    with engine.connect() as conn:
        return {
            name: (int(calls), int(failed or 0), float(duration or 0.0), int(timed or 0))
            for name, calls, failed, duration, timed in conn.execute(totals)
        }


RecentAttempt = tuple[float, int, bool, float | None]
"""(started_at, id, failed, duration_s) of one finished attempt: an `Attempt` with the id that
breaks ties in start time, so lists read at different times merge in the journal's order."""


def as_recent(rows: Iterable[Any]) -> list[RecentAttempt]:
    """`NEWEST`'s rows as `RecentAttempt`s."""
    return [
        (float(started), int(id_), outcome != "succeeded", float(took) if took is not None else None)
        for started, id_, outcome, took in rows
    ]


def compose(totals: WindowTotals | None, recent: Sequence[RecentAttempt]) -> ActionStats:
    """One action's `ActionStats` from its window totals and its newest attempts (newest first)."""
    calls, failed, duration, timed = totals or (0, 0, 0.0, 0)
    w, w_err, w_latency, last, newest_at, newest_failed = latest_stats(
        [(started_at, failed_now, took) for started_at, _, failed_now, took in recent]
    )
    return ActionStats(
        calls=calls, error_rate=failed / max(1, calls), mean_latency_s=duration / timed if timed else None,
        latest_calls=w, latest_error_rate=w_err, latest_mean_latency_s=w_latency, latest_started_at=last,
        newest_started_at=newest_at, newest_failed=newest_failed,
    )


class StatsSource(Protocol):
    """The two reads `ActionStats` is made of (both journals provide them)."""

    def action_totals(self, actions: Sequence[str], *, since: float) -> dict[str, WindowTotals]: ...

    def recent_attempts(self, actions: Sequence[str], *, since: float) -> dict[str, list[RecentAttempt]]: ...


def action_stats(source: StatsSource, actions: Iterable[str], *, since: float) -> dict[str, ActionStats]:
    """Per action, over its finished attempts started since `since`: calls, error rate and mean
    latency, the same weighted by age over the newest of them (`ActionStats.latest_*`) and the newest
    few one by one (`ActionStats.newest_*`), from `source`'s two reads."""
    names = list(actions)
    totals = source.action_totals(names, since=since)
    recent = source.recent_attempts([n for n in names if n in totals], since=since)
    return {name: compose(totals.get(name), recent.get(name, ())) for name in names}
