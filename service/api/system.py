"""`/health` (no token), `/v1/me` (who the token is: name and roles), `/metrics` (token unless
`OVERTURE_METRICS_PUBLIC=1`) and the interactive docs (Swagger UI at `/docs`, ReDoc at `/redoc`),
whose assets come from the `fastapi-offline` package instead of a CDN (its Swagger UI 5 renders
the OpenAPI 3.1 document FastAPI writes)."""

from __future__ import annotations

from importlib import metadata, resources

import sqlalchemy as sa
from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from service.api.models import Health, Me
from service.api.services import Services
from service.auth import Caller, authenticate, require_token
from service.problems import ApiProblem

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


@router.get("/v1/me", response_model=Me, summary="Who the API token is (its name and roles)")
def me(caller: Caller = Depends(require_token)) -> Me:
    """The caller's token: its name (what `decided_by` records) and roles. An approval that lists
    `approvers` may be decided with this token when one of them is its name or one of its roles
    (trimmed, case-insensitively), or when it has the role `*`; the web UI tells from this whether
    the signed-in token may decide a waiting approval."""
    return Me(token_id=caller.token_id, name=caller.name, roles=list(caller.roles))


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
    """Swagger UI at `/docs` and ReDoc at `/redoc`, served from the installed `fastapi-offline`."""
    try:
        assets = resources.files("fastapi_offline") / "static"
    except ModuleNotFoundError:
        _docs_missing(app)
        return
    app.mount(DOCS_ASSETS, StaticFiles(directory=str(assets)), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} — API docs",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon.png",
            swagger_ui_parameters={"persistAuthorization": True},
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url, title=f"{app.title} — API reference",
            redoc_js_url=f"{DOCS_ASSETS}/redoc.standalone.js", redoc_favicon_url=f"{DOCS_ASSETS}/favicon.png",
            with_google_fonts=False,
        )


def _docs_missing(app: FastAPI) -> None:
    # the API works without its interactive docs; say how to get them back rather than fail to start
    @app.get("/docs", include_in_schema=False)
    @app.get("/redoc", include_in_schema=False)
    def no_docs() -> None:
        raise ApiProblem(503, "the interactive docs need the `fastapi-offline` package "
                         "(pip install fastapi-offline); /openapi.json is available", kind="docs-unavailable")
