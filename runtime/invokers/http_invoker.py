"""The `http` invoker: one HTTP request per attempt, with a shared, pooled `httpx.AsyncClient`.

How a response or failure is classified:

    TransientActionError        retrying may help
    ├── type="http_<code>"      408, 425, 429 and every 5xx; `status` and `retry_after` (Retry-After,
    │                           in seconds or as an HTTP date) are set
    ├── type="timeout"          connect/read/write/pool timeout (`invoke.timeout_s`)
    └── type="connection"       refused, reset, DNS failure, broken protocol
    PermanentActionError        retrying will not help
    ├── type="http_<code>"      other 4xx (and unfollowed 3xx); message quotes a short, redacted
    │                           excerpt of the response body
    ├── type="invalid_url"      the rendered URL is not an http(s) URL
    ├── type="output_path"      `invoke.output` names a part the response does not have
    ├── type="invalid_input"    the step's `with` cannot be sent as JSON
    └── type="template" / "missing_secret"   from rendering the invoke block

Values spliced into the URL path or query by `${{ ... }}` are percent-encoded (a `/` in an id cannot
walk to another resource); a value at the very start of the URL (a base URL from a secret, say) is
inserted as is.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from importlib import metadata
from typing import Any
from urllib.parse import quote

import httpx

from runtime.errors import PermanentActionError, TransientActionError
from runtime.invocation import ActionCall, SecretSource
from runtime.invokers.templating import TemplateRenderer, to_text
from runtime.secrets import Redactor
from workflow.catalog import HttpInvoke
from workflow.expressions import EXPRESSION_RE

TRANSIENT_STATUSES = frozenset({408, 425, 429})
BODY_EXCERPT_CHARS = 300
_BODYLESS_BY_DEFAULT = frozenset({"GET", "DELETE"})


def _version() -> str:
    try:
        return metadata.version("overture")
    except metadata.PackageNotFoundError:
        return "0.1.0"


USER_AGENT = f"overture/{_version()}"


class HttpInvoker:
    """Performs `kind: http` actions. Pass `client` to share a pool (and its settings) with others."""

    def __init__(self, secrets: SecretSource, *, client: httpx.AsyncClient | None = None) -> None:
        self._secrets = secrets
        self._client = client
        self._owns_client = client is None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    async def aclose(self) -> None:
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    def _get_client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._owns_client and (self._client is None or self._client_loop is not loop):
            # pooled connections belong to the loop that opened them; a new loop needs a new pool
            self._client = httpx.AsyncClient(
                follow_redirects=True,
                limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
            )
            self._client_loop = loop
        assert self._client is not None
        return self._client

    async def invoke(self, call: ActionCall) -> dict[str, Any]:
        invoke = call.action.invoke
        if not isinstance(invoke, HttpInvoke):
            raise PermanentActionError(
                f"action `{call.action.name}` is not an http action", type="no_invoker"
            )
        renderer = TemplateRenderer(call, self._secrets)
        request = self._build_request(self._get_client(), call, invoke, renderer)
        redactor = renderer.redactor()
        what = f"`{call.action.name}` ({request.method} {_url_for_message(request.url)})"
        try:
            response = await self._get_client().send(request)
        except httpx.TimeoutException as exc:
            raise TransientActionError(
                redactor.redact_text(f"{what} timed out after {invoke.timeout_s:g}s ({type(exc).__name__})"),
                type="timeout",
            ) from None
        except httpx.TooManyRedirects as exc:
            raise PermanentActionError(redactor.redact_text(f"{what}: {exc}"), type="redirects") from None
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise PermanentActionError(redactor.redact_text(f"{what}: {exc}"), type="invalid_url") from None
        except httpx.TransportError as exc:
            detail = str(exc) or type(exc).__name__
            raise TransientActionError(
                redactor.redact_text(f"{what} could not connect: {detail}"), type="connection"
            ) from None
        return redactor.redact(_output(response, invoke, what, redactor))

    def _build_request(
        self, client: httpx.AsyncClient, call: ActionCall, invoke: HttpInvoke, renderer: TemplateRenderer
    ) -> httpx.Request:
        url = _render_url(invoke.url, renderer)
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        for name, value in renderer.render(invoke.headers, "headers").items():
            if value is not None:
                headers[name] = to_text(value)
        # set last so a catalog cannot forget or override the key the engine promised to send
        headers["Idempotency-Key"] = call.idempotency_key
        params: list[tuple[str, str | int | float | bool | None]] = []
        for name, value in renderer.render(invoke.query, "query").items():
            if value is None:
                continue
            for item in value if isinstance(value, list) else [value]:
                params.append((name, to_text(item)))

        content: bytes | None = None
        body = invoke.body
        if body == "json" and invoke.method in _BODYLESS_BY_DEFAULT and "body" not in invoke.model_fields_set:
            body = "none"  # a GET/DELETE only carries a body when the catalog asks for one explicitly
        if body != "none":
            payload = dict(call.inputs) if body == "json" else renderer.render(body, "body")
            try:
                content = json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()
            except (TypeError, ValueError) as exc:
                raise PermanentActionError(
                    renderer.redactor().redact_text(
                        f"action `{call.action.name}`: the request body is not JSON: {exc}"
                    ),
                    type="invalid_input",
                ) from None
            headers["Content-Type"] = "application/json"
        try:
            # build_request merges the client's own defaults (base headers, auth) with ours
            return client.build_request(
                invoke.method, url, params=params or None, headers=headers, content=content,
                timeout=httpx.Timeout(invoke.timeout_s),
            )
        except (httpx.InvalidURL, httpx.UnsupportedProtocol, ValueError, TypeError) as exc:
            raise PermanentActionError(
                renderer.redactor().redact_text(f"action `{call.action.name}`: bad request: {exc}"),
                type="invalid_url",
            ) from None


def _render_url(template: str, renderer: TemplateRenderer) -> str:
    context = renderer.context(template)
    parts: list[str] = []
    last = 0
    for match in EXPRESSION_RE.finditer(template):
        parts.append(template[last:match.start()])
        value = to_text(renderer.render_piece(match.group(0), context, "url"))
        so_far = "".join(parts)
        in_path_or_query = "?" in so_far or "/" in so_far.partition("://")[2]
        parts.append(quote(value, safe="") if in_path_or_query else value)
        last = match.end()
    parts.append(template[last:])
    url = "".join(parts)
    scheme = url.partition("://")[0].lower()
    if scheme not in {"http", "https"}:
        raise PermanentActionError(
            renderer.redactor().redact_text(
                f"action `{renderer.call.action.name}`: invoke.url must be an http(s) URL, got `{url}`"
            ),
            type="invalid_url",
        )
    return url


def _url_for_message(url: httpx.URL) -> str:
    # the query often carries tokens; the path is enough to tell which endpoint failed
    return str(url.copy_with(query=None, fragment=None))


def _output(response: httpx.Response, invoke: HttpInvoke, what: str, redactor: Redactor) -> dict[str, Any]:
    status = response.status_code
    if status in TRANSIENT_STATUSES or status >= 500:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        wait = f"; server asks to retry after {retry_after:g}s" if retry_after is not None else ""
        raise TransientActionError(
            redactor.redact_text(f"{what} returned HTTP {status}{wait}{_excerpt(response, redactor)}"),
            type=f"http_{status}", status=status, retry_after=retry_after,
        )
    if status >= 300:
        raise PermanentActionError(
            redactor.redact_text(f"{what} returned HTTP {status}{_excerpt(response, redactor)}"),
            type=f"http_{status}", status=status,
        )
    data = _decode(response)
    if invoke.output:
        data = select_path(data, invoke.output, what, redactor)
    if isinstance(data, dict):
        return data
    return {"result": data}


def _decode(response: httpx.Response) -> Any:
    content_type = response.headers.get("Content-Type", "").lower()
    if "json" in content_type and response.content.strip():
        try:
            return response.json()
        except ValueError:
            pass  # a server that labels text as JSON: fall back to the text
    return {"status": response.status_code, "text": response.text}


def _excerpt(response: httpx.Response, redactor: Redactor) -> str:
    text = " ".join(response.text.split())
    if not text:
        return ""
    # redact before cutting, so a secret split by the cut cannot leak its first half
    text = redactor.redact_text(text)
    if len(text) > BODY_EXCERPT_CHARS:
        text = text[:BODY_EXCERPT_CHARS] + "…"
    return f": {text}"


def select_path(data: Any, path: str, what: str, redactor: Redactor) -> Any:
    """Follow a dotted path (`data.items.0.id`) into decoded JSON; list indexes are numbers."""
    current = data
    walked: list[str] = []
    for part in path.split("."):
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        elif isinstance(current, list) and _is_index(part, len(current)):
            current = current[int(part)]
        else:
            here = ".".join(walked) or "the response"
            if isinstance(current, Mapping):
                found = f"keys there: {', '.join(sorted(map(str, current))[:20]) or 'none'}"
            elif isinstance(current, list):
                found = f"a list of {len(current)} items"
            else:
                found = f"a {type(current).__name__}"
            raise PermanentActionError(
                redactor.redact_text(
                    f"{what}: invoke.output `{path}`: `{part}` not found in {here} ({found})"
                ),
                type="output_path",
            )
        walked.append(part)
    return current


def _is_index(part: str, length: int) -> bool:
    return part.lstrip("-").isdigit() and -length <= int(part) < length


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Retry-After as seconds: either a number of seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        current = datetime.fromtimestamp(time.time() if now is None else now, UTC)
        seconds = (when - current).total_seconds()
    if seconds != seconds or seconds in (float("inf"), float("-inf")):  # NaN / inf
        return None
    return max(0.0, seconds)


__all__ = ["USER_AGENT", "HttpInvoker", "parse_retry_after", "select_path"]
