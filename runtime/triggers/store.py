"""The fire store: which trigger fires were claimed, which runs they started, which are paused.

Two tables (SQLAlchemy Core) that sit in the journal's database beside the runs:

- `overture_trigger_fires`: one row per fire, keyed by its deterministic id (= the run's id). The
  primary key is the "no double" guarantee: a fire is claimed by inserting its row, and a second
  claim of the same fire (another worker, a restart, a redelivered webhook) inserts nothing.
- `overture_trigger_states`: per (workflow, trigger) the cursor (fires at or before it have been
  decided) and the paused flag. The cursor moves in the same transaction as the claims it covers,
  so a crash can leave a claimed-but-not-started fire (finished on restart), never a lost one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite

from runtime.journal_urls import to_url

metadata = sa.MetaData()

fires = sa.Table(
    "overture_trigger_fires",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("workflow_key", sa.String(200), nullable=False),
    sa.Column("workflow_name", sa.String(200), nullable=False),
    sa.Column("trigger_id", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("scheduled_at", sa.Double, nullable=True),
    sa.Column("delivery_id", sa.String(200), nullable=True),
    sa.Column("catch_up", sa.Boolean, nullable=False, default=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("run_id", sa.String(64), nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
    sa.Index("ix_overture_trigger_fires_trigger", "workflow_key", "trigger_id", "created_at"),
    sa.Index("ix_overture_trigger_fires_state", "state"),
)

states = sa.Table(
    "overture_trigger_states",
    metadata,
    sa.Column("workflow_key", sa.String(200), primary_key=True),
    sa.Column("trigger_id", sa.String(200), primary_key=True),
    sa.Column("cursor", sa.Double, nullable=True),
    sa.Column("paused", sa.Boolean, nullable=False, default=False),
    sa.Column("paused_at", sa.Double, nullable=True),
    sa.Column("paused_by", sa.String(200), nullable=True),
    sa.Column("updated_at", sa.Double, nullable=False),
)

CLAIMED, STARTED, FAILED = "claimed", "started", "failed"


@dataclass(frozen=True)
class FireRecord:
    id: str
    workflow_key: str
    workflow_name: str
    trigger_id: str
    kind: str
    scheduled_at: float | None
    delivery_id: str | None
    catch_up: bool
    state: str
    run_id: str | None
    error: str | None
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class TriggerState:
    workflow_key: str
    trigger_id: str
    cursor: float | None
    paused: bool
    paused_at: float | None
    paused_by: str | None


@dataclass(frozen=True)
class NewFire:
    """A fire to claim: its id and what it is."""

    id: str
    kind: str
    scheduled_at: float | None = None
    delivery_id: str | None = None
    catch_up: bool = False


def _fire(row: Any) -> FireRecord:
    return FireRecord(
        id=row.id,
        workflow_key=row.workflow_key,
        workflow_name=row.workflow_name,
        trigger_id=row.trigger_id,
        kind=row.kind,
        scheduled_at=row.scheduled_at,
        delivery_id=row.delivery_id,
        catch_up=bool(row.catch_up),
        state=row.state,
        run_id=row.run_id,
        error=row.error,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _state(row: Any) -> TriggerState:
    return TriggerState(
        workflow_key=row.workflow_key,
        trigger_id=row.trigger_id,
        cursor=row.cursor,
        paused=bool(row.paused),
        paused_at=row.paused_at,
        paused_by=row.paused_by,
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # the same settings as the journal's connections to this file: WAL, full sync, wait for locks
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


class FireStore:
    """Open with `FireStore.open(url_or_path)`; the same targets as `Journal.open`."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    @classmethod
    def open(cls, target: str | Path | None = None, *, schema: str | None = None) -> FireStore:
        url = to_url(target)
        if url.startswith("sqlite"):
            engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
            sa.event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = sa.create_engine(url, pool_pre_ping=True)
            if schema:
                engine = engine.execution_options(schema_translate_map={None: schema})
        metadata.create_all(engine)
        return cls(engine)

    def close(self) -> None:
        self._engine.dispose()

    def _insert_ignore(self, table: sa.Table, values: dict[str, Any]) -> Any:
        # "insert unless the key exists" in one statement on both dialects: the row either goes
        # in or the statement does nothing; it never raises on a concurrent claim
        dialect = self._engine.dialect.name
        if dialect == "postgresql":
            # imported here: its module pulls in every PostgreSQL driver adapter (~25 ms), which a
            # SQLite store never uses
            from sqlalchemy.dialects import postgresql

            return postgresql.insert(table).values(**values).on_conflict_do_nothing()
        if dialect == "sqlite":
            return sqlite.insert(table).values(**values).on_conflict_do_nothing()
        raise NotImplementedError(f"the fire store does not support {dialect}")

    # -- trigger states ---------------------------------------------------------------------------

    def state(self, workflow_key: str, trigger_id: str) -> TriggerState | None:
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(states).where(
                    states.c.workflow_key == workflow_key, states.c.trigger_id == trigger_id
                )
            ).first()
        return _state(row) if row else None

    def states(self, workflow_key: str | None = None) -> list[TriggerState]:
        query = sa.select(states).order_by(states.c.workflow_key, states.c.trigger_id)
        if workflow_key is not None:
            query = query.where(states.c.workflow_key == workflow_key)
        with self._engine.connect() as conn:
            return [_state(row) for row in conn.execute(query)]

    def ensure_state(
        self, workflow_key: str, trigger_id: str, *, cursor: float | None, now: float
    ) -> TriggerState:
        """The trigger's state, created with `cursor` when it has none yet."""
        with self._engine.begin() as conn:
            conn.execute(
                self._insert_ignore(
                    states,
                    dict(
                        workflow_key=workflow_key,
                        trigger_id=trigger_id,
                        cursor=cursor,
                        paused=False,
                        updated_at=now,
                    ),
                )
            )
        found = self.state(workflow_key, trigger_id)
        assert found is not None
        return found

    def set_paused(
        self, workflow_key: str, trigger_id: str, paused: bool, *, now: float, by: str | None = None
    ) -> TriggerState:
        """Pause or resume. Resuming moves the cursor to `now`: the fires that fell in the pause
        were deliberately not wanted, so they are not "missed" and never caught up."""
        self.ensure_state(workflow_key, trigger_id, cursor=now, now=now)
        values: dict[str, Any] = {"paused": paused, "updated_at": now}
        if paused:
            values.update(paused_at=now, paused_by=by)
        else:
            values.update(paused_at=None, paused_by=None, cursor=now)
        with self._engine.begin() as conn:
            query = states.update().where(
                states.c.workflow_key == workflow_key, states.c.trigger_id == trigger_id
            )
            if not paused:
                query = query.where(states.c.paused.is_(True))  # resuming a running trigger: no-op
            conn.execute(query.values(**values))
        found = self.state(workflow_key, trigger_id)
        assert found is not None
        return found

    # -- fires ------------------------------------------------------------------------------------

    def claim(
        self,
        workflow_key: str,
        workflow_name: str,
        trigger_id: str,
        new: Sequence[NewFire],
        *,
        now: float,
        cursor: float | None = None,
    ) -> list[FireRecord]:
        """Insert the fires not claimed before and, in the same transaction, move the trigger's
        cursor forward to `cursor`; returns only the fires this call inserted."""
        inserted: list[str] = []
        with self._engine.begin() as conn:
            for fire in new:
                result = conn.execute(
                    self._insert_ignore(
                        fires,
                        dict(
                            id=fire.id,
                            workflow_key=workflow_key,
                            workflow_name=workflow_name,
                            trigger_id=trigger_id,
                            kind=fire.kind,
                            scheduled_at=fire.scheduled_at,
                            delivery_id=fire.delivery_id,
                            catch_up=fire.catch_up,
                            state=CLAIMED,
                            run_id=None,
                            error=None,
                            created_at=now,
                            updated_at=now,
                        ),
                    )
                )
                if result.rowcount:
                    inserted.append(fire.id)
            if cursor is not None:
                conn.execute(
                    states.update()
                    .where(
                        states.c.workflow_key == workflow_key,
                        states.c.trigger_id == trigger_id,
                        sa.or_(states.c.cursor.is_(None), states.c.cursor < cursor),
                    )
                    .values(cursor=cursor, updated_at=now)
                )
        return self._get_many(inserted)

    def _get_many(self, ids: Iterable[str]) -> list[FireRecord]:
        wanted = list(ids)
        if not wanted:
            return []
        with self._engine.connect() as conn:
            rows = {r.id: _fire(r) for r in conn.execute(sa.select(fires).where(fires.c.id.in_(wanted)))}
        return [rows[i] for i in wanted if i in rows]

    def get(self, fire_id: str) -> FireRecord | None:
        found = self._get_many([fire_id])
        return found[0] if found else None

    def mark_started(self, fire_id: str, run_id: str, *, now: float) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                fires.update()
                .where(fires.c.id == fire_id)
                .values(state=STARTED, run_id=run_id, error=None, updated_at=now)
            )

    def mark_failed(self, fire_id: str, error: str, *, now: float) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                fires.update()
                .where(fires.c.id == fire_id, fires.c.state == CLAIMED)
                .values(state=FAILED, error=error, updated_at=now)
            )

    def unstarted(self) -> list[FireRecord]:
        """Fires claimed but not (yet) started: what a crash between claim and start leaves."""
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(fires).where(fires.c.state == CLAIMED).order_by(fires.c.created_at))
            return [_fire(r) for r in rows]

    def fires(
        self, *, workflow_key: str | None = None, trigger_id: str | None = None, limit: int = 50
    ) -> list[FireRecord]:
        """Fires, newest first."""
        query = sa.select(fires).order_by(fires.c.created_at.desc(), fires.c.scheduled_at.desc()).limit(limit)
        if workflow_key is not None:
            query = query.where(fires.c.workflow_key == workflow_key)
        if trigger_id is not None:
            query = query.where(fires.c.trigger_id == trigger_id)
        with self._engine.connect() as conn:
            return [_fire(r) for r in conn.execute(query)]
