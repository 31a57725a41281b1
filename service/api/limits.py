"""A request-body size limit that answers with problem details (413), like every other error.

A declared `Content-Length` over the limit is refused before the body is read; a chunked body is
counted as it arrives and refused as soon as it passes the limit, so a large upload never sits in
memory whole.
"""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.problems import BODY_TOO_LARGE, PROBLEM_MEDIA_TYPE, TYPE_PREFIX


def _too_large(limit: int) -> HTTPException:
    # an HTTPException, because FastAPI re-raises those from body parsing (others become a 400)
    return HTTPException(413, f"the request body is larger than the limit of {limit} bytes")


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _too_large(self.max_bytes)  # the app's handlers turn it into problem details
            return message

        await self.app(scope, counted, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        body = json.dumps({
            "type": f"{TYPE_PREFIX}{BODY_TOO_LARGE}", "title": "Content Too Large", "status": 413,
            "detail": f"the request body is larger than the limit of {self.max_bytes} bytes",
            "instance": scope.get("path"), "problems": [{
                "location": "body", "message": f"larger than the limit of {self.max_bytes} bytes",
                "code": "too_large"}],
        }).encode()
        await send({"type": "http.response.start", "status": 413, "headers": [
            (b"content-type", PROBLEM_MEDIA_TYPE.encode()), (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]})
        await send({"type": "http.response.body", "body": body})
