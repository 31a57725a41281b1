"""`/health` (no token), `/metrics` (token unless `OVERTURE_METRICS_PUBLIC=1`) and the interactive
docs, whose Swagger UI assets come from the `swagger-ui-bundle` package (no CDN)."""

from __future__ import annotations

from importlib import metadata

import sqlalchemy as sa
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from service.api.models import Health
from service.api.services import Services
from service.auth import authenticate

router = APIRouter(tags=["system"])
DOCS_ASSETS = "/docs/assets"


def version() -> str:
    try:
        return metadata.version("overture")
    except metadata.PackageNotFoundError:
        return "0.1.0"


@router.get("/health", response_model=Health, summary="Is the service up? (no token needed)")
def health(request: Request, response: Response) -> Health:
    svc: Services = request.app.state.services
    try:
        with svc.store.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        database = True
    except Exception:  # any failure means "not healthy"; the reason belongs in the server log
        database = False
    engine = svc.engine is not None
    ok = database and engine
    if not ok:
        response.status_code = 503
    return Health(status="ok" if ok else "degraded", version=version(), database=database, engine=engine)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response,
            responses={200: {"content": {"text/plain; version=0.0.4": {}}}})
def metrics(request: Request) -> Response:
    """Request counts and latency by route template, runs started and finished by state, step
    outcomes. Needs the token unless the server runs with `OVERTURE_METRICS_PUBLIC=1`."""
    svc: Services = request.app.state.services
    if not svc.settings.metrics_public:
        authenticate(svc.store, request.headers.get("authorization"))
    return Response(svc.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")


def mount_docs(app: FastAPI) -> None:
    """Swagger UI at `/docs`, served from the installed `swagger-ui-bundle` package."""
    from swagger_ui_bundle import swagger_ui_path

    app.mount(DOCS_ASSETS, StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} — API docs",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png",
            swagger_ui_parameters={"persistAuthorization": True},
        )
