"""The web UI: static HTML, CSS and JavaScript modules served by the API app, no build step.

`mount_ui(app)` serves the files under `/ui/` and sends `/` there. The UI talks to the same REST
API as everyone else (`/v1/...`, bearer token), so it needs nothing from the server beyond files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parent / "static"


class _UiFiles(StaticFiles):
    """Static files that browsers revalidate on every load, so an upgrade is never half-cached."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "no-cache"
        return response


def mount_ui(app: FastAPI, path: str = "/ui") -> None:
    """Serve the UI at `path` (default `/ui/`) and redirect `/` to it."""
    app.mount(path, _UiFiles(directory=STATIC_DIR, html=True), name="ui")

    if not any(getattr(route, "path", None) == "/" for route in app.router.routes):
        @app.get("/", include_in_schema=False)
        def _root() -> RedirectResponse:
            return RedirectResponse(url=f"{path}/")
