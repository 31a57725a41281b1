"""What every route needs, built once per app: the store, the journal, the engine, the metrics."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request

from service.api.metrics import Metrics
from service.problems import ApiProblem, ProblemItem
from service.settings import ServiceSettings
from service.store import CatalogRow, PlanRow, Store, WorkflowRow, WorkflowVersionRow
from workflow.catalog import Catalog
from workflow.document import Workflow
from workflow.loader import catalog_from_data, workflow_from_data


@dataclass
class Services:
    """The app's long-lived parts; `request.app.state.services`."""

    settings: ServiceSettings
    store: Store
    metrics: Metrics
    journal: Any = None
    """`runtime.journal.Journal` once the lifespan opened it."""
    engine: Any = None
    """`runtime.Engine` once the lifespan started it."""
    engine_error: str | None = None
    """Why there is no engine, when there is none."""
    invoker: Any = None
    """The engine's invoker (`runtime.invokers.InvokerDispatcher`)."""
    hub: EventHub = field(default_factory=lambda: EventHub())
    catalog_generation: int = 0
    """Bumped whenever this process adds or deletes a catalog, so the engine's view is refreshed."""
    _engine_generation: int = -1
    _catalogs: dict[str, Catalog] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def catalog_row(self, catalog_id: str, location: str = "path.catalog_id") -> CatalogRow:
        """The stored catalog, else a 404 located at `location` (where the request named the id)."""
        row = self.store.get_catalog(catalog_id)
        if row is None:
            raise _not_found("catalog", catalog_id, location, "GET /v1/catalogs lists them")
        return row

    def catalog(self, catalog_id: str, location: str = "path.catalog_id") -> Catalog:
        """The parsed catalog, cached (catalogs never change after upload)."""
        with self._lock:
            cached = self._catalogs.get(catalog_id)
        if cached is not None:
            return cached
        row = self.catalog_row(catalog_id, location)
        catalog = catalog_from_data(row.document, source=f"catalog {catalog_id}")
        with self._lock:
            self._catalogs[catalog_id] = catalog
        return catalog

    def forget_catalog(self, catalog_id: str) -> None:
        with self._lock:
            self._catalogs.pop(catalog_id, None)
            self.catalog_generation += 1

    def catalogs_changed(self) -> None:
        with self._lock:
            self.catalog_generation += 1

    def workflow_row(self, workflow_id: str, location: str = "path.workflow_id") -> WorkflowRow:
        row = self.store.get_workflow(workflow_id)
        if row is None:
            raise _not_found("workflow", workflow_id, location, "GET /v1/workflows lists them")
        return row

    def plan_row(self, plan_id: str, location: str = "path.plan_id") -> PlanRow:
        row = self.store.get_plan(plan_id)
        if row is None:
            raise _not_found("plan", plan_id, location, "POST /v1/plans makes one; its answer has the id")
        return row

    def plan_catalog(self, row: PlanRow, location: str) -> Catalog:
        """The catalog a plan was made for; a 409 located at `location` when it has been deleted
        since (a catalog no workflow uses may be deleted; its draft plans stay)."""
        if self.store.get_catalog(row.catalog_id) is None:
            raise ApiProblem(409, deleted_catalog(row), kind="catalog-deleted", problems=[ProblemItem(
                location=location, message=deleted_catalog(row), code="catalog_deleted",
                hint="plan the request again against a catalog that exists (POST /v1/plans)")])
        return self.catalog(row.catalog_id)

    def version_row(self, workflow_id: str, version: int | None = None, *, location: str = "path.workflow_id",
                    version_location: str = "path.version") -> WorkflowVersionRow:
        workflow = self.workflow_row(workflow_id, location)
        number = version if version is not None else workflow.latest_version
        row = self.store.get_version(workflow_id, number)
        if row is None:
            message = f"workflow `{workflow_id}` has no version {number} (latest: {workflow.latest_version})"
            raise ApiProblem(404, message, kind="version-not-found", problems=[ProblemItem(
                location=version_location, message=message, code="not_found",
                hint=f"use a version from 1 to {workflow.latest_version}; "
                     f"GET /v1/workflows/{workflow_id}/versions lists them")])
        return row

    def parsed(self, row: WorkflowVersionRow) -> Workflow:
        """A stored version as a `Workflow` (it was validated when it was saved)."""
        return workflow_from_data(row.document, source=f"{row.workflow_id} v{row.version}")

    def merged_catalog(self) -> Catalog:
        """Every stored catalog in one, for the engine: an action name means one thing per
        deployment, and where two catalogs define it, the newer upload's definition wins."""
        merged: dict[str, Any] = {}
        for row in self.store.list_catalogs():  # oldest first
            for action in self.catalog(row.id).user_actions():
                merged[action.name] = action
        return Catalog(merged.values(), sources=["service"])

    def sync_engine_catalog(self) -> None:
        """Give the engine (and its invoker) every catalog's actions, when catalogs changed."""
        generation = self.catalog_generation
        if self.engine is None or generation == self._engine_generation:
            return
        catalog = self.merged_catalog()
        self.engine.catalog = catalog
        if self.invoker is not None and hasattr(self.invoker, "catalog"):
            self.invoker.catalog = catalog
        self._engine_generation = generation

    def require_engine(self) -> Any:
        if self.engine is None:
            raise ApiProblem(503, f"the run engine is not available: {self.engine_error or 'not started'}",
                             kind="engine-unavailable")
        return self.engine


def deleted_catalog(row: PlanRow) -> str:
    return f"plan `{row.id}` was made for catalog `{row.catalog_id}`, which has been deleted"


def _not_found(what: str, key: str, location: str, hint: str) -> ApiProblem:
    """A 404 for an unknown id, located where the request named it."""
    message = f"no {what} `{key}`"
    return ApiProblem(404, f"{message}; {hint}", kind=f"{what}-not-found",
                      problems=[ProblemItem(location=location, message=message, hint=hint, code="not_found")])


def services(request: Request) -> Services:
    """FastAPI dependency: the app's services."""
    found: Services = request.app.state.services
    return found


class EventHub:
    """Wakes the event streams of a run when the journal commits one of its events."""

    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def subscribe(self, run_id: str) -> asyncio.Event:
        event = asyncio.Event()
        self._waiters.setdefault(run_id, set()).add(event)
        return event

    def unsubscribe(self, run_id: str, event: asyncio.Event) -> None:
        waiters = self._waiters.get(run_id)
        if waiters is not None:
            waiters.discard(event)
            if not waiters:
                self._waiters.pop(run_id, None)

    def notify(self, journal_event: Any) -> None:
        """A journal listener; may be called off the loop's thread, so it hops onto the loop."""
        waiters = self._waiters.get(getattr(journal_event, "run_id", ""))
        if not waiters:
            return
        loop = self._loop
        for waiter in list(waiters):
            if loop is not None and not loop.is_closed():
                loop.call_soon_threadsafe(waiter.set)
            else:
                waiter.set()
