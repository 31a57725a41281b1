"""Bring tables made by an earlier version up to date: add the newer (nullable) columns in place.

Used by the journal (`runtime.journal_schema`) and the service's own tables (`service.store`).
"""

from __future__ import annotations

import sqlalchemy as sa


def add_missing_columns(engine: sa.Engine, metadata: sa.MetaData, schema: str | None = None) -> None:
    """Add to each existing table of `metadata` the columns it lacks. Two processes opening the
    same old database may race to add one; the loser finds it there and carries on."""
    inspector = sa.inspect(engine)
    tables = set(inspector.get_table_names(schema=schema))
    for table in metadata.sorted_tables:
        if table.name not in tables:
            continue
        present = {c["name"] for c in inspector.get_columns(table.name, schema=schema)}
        name = f'"{schema}".{table.name}' if schema else table.name
        for column in (c for c in table.columns if c.name not in present):
            kind = column.type.compile(dialect=engine.dialect)
            try:
                with engine.begin() as conn:
                    conn.execute(sa.text(f'ALTER TABLE {name} ADD COLUMN "{column.name}" {kind}'))
            except sa.exc.DBAPIError:
                columns = sa.inspect(engine).get_columns(table.name, schema=schema)
                if column.name not in {c["name"] for c in columns}:
                    raise
