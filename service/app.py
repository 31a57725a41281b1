"""The service: a FastAPI app over the workflow contract, the planner and the durable engine.

`create_app(settings)` builds a self-contained app: its own store (catalogs, workflows, tokens,
plans), metrics registry and, during the lifespan, its own journal and engine, which recovers
unfinished runs on start and stops cleanly on shutdown. Tests and the demo make one with a temp
data dir and `invoker_overrides` (action name → `Invoker`) to stand in for real services.

Every route but `/health`, the docs and the static UI shell needs a bearer token (see `service.auth`);
every error is RFC 9457 problem details (see `service.problems`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from service.api import catalogs, optimizer, plans, runs, system, triggers, webhooks, workflows
from service.api.limits import BodyLimitMiddleware
from service.api.metrics import Metrics, MetricsMiddleware
from service.api.services import Services
from service.auth import require_token
from service.problems import ProblemDetails, install_problem_handlers
from service.settings import ServiceSettings
from service.store import Store
from workflow.loader import load_catalog

log = logging.getLogger("overture.service")

UI_DIR = Path(__file__).parent / "ui" / "static"
DEFAULT_CATALOG_ID = "default"

_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ProblemDetails, "content": {"application/problem+json": {}}, "description": text}
    for status, text in (
        (401, "No valid API token (`WWW-Authenticate: Bearer`)."),
        (404, "No such resource."),
        (409, "The resource is not in a state that allows this."),
        (413, "The request body is larger than the service's limit."),
        (415, "The body is not sent as `application/json`."),
        (422, "The request (or the document it carries) is not valid; `problems` locates each issue."),
        (503, "The engine or the planner is not available."),
    )
}

DESCRIPTION = """Plain English → validated workflow graph → durable runs.

Every endpoint except `/health` needs `Authorization: Bearer <token>`; make a token with
`overture token create`. Every error is an RFC 9457 problem details object
(`application/problem+json`) whose `problems` list locates each issue.

A typical session: upload or import a catalog (`/v1/catalogs`), plan from plain English
(`POST /v1/plans`), accept the plan (`POST /v1/workflows {plan_id}`), start a run
(`POST /v1/runs`), follow it (`GET /v1/runs/{id}/events`, server-sent events) and approve its
approval steps (`POST /v1/runs/{id}/approvals/{step}`).
"""


def create_app(
    settings: ServiceSettings | None = None,
    *,
    invoker_overrides: Mapping[str, Any] | None = None,
    secrets: Any = None,
    clock: Any = None,
    start_engine: bool = True,
) -> FastAPI:
    """A ready-to-serve app. `secrets`: a `runtime.secrets.SecretStore` (default: from the
    environment); `clock`: a `runtime.clock.Clock` for tests; `start_engine=False` serves
    everything but runs (they answer 503)."""
    settings = settings or ServiceSettings()
    settings.ensure_data_dir()
    store = Store(settings.resolved_database_url())
    metrics = Metrics()
    services = Services(settings=settings, store=store, metrics=metrics)
    if settings.catalogs:
        # the deployment's own catalog; reloaded on every start so file edits take effect
        catalog = load_catalog(*settings.catalogs)
        store.add_catalog("default", ",".join(settings.catalogs), catalog.to_data(), id=DEFAULT_CATALOG_ID)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services.hub.bind(asyncio.get_running_loop())
        if start_engine:
            await _start_engine(services, invoker_overrides, secrets, clock)
        await triggers.start_triggers(app, clock=clock, secrets=secrets)
        try:
            yield
        finally:
            await triggers.stop_triggers(app)
            await _stop_engine(services)
            store.close()

    app = FastAPI(
        title="Overture",
        version=system.version(),
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served by `system.mount_docs` from a package instead of a CDN
        redoc_url=None,
        responses=_ERROR_RESPONSES,
    )
    app.state.services = services
    install_problem_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)

    protected = [Depends(require_token)]
    for module in (catalogs, plans, workflows, runs, triggers, optimizer):
        app.include_router(module.router, dependencies=protected)
    app.include_router(webhooks.router)  # authenticated by each delivery's signature, not a token
    app.include_router(system.router)
    system.mount_docs(app)
    if (UI_DIR / "index.html").exists():
        app.mount("/ui", StaticFiles(directory=str(UI_DIR), html=True), name="ui")

        @app.get("/", include_in_schema=False)
        def root() -> RedirectResponse:
            return RedirectResponse("/ui/")

    return app


async def _start_engine(services: Services, overrides: Mapping[str, Any] | None, secrets: Any,
                        clock: Any) -> None:
    try:
        from runtime.engine import Engine
        from runtime.invokers import build_invoker
        from runtime.journal import Journal
        from runtime.secrets import SecretStore
    except ImportError as exc:  # the service still plans and edits without a runtime
        services.engine_error = f"the runtime could not be imported ({exc})"
        log.warning(services.engine_error)
        return
    secret_store = secrets if secrets is not None else SecretStore.from_env()
    journal = Journal.open(services.settings.resolved_journal_url(), redact=secret_store.redact)
    catalog = services.merged_catalog()
    invoker = build_invoker(catalog, secret_store, overrides=overrides)
    if services.settings.dispatch == "workers":
        # the API only journals and enqueues; `overture worker` processes elsewhere drive the runs
        from runtime.workers import QueueingEngine, RunQueue, ensure_schema

        url = services.settings.resolved_journal_url()
        ensure_schema(url)
        engine: Engine = QueueingEngine(catalog, journal, invoker, clock=clock, secrets=secret_store,
                                        worker_id=services.settings.worker_id, queue=RunQueue(url))
    else:
        engine = Engine(catalog, journal, invoker, clock=clock, concurrency=services.settings.concurrency,
                        secrets=secret_store, worker_id=services.settings.worker_id,
                        router=optimizer.load_service_router(services))
    journal.add_listener(services.metrics.on_event)
    journal.add_listener(services.hub.notify)
    services.journal, services.invoker, services.engine = journal, invoker, engine
    services.sync_engine_catalog()
    recovered = await engine.recover()
    if recovered:
        log.info("recovered %d unfinished run(s)", len(recovered))


async def _stop_engine(services: Services) -> None:
    engine, invoker, journal = services.engine, services.invoker, services.journal
    services.engine = None
    services.engine_error = "the service is shutting down"
    if engine is not None:
        await engine.close()
    if invoker is not None and hasattr(invoker, "aclose"):
        await invoker.aclose()
    if journal is not None:
        journal.remove_listener(services.metrics.on_event)
        journal.remove_listener(services.hub.notify)
        journal.close()
