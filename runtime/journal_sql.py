"""The journal's per-step statements, run straight on the DBAPI cursor (sqlite3 or psycopg).

SQLAlchemy builds and compiles each statement once; executing it through a `Connection` then
cost ~60 µs a statement in parameter processing, result set-up and bookkeeping, most of a no-op
step (on PostgreSQL more than the round trip itself). Here a statement is compiled once per
dialect and run on the DBAPI cursor with SQLAlchemy's own bind and result processors, so what is
stored and read back is exactly what SQLAlchemy would store and read (JSON text, floats,
booleans), in the caller's transaction.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

Processor = Callable[[Any], Any] | None


@dataclass(slots=True)
class Prepared:
    """One compiled statement and what it takes to run it."""

    stmt: Any
    """The SQLAlchemy statement (held so that its `id` is never reused while cached)."""
    sql: str
    names: tuple[str, ...]
    """Bind parameter names in positional order."""
    processors: tuple[Processor, ...]
    """Per parameter: SQLAlchemy's bind processor for its type, if any."""
    fixed: Mapping[str, Any]
    """Values of parameters the caller doesn't pass: literals in the statement, column defaults."""
    row: Callable[..., Any] | None
    """For a SELECT: the named tuple rows are built as (attribute access like SQLAlchemy's rows)."""
    columns: tuple[Processor, ...] | None
    """For a SELECT: per column, SQLAlchemy's result processor (JSON decoding, booleans). None
    until the first rows arrive where the processor depends on the type the server reports
    (psycopg's numeric columns)."""
    types: tuple[Any, ...]
    """For a SELECT: per column, its SQLAlchemy type."""
    dialect: sa.Dialect
    named: bool
    """The driver takes a mapping of names (psycopg's `%(name)s`), not a sequence (sqlite3's `?`)."""
    error: type[Exception]
    """The driver's base exception class, re-raised as SQLAlchemy's `DBAPIError` subclasses."""


def _bind_processor(type_: Any, dialect: sa.Dialect) -> Processor:
    process = type_.dialect_impl(dialect).bind_processor(dialect)
    if process is None or not isinstance(type_, sa.JSON) or type_.none_as_null:
        return process
    # a JSON column's None is stored as the JSON text `null` (none_as_null is off): say so at
    # once rather than through the serializer, for the many empty columns of a step's rows

    def process_json(value: Any) -> Any:
        return "null" if value is None else process(value)

    return process_json


def prepare(
    stmt: Any, dialect: sa.Dialect, schema_translate_map: Mapping[str | None, str] | None = None
) -> Prepared:
    """Compile `stmt` for `dialect`; `schema_translate_map` as the engine's execution option
    (a PostgreSQL journal in a schema of its own)."""
    compiled = stmt.compile(
        dialect=dialect,
        schema_translate_map=schema_translate_map,
        render_schema_translate=bool(schema_translate_map),
    )
    named = compiled.positiontup is None
    if named:
        if compiled.escaped_bind_names:
            raise TypeError(f"bind names that need escaping: {sorted(compiled.escaped_bind_names)}")
        names = tuple(compiled.bind_names[b] for b in compiled.binds.values())
    else:
        names = tuple(compiled.positiontup)
    binds = [compiled.binds[n] for n in names]
    processors = tuple(_bind_processor(b.type, dialect) for b in binds)
    fixed = {n: b.effective_value for n, b in zip(names, binds, strict=True) if not b.required}
    for column in [*compiled.insert_prefetch, *compiled.update_prefetch]:
        # Python-side column defaults (attempts=0, fired=False) are filled in per execution by
        # SQLAlchemy; all of the journal's are constants
        if column.default is None or not column.default.is_scalar:
            raise TypeError(f"{column} has a default that is not a constant")
        fixed[column.key] = column.default.arg
    make: Callable[..., Any] | None = None
    types: tuple[Any, ...] = ()
    if isinstance(stmt, sa.Select):
        selected = list(stmt.selected_columns)
        make = namedtuple("Row", [str(c.key) for c in selected], rename=True)  # type: ignore[misc,no-redef]
        types = tuple(c.type for c in selected)
    columns = None if named else tuple(t.dialect_impl(dialect).result_processor(dialect, None) for t in types)
    error = dialect.loaded_dbapi.Error
    return Prepared(
        stmt, compiled.string, names, processors, fixed, make, columns, types, dialect, named, error
    )


def execute(dbapi_connection: Any, prepared: Prepared, params: Mapping[str, Any]) -> Any:
    """Run `prepared` on the connection's cursor; returns the cursor (`rowcount`; sqlite3's
    `lastrowid`, psycopg's RETURNING row)."""
    fixed = prepared.fixed
    values = []
    for name, process in zip(prepared.names, prepared.processors, strict=True):
        value = params[name] if name in params else fixed[name]
        values.append(process(value) if process is not None else value)
    bound: Any = dict(zip(prepared.names, values, strict=True)) if prepared.named else values
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(prepared.sql, bound)
    except prepared.error as exc:  # the same exception classes as SQLAlchemy's execution raises
        raise sa.exc.DBAPIError.instance(prepared.sql, bound, exc, prepared.error) from exc
    return cursor


def rows(cursor: Any, prepared: Prepared) -> list[Any]:
    """The rows of an executed SELECT, processed as SQLAlchemy would, as named tuples."""
    assert prepared.row is not None, "not a SELECT"
    make = prepared.row
    processors: Sequence[Processor] | None = prepared.columns
    if processors is None:
        dialect = prepared.dialect
        processors = prepared.columns = tuple(
            t.dialect_impl(dialect).result_processor(dialect, d[1])
            for t, d in zip(prepared.types, cursor.description, strict=True)
        )
    if not any(processors):
        return [make(*r) for r in cursor.fetchall()]
    return [
        make(*[p(v) if p is not None else v for p, v in zip(processors, r, strict=True)])
        for r in cursor.fetchall()
    ]
