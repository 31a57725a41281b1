"""The journal: the durable record of runs, steps, attempts, events, timers and approvals.

SQLite in a data directory by default (`$OVERTURE_DATA_DIR/journal.db`, default `./.overture`),
PostgreSQL by URL (`$OVERTURE_DATABASE_URL`, `postgresql+psycopg://...`). Each state change is one
transaction that also appends its event, so what the journal says and what subscribers were told
never disagree; listeners are called only after the commit.

Secrets: everything written for people to read (events, attempt rows, errors, rendered step
inputs) goes through `redact` first. The data a resumed run needs to continue (run inputs, step
outputs) is stored as given: redacting it would feed `***` to the next step after a restart.
Secrets belong in `${{ secrets.NAME }}` inside invoke templates, which never reach the journal.

The calls are synchronous: each is a small indexed write, and keeping them on the event loop's
thread keeps the engine's order of writes the order of commits (no thread-pool reordering).

Durability on SQLite: a commit is fsynced as it is made, except for an engine's journal
(`defer_fsync`), whose commits are made durable together by `flush()` at the engine's barriers,
before any action call and before the engine reports to its caller (group commit, see
`journal_sync`). The per-step statements skip SQLAlchemy's execution layer (`journal_sql`) and
the WAL is checkpointed off the writer's thread (`journal_checkpoint`).

On PostgreSQL every statement is a round trip: the hot writes (an attempt's start and end, a
step's state, a run's creation and state) are one statement each, their parts as WITH clauses
run in autocommit (`journal_pg`), and reads go to the writer's connection in autocommit. So are
a cancel request, an approval's request and decision, a timer set and fired, a compensation
row, an appended event, and the marking of attempts a crash left in flight (after the read that
finds them); a write whose event depends on its UPDATE finding a row appends the event only then
(`journal_pg.together(..., guarded=True)`), as the transaction that raised or returned did.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa

from runtime import journal_pg, journal_sql, journal_stats
from runtime.errors import RunNotFound
from runtime.journal_checkpoint import Checkpointer
from runtime.journal_schema import (
    WHOLE_STEP,
    approvals,
    attempts,
    compensations,
    events,
    item_of,
    metadata,
    runs,
    step_results,
    timers,
)
from runtime.journal_stats import RecentAttempt, WindowTotals
from runtime.journal_sync import WalSync

# re-exported: these were defined here, and callers still import them from here
from runtime.journal_urls import default_url as default_url
from runtime.journal_urls import sqlite_url as sqlite_url
from runtime.journal_urls import to_url as _to_url
from runtime.records import (
    ApprovalRecord,
    AttemptRecord,
    Event,
    RunRecord,
    RunState,
    StepRecord,
    StepState,
    TimerRecord,
    UndoRecord,
    UndoState,
)
from runtime.routing import ActionStats
from runtime.schema_upgrade import add_missing_columns

log = logging.getLogger("overture.runtime")

WRITER_IDLE_PING_S = 2.0
"""PostgreSQL: a held writer connection idle this long is pinged before its next use."""

OUTPUT_CAP_BYTES = 64 * 1024
"""Attempt outputs larger than this are stored as a truncated preview (step results keep all)."""

EventListener = Callable[[Event], None]
Redactor = Callable[[Any], Any]

_FINISHED = [RunState.SUCCEEDED.value, RunState.FAILED.value, RunState.CANCELLED.value]


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers (the CLI, the service) read while a worker writes.
    cursor.execute("PRAGMA journal_mode=WAL")
    # FULL, not NORMAL: in WAL mode NORMAL survives a process crash but may lose the last commits
    # on power loss, and a lost "step completed" means the step's side effect runs again. The
    # engine's own commits go without and are made durable together (`defer_fsync`, `flush`).
    cursor.execute("PRAGMA synchronous=FULL")
    # other processes (CLI approve/cancel) write too; wait for the lock instead of failing
    cursor.execute("PRAGMA busy_timeout=10000")
    # the log is rewound after a full checkpoint; cut the file back then, or it keeps its peak
    # size. Twice the ~8 MB the checkpointer lets it reach (`MAX_WAL_FRAMES`): cut back to 8 MB,
    # every round's last frames grew the file again, and an fsync that grows it costs ~0.3 ms
    # against ~0.2 ms for one that overwrites (a 1,000-step chain: 348 growing fsyncs, now 207)
    cursor.execute("PRAGMA journal_size_limit=16777216")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


_STATEMENTS: dict[tuple[Any, ...], Any] = {}


def _statement(kind: str, table: sa.Table, keys: Sequence[str], names: Sequence[str]) -> Any:
    """A prepared UPDATE (WHERE keys, SET names) or INSERT (keys + names) on `table`, built once
    per column set. SQLAlchemy memoizes the cache key of a statement object, not of a freshly
    built one: building `.values(...)` per call spent more time than SQLite's commit."""
    cache_key = (kind, table.name, tuple(keys), tuple(names))
    stmt = _STATEMENTS.get(cache_key)
    if stmt is None:
        if kind == "update":
            params = {n: sa.bindparam(f"v_{n}", type_=table.c[n].type) for n in names}
            where = [table.c[k] == sa.bindparam(f"k_{k}", type_=table.c[k].type) for k in keys]
            stmt = table.update().where(*where).values(params)
        else:
            stmt = table.insert().values(journal_pg.row_values(table, (*names, *keys), "v_"))
        _STATEMENTS[cache_key] = stmt
    return stmt


def _upsert_statement(
    dialect: str, table: sa.Table, keys: Sequence[str], names: Sequence[str], keep: Sequence[str] = ()
) -> Any:
    """A prepared INSERT ... ON CONFLICT (keys) DO UPDATE SET names (one statement where an
    UPDATE and, when it found no row, an INSERT were two); a column in `keep` keeps a value it
    already has. Built once per dialect and column set, as `_statement`."""
    cache_key = ("upsert", dialect, table.name, tuple(keys), tuple(names), tuple(keep))
    stmt = _STATEMENTS.get(cache_key)
    if stmt is None:
        stmt = journal_pg.upsert(table, keys, names, keep, "v_", sqlite=dialect == "sqlite")
        _STATEMENTS[cache_key] = stmt
    return stmt


_ATTEMPT_START = (
    "run_id",
    "workflow_name",
    "step_id",
    "iteration",
    "attempt",
    "kind",
    "action",
    "idempotency_key",
    "started_at",
    "outcome",
    "worker_id",
    "runs_in_flight",
    "propensity",
    "candidates",
    "output_truncated",
)
_ATTEMPT_END = (
    "ended_at",
    "duration_s",
    "outcome",
    "error_type",
    "error_class",
    "error_message",
    "transient",
    "retry_after",
    "output",
    "output_size",
    "output_truncated",
)
_STEP_START = ("state", "action", "inputs", "attempts", "not_before", "updated_at")
"""A step's row at its attempt's start, but for `started_at` (kept when it has one)."""


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _prefixed(values: Mapping[str, Any]) -> dict[str, Any]:
    """A row's values as the `v_` parameters of `_statement`'s and `_upsert_statement`'s SQL."""
    return journal_pg.prefixed("v_", values)


# the statements run per step or per run, built once (see `_statement`)
_CANCEL_REQUESTED = sa.select(runs.c.cancel_requested).where(runs.c.id == sa.bindparam("run_id"))
_EVENT_INSERT = _statement("insert", events, (), journal_pg.EVENT_COLUMNS)
_ATTEMPT_BY_ID = sa.select(
    attempts.c.run_id, attempts.c.step_id, attempts.c.iteration, attempts.c.started_at
).where(attempts.c.id == sa.bindparam("id"))
_RUN_BY_ID = sa.select(runs).where(runs.c.id == sa.bindparam("run_id"))
_RUN_STATE = sa.select(runs.c.state).where(runs.c.id == sa.bindparam("run_id"))
_STEPS_OF_RUN = sa.select(step_results).where(step_results.c.run_id == sa.bindparam("run_id"))
_STARTED_ATTEMPTS = sa.select(attempts).where(
    attempts.c.run_id == sa.bindparam("run_id"), attempts.c.outcome == "started"
)


