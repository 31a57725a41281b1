"""An attempt's start and end on PostgreSQL as one statement each: one round trip, not five.

On SQLite a transaction's statements are calls into the library; on PostgreSQL each is a round
trip, and so are psycopg's BEGIN and the COMMIT: an attempt's start (its attempt row, its step's
row, the event) took five, its end five more, and a no-op step spent most of its time waiting on
the server. PostgreSQL runs the data-modifying WITH clauses of one statement atomically, as one
transaction when the connection is in autocommit, so each write here is one statement with the
same rows and the same all-or-nothing guarantee as the transaction it replaces.

The statements are built once per column set (as `journal._statement`), each part's bind
parameters under a prefix of its own (`a_` attempt, `s_` step, `e_` event), since the parts
share column names with different values. `together` does the same for the run-level writes
(a run's creation, its end) and the writes off the per-step path (a cancel request, an
approval's request and decision, a timer set and fired, a compensation row), from the journal's
own prebuilt statements; `interrupt` marks the attempts a crash left in flight and appends their
events. `row_values`, `upsert` and `prefixed` build the journal's statements on SQLite as well.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, aggregate_order_by
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from runtime.journal_schema import attempts, compensations, events, runs, step_results

# A dropped network (a cable pulled, a NAT or firewall forgetting the flow, a partition) sends no
# RST: without these a call on the connection waits until the kernel gives up retransmitting
# (~15 minutes with Linux's tcp_retries2), holding a worker's event loop and its runs' leases'
# renewals hostage, and an idle LISTEN connection never notices at all. Keepalives probe an idle
# connection (dead after idle + interval x count = 30 s); tcp_user_timeout fails a call whose
# sent data goes unacknowledged for 30 s; connect_timeout bounds a new connection's handshake.
# A URL's own query parameters win (`?keepalives_idle=60`).
TCP_OPTIONS: dict[str, str] = {
    "connect_timeout": "10",
    "keepalives": "1",
    "keepalives_idle": "15",
    "keepalives_interval": "5",
    "keepalives_count": "3",
    "tcp_user_timeout": "30000",  # milliseconds
}


def tcp_options(given: Mapping[str, Any]) -> dict[str, str]:
    """The libpq TCP options (`TCP_OPTIONS`) that a URL's query parameters `given` do not set."""
    return {name: value for name, value in TCP_OPTIONS.items() if name not in given}


STEP_KEY = ("run_id", "step_id", "iteration")
EVENT_COLUMNS = ("run_id", "time", "type", "step_id", "iteration", "data")

_BUILT: dict[tuple[Any, ...], Any] = {}


def _binds(table: sa.Table, names: Sequence[str], prefix: str) -> dict[str, Any]:
    return {n: sa.bindparam(f"{prefix}{n}", type_=table.c[n].type) for n in names}


def row_values(table: sa.Table, names: Sequence[str], prefix: str) -> dict[str, Any]:
    """An inserted row's values: `names` as parameters `<prefix><name>`, the other columns'
    constant defaults as literals (SQLAlchemy fills those in for a statement's own INSERT, not
    for one inside a WITH)."""
    defaults = {
        c.name: sa.literal(c.default.arg, type_=c.type)  # type: ignore[attr-defined]
        for c in table.c
        if c.name not in names and c.default is not None and c.default.is_scalar
    }
    return {**_binds(table, names, prefix), **defaults}


def upsert(
    table: sa.Table,
    keys: Sequence[str],
    names: Sequence[str],
    keep: Sequence[str],
    prefix: str,
    *,
    sqlite: bool,
) -> Any:
    """INSERT ... ON CONFLICT (keys) DO UPDATE SET names, for SQLite or PostgreSQL: the row
    inserted, or updated in `names` (a column in `keep` keeps a value it has), from parameters
    `<prefix><name>`. The values must hold every NOT NULL column: the row is checked before it
    conflicts."""
    insert = (sqlite_insert if sqlite else postgresql_insert)(table)
    insert = insert.values(row_values(table, (*keys, *names, *keep), prefix))
    update: dict[str, Any] = {n: insert.excluded[n] for n in names}
    for n in keep:
        update[n] = sa.func.coalesce(table.c[n], insert.excluded[n])
    return insert.on_conflict_do_update(index_elements=[table.c[k] for k in keys], set_=update)


def _event() -> Any:
    return sa.insert(events).values(row_values(events, EVENT_COLUMNS, "e_")).returning(events.c.seq).cte("e")


