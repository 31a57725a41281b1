"""The service's own tables: API tokens (with their roles), catalogs, plans, workflows and their
versions, run links.

Runs themselves live in the runtime's journal (`overture_runs`, ...); the service only remembers
which workflow version started each run, so runs can be listed per workflow. Tables are prefixed
`overture_svc_` so they can share one database with the journal. Every timestamp is seconds since
the Unix epoch; the API renders them as ISO 8601.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from runtime.schema_upgrade import add_missing_columns


class Base(DeclarativeBase):
    pass


class ApiTokenRow(Base):
    __tablename__ = "overture_svc_tokens"

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True, index=True)
    """sha256 hex of the token; the token itself is never stored."""
    prefix: Mapped[str] = mapped_column(sa.String(16))
    """The token's first characters, so people can tell tokens apart in `token list`."""
    created_at: Mapped[float] = mapped_column(sa.Double)
    last_used_at: Mapped[float | None] = mapped_column(sa.Double, nullable=True)
    revoked_at: Mapped[float | None] = mapped_column(sa.Double, nullable=True)
    roles: Mapped[list[str] | None] = mapped_column(sa.JSON, nullable=True)
    """What the person may decide as besides their name (`--role manager`): approvals name roles.
    NULL on tokens made before roles existed, read as none."""


class CatalogRow(Base):
    __tablename__ = "overture_svc_catalogs"

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200), index=True)
    source: Mapped[str] = mapped_column(sa.String(1000))
    """`upload`, `openapi:<file or URL>` or the file paths given to `overture serve`."""
    document: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    """The catalog as data: `{actions: [...]}` (core built-ins not included)."""
    created_at: Mapped[float] = mapped_column(sa.Double)


class PlanRow(Base):
    __tablename__ = "overture_svc_plans"

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    request: Mapped[str] = mapped_column(sa.Text)
    catalog_id: Mapped[str] = mapped_column(sa.String(40))
    planner: Mapped[str] = mapped_column(sa.String(40))
    document: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    explanation: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    warnings: Mapped[list[Any]] = mapped_column(sa.JSON)
    valid: Mapped[bool] = mapped_column(sa.Boolean)
    created_at: Mapped[float] = mapped_column(sa.Double)
    workflow_id: Mapped[str | None] = mapped_column(sa.String(40), nullable=True)
    """The workflow this plan was accepted as, once it was."""


class WorkflowRow(Base):
    __tablename__ = "overture_svc_workflows"

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200), index=True)
    catalog_id: Mapped[str] = mapped_column(sa.String(40))
    latest_version: Mapped[int] = mapped_column(sa.Integer)
    created_at: Mapped[float] = mapped_column(sa.Double)
    updated_at: Mapped[float] = mapped_column(sa.Double)


class WorkflowVersionRow(Base):
    __tablename__ = "overture_svc_workflow_versions"

    workflow_id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    version: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    document: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    source: Mapped[str] = mapped_column(sa.String(40))
    """How this version came to be: `plan`, `document` (a PUT) or `instruction`."""
    note: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    """The plan id or the editing instruction."""
    created_at: Mapped[float] = mapped_column(sa.Double)


class RunLinkRow(Base):
    __tablename__ = "overture_svc_runs"

    run_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    workflow_id: Mapped[str] = mapped_column(sa.String(40), index=True)
    version: Mapped[int] = mapped_column(sa.Integer)
    created_at: Mapped[float] = mapped_column(sa.Double)


@dataclass(frozen=True)
class TokenInfo:
    """What authentication needs to know about a token."""

    id: str
    name: str
    token_hash: str
    last_used_at: float | None
    revoked_at: float | None
    roles: tuple[str, ...] = ()


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


def _sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        # WAL lets the event streams read while the engine writes; busy_timeout waits out short locks
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        _sqlite_pragmas(engine)
        return engine
    return sa.create_engine(url, pool_pre_ping=True)


