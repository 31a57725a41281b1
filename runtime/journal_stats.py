"""Recent outcomes per action, read from the journal's attempts table for routing decisions."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

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


# ties in start time broken by insertion order, so the cut at LATEST_MAX_ATTEMPTS is deterministic
_NEWEST = (
    sa.select(attempts.c.started_at, attempts.c.outcome, attempts.c.duration_s)
    .where(
        attempts.c.action == sa.bindparam("action"),
        attempts.c.started_at >= sa.bindparam("since"),
        attempts.c.outcome.in_(FINISHED),
    )
    .order_by(attempts.c.started_at.desc(), attempts.c.id.desc())
    .limit(LATEST_MAX_ATTEMPTS)
)


def action_stats(engine: sa.Engine, actions: Iterable[str], *, since: float) -> dict[str, ActionStats]:
    """Per action, over finished attempts started since `since`: calls, error rate and mean latency,
    the same weighted by age over the newest of them (`ActionStats.latest_*`) and the newest few one
    by one (`ActionStats.newest_*`)."""
    names = list(actions)
    in_window = (
        attempts.c.action.in_(names),
        attempts.c.started_at >= since,
        attempts.c.outcome.in_(FINISHED),
    )
    ok = sa.case((attempts.c.outcome == "succeeded", 0), else_=1)
    totals = (
        sa.select(attempts.c.action, sa.func.count(), sa.func.sum(ok), sa.func.avg(attempts.c.duration_s))
        .where(*in_window)
        .group_by(attempts.c.action)
    )
    window: dict[str, tuple[int, float, float | None]] = {}
    latest: dict[str, list[Attempt]] = {}
    with engine.connect() as conn:
        for name, calls, failed, latency in conn.execute(totals):
            window[name] = (
                int(calls),
                float(failed or 0) / max(1, int(calls)),
                float(latency) if latency is not None else None,
            )
        for name in window:
            # one action at a time, newest first with a limit: the (action, started_at) index
            # hands over those rows without reading the rest of the window
            rows = conn.execute(_NEWEST, {"action": name, "since": since}).all()
            latest[name] = [
                (float(started_at), outcome != "succeeded", float(duration) if duration is not None else None)
                for started_at, outcome, duration in rows
            ]
    stats = {}
    for name in names:
        calls, error_rate, mean_latency = window.get(name, (0, 0.0, None))
        w, w_err, w_latency, last, newest_at, newest_failed = latest_stats(latest.get(name, ()))
        stats[name] = ActionStats(
            calls=calls, error_rate=error_rate, mean_latency_s=mean_latency, latest_calls=w,
            latest_error_rate=w_err, latest_mean_latency_s=w_latency, latest_started_at=last,
            newest_started_at=newest_at, newest_failed=newest_failed,
        )
    return stats