def start(
    attempt_columns: Sequence[str],
    step_columns: Sequence[str],
    *,
    table: sa.Table = step_results,
    keep: Sequence[str] = ("started_at",),
) -> Any:
    """Insert the attempt (`a_*`), upsert its step's row (`s_*`, keeping an earlier
    `started_at`) and append the event (`e_*`); selects the attempt's id and the event's seq.
    A compensation's attempt upserts its row in `table` (`compensations`), keeping nothing."""
    key = ("start", tuple(attempt_columns), tuple(step_columns), table.name, tuple(keep))
    stmt = _BUILT.get(key)
    if stmt is None:
        attempt = (
            sa.insert(attempts)
            .values(row_values(attempts, attempt_columns, "a_"))
            .returning(attempts.c.id)
            .cte("a")
        )
        step = upsert(table, STEP_KEY, step_columns, keep, "s_", sqlite=False).cte("s")
        event = _event()
        stmt = _BUILT[key] = sa.select(attempt.c.id, event.c.seq).add_cte(step)
    return stmt


def _attempt_end(attempt_columns: Sequence[str]) -> Any:
    """The attempt `a_id`'s end (`a_*`), as a WITH clause."""
    return (
        sa.update(attempts)
        .where(attempts.c.id == sa.bindparam("a_id", type_=attempts.c.id.type))
        .values(_binds(attempts, attempt_columns, "a_"))
        .cte("a")
    )


def finish(attempt_columns: Sequence[str], step_columns: Sequence[str]) -> Any:
    """Update the attempt `a_id` (`a_*`), upsert its step's row (`s_*`) and append the event
    (`e_*`); selects the event's seq and the run's cancel flag (`r_id`)."""
    key = ("finish", tuple(attempt_columns), tuple(step_columns))
    stmt = _BUILT.get(key)
    if stmt is None:
        attempt = _attempt_end(attempt_columns)
        step = upsert(step_results, STEP_KEY, step_columns, (), "s_", sqlite=False).cte("s")
        event = _event()
        cancel = sa.select(runs.c.cancel_requested).where(runs.c.id == sa.bindparam("r_id")).scalar_subquery()
        stmt = _BUILT[key] = sa.select(event.c.seq, cancel).add_cte(attempt, step)
    return stmt


def _event_if(guard: Any) -> Any:
    """The event (`e_*`) appended only when the CTE `guard` returned a row (INSERT ... SELECT
    ... WHERE EXISTS): the write it tells of happened."""
    chosen = sa.select(*_binds(events, EVENT_COLUMNS, "e_").values()).where(
        sa.exists(sa.select(sa.literal(1)).select_from(guard))
    )
    return sa.insert(events).from_select(list(EVENT_COLUMNS), chosen).returning(events.c.seq).cte("e")


def finish_undo(attempt_columns: Sequence[str], undo_columns: Sequence[str], *, event: bool) -> Any:
    """A compensation's attempt ended: update the attempt `a_id` (`a_*`), update its row in
    `compensations` (`u_*`: the key and `undo_columns`) or, when there is none, insert it, and
    with `event` append the event (`e_*`); selects the event's seq (else 1).

    An UPDATE, then an INSERT only when it found no row, as WITH clauses: not ON CONFLICT, whose
    row must hold every NOT NULL column before it conflicts, where an undo's end gives a few."""
    key = ("finish_undo", tuple(attempt_columns), tuple(undo_columns), event)
    stmt = _BUILT.get(key)
    if stmt is None:
        attempt = _attempt_end(attempt_columns)
        where = [
            compensations.c[k] == sa.bindparam(f"u_{k}", type_=compensations.c[k].type) for k in STEP_KEY
        ]
        updated = (
            sa.update(compensations)
            .where(*where)
            .values(_binds(compensations, undo_columns, "u_"))
            .returning(compensations.c.run_id)
            .cte("u")
        )
        row = row_values(compensations, (*STEP_KEY, *undo_columns), "u_")
        missing = sa.select(*row.values()).where(~sa.exists(sa.select(sa.literal(1)).select_from(updated)))
        inserted = sa.insert(compensations).from_select(list(row), missing).cte("i")
        selected = _event().c.seq if event else sa.literal(1)
        stmt = _BUILT[key] = sa.select(selected).add_cte(attempt, updated, inserted)
    return stmt


