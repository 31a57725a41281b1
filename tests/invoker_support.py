"""Real servers on 127.0.0.1 for tests of action invokers (and of the engine that drives them).

`HttpTestServer` is a threaded `http.server` that answers from routes and records every request;
`SmtpTestServer` is an aiosmtpd `Controller` that records every delivered message. Both start on a
free port and stop cleanly, as context managers:

    with HttpTestServer() as server:
        server.route("POST", "/accounts", Reply(201, {"account_id": "a1"}))
        server.route("GET", "/flaky", [Reply(503), Reply(200, {"ok": True})])   # in order, last repeats
        server.route("GET", "/echo", echo)                                        # any callable
        ... server.url("/accounts") ...
        assert server.requests[-1].headers["idempotency-key"] == "k1"

    with SmtpTestServer(credentials={"bot": "pw"}) as smtp:
        smtp.reject_recipient("nobody@example.com", "550 5.1.1 no such user")
        ... send to smtp.host, smtp.port ...
        assert smtp.messages[0].message["Subject"] == "Hi"

`action_call(spec, inputs)` builds a `runtime.invocation.ActionCall` with sensible defaults.
"""

from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from runtime.invocation import ActionCall
from workflow.catalog import ActionSpec


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on right now (also good for "connection refused")."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def action_call(
    action: ActionSpec,
    inputs: Mapping[str, Any] | None = None,
    *,
    run_id: str = "run-1",
    step_id: str = "step-1",
    iteration: int | None = None,
    attempt: int = 1,
    idempotency_key: str | None = None,
) -> ActionCall:
    key = idempotency_key or f"{run_id}:{step_id}:{'' if iteration is None else iteration}"
    return ActionCall(
        action=action, inputs=dict(inputs or {}), run_id=run_id, step_id=step_id, iteration=iteration,
        attempt=attempt, idempotency_key=key,
    )


# ---------------------------------------------------------------------------------------------- HTTP


@dataclass(frozen=True)
class RecordedRequest:
    """What the server received."""

    method: str
    path: str
    """The raw (still percent-encoded) path, without the query."""
    query: dict[str, list[str]]
    headers: dict[str, str]
    """Header names in lower case."""
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


@dataclass
class Reply:
    """One HTTP answer. `body`: a dict/list is sent as JSON, a str as text/plain."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    """Wait this long before answering (to provoke client timeouts)."""
    content_type: str | None = None


Handler = Callable[[RecordedRequest], Reply]
Route = Reply | list[Reply] | Handler


def echo(request: RecordedRequest) -> Reply:
    """Answer with what was received, as JSON (handy to assert on what the client sent)."""
    is_json = request.headers.get("content-type", "").startswith("application/json")
    return Reply(200, {
        "method": request.method, "path": request.path, "query": request.query, "headers": request.headers,
        "json": request.json if is_json else None, "text": request.text,
    })


class _Server(ThreadingHTTPServer):
    # the default backlog of 5 resets connections when a test fires many requests at once
    request_queue_size = 128
    daemon_threads = True


class HttpTestServer:
    """A real HTTP/1.1 server on 127.0.0.1 answering from routes; unknown routes get 404."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._routes: dict[tuple[str, str], Route] = {}
        self._cursor: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # routes ---------------------------------------------------------------------------------------

    def route(self, method: str, path: str, answer: Route) -> None:
        """Answer `method path` (path without query; compared percent-encoded) with `answer`."""
        with self._lock:
            self._routes[(method.upper(), path)] = answer
            self._cursor[(method.upper(), path)] = 0

    def requests_to(self, path: str, method: str | None = None) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path == path and (method is None or r.method == method)]

    def _answer(self, request: RecordedRequest) -> Reply:
        key = (request.method, request.path)
        with self._lock:
            self.requests.append(request)
            route = self._routes.get(key)
            if isinstance(route, list):
                index = self._cursor[key]
                self._cursor[key] = index + 1
                return route[min(index, len(route) - 1)]
        if route is None:
            return Reply(404, {"error": f"no route for {request.method} {request.path}"})
        if isinstance(route, Reply):
            return route
        return route(request)

    # lifecycle ------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        assert self._server is not None, "server not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def url(self, path: str = "") -> str:
        return self.base_url + path

    def start(self) -> HttpTestServer:
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                request = RecordedRequest(
                    method=self.command, path=parts.path, query=parse_qs(parts.query, keep_blank_values=True),
                    headers={k.lower(): v for k, v in self.headers.items()}, body=body,
                )
                try:
                    reply = server._answer(request)
                except Exception as exc:  # a broken test handler should show up as a 500
                    reply = Reply(500, {"error": f"test handler raised {type(exc).__name__}: {exc}"})
                if reply.delay_s and server._stopping.wait(reply.delay_s):
                    return
                if isinstance(reply.body, str):
                    payload, content_type = reply.body.encode(), "text/plain; charset=utf-8"
                elif reply.body is None and reply.status in (204, 304):
                    payload, content_type = b"", None
                else:
                    payload = json.dumps({} if reply.body is None else reply.body).encode()
                    content_type = "application/json"
                content_type = reply.content_type or content_type
                try:
                    self.send_response(reply.status)
                    if content_type:
                        self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout tests)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            # a short poll interval keeps stop() fast; the default 0.5 s adds up over many tests
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="http-test-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> HttpTestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---------------------------------------------------------------------------------------------- SMTP


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    raw: bytes

    @property
    def text(self) -> str:
        """The plain-text body with wire line endings (CRLF) turned back into `\n`."""
        part = self.message.get_body(preferencelist=("plain",))
        return part.get_content().replace("\r\n", "\n") if part is not None else ""

    @property
    def html(self) -> str | None:
        part = self.message.get_body(preferencelist=("html",))
        return part.get_content().replace("\r\n", "\n") if part is not None else None


class _RecordingHandler:
    def __init__(self, owner: SmtpTestServer) -> None:
        self.owner = owner

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        rejection = self.owner._rejected.get(address.lower())
        if rejection is not None:
            return rejection
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        if self.owner.data_reply is not None:
            return self.owner.data_reply
        raw = envelope.original_content or envelope.content or b""
        raw = raw if isinstance(raw, bytes) else raw.encode()
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self.owner._lock:
            self.owner.messages.append(ReceivedMail(
                mail_from=envelope.mail_from or "", rcpt_tos=list(envelope.rcpt_tos),
                message=message, raw=raw,
            ))
        return "250 Message accepted for delivery"


class SmtpTestServer:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps what it receives in `messages`."""

    def __init__(self, *, credentials: Mapping[str, str] | None = None) -> None:
        self.messages: list[ReceivedMail] = []
        self.logins: list[str] = []
        self.data_reply: str | None = None
        """Set to e.g. "451 4.3.0 try later" to refuse every message at DATA."""
        self._rejected: dict[str, str] = {}
        self._lock = threading.Lock()
        self._credentials = dict(credentials or {})
        self.host = "127.0.0.1"
        self.port = free_port()
        kwargs: dict[str, Any] = {}
        if credentials is not None:
            kwargs = {"authenticator": self._authenticate, "auth_require_tls": False}
        self._controller = Controller(_RecordingHandler(self), hostname=self.host, port=self.port, **kwargs)

    def reject_recipient(self, address: str, reply: str = "550 5.1.1 no such user") -> None:
        self._rejected[address.lower()] = reply

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            user, password = auth_data.login.decode(), auth_data.password.decode()
            if self._credentials.get(user) == password:
                self.logins.append(user)
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    def start(self) -> SmtpTestServer:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> SmtpTestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
