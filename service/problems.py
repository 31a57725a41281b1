"""One error format for every answer that is not a success: RFC 9457 problem details.

    {"type": "urn:overture:problem:invalid-workflow", "title": "The workflow is not valid",
     "status": 422, "detail": "...", "instance": "/v1/workflows/wf_1/versions",
     "problems": [{"location": "steps[1].action", "message": "...", "hint": "...", "code": "..."}]}

Every path that can fail ends here: our own `ApiProblem`, FastAPI's request validation errors,
Starlette's 404/405, the contract's `OvertureError`s and, as a last resort, an unexpected
exception (a 500 that names no internals; the traceback goes to the server log only).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from workflow.errors import DocumentError, InvalidWorkflow, OvertureError, Problem
from workflow.loader import format_location

PROBLEM_MEDIA_TYPE = "application/problem+json"
JSON_MEDIA_TYPE = "application/json"
BODY_TOO_LARGE = "body-too-large"
TYPE_PREFIX = "urn:overture:problem:"

log = logging.getLogger("overture.service")


class ProblemItem(BaseModel):
    """One thing wrong with the request, and where."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    location: str
    """Where the problem is: `body.request`, `query.limit`, `inputs.email`, `steps[2].with.x`."""
    message: str
    """What is wrong, naming what was expected and what was found."""
    hint: str | None = None
    """How to fix it, when there is something to say."""
    code: str = "invalid"
    """A stable machine-readable kind (`missing`, `unknown_action`, `cycle`, ...)."""


class ProblemDetails(BaseModel):
    """An RFC 9457 problem details object (`application/problem+json`)."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    type: str = "about:blank"
    """A URI naming the kind of problem; `about:blank` means the HTTP status says it all."""
    title: str
    """A short summary of the kind of problem; the same for every occurrence of a type."""
    status: int
    """The HTTP status code."""
    detail: str | None = None
    """What went wrong this time, in plain English."""
    instance: str | None = None
    """The request path the problem occurred at."""
    problems: list[ProblemItem] = Field(default_factory=list)
    """Every individual problem, each with its location."""


class ApiProblem(Exception):
    """Raise anywhere in a request to answer with problem details."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        kind: str | None = None,
        title: str | None = None,
        problems: Iterable[ProblemItem | Problem] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.kind = kind
        self.title = title or _phrase(status)
        self.problems = [to_item(p) for p in problems]
        self.headers = dict(headers or {})


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def to_item(problem: ProblemItem | Problem, prefix: str = "") -> ProblemItem:
    if isinstance(problem, ProblemItem):
        return problem
    location = problem.location
    if prefix:
        location = prefix if location in ("", "(document)") else f"{prefix}.{location}"
    message = problem.message if problem.severity == "error" else f"warning: {problem.message}"
    return ProblemItem(location=location, message=message, hint=problem.hint, code=problem.code)