def together(statements: Sequence[Any], *, event: bool, guarded: bool = False) -> Any:
    """One statement running `statements` (prebuilt DML whose parameters don't clash) and, with
    `event`, appending an event (`e_*`); selects the event's seq (else 1).

    `guarded`: the first statement has a RETURNING clause, and the event is appended only when
    it returned a row (an UPDATE that found its row); the seq selected is NULL when it did not.
    The other statements run either way: a guarded write holds just its one statement."""
    key = ("together", *(id(s) for s in statements), event, guarded)
    built = _BUILT.get(key)
    if built is None:
        parts = [s.cte(f"w{i}") for i, s in enumerate(statements)]
        selected: Any
        if guarded and event:
            selected = sa.select(_event_if(parts[0]).c.seq).scalar_subquery()
        else:
            selected = _event().c.seq if event else sa.literal(1)
        # the parts are held beside it: their ids are the key
        built = _BUILT[key] = (sa.select(selected).add_cte(*parts), tuple(statements))
    return built[0]


def insert_new(table: sa.Table, keys: Sequence[str], names: Sequence[str], prefix: str) -> Any:
    """INSERT ... ON CONFLICT (keys) DO NOTHING (PostgreSQL): the row from parameters
    `<prefix><name>` unless one with its key is there (which keeps its values)."""
    key = ("insert_new", table.name, tuple(keys), tuple(names), prefix)
    stmt = _BUILT.get(key)
    if stmt is None:
        insert = postgresql_insert(table).values(row_values(table, (*keys, *names), prefix))
        stmt = _BUILT[key] = insert.on_conflict_do_nothing(index_elements=[table.c[k] for k in keys])
    return stmt


INTERRUPTED_MESSAGE = "the worker stopped while the attempt was in flight"


def interrupt() -> Any:
    """Mark the attempts `ids` (an array) that are still `started` as `interrupted` at `now`, and
    append one event per attempt marked, from the arrays `types`, `step_ids`, `iterations` and
    `data` (JSON text), in the order of `ids`, for the run `run_id`; selects the ids marked and
    the events' seqs, both in that order (NULL when none was)."""
    stmt = _BUILT.get(("interrupt",))
    if stmt is None:
        ids = sa.cast(sa.bindparam("ids"), ARRAY(sa.Integer))
        now = sa.bindparam("now", type_=sa.Double)
        marked = (
            sa.update(attempts)
            .where(attempts.c.id == sa.any_(ids), attempts.c.outcome == "started")
            .values(
                outcome="interrupted",
                ended_at=now,
                error_type="interrupted",
                error_class=None,
                error_message=INTERRUPTED_MESSAGE,
            )
            .returning(attempts.c.id)
            .cte("a")
        )
        given = (
            sa.func.unnest(
                ids,
                sa.cast(sa.bindparam("types"), ARRAY(sa.Text)),
                sa.cast(sa.bindparam("step_ids"), ARRAY(sa.Text)),
                sa.cast(sa.bindparam("iterations"), ARRAY(sa.Integer)),
                sa.cast(sa.bindparam("data"), ARRAY(sa.Text)),
            )
            .table_valued(
                sa.column("id", sa.Integer),
                sa.column("type", sa.Text),
                sa.column("step_id", sa.Text),
                sa.column("iteration", sa.Integer),
                sa.column("data", sa.Text),
                with_ordinality="ord",
            )
            .render_derived(name="x")
        )
        rows = (
            sa.select(
                sa.bindparam("run_id", type_=events.c.run_id.type),
                now,
                given.c.type,
                given.c.step_id,
                given.c.iteration,
                sa.cast(given.c.data, sa.JSON),
            )
            .select_from(given.join(marked, marked.c.id == given.c.id))
            .order_by(given.c.ord)
        )
        # the events' seqs are drawn in the order of the SELECT (ordinality): their order is ids'
        told = sa.insert(events).from_select(list(EVENT_COLUMNS), rows).returning(events.c.seq).cte("e")
        marked_ids = (
            sa.select(sa.func.array_agg(aggregate_order_by(given.c.id, given.c.ord)))
            .select_from(given.join(marked, marked.c.id == given.c.id))
            .scalar_subquery()
        )
        seqs = sa.select(sa.func.array_agg(aggregate_order_by(told.c.seq, told.c.seq))).scalar_subquery()
        stmt = _BUILT[("interrupt",)] = sa.select(marked_ids.label("ids"), seqs.label("seqs"))
    return stmt


def prefixed(prefix: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """A row's values as the parameters `<prefix><name>` of statements built here and in
    `journal` (whose own prefix is `v_`)."""
    return {f"{prefix}{n}": v for n, v in values.items()}