def _claim_statement(now: Any, until: Any) -> Any:
    """The lease's take or renewal: unheld, ours, or lapsed at `now`; held to `until`."""
    return (
        runs.update()
        .where(
            runs.c.id == sa.bindparam("k_run_id"),
            sa.or_(runs.c.owner.is_(None), runs.c.owner == sa.bindparam("k_owner"), runs.c.lease_until < now),
        )
        .values(owner=sa.bindparam("v_owner"), lease_until=until)
    )


_CLAIM = _claim_statement(
    sa.bindparam("k_now", type_=sa.Double), sa.bindparam("v_lease_until", type_=sa.Double)
)
# PostgreSQL: leases timed by the database server's clock, which every machine shares (their own
# clocks drift apart: one behind would take a dead worker's runs over late, one ahead would steal
# live leases). Seconds since the epoch, as the lease columns hold
SERVER_NOW = sa.cast(sa.func.extract("epoch", sa.func.clock_timestamp()), sa.Double)
_CLAIM_AT_SERVER = _claim_statement(SERVER_NOW, SERVER_NOW + sa.bindparam("v_ttl", type_=sa.Double))
# PostgreSQL: the writes whose event depends on their UPDATE finding its row, RETURNING it
# (`journal_pg.together(..., guarded=True)`)
_CANCEL_REQUEST = (
    runs.update().where(runs.c.id == sa.bindparam("k_id")).values(cancel_requested=True).returning(runs.c.id)
)
_APPROVAL_KEY = ("run_id", "step_id", "iteration")
_DECISION = (
    _statement(
        "update", approvals, _APPROVAL_KEY, ("decided_at", "approved", "decided_by", "decided_as", "comment")
    )
    .where(approvals.c.decided_at.is_(None))
    .returning(approvals.c.run_id)
)
_TIMER_SET = ("kind", "wake_at", "fired", "created_at")
_RELEASE = (
    runs.update()
    .where(runs.c.id == sa.bindparam("k_run_id"), runs.c.owner == sa.bindparam("k_owner"))
    .values(owner=None, lease_until=None)
)


# outputs may hold dates, decimals or UUIDs; store their text rather than fail the step. One
# encoder each, made once: `json.dumps(..., default=str)` builds a new encoder per call
_JSON = json.JSONEncoder(default=str)
_COMPACT_JSON = json.JSONEncoder(default=str, separators=(",", ":"))


def _dumps(value: Any) -> str:
    return _JSON.encode(value)


def _json_size(value: Any) -> int:
    return len(_COMPACT_JSON.encode(value).encode())


def error_data(exc: BaseException | None = None, **fields: Any) -> dict[str, Any]:
    """An error as stored in the journal: type, class, message, transient, status, retry_after."""
    data: dict[str, Any] = {}
    if exc is not None:
        data = {
            "type": getattr(exc, "type", type(exc).__name__),
            "class": type(exc).__name__,
            "message": getattr(exc, "message", None) or str(exc) or type(exc).__name__,
            "transient": bool(getattr(exc, "transient", False)),
        }
        for name in ("status", "retry_after"):
            value = getattr(exc, name, None)
            if value is not None:
                data[name] = value
    data.update(fields)
    return data