def problem_response(
    request: Request | None,
    status: int,
    detail: str | None,
    *,
    kind: str | None = None,
    title: str | None = None,
    problems: Sequence[ProblemItem] = (),
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = ProblemDetails(
        type=f"{TYPE_PREFIX}{kind}" if kind else "about:blank",
        title=title or _phrase(status),
        status=status,
        detail=detail,
        instance=request.url.path if request is not None else None,
        problems=list(problems),
    )
    return JSONResponse(
        body.model_dump(mode="json", exclude_none=True),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=dict(headers or {}),
    )


def validation_items(errors: Sequence[Any]) -> list[ProblemItem]:
    """FastAPI/pydantic errors as items located `body.field`, `query.name`, `path.id`."""
    items = []
    for err in errors:
        loc = [p.rstrip("_") if isinstance(p, str) else p for p in err.get("loc", ())]
        kind = str(err.get("type", "invalid"))
        message = str(err.get("msg", "invalid value"))
        hint = None
        if kind == "missing":
            message = f"required field `{loc[-1]}` is missing" if loc else "a required value is missing"
        elif kind == "extra_forbidden":
            message = f"unknown field `{loc[-1]}`"
            hint = "remove it or check its spelling"
        elif kind == "json_invalid":
            message = f"the body is not valid JSON: {err.get('ctx', {}).get('error', message)}"
            loc = loc[:1]
            hint = "send a JSON object with Content-Type: application/json"
        elif kind == "json_value":  # service.api.models.JsonObject: located inside the field
            loc = [*loc, *err.get("ctx", {}).get("at", ())]
            hint = err.get("ctx", {}).get("hint")
        elif kind == "model_attributes_type" or kind == "dict_type":
            hint = "send a JSON object with Content-Type: application/json"
        items.append(ProblemItem(location=format_location(loc), message=message, hint=hint, code=kind))
    return items


def install_problem_handlers(app: FastAPI) -> None:
    """Route every kind of failure to problem details."""

    @app.exception_handler(ApiProblem)
    async def _api_problem(request: Request, exc: ApiProblem) -> JSONResponse:
        problems = exc.problems
        if not problems and exc.status in (404, 409):
            problems = path_items(request, exc.detail, exc.status)
        return problem_response(request, exc.status, exc.detail, kind=exc.kind, title=exc.title,
                                problems=problems, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _request_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if not_json(request, errors):
            found = request.headers.get("content-type", "")
            message = f"the body must be JSON (Content-Type: {JSON_MEDIA_TYPE}), not `{found[:80]}`"
            return problem_response(
                request, 415, message, kind="unsupported-media-type", title="Unsupported Media Type",
                problems=[ProblemItem(location="header.Content-Type", message=message,
                                      code="unsupported_media_type",
                                      hint=f"send a JSON object with Content-Type: {JSON_MEDIA_TYPE}")],
                headers={"Accept-Post": JSON_MEDIA_TYPE} if request.method == "POST" else None,
            )
        items = validation_items(errors)
        count = len(items)
        return problem_response(
            request, 422, f"the request has {count} problem{'s' if count != 1 else ''}",
            kind="invalid-request", title="The request is not valid", problems=items,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else None
        if exc.status_code == 404 and detail in (None, "Not Found"):
            detail = f"nothing at {request.url.path}; GET /docs lists the API"
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # Starlette's Allow names only the first route matching the path; list every method
            allowed = allowed_methods(request) or headers.get("Allow", "")
            headers["Allow"] = allowed
            detail = f"{request.method} is not allowed on {request.url.path}" + (
                f"; allowed: {allowed}" if allowed else "")
        if exc.status_code == 400 and detail == BODY_PARSE_ERROR:  # FastAPI's, for any parser failure
            item = unreadable_body(exc.__cause__)
            return problem_response(request, 422, f"the body is not valid JSON: {item.message}",
                                    kind="invalid-request", title="The request is not valid", problems=[item])
        if exc.status_code == 413:  # the body limit (service.api.limits), counted as the body arrived
            return problem_response(request, 413, detail, kind=BODY_TOO_LARGE, headers=headers,
                                    problems=[ProblemItem(location="body", message=detail or "too large",
                                                          code="too_large")])
        return problem_response(request, exc.status_code, detail, headers=headers)

    @app.exception_handler(InvalidWorkflow)
    async def _invalid_workflow(request: Request, exc: InvalidWorkflow) -> JSONResponse:
        errors = [p for p in exc.problems if p.severity == "error"]
        return problem_response(
            request, 422, f"the workflow has {len(errors)} problem{'s' if len(errors) != 1 else ''}",
            kind="invalid-workflow", title="The workflow is not valid",
            problems=[to_item(p) for p in exc.problems],
        )

    @app.exception_handler(DocumentError)
    async def _bad_document(request: Request, exc: DocumentError) -> JSONResponse:
        return problem_response(request, 422, str(exc), kind="invalid-document",
                                title="The document could not be read",
                                problems=[to_item(p) for p in exc.problems])

    @app.exception_handler(OvertureError)
    async def _overture_error(request: Request, exc: OvertureError) -> JSONResponse:
        status, kind = status_of(exc)
        problems = path_items(request, str(exc), status) if status in (404, 409) else []
        if kind == "run-not-found":
            problems = [p.model_copy(update={"hint": "GET /v1/runs lists the runs"}) for p in problems]
        return problem_response(request, status, str(exc), kind=kind, problems=problems)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return problem_response(
            request, 500, f"an unexpected {type(exc).__name__} occurred; the server log has the details",
            kind="internal",
        )


BODY_PARSE_ERROR = "There was an error parsing the body"


def unreadable_body(cause: BaseException | None) -> ProblemItem:
    """Why a JSON body could not be parsed at all (FastAPI answers a bare 400 for anything but a
    syntax error): bytes that are not UTF-8, or nesting too deep for the parser."""
    if isinstance(cause, UnicodeDecodeError):
        return ProblemItem(location="body", code="json_invalid",
                           message=f"byte {cause.start} is not UTF-8 ({cause.reason})",
                           hint="send the JSON encoded as UTF-8")
    if isinstance(cause, RecursionError):
        return ProblemItem(location="body", code="json_too_deep",
                           message="the JSON is nested too deeply to read",
                           hint="nest objects and arrays at most a few hundred levels deep")
    found = type(cause).__name__ if cause is not None else "unknown error"
    return ProblemItem(location="body", code="json_invalid", message=f"it could not be read ({found})",
                       hint="send a JSON object with Content-Type: application/json")


def path_items(request: Request, message: str, status: int) -> list[ProblemItem]:
    """For a 404/409 raised without a location: the path parameter the resource was named by
    (`run_id` when the route has one, else the last path parameter)."""
    params = list(request.path_params)
    if not params:
        return []
    name = "run_id" if "run_id" in params else params[-1]
    return [ProblemItem(location=f"path.{name}", message=message,
                        code="not_found" if status == 404 else "conflict")]


def not_json(request: Request, errors: Sequence[Any]) -> bool:
    """Whether a body was refused only because it was not sent as JSON (a 415, not a 422)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not content_type or content_type == JSON_MEDIA_TYPE or content_type.endswith("+json"):
        return False
    return any(tuple(err.get("loc", ())) == ("body",) and err.get("type") in
               ("dict_type", "model_attributes_type", "model_type", "json_invalid") for err in errors)


def allowed_methods(request: Request) -> str:
    """Every method the API documents for the request's path, e.g. `GET, POST`."""
    try:
        paths = request.app.openapi().get("paths", {})
    except Exception:  # documenting must never turn a 405 into a 500
        return ""
    methods: set[str] = set()
    for template, item in paths.items():
        pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, request.url.path):
            methods.update(m.upper() for m in item)
    return ", ".join(sorted(methods))


def status_of(exc: OvertureError) -> tuple[int, str]:
    """Map runtime and planner errors by class name, so this module needs none of them imported."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    if "RunNotFound" in names:
        return 404, "run-not-found"
    if "InvalidRunState" in names:
        return 409, "invalid-run-state"
    if "LLMNotConfigured" in names:
        return 503, "llm-not-configured"
    if "LLMUnavailable" in names:
        return 503, "llm-unavailable"
    if "LLMRefused" in names:
        return 422, "llm-refused"
    if "EditNotUnderstood" in names:
        return 422, "edit-not-understood"
    if "SecretsError" in names:
        return 500, "secrets"
    return 422, "unprocessable"
