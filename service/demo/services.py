"""The demo's fake SaaS services: CRM, billing, account provisioning and team chat, as one FastAPI app.

They behave like the real thing where the demo needs it to: each call takes a realistic (but short)
time, answers with ids the next steps use, honours `Idempotency-Key` (a retried request gets the
first answer again instead of creating a second record), fails at a rate you set with a 503 (so
retries show), and can be told to fail for good — "billing declines the card" — so the run fails and
compensation shows. Every call is recorded so the demo and its tests can show what happened.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

SERVICES = ("crm", "billing", "provisioning", "chat")

# typical answer times of each service in milliseconds: real sleeps, tens of milliseconds
DEFAULT_LATENCY_MS: dict[str, float] = {"crm": 40, "billing": 70, "provisioning": 110, "chat": 20}


@dataclass(frozen=True)
class ServiceCall:
    """One request a demo service received."""

    service: str
    operation: str
    """e.g. `upsert_account`, `delete_account`; undo operations start with `delete_`."""
    method: str
    path: str
    body: dict[str, Any]
    idempotency_key: str | None
    status: int
    replayed: bool
    """True when the answer was the stored one for a repeated Idempotency-Key."""
    at: float
    duration_ms: float

    @property
    def is_undo(self) -> bool:
        return self.operation.startswith("delete_")

    def to_data(self) -> dict[str, Any]:
        return {
            "service": self.service, "operation": self.operation, "method": self.method,
            "path": self.path, "body": self.body, "idempotency_key": self.idempotency_key,
            "status": self.status, "replayed": self.replayed, "at": self.at,
            "duration_ms": round(self.duration_ms, 1),
        }


@dataclass
class DemoState:
    """What the services hold and how they misbehave; safe to change while they serve."""

    failure_rate: float = 0.0
    """Chance that a call answers 503 (a transient error the engine may retry)."""
    failing: set[str] = field(default_factory=set)
    """Services whose forward calls fail for good (402/422), e.g. {"billing"}; undo calls still work."""
    latency_scale: float = 1.0
    """Multiplies every latency; 0 makes the services answer at once."""
    latency_ms: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_LATENCY_MS))
    seed: int | None = None
    calls: list[ServiceCall] = field(default_factory=list)
    records: dict[str, dict[str, dict[str, Any]]] = field(default_factory=lambda: {s: {} for s in SERVICES})

    def __post_init__(self) -> None:
        self.set_failing(self.failing)
        if not 0.0 <= self.failure_rate <= 1.0:
            raise ValueError(f"failure rate must be between 0 and 1, got {self.failure_rate}")
        self._lock = threading.Lock()
        self._random = random.Random(self.seed)
        self._ids = itertools.count(1001)
        self._replies: dict[tuple[str, str, str], tuple[int, dict[str, Any]]] = {}

    # -- switches the demo runner and tests use -------------------------------------------

    def set_failing(self, services: Iterable[str]) -> None:
        wanted = set(services)
        unknown = wanted - set(SERVICES)
        if unknown:
            raise ValueError(f"unknown demo service(s): {', '.join(sorted(unknown))}; "
                             f"choose from {', '.join(SERVICES)}")
        self.failing = wanted

    def calls_to(self, service: str, operation: str | None = None) -> list[ServiceCall]:
        with self._lock:
            return [c for c in self.calls
                    if c.service == service and (operation is None or c.operation == operation)]

    def reset_calls(self) -> None:
        with self._lock:
            self.calls.clear()

    # -- used by the handlers ---------------------------------------------------------------

    def new_id(self, prefix: str) -> str:
        with self._lock:
            return f"{prefix}_{next(self._ids)}"

    def latency_s(self, service: str) -> float:
        with self._lock:
            jitter = self._random.uniform(0.6, 1.4)
        return self.latency_ms.get(service, 30.0) * jitter * self.latency_scale / 1000.0

    def roll_failure(self) -> bool:
        with self._lock:
            return self.failure_rate > 0 and self._random.random() < self.failure_rate

    def replay(self, service: str, operation: str, key: str | None) -> tuple[int, dict[str, Any]] | None:
        if key is None:
            return None
        with self._lock:
            return self._replies.get((service, operation, key))

    def remember(self, service: str, operation: str, key: str | None, status: int,
                 body: dict[str, Any]) -> None:
        if key is not None:
            with self._lock:
                self._replies[(service, operation, key)] = (status, body)

    def record(self, call: ServiceCall) -> None:
        with self._lock:
            self.calls.append(call)


# what each service says when told to fail for good: a realistic, non-retryable refusal
_PERMANENT_FAILURES: dict[str, tuple[int, str]] = {
    "crm": (422, "the CRM rejected the record: duplicate account domain"),
    "billing": (402, "billing setup failed: the customer's payment method was declined"),
    "provisioning": (422, "provisioning refused: no capacity left in the requested region"),
    "chat": (403, "the chat workspace refused the message: channel is archived"),
}


async def _body(request: Request) -> dict[str, Any]:
    if request.method in {"GET", "DELETE"}:
        return {}
    try:
        data = await request.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {"value": data}


def create_services_app(state: DemoState) -> FastAPI:
    """The four services under `/crm`, `/billing`, `/provisioning`, `/chat`, plus `/_demo/calls`."""
    app = FastAPI(title="Overture demo services", docs_url=None, redoc_url=None, openapi_url=None)

    async def handle(request: Request, service: str, operation: str, forward: bool,
                     respond: Any) -> JSONResponse:
        started = time.monotonic()
        body = await _body(request)
        key = request.headers.get("Idempotency-Key")
        await asyncio.sleep(state.latency_s(service))
        replayed = state.replay(service, operation, key)
        if replayed is not None:
            status, reply = replayed
        elif state.roll_failure():
            status, reply = 503, {"error": f"{service} is temporarily unavailable, try again"}
        elif forward and service in state.failing:
            status, message = _PERMANENT_FAILURES[service]
            reply = {"error": message}
        else:
            status, reply = respond(body)
            if status < 300:
                state.remember(service, operation, key, status, reply)
        state.record(ServiceCall(
            service=service, operation=operation, method=request.method, path=request.url.path,
            body=body, idempotency_key=key, status=status, replayed=replayed is not None,
            at=time.time(), duration_ms=(time.monotonic() - started) * 1000,
        ))
        return JSONResponse(reply, status_code=status)

    def created(service: str, prefix: str, id_field: str, extra: dict[str, Any]) -> Any:
        def respond(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            record_id = state.new_id(prefix)
            record = {id_field: record_id, **body, **extra}
            state.records[service][record_id] = record
            return 200, {id_field: record_id, **extra}
        return respond

    def deleted(service: str, record_id: str, flag: str) -> Any:
        def respond(_body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            existed = state.records[service].pop(record_id, None) is not None
            # deleting what is already gone succeeds: an undo must be safe to repeat
            return 200, {flag: True, "existed": existed}
        return respond

    @app.post("/crm/accounts")
    async def crm_upsert(request: Request) -> JSONResponse:
        return await handle(request, "crm", "upsert_account", True,
                            created("crm", "acct", "account_id", {"stage": "customer"}))

    @app.delete("/crm/accounts/{account_id}")
    async def crm_delete(request: Request, account_id: str) -> JSONResponse:
        return await handle(request, "crm", "delete_account", False, deleted("crm", account_id, "deleted"))

    @app.post("/provisioning/accounts")
    async def provision(request: Request) -> JSONResponse:
        return await handle(request, "provisioning", "create_account", True,
                            created("provisioning", "tenant", "tenant_id", {"region": "eu-west-1"}))

    @app.delete("/provisioning/accounts/{tenant_id}")
    async def deprovision(request: Request, tenant_id: str) -> JSONResponse:
        return await handle(request, "provisioning", "delete_account", False,
                            deleted("provisioning", tenant_id, "deprovisioned"))

    @app.post("/billing/customers")
    async def billing_setup(request: Request) -> JSONResponse:
        return await handle(request, "billing", "setup_customer", True,
                            created("billing", "cus", "customer_id", {"status": "active"}))

    @app.delete("/billing/customers/{customer_id}")
    async def billing_cancel(request: Request, customer_id: str) -> JSONResponse:
        return await handle(request, "billing", "delete_customer", False,
                            deleted("billing", customer_id, "cancelled"))

    @app.post("/chat/messages")
    async def chat_post(request: Request) -> JSONResponse:
        return await handle(request, "chat", "post_message", True,
                            created("chat", "msg", "message_id", {"delivered": True}))

    @app.get("/_demo/calls")
    async def calls() -> dict[str, Any]:
        return {"calls": [c.to_data() for c in list(state.calls)]}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app
