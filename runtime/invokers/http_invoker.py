"""The `http` invoker: one HTTP request per attempt, with a shared, pooled `httpx.AsyncClient`.

How a response or failure is classified:

    TransientActionError        retrying may help
    ├── type="http_<code>"      408, 425, 429 and every 5xx; `status` and `retry_after` (Retry-After,
    │                           in seconds or as an HTTP date) are set
    ├── type="timeout"          connect/read/write/pool timeout (`invoke.timeout_s`)
    └── type="connection"       refused, reset, DNS failure, broken protocol
    PermanentActionError        retrying will not help
    ├── type="http_<code>"      other 4xx, and 3xx (redirects are not followed: they would carry
    │                           secret headers to wherever they point); the message quotes a short,
    │                           redacted excerpt of the response body (and the Location)
    ├── type="invalid_url"      the rendered URL is not an http(s) URL
    ├── type="invalid_request"  a header with a line break, a non-ASCII header value
    ├── type="response_too_large"   the body is over `max_response_bytes` (10 MiB)
    ├── type="output_path"      `invoke.output` names a part the response does not have
    ├── type="invalid_input"    the step's `with` cannot be sent as JSON
    └── type="template" / "missing_secret"   from rendering the invoke block

Success: a JSON object is the output; other JSON is wrapped as `{"result": value}`; a non-JSON
body becomes `{"status": code, "text": body}`. `invoke.output` (`data.items.0`) selects a part first.

Values spliced into the URL path or query by `${{ ... }}` are percent-encoded (a `/` in an id cannot
walk to another resource); a value at the very start of the URL (a base URL from a secret, say) is
inserted as is.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from typing import Any
from urllib.parse import quote

import httpx

from runtime.errors import ActionError, PermanentActionError, TransientActionError
from runtime.invocation import ActionCall, SecretSource
from runtime.invokers.templating import TemplateRenderer, to_text
from runtime.secrets import Redactor
from workflow.catalog import HttpInvoke
from workflow.expressions import EXPRESSION_RE

TRANSIENT_STATUSES = frozenset({408, 425, 429})
BODY_EXCERPT_CHARS = 300
MAX_RESPONSE_BYTES = 10 * 1024 * 1024
_BODYLESS_BY_DEFAULT = frozenset({"GET", "DELETE"})
_FORBIDDEN_IN_HEADERS = re.compile(r"[\r\n\0]")


def _version() -> str:
    try:
        return metadata.version("overture")
    except metadata.PackageNotFoundError:
        return "0.1.0"


USER_AGENT = f"overture/{_version()}"


@dataclass(frozen=True)
class _Received:
    """A response read in full (up to the size limit)."""

    status: int
    headers: httpx.Headers
    content: bytes
    encoding: str

    @property
    def text(self) -> str:
        return self.content.decode(self.encoding, errors="replace")


class HttpInvoker:
    """Performs `kind: http` actions. Pass `client` to share a pool (and its settings) with others.

    The invoker's own client does not follow redirects: a redirect to another host would carry the
    catalog's secret headers along, so a 3xx is reported (with its Location) for the catalog to fix.
    """

    def __init__(
        self,
        secrets: SecretSource,
        *,
        client: httpx.AsyncClient | None = None,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        self._secrets = secrets
        self._client = client
        self._owns_client = client is None
        self._client_loop: asyncio.AbstractEventLoop | None = None
        self.max_response_bytes = max_response_bytes

    async def aclose(self) -> None:
        """Close the invoker's own client (a client passed in belongs to the caller)."""
        if not self._owns_client or self._client is None:
            return
        client, self._client = self._client, None
        # connections opened under an earlier, finished event loop died with it; closing them from
        # this loop would touch the dead one
        if self._client_loop is asyncio.get_running_loop():
            await client.aclose()

    def _get_client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._owns_client and (self._client is None or self._client_loop is not loop):
            # pooled connections belong to the loop that opened them; a new loop needs a new pool
            self._client = httpx.AsyncClient(
                follow_redirects=False,
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
        client = self._get_client()
        request = self._build_request(client, call, invoke, renderer)
        redactor = renderer.redactor()
        what = f"`{call.action.name}` ({request.method} {_url_for_message(request.url)})"
        try:
            # httpx's timeout is per phase (connect, each read); this caps the whole exchange, so a
            # server dripping one byte at a time cannot hold a step past `timeout_s`
            async with asyncio.timeout(invoke.timeout_s):
                received = await self._send(client, request, what)
        except (httpx.TimeoutException, TimeoutError) as exc:
            raise TransientActionError(
                redactor.redact_text(f"{what} timed out after {invoke.timeout_s:g}s ({type(exc).__name__})"),
                type="timeout",
            ) from None
        except httpx.TooManyRedirects as exc:
            raise PermanentActionError(redactor.redact_text(f"{what}: {exc}"), type="redirects") from None
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise PermanentActionError(redactor.redact_text(f"{what}: {exc}"), type="invalid_url") from None
        except httpx.LocalProtocolError as exc:  # we built something the protocol forbids
            raise PermanentActionError(
                redactor.redact_text(f"{what}: invalid request: {exc}"), type="invalid_request"
            ) from None
        except httpx.TransportError as exc:
            detail = str(exc) or type(exc).__name__
            raise TransientActionError(
                redactor.redact_text(f"{what} could not connect: {detail}"), type="connection"
            ) from None
        except ActionError as exc:
            raise redactor.redact(exc) from None
        return redactor.redact(_output(received, invoke, what, redactor))

    async def _send(self, client: httpx.AsyncClient, request: httpx.Request, what: str) -> _Received:
        # streamed, so a runaway response is cut off instead of filling memory (and the journal)
        response = await client.send(request, stream=True)
        try:
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > self.max_response_bytes:
                raise self._too_large(what, response.status_code)
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > self.max_response_bytes:
                    raise self._too_large(what, response.status_code)
                chunks.append(chunk)
        finally:
            await response.aclose()
        encoding = response.encoding or "utf-8"
        return _Received(response.status_code, response.headers, b"".join(chunks), encoding)

    def _too_large(self, what: str, status: int) -> PermanentActionError:
        return PermanentActionError(
            f"{what} returned HTTP {status} with a body over {self.max_response_bytes} bytes; "
            "use `invoke.output` on a smaller endpoint or raise the limit",
            type="response_too_large", status=status,
        )

    def _build_request(
        self, client: httpx.AsyncClient, call: ActionCall, invoke: HttpInvoke, renderer: TemplateRenderer
    ) -> httpx.Request:
        url = _render_url(invoke.url, renderer)
        # case-insensitive, so a catalog's `accept` replaces our `Accept` instead of doubling it
        headers = httpx.Headers({"User-Agent": USER_AGENT, "Accept": "application/json"})
        for name, value in renderer.render(invoke.headers, "headers").items():
            if value is None:
                continue
            text = to_text(value)
            if _FORBIDDEN_IN_HEADERS.search(name) or _FORBIDDEN_IN_HEADERS.search(text):
                raise PermanentActionError(
                    f"action `{call.action.name}`: invoke.headers.{name}: header names and values "
                    "may not contain line breaks or NUL",
                    type="invalid_request",
                )
            headers[name] = text
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
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            raise PermanentActionError(
                renderer.redactor().redact_text(f"action `{call.action.name}`: bad URL: {exc}"),
                type="invalid_url",
            ) from None
        except (ValueError, TypeError) as exc:  # e.g. a non-ASCII header value
            raise PermanentActionError(
                renderer.redactor().redact_text(f"action `{call.action.name}`: bad request: {exc}"),
                type="invalid_request",
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


def _output(received: _Received, invoke: HttpInvoke, what: str, redactor: Redactor) -> dict[str, Any]:
    status = received.status
    if status in TRANSIENT_STATUSES or status >= 500:
        retry_after = parse_retry_after(received.headers.get("Retry-After"))
        wait = f"; server asks to retry after {retry_after:g}s" if retry_after is not None else ""
        raise TransientActionError(
            redactor.redact_text(f"{what} returned HTTP {status}{wait}{_excerpt(received, redactor)}"),
            type=f"http_{status}", status=status, retry_after=retry_after,
        )
    if status >= 300:
        location = received.headers.get("Location")
        moved = f" (Location: {location})" if 300 <= status < 400 and location else ""
        raise PermanentActionError(
            redactor.redact_text(f"{what} returned HTTP {status}{moved}{_excerpt(received, redactor)}"),
            type=f"http_{status}", status=status,
        )
    data = _decode(received)
    if invoke.output:
        data = select_path(data, invoke.output, what, redactor)
    if isinstance(data, dict):
        return data
    return {"result": data}


def _decode(received: _Received) -> Any:
    content_type = received.headers.get("Content-Type", "").lower()
    if "json" in content_type and received.content.strip():
        try:
            return json.loads(received.content)
        except ValueError:
            pass  # a server that labels text as JSON: fall back to the text
    return {"status": received.status, "text": received.text}


def _excerpt(received: _Received, redactor: Redactor) -> str:
    text = " ".join(received.text.split())
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
