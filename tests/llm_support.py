"""A fake OpenAI-compatible server on 127.0.0.1 for tests: scripted replies, recorded requests.

The real `openai` client talks to it over HTTP, so retries, timeouts and response parsing are the
SDK's own. Script replies in order with `server.script(...)`; each request takes the next one (the
last one repeats when the script runs out, unless `repeat_last=False`).

    with FakeOpenAI() as server:
        server.script(Reply(status=429, headers={"retry-after": "0"}), completion(content='{"a": 1}'))
        client = OpenAI(api_key="test", base_url=server.base_url)
        ...
        assert server.requests[-1].body["model"] == "m"
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """One scripted HTTP answer."""

    body: Any = None
    """JSON body (a dict) or raw text; None sends an empty JSON object."""
    status: int = 200
    """HTTP status: 429 and 5xx make the SDK retry, 400 makes it give up at once."""
    headers: dict[str, str] = field(default_factory=dict)
    """Extra headers, e.g. `{"retry-after": "0"}`."""
    delay_s: float = 0.0
    """Sleep this long before answering (drives client timeouts)."""


@dataclass
class RecordedRequest:
    """What the client sent."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages", [])) if isinstance(self.body, dict) else []

    @property
    def text(self) -> str:
        """All message contents joined: what the model was shown."""
        return "\n".join(str(m.get("content") or "") for m in self.messages)


Responder = Callable[[RecordedRequest], Reply | dict[str, Any]]


def completion(
    content: str | None = None,
    *,
    tool_call: tuple[str, str] | None = None,
    finish_reason: str = "stop",
    refusal: str | None = None,
    prompt_tokens: int = 100,
    completion_tokens: int = 50,
    model: str = "fake-model",
) -> dict[str, Any]:
    """A chat.completion body; `tool_call` is (function name, arguments JSON text)."""
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": refusal}
    if tool_call is not None:
        message["tool_calls"] = [{
            "id": "call_1", "type": "function",
            "function": {"name": tool_call[0], "arguments": tool_call[1]},
        }]
        if finish_reason == "stop":
            finish_reason = "tool_calls"
    return {
        "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason, "logprobs": None}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


def error(status: int, message: str, *, headers: dict[str, str] | None = None) -> Reply:
    """An OpenAI-style error answer."""
    return Reply(status=status, headers=headers or {},
                 body={"error": {"message": message, "type": "invalid_request_error", "code": None}})


class FakeOpenAI:
    """The server. Use as a context manager; `base_url` ends in `/v1` as the SDK expects."""

    def __init__(self, *, repeat_last: bool = True) -> None:
        self.requests: list[RecordedRequest] = []
        self._script: list[Reply | dict[str, Any] | Responder] = []
        self._repeat_last = repeat_last
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- scripting ---------------------------------------------------------------------------
    def script(self, *replies: Reply | dict[str, Any] | Responder) -> FakeOpenAI:
        """Queue replies (a body dict, a `Reply`, or a function of the request)."""
        with self._lock:
            self._script.extend(replies)
        return self

    def reset(self) -> FakeOpenAI:
        """Forget the script and the recorded requests."""
        with self._lock:
            self._script.clear()
            self.requests.clear()
        return self

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def _next(self, request: RecordedRequest) -> Reply:
        with self._lock:
            if not self._script:
                return error(500, "the fake server has no scripted reply left")
            item = self._script[0] if (len(self._script) == 1 and self._repeat_last) else self._script.pop(0)
        if callable(item) and not isinstance(item, Reply | dict):
            item = item(request)
        return item if isinstance(item, Reply) else Reply(body=item)

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> FakeOpenAI:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body: Any = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                headers = {k.lower(): v for k, v in self.headers.items()}
                request = RecordedRequest(self.command, self.path, headers, body)
                with owner._lock:
                    owner.requests.append(request)
                reply = owner._next(request)
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                data = reply.body if reply.body is not None else {}
                payload = data.encode() if isinstance(data, str) else json.dumps(data).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(payload)))
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            do_POST = _handle
            do_GET = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start the server first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ----------------------------------------------------------------------------- test data

SECRET_URL = "https://billing.internal.example/v1/charges"
SECRET_HEADER = "Bearer ${{ secrets.BILLING_TOKEN }}"

def _schema(required: tuple[str, ...] = (), **props: str) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": {k: {"type": t} for k, t in props.items()}}
    if required:
        schema["required"] = list(required)
    return schema


def _action(name: str, description: str, inp: dict[str, Any], out: dict[str, Any],
            **extra: Any) -> dict[str, Any]:
    return {"name": name, "description": description, "input": inp, "output": out, **extra}


TEST_CATALOG: dict[str, Any] = {"actions": [
    _action("billing.create_invoice", "Creates an invoice for a customer.",
            _schema(("customer_id", "amount"), customer_id="string", amount="integer"),
            _schema(invoice_id="string", status="string"), compensation="billing.void_invoice",
            invoke={"kind": "http", "url": SECRET_URL, "headers": {"Authorization": SECRET_HEADER}}),
    _action("billing.void_invoice", "Voids an invoice.", _schema(("invoice_id",), invoice_id="string"),
            _schema(voided="boolean")),
    _action("payments.charge_card", "Charges the customer's card for a payment.",
            _schema(("amount",), customer_id="string", amount="integer"), _schema(charge_id="string"),
            compensation="payments.refund_charge"),
    _action("payments.refund_charge", "Refunds a charge.", _schema(("charge_id",), charge_id="string"),
            _schema(refund_id="string")),
    _action("email.send_message", "Sends an email.", _schema(("to",), to="string", subject="string"),
            _schema(message_id="string")),
    _action("sms.send_message", "Sends a text message to a mobile phone number.",
            _schema(("to", "body"), to="string", body="string"), _schema(message_id="string")),
    _action("chat.post_message", "Posts a message in a chat channel.",
            _schema(("channel", "text"), channel="string", text="string"), _schema(ts="string")),
]}


def wire_step(step_id: str, action: str, *, needs: list[str] | None = None,
              with_: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """A step in the planner's wire format (every field present, as strict mode demands)."""
    step: dict[str, Any] = {
        "id": step_id, "action": action, "title": None, "description": None, "needs": needs or [],
        "with": [{"name": k, "value": json.dumps(v)} for k, v in (with_ or {}).items()],
        "if": None, "for_each": None, "max_attempts": None, "timeout_s": None, "compensate": None,
        "compensate_with": [],
    }
    step.update(extra)
    return step


def wire_plan(*steps: dict[str, Any], name: str = "test-plan") -> str:
    """A whole wire plan as the JSON text a model would answer."""
    return json.dumps({"name": name, "description": None, "steps": list(steps)})


def invoice_then_email() -> str:
    """A valid plan over TEST_CATALOG: invoice, then email."""
    return wire_plan(
        wire_step("invoice", "billing.create_invoice", with_={"customer_id": "cus_1", "amount": 4500}),
        wire_step("notify", "email.send_message", needs=["invoice"], with_={
            "to": "ap@example.com", "subject": "Invoice ${{ steps.invoice.output.invoice_id }}"}),
    )
