"""Recent outcomes per action, read from the journal's attempts table for routing decisions."""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa

from runtime.journal_schema import attempts
from runtime.routing import ActionStats


def action_stats(engine: sa.Engine, actions: Iterable[str], *, since: float) -> dict[str, ActionStats]:
    """Error rate and mean latency per action over finished attempts started since `since`."""
    names = list(actions)
    ok = sa.case((attempts.c.outcome == "succeeded", 0), else_=1)
    query = (
        sa.select(attempts.c.action, sa.func.count(), sa.func.sum(ok), sa.func.avg(attempts.c.duration_s))
        .where(
            attempts.c.action.in_(names),
            attempts.c.started_at >= since,
            attempts.c.outcome.in_(["succeeded", "failed", "timeout"]),
        )
        .group_by(attempts.c.action)
    )
    stats = {name: ActionStats(calls=0, error_rate=0.0, mean_latency_s=None) for name in names}
    with engine.connect() as conn:
        for name, calls, failed, latency in conn.execute(query):
            stats[name] = ActionStats(
                calls=int(calls),
                error_rate=float(failed or 0) / max(1, int(calls)),
                mean_latency_s=float(latency) if latency is not None else None,
            )
    return stats