class Journal:
    """SQLAlchemy Core over SQLite or PostgreSQL. Open with `Journal.open(path_or_url)`."""

    def __init__(self, engine: sa.Engine, *, redact: Redactor | None = None, schema: str | None = None):
        self._engine = engine
        # an in-memory SQLite journal has nothing to fsync: no durability switching for it
        self._on_sqlite = engine.dialect.name == "sqlite"
        self._dialect = engine.dialect.name
        self._sqlite_file = self._on_sqlite and engine.url.database not in (None, "", ":memory:")
        self._listeners: list[EventListener] = []
        # attempts started by this process and not finished yet: finish_attempt needs their key
        # and start time, and reading them back would be one more query per step
        self._open_attempts: dict[int, tuple[str, str, int, float]] = {}
        self.single_statements = not self._on_sqlite
        """PostgreSQL: each write is ONE statement run in autocommit (`journal_pg`), one round trip.
        False makes the same writes as transactions of several statements, as on SQLite: the
        reference the single statements are tested against, row for row."""
        self.server_clock = not self._on_sqlite
        """Leases are timed by the database server's clock (PostgreSQL, shared by machines whose
        own clocks disagree) rather than this machine's (SQLite, one machine)."""
        self.fsync = True
        """SQLite: fsync each state change (synchronous=FULL). False commits without (NORMAL):
        changes survive a crash of the process but the last ones may be lost on power failure."""
        self.defer_fsync = False
        """SQLite with `fsync`: commit without an fsync each and make them durable together at
        `flush()` (group commit, see `journal_sync`). Set by the engine, which flushes before
        anything outside the journal depends on a commit."""
        self._wal: WalSync | None = None
        if self._sqlite_file and engine.url.database:
            self._wal = WalSync(str(Path(engine.url.database).resolve()) + "-wal")
        self.redact: Redactor = redact or (lambda value: value)
        self.schema = schema
        self.url = engine.url.render_as_string(hide_password=True)
        # SQLite: writes go through one connection held open (a pool checkout per transaction
        # cost more than the transaction) and, for the per-step statements, straight to the
        # DBAPI cursor with SQL compiled once (see `_exec`); the lock serializes the service's
        # threads with the engine's loop on it
        self._writer: sa.Connection | None = None
        self._writer_used = time.monotonic()
        self._checkpointer: Checkpointer | None = None
        self._write_lock = threading.RLock()
        self._compiled: dict[int, journal_sql.Prepared] = {}
        self._schema_map: dict[str | None, str] | None = engine.get_execution_options().get(
            "schema_translate_map"
        )

    # -- opening --------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        target: str | Path | None = None,
        *,
        schema: str | None = None,
        redact: Redactor | None = None,
        create: bool = True,
    ) -> Journal:
        """Open (and create the tables of) a journal.

        `target`: a database URL, a SQLite file path, a data directory (→ `journal.db` in it), or
        None for the environment's default. `schema`: a PostgreSQL schema to keep the tables in
        (created when missing), e.g. to isolate tests.
        """
        url = _to_url(target)
        options: dict[str, Any] = {}
        if url.startswith("sqlite"):
            engine = sa.create_engine(url, connect_args={"timeout": 30}, json_serializer=_dumps)
            sa.event.listen(engine, "connect", _sqlite_pragmas)
        else:
            # bounded waits on a dropped network (see journal_pg.TCP_OPTIONS)
            parsed = sa.engine.make_url(url)
            libpq = parsed.get_driver_name() in ("psycopg", "psycopg2")  # the options are libpq's
            keepalive = journal_pg.tcp_options(parsed.query) if libpq else {}
            engine = sa.create_engine(url, pool_pre_ping=True, json_serializer=_dumps, connect_args=keepalive)
        if schema:
            if url.startswith("sqlite"):
                raise ValueError("`schema` is for PostgreSQL; use a separate file for SQLite")
            with engine.begin() as conn:
                conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
            options["schema_translate_map"] = {None: schema}
            engine = engine.execution_options(**options)
        if create:
            metadata.create_all(engine)
            add_missing_columns(engine, metadata, schema)
        return cls(engine, redact=redact, schema=schema)

    def close(self) -> None:
        with self._write_lock:
            if self._wal is not None:  # what the engine committed last reaches the disk first
                self._wal.close()
            if self._writer is not None:
                self._writer.close()
                self._writer = None
            if self._checkpointer is not None:
                self._checkpointer.close()
                self._checkpointer = None
        self._engine.dispose()

    def drop_schema(self) -> None:
        """Drop the PostgreSQL schema this journal lives in (test cleanup)."""
        if not self.schema:
            raise ValueError("this journal has no schema of its own")
        with self._engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'))

    # -- events and listeners -------------------------------------------------------------------

    def add_listener(self, listener: EventListener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: EventListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    @contextmanager
    def _tx(self, *, durable: bool = True) -> Iterator[tuple[sa.Connection, list[Event]]]:
        """One transaction; its events go to the listeners after the commit.

        `durable=False` (SQLite only) commits without an fsync: the write survives a crash of the
        process, and reaches the disk with the next fsync of the log (a durable commit or a
        `flush`), which syncs the whole WAL up to itself. Used for records whose loss on power
        failure the engine tolerates: an attempt's start (the step then runs once more with the
        same idempotency key, which it would anyway) and run leases (they expire)."""
        pending: list[Event] = []
        # one held connection for the writes (on PostgreSQL too: a checkout per transaction
        # pinged the server first, one more round trip per write; see `_writer_connection`)
        with self._write_lock:
            conn = self._writer_connection()
            synced = durable and self.fsync and not self.defer_fsync
            if self._on_sqlite:
                self._synchronous(conn, "FULL" if synced else "NORMAL")
            with conn.begin():
                yield conn, pending
            if self._wal is not None:
                self._wal.committed(synced=synced)
            if self._checkpointer is not None:
                self._checkpointer.committed(conn.connection.dbapi_connection)
        self._tell(pending)

    @contextmanager
    def _one_statement(self) -> Iterator[tuple[sa.Connection, list[Event]]]:
        """PostgreSQL: a write made of ONE statement (see `journal_pg`), run in autocommit: the
        statement is its own transaction, without BEGIN and COMMIT round trips of their own.
        Its events go to the listeners after it."""
        pending: list[Event] = []
        with self._write_lock:
            conn = self._writer_connection()
            with self._autocommit(conn):
                yield conn, pending
        self._tell(pending)

    @contextmanager
    def _single(self, *, durable: bool = True) -> Iterator[tuple[sa.Connection, list[Event]]]:
        """A write of exactly one statement: on PostgreSQL in autocommit (`_one_statement`), on
        SQLite a transaction as `_tx`."""
        write = self._one_statement() if self.single_statements else self._tx(durable=durable)
        with write as (conn, pending):
            yield conn, pending

    def _write_together(
        self,
        parts: Sequence[tuple[Any, Mapping[str, Any]]],
        event: Mapping[str, Any] | None,
        *,
        guarded: bool = False,
    ) -> bool:
        """Prebuilt statements with their parameters, and an event row, in one transaction: on
        PostgreSQL one statement (`journal_pg.together`), on SQLite one after the other.

        `guarded` (PostgreSQL only): the first statement RETURNs the rows it wrote and the event
        is appended only when there was one; returns whether there was (else True)."""
        if not self.single_statements:
            assert not guarded, "a guarded write is one statement, on PostgreSQL"
            with self._tx() as (conn, pending):
                for stmt, params in parts:
                    self._exec(conn, stmt, params)
                if event is not None:
                    self._insert_event(conn, pending, event)
            return True
        merged: dict[str, Any] = {}
        for _, params in parts:
            for name, value in params.items():
                if merged.setdefault(name, value) is not value and merged[name] != value:
                    raise ValueError(f"statements joined in one write give `{name}` two values")
        if event is not None:
            merged.update(journal_pg.prefixed("e_", event))
        statement = journal_pg.together([stmt for stmt, _ in parts], event=event is not None, guarded=guarded)
        with self._one_statement() as (conn, pending):
            ((seq,),) = self._select(statement, merged, conn)
            if event is not None and seq is not None:
                pending.append(Event(seq=seq, **event))
        return seq is not None

    def _tell(self, pending: list[Event]) -> None:
        for event in pending:
            for listener in list(self._listeners):
                try:
                    listener(event)
                except Exception:  # the write is committed; a faulty subscriber must not undo the run
                    log.exception("event listener %r failed on %s", listener, event.type)

    def _writer_connection(self) -> sa.Connection:
        conn = self._writer
        if conn is not None and not self._on_sqlite and not conn.closed and not conn.invalidated:
            conn = self._checked(conn)
        if conn is None or conn.closed or conn.invalidated:
            conn = self._writer = self._engine.connect()
            if self._sqlite_file:
                # checkpoints run on a thread of their own (see `journal_checkpoint`)
                conn.connection.dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")  # type: ignore[union-attr]
                if self._checkpointer is None:
                    self._checkpointer = Checkpointer(self._engine.raw_connection)
        return conn

    def _checked(self, conn: sa.Connection) -> sa.Connection | None:
        """The held PostgreSQL connection, pinged first when it sat idle (as the pool's
        pre-ping would at a checkout): a server restarted meanwhile costs a reconnect, not the
        next write. None when it is gone."""
        now = time.monotonic()
        idle, self._writer_used = now - self._writer_used, now
        if idle < WRITER_IDLE_PING_S or conn.in_transaction():
            return conn
        try:
            conn.exec_driver_sql("SELECT 1")
            conn.rollback()
            return conn
        except sa.exc.DBAPIError:
            with contextlib.suppress(Exception):
                conn.close()
            return None

    def _exec(self, conn: sa.Connection, stmt: Any, params: Mapping[str, Any]) -> Any:
        """Run one of the module's prebuilt statements in `conn`'s transaction; returns the DBAPI
        cursor (see `journal_sql`), with `rowcount` (`_inserted_id` gives an insert's key)."""
        return self._execute(conn, self._prepared(stmt), params)

    def _execute(self, conn: sa.Connection, prepared: journal_sql.Prepared, params: Mapping[str, Any]) -> Any:
        """`journal_sql.execute` on `conn`; a connection the server dropped is invalidated, as
        SQLAlchemy's own execution would, so the next write reconnects instead of failing on."""
        dbapi = conn.connection.dbapi_connection
        try:
            return journal_sql.execute(dbapi, prepared, params)
        except sa.exc.DBAPIError as exc:
            if not self._on_sqlite and self._engine.dialect.is_disconnect(exc.orig, dbapi, None):  # type: ignore[arg-type]
                conn.invalidate(exc.orig)
            raise

    def _prepared(self, stmt: Any) -> journal_sql.Prepared:
        prepared = self._compiled.get(id(stmt))
        if prepared is None or prepared.stmt is not stmt:
            compiled = stmt
            if not self._on_sqlite and isinstance(stmt, sa.Insert):
                key = stmt.table.autoincrement_column  # type: ignore[attr-defined]
                if key is not None:  # sqlite3 has `lastrowid`; PostgreSQL says it with RETURNING
                    compiled = stmt.returning(key)
            prepared = journal_sql.prepare(compiled, self._engine.dialect, self._schema_map)
            prepared = self._compiled[id(stmt)] = dataclasses.replace(prepared, stmt=stmt)
        return prepared

    def _select(self, stmt: Any, params: Mapping[str, Any], conn: sa.Connection | None = None) -> list[Any]:
        """The rows of one of the module's prebuilt SELECTs (attribute access, values decoded):
        in `conn`'s transaction, else on the writer's connection outside a transaction (it sees
        the last commit; on PostgreSQL in autocommit, one round trip and no BEGIN/ROLLBACK).

        On PostgreSQL only from an event loop's thread (the engine's reads between its writes):
        the service's worker threads read on pooled connections instead, side by side, rather
        than one at a time behind the engine's writes."""
        if conn is None and not self._on_sqlite and not _in_event_loop():
            with self._engine.connect() as pooled:
                return list(pooled.execute(stmt, params))
        prepared = self._prepared(stmt)
        with self._write_lock:
            conn = conn or self._writer_connection()
            dbapi = conn.connection.dbapi_connection
            if self._on_sqlite or dbapi.autocommit or conn.in_transaction() or dbapi.info.transaction_status:  # type: ignore[union-attr]
                return journal_sql.rows(self._execute(conn, prepared, params), prepared)
            with self._autocommit(conn):
                return journal_sql.rows(self._execute(conn, prepared, params), prepared)

    @staticmethod
    @contextmanager
    def _autocommit(conn: sa.Connection) -> Iterator[None]:
        """PostgreSQL: the writer's connection in autocommit for the block (each statement its own
        transaction: no BEGIN and COMMIT round trips of their own)."""
        dbapi = conn.connection.dbapi_connection
        dbapi.autocommit = True  # type: ignore[union-attr]
        try:
            yield
        finally:
            if not conn.invalidated:  # a dropped connection is replaced, not restored
                dbapi.autocommit = False  # type: ignore[union-attr]

    def _inserted_id(self, result: Any) -> int:
        if self._on_sqlite:
            return int(result.lastrowid)
        return int(result.fetchone()[0])

    async def flush(self) -> None:
        """Return once every commit made so far is on disk: with `defer_fsync`, one fsync of the
        log for all the commits since the last (shared by every caller meanwhile); otherwise at
        once, each commit was synced (or durability was turned off) when it was made."""
        if self._wal is not None and self.fsync and self._wal.pending:
            await self._wal.flush()

    @staticmethod
    def _synchronous(conn: sa.Connection, level: str) -> None:
        # a per-connection setting that SQLite refuses to change inside a transaction
        # (through the DBAPI connection: sqlite3 opens no transaction for a PRAGMA, SQLAlchemy would)
        info = conn.connection.info
        if info.get("synchronous") != level:
            conn.connection.dbapi_connection.execute(f"PRAGMA synchronous={level}")  # type: ignore[union-attr]
            info["synchronous"] = level

    def _event_values(
        self,
        run_id: str,
        type_: str,
        now: float,
        step_id: str | None = None,
        iteration: int | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """An event row's columns: its data redacted, the iteration only for a for-each item."""
        return {
            "run_id": run_id,
            "time": now,
            "type": type_,
            "step_id": step_id,
            "iteration": None if iteration == WHOLE_STEP else iteration,
            "data": self.redact(dict(data or {})),
        }

    def _event(
        self,
        conn: sa.Connection,
        pending: list[Event],
        run_id: str,
        type_: str,
        now: float,
        step_id: str | None = None,
        iteration: int | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> Event:
        return self._insert_event(
            conn, pending, self._event_values(run_id, type_, now, step_id, iteration, data)
        )

    def _insert_event(self, conn: sa.Connection, pending: list[Event], values: Mapping[str, Any]) -> Event:
        """Append an event row (`_event_values`) in `conn`'s transaction; it goes to the listeners
        after the commit."""
        result = self._exec(conn, _EVENT_INSERT, _prefixed(values))
        event = Event(seq=self._inserted_id(result), **values)
        pending.append(event)
        return event

    def append_event(
        self,
        run_id: str,
        type_: str,
        now: float,
        *,
        step_id: str | None = None,
        iteration: int | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> Event:
        with self._single() as (conn, pending):
            return self._event(conn, pending, run_id, type_, now, step_id, iteration, data)

    def events_since(self, run_id: str, seq: int = 0, *, limit: int | None = None) -> list[Event]:
        """The run's events with a sequence number above `seq`, oldest first."""
        query = sa.select(events).where(events.c.run_id == run_id, events.c.seq > seq).order_by(events.c.seq)
        if limit:
            query = query.limit(limit)
        with self._engine.connect() as conn:
            return [
                Event(
                    seq=r.seq,
                    run_id=r.run_id,
                    time=r.time,
                    type=r.type,
                    step_id=r.step_id,
                    iteration=r.iteration,
                    data=r.data or {},
                )
                for r in conn.execute(query)
            ]

    # -- runs ------------------------------------------------------------------------------------

    def create_run(
        self,
        run_id: str,
        *,
        workflow_name: str,
        workflow_version: int | None,
        document: dict[str, Any],
        inputs: dict[str, Any],
        now: float,
        deadline_at: float | None,
        worker_id: str | None,
    ) -> RunRecord:
        """Journal a new run; returns its record as `get_run` would read it back."""
        values = {
            "id": run_id,
            "workflow_name": workflow_name,
            "workflow_version": workflow_version,
            "document": document,
            "inputs": inputs,
            "state": RunState.RUNNING.value,
            "created_at": now,
            "updated_at": now,
            "deadline_at": deadline_at,
            "cancel_requested": False,
            "worker_id": worker_id,
        }
        parts: list[tuple[Any, Mapping[str, Any]]] = [
            (_statement("insert", runs, (), tuple(values)), _prefixed(values))
        ]
        if deadline_at is not None:
            timer = {
                "run_id": run_id,
                "step_id": "",
                "iteration": WHOLE_STEP,
                "kind": "deadline",
                "wake_at": deadline_at,
                "fired": False,
                "created_at": now,
            }
            parts.append((_statement("insert", timers, (), tuple(timer)), _prefixed(timer)))
        data = {"workflow": workflow_name, "version": workflow_version, "deadline_at": deadline_at}
        self._write_together(parts, self._event_values(run_id, "run.started", now, data=data))
        # the document and inputs as they come back from their JSON (a date as its text)
        stored = {"document": json.loads(_dumps(document)), "inputs": json.loads(_dumps(inputs))}
        unset = dict.fromkeys(("ended_at", "error", "compensation", "owner", "lease_until"))
        return self._run(SimpleNamespace(**{**values, **stored, **unset}))

    @staticmethod
    def _run(row: Any) -> RunRecord:
        return RunRecord(
            id=row.id,
            workflow_name=row.workflow_name,
            workflow_version=row.workflow_version,
            document=row.document,
            inputs=row.inputs or {},
            state=RunState(row.state),
            created_at=row.created_at,
            updated_at=row.updated_at,
            ended_at=row.ended_at,
            deadline_at=row.deadline_at,
            error=row.error,
            compensation=row.compensation,
            cancel_requested=bool(row.cancel_requested),
            worker_id=row.worker_id,
            owner=row.owner,
            lease_until=row.lease_until,
        )

    def get_run(self, run_id: str) -> RunRecord:
        found = self._select(_RUN_BY_ID, {"run_id": run_id})
        if not found:
            raise RunNotFound(run_id)
        return self._run(found[0])

    def run_state(self, run_id: str) -> RunState:
        """Just the run's state (`get_run` decodes its whole document)."""
        found = self._select(_RUN_STATE, {"run_id": run_id})
        if not found:
            raise RunNotFound(run_id)
        return RunState(found[0][0])

    def find_run(self, prefix: str) -> RunRecord:
        """A run by id or unique id prefix (what people type in the CLI)."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(runs).where(runs.c.id.startswith(prefix, autoescape=True)).limit(2)
            ).all()
        if len(rows) != 1:
            raise RunNotFound(prefix)
        return self._run(rows[0])

    def list_runs(self, *, state: RunState | None = None, limit: int = 50) -> list[RunRecord]:
        query = sa.select(runs).order_by(runs.c.created_at.desc()).limit(limit)
        if state is not None:
            query = query.where(runs.c.state == state.value)
        with self._engine.connect() as conn:
            return [self._run(r) for r in conn.execute(query)]

    def unfinished_runs(self) -> list[RunRecord]:
        query = sa.select(runs).where(runs.c.state.not_in(_FINISHED)).order_by(runs.c.created_at)
        with self._engine.connect() as conn:
            return [self._run(r) for r in conn.execute(query)]

    def set_run_state(
        self,
        run_id: str,
        state: RunState,
        now: float,
        *,
        event: str | None = None,
        data: Mapping[str, Any] | None = None,
        error: dict[str, Any] | None = None,
        compensation: dict[str, Any] | None = None,
    ) -> None:
        values: dict[str, Any] = {"state": state.value, "updated_at": now}
        if state.finished:
            values["ended_at"] = now
        if error is not None:
            values["error"] = self.redact(error)
        if compensation is not None:
            values["compensation"] = compensation
        parts: list[tuple[Any, Mapping[str, Any]]] = [
            (_statement("update", runs, ("id",), tuple(values)), {"k_id": run_id, **_prefixed(values)})
        ]
        if state.finished:
            parts.append(
                (_statement("update", timers, ("run_id",), ("fired",)), {"k_run_id": run_id, "v_fired": True})
            )
        row = (
            self._event_values(run_id, event, now, data={"state": state.value, **(data or {})})
            if event
            else None
        )
        self._write_together(parts, row)

    # -- leases: one driver per run across processes ------------------------------------------------

    def lease_now(self) -> float:
        """The lease clock's time: the database server's on PostgreSQL, this machine's on SQLite."""
        if not self.server_clock:
            return time.time()
        with self._engine.connect() as conn:
            return float(conn.execute(sa.select(SERVER_NOW)).scalar_one())

    def claim(self, run_id: str, owner: str, *, now: float | None = None, ttl: float) -> bool:
        """Take (or renew) the right to drive a run; False while another worker's lease holds.

        `now`: the time by the lease clock; None reads it where every worker agrees (see
        `lease_now`), in the claim's own statement. Tests pass times of their making."""
        params: dict[str, Any] = {"k_run_id": run_id, "k_owner": owner, "v_owner": owner}
        if now is None and self.server_clock:
            statement, params["v_ttl"] = _CLAIM_AT_SERVER, ttl
        else:
            now = time.time() if now is None else now
            statement = _CLAIM
            params.update(k_now=now, v_lease_until=now + ttl)
        # not fsynced: a lease lost to a power cut is no loss, every worker went with it
        with self._single(durable=False) as (conn, _):
            result = self._exec(conn, statement, params)
        return result.rowcount == 1

    def release(self, run_id: str, owner: str) -> None:
        with self._single(durable=False) as (conn, _):
            self._exec(conn, _RELEASE, {"k_run_id": run_id, "k_owner": owner})

    def orphaned_runs(self, *, now: float | None = None) -> list[str]:
        """Running or compensating runs nobody drives (their worker stopped or died); `now` as
        for `claim`."""
        if now is None:
            lapsed = runs.c.lease_until < (SERVER_NOW if self.server_clock else time.time())
        else:
            lapsed = runs.c.lease_until < now
        query = sa.select(runs.c.id).where(
            runs.c.state.in_([RunState.RUNNING.value, RunState.COMPENSATING.value]),
            sa.or_(runs.c.owner.is_(None), lapsed),
        )
        with self._engine.connect() as conn:
            return [r[0] for r in conn.execute(query)]

    def cancel_requested(self, run_id: str) -> bool:
        """Whether a cancel was asked for (the engine checks this after every step)."""
        found = self._select(_CANCEL_REQUESTED, {"run_id": run_id})
        value = found[0][0] if found else None
        if value is None:
            raise RunNotFound(run_id)
        return bool(value)

    def request_cancel(self, run_id: str, now: float, *, by: str | None = None) -> None:
        if self.single_statements:  # one statement: the flag, and the event when the run was there
            event = self._event_values(run_id, "run.cancel_requested", now, data={"by": by})
            if not self._write_together([(_CANCEL_REQUEST, {"k_id": run_id})], event, guarded=True):
                raise RunNotFound(run_id)
            return
        with self._tx() as (conn, pending):
            result = conn.execute(runs.update().where(runs.c.id == run_id).values(cancel_requested=True))
            if result.rowcount == 0:
                raise RunNotFound(run_id)
            self._event(conn, pending, run_id, "run.cancel_requested", now, data={"by": by})

    # -- step results ----------------------------------------------------------------------------

    def _upsert(
        self, conn: sa.Connection, table: sa.Table, key: Mapping[str, Any], values: Mapping[str, Any]
    ) -> None:
        # not INSERT ... ON CONFLICT: its row must pass the NOT NULL checks before it conflicts,
        # and an update here may give only a few columns of a row that has the rest
        params = {f"k_{k}": v for k, v in key.items()}
        params.update({f"v_{n}": v for n, v in values.items()})
        if self._exec(conn, _statement("update", table, tuple(key), tuple(values)), params).rowcount == 0:
            params.update({f"v_{k}": v for k, v in key.items()})
            self._exec(conn, _statement("insert", table, tuple(key), tuple(values)), params)

    @staticmethod
    def _step(row: Any) -> StepRecord:
        return StepRecord(
            run_id=row.run_id,
            step_id=row.step_id,
            iteration=row.iteration,
            state=StepState(row.state),
            action=row.action,
            inputs=row.inputs,
            output=row.output,
            error=row.error,
            attempts=row.attempts or 0,
            started_at=row.started_at,
            ended_at=row.ended_at,
            not_before=row.not_before,
        )

    def step_results(self, run_id: str) -> dict[tuple[str, int], StepRecord]:
        rows = self._select(_STEPS_OF_RUN, {"run_id": run_id})
        return {(r.step_id, r.iteration): self._step(r) for r in rows}

    def _step_values(self, now: float, state: StepState | None, fields: Mapping[str, Any]) -> dict[str, Any]:
        values: dict[str, Any] = {"updated_at": now}
        if state is not None:
            values["state"] = state.value
            if state.done:
                values.setdefault("ended_at", now)
        for name, value in fields.items():
            values[name] = self.redact(value) if name in ("inputs", "error") else value
        return values

    def put_step(
        self,
        run_id: str,
        step_id: str,
        iteration: int,
        now: float,
        *,
        state: StepState,
        event: str | None = None,
        data: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> None:
        """Write a step's state (and its event) in one transaction."""
        key = {"run_id": run_id, "step_id": step_id, "iteration": iteration}
        values = self._step_values(now, state, fields)
        # one INSERT ... ON CONFLICT: the row holds every NOT NULL column (state, updated_at)
        upsert = _upsert_statement(self._dialect, step_results, tuple(key), tuple(values))
        row = self._event_values(run_id, event, now, step_id, iteration, data) if event else None
        self._write_together([(upsert, _prefixed({**key, **values}))], row)

    # -- attempts --------------------------------------------------------------------------------

    def start_attempt(
        self,
        *,
        run_id: str,
        workflow_name: str,
        step_id: str,
        iteration: int,
        attempt: int,
        kind: str,
        action: str,
        idempotency_key: str,
        now: float,
        worker_id: str | None,
        runs_in_flight: int | None,
        propensity: float | None,
        candidates: Sequence[str] | None,
        inputs: Any,
    ) -> int:
        """Record that an attempt is about to call its action (before the call is made).

        Not fsynced on SQLite (see `_tx`): the next fsync of the log, at the latest the one that
        makes the completion durable, syncs this with it."""
        attempt_row = {
            "run_id": run_id,
            "workflow_name": workflow_name,
            "step_id": step_id,
            "iteration": iteration,
            "attempt": attempt,
            "kind": kind,
            "action": action,
            "idempotency_key": idempotency_key,
            "started_at": now,
            "outcome": "started",
            "worker_id": worker_id,
            "runs_in_flight": runs_in_flight,
            "propensity": propensity,
            "candidates": list(candidates) if candidates else None,
            "output_truncated": False,
        }
        key = {"run_id": run_id, "step_id": step_id, "iteration": iteration}
        event = self._event_values(
            run_id,
            "step.started" if kind == "action" else "compensation.step_started",
            now,
            step_id,
            item_of(iteration),
            {"attempt": attempt, "action": action, "idempotency_key": idempotency_key},
        )
        if kind == "action":
            step_row = {
                "state": StepState.RUNNING.value,
                "action": action,
                "inputs": self.redact(inputs),
                "attempts": attempt,
                "not_before": None,
                "updated_at": now,
                # only the first attempt sets when the step started (coalesce keeps an earlier one)
                "started_at": now if attempt == 1 else None,
            }
        if self.single_statements:
            if kind == "action":
                statement = journal_pg.start(_ATTEMPT_START, _STEP_START)
            else:
                step_row = {
                    "state": UndoState.RUNNING.value,
                    "action": action,
                    "inputs": self.redact(inputs),
                    "attempts": attempt,
                    "updated_at": now,
                }
                statement = journal_pg.start(_ATTEMPT_START, tuple(step_row), table=compensations, keep=())
            params = {
                **journal_pg.prefixed("a_", attempt_row),
                **journal_pg.prefixed("s_", {**key, **step_row}),
                **journal_pg.prefixed("e_", event),
            }
            with self._one_statement() as (conn, pending):
                ((attempt_id, seq),) = self._select(statement, params, conn)
                pending.append(Event(seq=seq, **event))
            self._open_attempts[attempt_id] = (run_id, step_id, iteration, now)
            return attempt_id
        with self._tx(durable=False) as (conn, pending):
            result = self._exec(
                conn, _statement("insert", attempts, (), _ATTEMPT_START), _prefixed(attempt_row)
            )
            attempt_id = self._inserted_id(result)
            if kind == "action":
                statement = _upsert_statement(
                    self._dialect, step_results, tuple(key), _STEP_START, ("started_at",)
                )
                self._exec(conn, statement, _prefixed({**key, **step_row}))
            else:
                self._upsert(
                    conn,
                    compensations,
                    key,
                    {
                        "state": UndoState.RUNNING.value,
                        "action": action,
                        "inputs": self.redact(inputs),
                        "attempts": attempt,
                        "updated_at": now,
                    },
                )
            self._insert_event(conn, pending, event)
        self._open_attempts[attempt_id] = (run_id, step_id, iteration, now)
        return attempt_id

    def finish_attempt(
        self,
        attempt_id: int,
        now: float,
        *,
        outcome: str,
        output: Any = None,
        error: dict[str, Any] | None = None,
        step: Mapping[str, Any] | None = None,
        undo: Mapping[str, Any] | None = None,
        event: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> bool | None:
        """End an attempt; with `step`/`undo` also update its step/compensation row and append the
        event — all in ONE transaction, so a crash leaves either all of it or none. With `step`,
        returns the run's cancel flag as that transaction read it (the driver looks at it next)."""
        opened = self._open_attempts.pop(attempt_id, None)
        if opened is None:  # started by another process (or before a restart)
            (row,) = self._select(_ATTEMPT_BY_ID, {"id": attempt_id})
            opened = (row.run_id, row.step_id, row.iteration, row.started_at)
        run_id, step_id, iteration, started_at = opened
        clean_output = self.redact(output) if output is not None else None
        size = _json_size(clean_output) if clean_output is not None else None
        truncated = size is not None and size > OUTPUT_CAP_BYTES
        stored = {"preview": json.dumps(clean_output, default=str)[:4096]} if truncated else clean_output
        err = self.redact(error) if error else None
        end = {
            "ended_at": now,
            "duration_s": max(0.0, now - started_at),
            "outcome": outcome,
            "error_type": err.get("type") if err else None,
            "error_class": err.get("class") if err else None,
            "error_message": err.get("message") if err else None,
            "transient": err.get("transient") if err else None,
            "retry_after": err.get("retry_after") if err else None,
            "output": stored,
            "output_size": size,
            "output_truncated": truncated,
        }
        key = {"run_id": run_id, "step_id": step_id, "iteration": iteration}
        step_row = None
        if step is not None:
            fields = dict(step)
            state = fields.pop("state", None)
            step_row = self._step_values(now, StepState(state) if state else None, fields)
        event_row = (
            self._event_values(run_id, event, now, step_id, item_of(iteration), data) if event else None
        )
        if self.single_statements and undo is None and step_row and "state" in step_row and event_row:
            statement = journal_pg.finish(_ATTEMPT_END, tuple(step_row))
            params = {
                "a_id": attempt_id,
                "r_id": run_id,
                **journal_pg.prefixed("a_", end),
                **journal_pg.prefixed("s_", {**key, **step_row}),
                **journal_pg.prefixed("e_", event_row),
            }
            with self._one_statement() as (conn, pending):
                ((seq, cancel),) = self._select(statement, params, conn)
                pending.append(Event(seq=seq, **event_row))
            return None if cancel is None else bool(cancel)
        if self.single_statements and step is None and undo is not None:
            values = {k: (self.redact(v) if k == "error" else v) for k, v in undo.items()}
            values["updated_at"] = now
            statement = journal_pg.finish_undo(_ATTEMPT_END, tuple(values), event=event_row is not None)
            params = {
                "a_id": attempt_id,
                **journal_pg.prefixed("a_", end),
                **journal_pg.prefixed("u_", {**key, **values}),
                **journal_pg.prefixed("e_", event_row or {}),
            }
            with self._one_statement() as (conn, pending):
                ((seq,),) = self._select(statement, params, conn)
                if event_row is not None:
                    pending.append(Event(seq=seq, **event_row))
            return None
        with self._tx() as (conn, pending):
            self._exec(
                conn,
                _statement("update", attempts, ("id",), _ATTEMPT_END),
                {"k_id": attempt_id, **_prefixed(end)},
            )
            if step_row is not None:
                self._upsert(conn, step_results, key, step_row)
            if undo is not None:
                values = {k: (self.redact(v) if k == "error" else v) for k, v in undo.items()}
                values["updated_at"] = now
                self._upsert(conn, compensations, key, values)
            if event_row is not None:
                self._insert_event(conn, pending, event_row)
            found = self._select(_CANCEL_REQUESTED, {"run_id": run_id}, conn) if step_row is not None else []
        return bool(found[0][0]) if found else None

    def interrupt_attempts(self, run_id: str, now: float) -> list[AttemptRecord]:
        """Mark the attempts left `started` by a crash as `interrupted`; returns them."""
        found = self._select(_STARTED_ATTEMPTS, {"run_id": run_id})
        if not found:
            return []  # the usual case (a new run): no write transaction for nothing
        if self.single_statements:
            return self._interrupt_in_one(run_id, now, found)
        with self._tx() as (conn, pending):
            rows = self._select(_STARTED_ATTEMPTS, {"run_id": run_id}, conn)
            for row in rows:
                self._open_attempts.pop(row.id, None)
                conn.execute(
                    attempts.update()
                    .where(attempts.c.id == row.id)
                    .values(
                        outcome="interrupted",
                        ended_at=now,
                        error_type="interrupted",
                        error_class=None,
                        error_message="the worker stopped while the attempt was in flight",
                    )
                )
                self._insert_event(conn, pending, self._interrupted_event(run_id, now, row))
        return [self._attempt(r) for r in rows]

    def _interrupted_event(self, run_id: str, now: float, row: Any) -> dict[str, Any]:
        """The event row telling that a crash left the attempt `row` in flight."""
        return self._event_values(
            run_id,
            "step.interrupted" if row.kind == "action" else "compensation.step_interrupted",
            now,
            row.step_id,
            item_of(row.iteration),
            {"attempt": row.attempt, "action": row.action},
        )

    def _interrupt_in_one(self, run_id: str, now: float, found: Sequence[Any]) -> list[AttemptRecord]:
        """PostgreSQL: `interrupt_attempts` for the attempts read (`found`) in one statement
        (`journal_pg.interrupt`), which marks those still `started` and appends their events;
        the events' data is built (and redacted) here, as the transaction did."""
        told = [self._interrupted_event(run_id, now, row) for row in found]
        params = {
            "run_id": run_id,
            "now": now,
            "ids": [row.id for row in found],
            "types": [e["type"] for e in told],
            "step_ids": [e["step_id"] for e in told],
            "iterations": [e["iteration"] for e in told],
            "data": [_dumps(e["data"]) for e in told],
        }
        with self._one_statement() as (conn, pending):
            ((ids, seqs),) = self._select(journal_pg.interrupt(), params, conn)
            marked = set(ids or ())
            done = [(row, event) for row, event in zip(found, told, strict=True) if row.id in marked]
            for (_, event), seq in zip(done, seqs or (), strict=True):
                pending.append(Event(seq=seq, **event))
        for row, _ in done:
            self._open_attempts.pop(row.id, None)
        return [self._attempt(row) for row, _ in done]

    @staticmethod
    def _attempt(row: Any) -> AttemptRecord:
        return AttemptRecord(**{c.name: getattr(row, c.name) for c in attempts.columns})

    def attempts(
        self,
        *,
        action: str | Iterable[str] | None = None,
        run_id: str | None = None,
        step_id: str | None = None,
        kind: str | None = None,
        since: float | None = None,
        until: float | None = None,
        outcome: str | None = None,
        limit: int | None = None,
    ) -> list[AttemptRecord]:
        """Attempts, oldest first, filtered by action(s), run, step, kind, outcome and
        `since <= started_at < until` (see `AttemptRecord` for the columns)."""
        query = sa.select(attempts).order_by(attempts.c.started_at, attempts.c.id)
        if action is not None:
            names = [action] if isinstance(action, str) else list(action)
            query = query.where(attempts.c.action.in_(names))
        if run_id is not None:
            query = query.where(attempts.c.run_id == run_id)
        if step_id is not None:
            query = query.where(attempts.c.step_id == step_id)
        if kind is not None:
            query = query.where(attempts.c.kind == kind)
        if outcome is not None:
            query = query.where(attempts.c.outcome == outcome)
        if since is not None:
            query = query.where(attempts.c.started_at >= since)
        if until is not None:
            query = query.where(attempts.c.started_at < until)
        if limit:
            query = query.limit(limit)
        with self._engine.connect() as conn:
            return [self._attempt(r) for r in conn.execute(query)]

    def action_stats(self, actions: Iterable[str], *, since: float) -> dict[str, ActionStats]:
        """Per action, over its finished attempts started since `since`: calls, error rate and mean
        latency, the same weighted by age over the newest of them (`ActionStats.latest_*`) and the
        newest few one by one (`ActionStats.newest_*`); see `runtime.journal_stats`."""
        return journal_stats.action_stats(self, actions, since=since)

    def action_totals(self, actions: Iterable[str], *, since: float) -> dict[str, WindowTotals]:
        """The window half of `action_stats`, in a form that adds up (`journal_stats.WindowTotals`);
        reads every attempt of the window."""
        return journal_stats.action_totals(self._engine, actions, since=since)

    def recent_attempts(self, actions: Iterable[str], *, since: float) -> dict[str, list[RecentAttempt]]:
        """The other half: per action, its newest finished attempts started since `since`, newest
        first, at most `LATEST_MAX_ATTEMPTS`; one indexed read each, whatever the window holds."""
        newest = journal_stats.NEWEST
        return {
            name: journal_stats.as_recent(self._select(newest, {"action": name, "since": since}))
            for name in dict.fromkeys(actions)
        }

    # -- compensation ----------------------------------------------------------------------------

    def undo_results(self, run_id: str) -> dict[tuple[str, int], UndoRecord]:
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(compensations).where(compensations.c.run_id == run_id))
            return {
                (r.step_id, r.iteration): UndoRecord(
                    run_id=r.run_id,
                    step_id=r.step_id,
                    iteration=r.iteration,
                    state=UndoState(r.state),
                    action=r.action,
                    inputs=r.inputs,
                    output=r.output,
                    error=r.error,
                    attempts=r.attempts or 0,
                )
                for r in rows
            }

    def put_undo(
        self,
        run_id: str,
        step_id: str,
        iteration: int,
        now: float,
        *,
        state: UndoState,
        action: str,
        error: dict[str, Any] | None = None,
        event: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> None:
        key = {"run_id": run_id, "step_id": step_id, "iteration": iteration}
        values = {
            "state": state.value,
            "action": action,
            "error": self.redact(error) if error else None,
            "updated_at": now,
        }
        if self.single_statements:  # one statement (the row holds every NOT NULL column)
            upsert = _upsert_statement(self._dialect, compensations, tuple(key), tuple(values))
            row = self._event_values(run_id, event, now, step_id, item_of(iteration), data) if event else None
            self._write_together([(upsert, _prefixed({**key, **values}))], row)
            return
        with self._tx() as (conn, pending):
            self._upsert(
                conn,
                compensations,
                {"run_id": run_id, "step_id": step_id, "iteration": iteration},
                {
                    "state": state.value,
                    "action": action,
                    "error": self.redact(error) if error else None,
                    "updated_at": now,
                },
            )
            if event:
                self._event(
                    conn,
                    pending,
                    run_id,
                    event,
                    now,
                    step_id,
                    item_of(iteration),
                    data,
                )

    # -- timers ----------------------------------------------------------------------------------

    def set_timer(
        self,
        run_id: str,
        step_id: str,
        iteration: int,
        *,
        kind: str,
        wake_at: float,
        now: float,
        event: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> None:
        """Store a durable timer and mark the step waiting, in one transaction."""
        if self.single_statements:  # one statement
            key = {"run_id": run_id, "step_id": step_id, "iteration": iteration}
            timer = {"kind": kind, "wake_at": wake_at, "fired": False, "created_at": now}
            step = self._step_values(now, StepState.WAITING, {"action": "core.wait", "started_at": now})
            parts = [
                (
                    _upsert_statement(self._dialect, timers, tuple(key), _TIMER_SET),
                    _prefixed({**key, **timer}),
                ),
                (
                    _upsert_statement(self._dialect, step_results, tuple(key), tuple(step)),
                    _prefixed({**key, **step}),
                ),
            ]
            row = self._event_values(run_id, event, now, step_id, item_of(iteration), data) if event else None
            self._write_together(parts, row)
            return
        with self._tx() as (conn, pending):
            self._upsert(
                conn,
                timers,
                {"run_id": run_id, "step_id": step_id, "iteration": iteration},
                {"kind": kind, "wake_at": wake_at, "fired": False, "created_at": now},
            )
            self._upsert(
                conn,
                step_results,
                {"run_id": run_id, "step_id": step_id, "iteration": iteration},
                self._step_values(now, StepState.WAITING, {"action": "core.wait", "started_at": now}),
            )
            if event:
                self._event(
                    conn,
                    pending,
                    run_id,
                    event,
                    now,
                    step_id,
                    item_of(iteration),
                    data,
                )

    @staticmethod
    def _timer(row: Any) -> TimerRecord:
        return TimerRecord(
            run_id=row.run_id,
            step_id=row.step_id,
            iteration=row.iteration,
            kind=row.kind,
            wake_at=row.wake_at,
            fired=bool(row.fired),
        )

    def timers(self, run_id: str) -> dict[tuple[str, int], TimerRecord]:
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(timers).where(timers.c.run_id == run_id))
            return {(r.step_id, r.iteration): self._timer(r) for r in rows}

    def pending_timers(self, *, due_by: float | None = None) -> list[TimerRecord]:
        """Unfired timers of unfinished runs, earliest first (only those due by `due_by` if given)."""
        query = (
            sa.select(timers)
            .join(runs, runs.c.id == timers.c.run_id)
            .where(timers.c.fired.is_(False), runs.c.state.not_in(_FINISHED))
            .order_by(timers.c.wake_at)
        )
        if due_by is not None:
            query = query.where(timers.c.wake_at <= due_by)
        with self._engine.connect() as conn:
            return [self._timer(r) for r in conn.execute(query)]

    def runs_to_wake(self) -> list[str]:
        """Waiting runs that were moved on from outside: a cancel request, or a decided approval
        whose step still waits."""
        waiting = runs.c.state == RunState.WAITING.value
        cancelled = sa.select(runs.c.id).where(waiting, runs.c.cancel_requested.is_(True))
        decided = (
            sa.select(approvals.c.run_id)
            .join(runs, runs.c.id == approvals.c.run_id)
            .join(
                step_results,
                sa.and_(
                    step_results.c.run_id == approvals.c.run_id,
                    step_results.c.step_id == approvals.c.step_id,
                    step_results.c.iteration == approvals.c.iteration,
                ),
            )
            .where(
                waiting, approvals.c.decided_at.is_not(None), step_results.c.state == StepState.WAITING.value
            )
        )
        with self._engine.connect() as conn:
            found = [r[0] for r in conn.execute(cancelled)] + [r[0] for r in conn.execute(decided)]
        return list(dict.fromkeys(found))

    # -- approvals -------------------------------------------------------------------------------

    @staticmethod
    def _approval(row: Any) -> ApprovalRecord:
        return ApprovalRecord(
            run_id=row.run_id,
            step_id=row.step_id,
            iteration=row.iteration,
            prompt=row.prompt,
            approvers=row.approvers,
            requested_at=row.requested_at,
            decided_at=row.decided_at,
            approved=row.approved,
            decided_by=row.decided_by,
            comment=row.comment,
            decided_as=row.decided_as,
        )

    def request_approval(
        self,
        run_id: str,
        step_id: str,
        iteration: int,
        *,
        prompt: str | None,
        approvers: list[str] | None,
        now: float,
        inputs: Any,
    ) -> None:
        if self.single_statements:  # one statement: the approval unless there is one, the step, the event
            key = {"run_id": run_id, "step_id": step_id, "iteration": iteration}
            asked = {"prompt": prompt, "approvers": approvers, "requested_at": now}
            step = self._step_values(
                now, StepState.WAITING, {"action": "core.approval", "inputs": inputs, "started_at": now}
            )
            parts = [
                (
                    journal_pg.insert_new(approvals, tuple(key), tuple(asked), "p_"),
                    journal_pg.prefixed("p_", {**key, **asked}),
                ),
                (
                    _upsert_statement(self._dialect, step_results, tuple(key), tuple(step)),
                    _prefixed({**key, **step}),
                ),
            ]
            data = {"prompt": prompt, "approvers": approvers}
            self._write_together(
                parts,
                self._event_values(run_id, "approval.requested", now, step_id, item_of(iteration), data),
            )
            return
        with self._tx() as (conn, pending):
            key = {"run_id": run_id, "step_id": step_id, "iteration": iteration}
            exists = conn.execute(
                sa.select(approvals.c.run_id).where(*[approvals.c[k] == v for k, v in key.items()])
            ).first()
            if exists is None:
                conn.execute(
                    approvals.insert().values(**key, prompt=prompt, approvers=approvers, requested_at=now)
                )
            self._upsert(
                conn,
                step_results,
                key,
                self._step_values(
                    now, StepState.WAITING, {"action": "core.approval", "inputs": inputs, "started_at": now}
                ),
            )
            self._event(
                conn,
                pending,
                run_id,
                "approval.requested",
                now,
                step_id,
                item_of(iteration),
                {"prompt": prompt, "approvers": approvers},
            )

    def approvals(self, run_id: str | None = None, *, pending_only: bool = False) -> list[ApprovalRecord]:
        query = sa.select(approvals).order_by(approvals.c.requested_at)
        if run_id is not None:
            query = query.where(approvals.c.run_id == run_id)
        if pending_only:
            query = query.where(approvals.c.decided_at.is_(None))
        with self._engine.connect() as conn:
            return [self._approval(r) for r in conn.execute(query)]

    def decide_approval(
        self,
        run_id: str,
        step_id: str,
        iteration: int,
        *,
        approved: bool,
        by: str,
        comment: str | None,
        now: float,
        decided_as: str | None = None,
    ) -> bool:
        """Record a decision; False when the approval was not pending (unknown or already decided).
        `decided_as`: the approver that allowed it (`by`'s name, a role, `*`), the event's `as`."""
        decision = {
            "decided_at": now,
            "approved": approved,
            "decided_by": by,
            "decided_as": decided_as,
            "comment": comment,
        }
        data = {"approved": approved, "by": by, "as": decided_as, "comment": comment}
        if self.single_statements:  # one statement: the decision, and the event when it was pending
            key = {"k_run_id": run_id, "k_step_id": step_id, "k_iteration": iteration}
            event = self._event_values(run_id, "approval.given", now, step_id, item_of(iteration), data)
            return self._write_together([(_DECISION, {**key, **_prefixed(decision)})], event, guarded=True)
        with self._tx() as (conn, pending):
            result = conn.execute(
                approvals.update()
                .where(
                    approvals.c.run_id == run_id,
                    approvals.c.step_id == step_id,
                    approvals.c.iteration == iteration,
                    approvals.c.decided_at.is_(None),
                )
                .values(**decision)
            )
            if result.rowcount == 0:
                return False
            self._event(conn, pending, run_id, "approval.given", now, step_id, item_of(iteration), data)
            return True

    def fire_timer(
        self,
        run_id: str,
        step_id: str,
        iteration: int,
        now: float,
        *,
        output: Any,
        event: str | None = "step.succeeded",
        data: Mapping[str, Any] | None = None,
    ) -> None:
        """Complete a `core.wait` step: the timer is spent and the step succeeded, in one transaction."""
        key = {"run_id": run_id, "step_id": step_id, "iteration": iteration}
        if self.single_statements:  # one statement
            spent = _statement("update", timers, tuple(key), ("fired",))
            step = self._step_values(now, StepState.SUCCEEDED, {"output": output, "error": None})
            parts = [
                (spent, {**{f"k_{k}": v for k, v in key.items()}, "v_fired": True}),
                (
                    _upsert_statement(self._dialect, step_results, tuple(key), tuple(step)),
                    _prefixed({**key, **step}),
                ),
            ]
            row = self._event_values(run_id, event, now, step_id, item_of(iteration), data) if event else None
            self._write_together(parts, row)
            return
        with self._tx() as (conn, pending):
            conn.execute(
                timers.update().where(*[timers.c[k] == v for k, v in key.items()]).values(fired=True)
            )
            self._upsert(
                conn,
                step_results,
                key,
                self._step_values(now, StepState.SUCCEEDED, {"output": output, "error": None}),
            )
            if event:
                self._event(
                    conn,
                    pending,
                    run_id,
                    event,
                    now,
                    step_id,
                    item_of(iteration),
                    data,
                )