class Store:
    """The service's tables behind small, typed methods; one short transaction per call."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        Base.metadata.create_all(self.engine)
        add_missing_columns(self.engine, Base.metadata)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions.begin() as session:
            yield session

    # ------------------------------------------------------------------ tokens

    def add_token(self, name: str, token_hash: str, prefix: str, roles: Sequence[str] = ()) -> ApiTokenRow:
        row = ApiTokenRow(id=new_id("tok"), name=name, token_hash=token_hash, prefix=prefix,
                          created_at=time.time(), roles=list(roles) or None)
        with self.session() as s:
            s.add(row)
        return row

    def token_by_hash(self, token_hash: str) -> TokenInfo | None:
        # Core, not the ORM: this runs on every request, and a plain row is all auth needs
        table = ApiTokenRow.__table__
        query = sa.select(table.c.id, table.c.name, table.c.token_hash, table.c.last_used_at,
                          table.c.revoked_at, table.c.roles).where(table.c.token_hash == token_hash)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        return TokenInfo(row.id, row.name, row.token_hash, row.last_used_at, row.revoked_at,
                         tuple(row.roles or ()))

    def touch_token(self, token_id: str, when: float) -> None:
        with self.session() as s:
            s.execute(sa.update(ApiTokenRow).where(ApiTokenRow.id == token_id).values(last_used_at=when))

    def list_tokens(self) -> list[ApiTokenRow]:
        with self.session() as s:
            return list(s.scalars(sa.select(ApiTokenRow).order_by(ApiTokenRow.created_at)))

    def revoke_token(self, id_or_name: str) -> list[ApiTokenRow]:
        """Revoke the token with this id, or every live token with this name; returns those revoked."""
        with self.session() as s:
            rows = list(s.scalars(sa.select(ApiTokenRow).where(
                sa.or_(ApiTokenRow.id == id_or_name, ApiTokenRow.name == id_or_name),
                ApiTokenRow.revoked_at.is_(None),
            )))
            now = time.time()
            for row in rows:
                row.revoked_at = now
            return rows

    # ------------------------------------------------------------------ catalogs

    def add_catalog(self, name: str, source: str, document: dict[str, Any], *, id: str | None = None
                    ) -> CatalogRow:
        row = CatalogRow(id=id or new_id("cat"), name=name, source=source, document=document,
                         created_at=time.time())
        with self.session() as s:
            s.merge(row)
        return row

    def get_catalog(self, catalog_id: str) -> CatalogRow | None:
        with self.session() as s:
            return s.get(CatalogRow, catalog_id)

    def list_catalogs(self) -> list[CatalogRow]:
        with self.session() as s:
            return list(s.scalars(sa.select(CatalogRow).order_by(CatalogRow.created_at)))

    def delete_catalog(self, catalog_id: str) -> bool:
        with self.session() as s:
            row = s.get(CatalogRow, catalog_id)
            if row is None:
                return False
            s.delete(row)
            return True

    # ------------------------------------------------------------------ plans

    def add_plan(self, row: PlanRow) -> PlanRow:
        with self.session() as s:
            s.add(row)
        return row

    def get_plan(self, plan_id: str) -> PlanRow | None:
        with self.session() as s:
            return s.get(PlanRow, plan_id)

    # ------------------------------------------------------------------ workflows

    def create_workflow(self, name: str, catalog_id: str, document: dict[str, Any], *, source: str,
                        note: str | None, plan_id: str | None = None
                        ) -> tuple[WorkflowRow, WorkflowVersionRow]:
        now = time.time()
        workflow = WorkflowRow(id=new_id("wf"), name=name, catalog_id=catalog_id, latest_version=1,
                               created_at=now, updated_at=now)
        version = WorkflowVersionRow(workflow_id=workflow.id, version=1, document={**document, "version": 1},
                                     source=source, note=note, created_at=now)
        with self.session() as s:
            s.add(workflow)
            s.add(version)
            if plan_id is not None:
                s.execute(sa.update(PlanRow).where(PlanRow.id == plan_id).values(workflow_id=workflow.id))
        return workflow, version

    def add_version(self, workflow_id: str, document: dict[str, Any], *, source: str, note: str | None,
                    expected_latest: int | None = None) -> WorkflowVersionRow | None:
        """Append a version; None when `expected_latest` no longer matches (someone else edited).

        Two writers racing for the same number cannot both win: the (workflow, version) key is
        unique, and the loser either retries with the next number (no `expected_latest`) or is told
        it lost (None), never silently overwritten."""
        for _ in range(5):
            try:
                return self._append_version(workflow_id, document, source, note, expected_latest)
            except (sa.exc.IntegrityError, sa.exc.OperationalError):
                if expected_latest is not None:
                    return None  # someone saved the version this edit was based on first
        raise RuntimeError(f"could not save a new version of {workflow_id} after 5 tries")

    def _append_version(self, workflow_id: str, document: dict[str, Any], source: str, note: str | None,
                        expected_latest: int | None) -> WorkflowVersionRow | None:
        now = time.time()
        with self.session() as s:
            workflow = s.get(WorkflowRow, workflow_id, with_for_update=True)
            if workflow is None:
                raise KeyError(workflow_id)
            if expected_latest is not None and workflow.latest_version != expected_latest:
                return None
            number = workflow.latest_version + 1
            row = WorkflowVersionRow(workflow_id=workflow_id, version=number,
                                     document={**document, "version": number},
                                     source=source, note=note, created_at=now)
            workflow.latest_version = number
            workflow.updated_at = now
            workflow.name = str(document.get("name") or workflow.name)
            s.add(row)
        return row

    def get_workflow(self, workflow_id: str) -> WorkflowRow | None:
        with self.session() as s:
            return s.get(WorkflowRow, workflow_id)

    def list_workflows(self) -> list[WorkflowRow]:
        with self.session() as s:
            return list(s.scalars(sa.select(WorkflowRow).order_by(WorkflowRow.created_at)))

    def get_version(self, workflow_id: str, version: int) -> WorkflowVersionRow | None:
        with self.session() as s:
            return s.get(WorkflowVersionRow, (workflow_id, version))

    def list_versions(self, workflow_id: str) -> list[WorkflowVersionRow]:
        with self.session() as s:
            return list(s.scalars(sa.select(WorkflowVersionRow)
                                  .where(WorkflowVersionRow.workflow_id == workflow_id)
                                  .order_by(WorkflowVersionRow.version)))

    # ------------------------------------------------------------------ runs

    def link_run(self, run_id: str, workflow_id: str, version: int) -> None:
        with self.session() as s:
            s.add(RunLinkRow(run_id=run_id, workflow_id=workflow_id, version=version, created_at=time.time()))

    def run_link(self, run_id: str) -> RunLinkRow | None:
        with self.session() as s:
            return s.get(RunLinkRow, run_id)

    def run_ids_of(self, workflow_id: str) -> list[str]:
        with self.session() as s:
            return list(s.scalars(sa.select(RunLinkRow.run_id).where(RunLinkRow.workflow_id == workflow_id)))
