"""Helpers for API tests: the real app (its lifespan, engine and SQLite files included) behind an
httpx client, either in process (`httpx.ASGITransport`) or on a real uvicorn server on 127.0.0.1.

    async with api_client(tmp_path, overrides={"crm.update_account": Recorder({"account_id": "a1"})}) as api:
        r = await api.client.post("/v1/catalogs", json={...})

    with served_app(tmp_path) as server:          # real HTTP, for the event stream and the bench
        httpx.get(server.url("/health"))
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from invoker_support import free_port

from runtime.errors import PermanentActionError
from runtime.invocation import ActionCall
from service.app import create_app
from service.auth import create_token
from service.settings import ServiceSettings

CATALOG: dict[str, Any] = {
    "actions": [
        {
            "name": "crm.update_account",
            "description": "Create or update the customer's account record in the CRM.",
            "input": {"type": "object",
                      "properties": {"email": {"type": "string"}, "plan": {"type": "string"}},
                      "required": ["email"]},
            "output": {"type": "object", "properties": {"account_id": {"type": "string"}}},
            "compensation": "crm.delete_account",
            "invoke": {"kind": "http", "method": "POST", "url": "http://127.0.0.1:9/accounts"},
        },
        {
            "name": "crm.delete_account",
            "description": "Delete the customer's account record from the CRM.",
            "input": {"type": "object", "properties": {"account_id": {"type": "string"}},
                      "required": ["account_id"]},
            "output": {"type": "object"},
            "invoke": {"kind": "http", "method": "DELETE",
                       "url": "http://127.0.0.1:9/accounts/${{ with.account_id }}"},
        },
        {
            "name": "billing.charge_card",
            "description": "Charge the customer's card.",
            "input": {"type": "object", "properties": {"account_id": {"type": "string"},
                                                       "amount": {"type": "number"}},
                      "required": ["account_id", "amount"]},
            "output": {"type": "object", "properties": {"charge_id": {"type": "string"}}},
            "invoke": {"kind": "http", "method": "POST", "url": "http://127.0.0.1:9/charges"},
        },
    ]
}

WORKFLOW: dict[str, Any] = {
    "name": "onboard",
    "description": "Update the CRM, then charge the card.",
    "inputs": {
        "type": "object",
        "properties": {"email": {"type": "string", "format": "email"},
                       "amount": {"type": "number", "minimum": 0}},
        "required": ["email", "amount"],
        "additionalProperties": False,
    },
    "steps": [
        {"id": "crm", "action": "crm.update_account", "with": {"email": "${{ inputs.email }}"},
         "compensate": {"action": "crm.delete_account",
                        "with": {"account_id": "${{ steps.crm.output.account_id }}"}}},
        {"id": "charge", "action": "billing.charge_card", "needs": ["crm"],
         "with": {"account_id": "${{ steps.crm.output.account_id }}", "amount": "${{ inputs.amount }}"}},
    ],
}

APPROVAL_WORKFLOW: dict[str, Any] = {
    "name": "approve-then-charge",
    "inputs": {"type": "object", "properties": {"email": {"type": "string"}}, "required": ["email"]},
    "steps": [
        {"id": "crm", "action": "crm.update_account", "with": {"email": "${{ inputs.email }}"}},
        {"id": "approve", "action": "core.approval", "needs": ["crm"], "with": {"prompt": "Charge them?"}},
        {"id": "charge", "action": "billing.charge_card", "needs": ["approve"],
         "with": {"account_id": "${{ steps.crm.output.account_id }}", "amount": 10}},
    ],
}


@dataclass
class Recorder:
    """An `Invoker` standing in for a real service: answers with `output`, records every call,
    optionally fails (permanently) or waits for `gate` first."""

    output: dict[str, Any] = field(default_factory=dict)
    fail: str | None = None
    gate: asyncio.Event | None = None
    calls: list[ActionCall] = field(default_factory=list)

    async def invoke(self, call: ActionCall) -> dict[str, Any]:
        self.calls.append(call)
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise PermanentActionError(self.fail, type="validation")
        return dict(self.output)


def default_overrides() -> dict[str, Recorder]:
    return {
        "crm.update_account": Recorder({"account_id": "acc_1"}),
        "crm.delete_account": Recorder({"deleted": True}),
        "billing.charge_card": Recorder({"charge_id": "ch_1"}),
    }


@dataclass
class Api:
    """An app under test with an authorized client."""

    app: FastAPI
    client: httpx.AsyncClient
    token: str
    settings: ServiceSettings

    @property
    def anonymous(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://api.test")

    async def upload_catalog(self, catalog: Mapping[str, Any] = CATALOG, name: str = "crm") -> str:
        r = await self.client.post("/v1/catalogs", json={"name": name, "actions": catalog["actions"]})
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    async def create_workflow(self, document: Mapping[str, Any] = WORKFLOW, catalog_id: str | None = None
                              ) -> str:
        catalog_id = catalog_id or await self.upload_catalog()
        r = await self.client.post("/v1/workflows",
                                   json={"document": dict(document), "catalog_id": catalog_id})
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    async def wait_for_state(self, run_id: str, *states: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            r = await self.client.get(f"/v1/runs/{run_id}")
            assert r.status_code == 200, r.text
            run: dict[str, Any] = r.json()
            if run["state"] in states:
                return run
            if time.monotonic() > deadline:
                raise AssertionError(f"run {run_id} is {run['state']}, not {states}: {run}")
            await asyncio.sleep(0.02)


def settings_for(tmp_path: Path, **overrides: Any) -> ServiceSettings:
    return ServiceSettings(data_dir=tmp_path / "service", **overrides)


@asynccontextmanager
async def api_client(
    tmp_path: Path,
    *,
    overrides: Mapping[str, Any] | None = None,
    secrets: Any = None,
    **settings: Any,
) -> AsyncIterator[Api]:
    """The real app with its lifespan running, and a client holding a fresh token."""
    config = settings_for(tmp_path, **settings)
    app = create_app(config, invoker_overrides=overrides if overrides is not None else default_overrides(),
                     secrets=secrets)
    async with app.router.lifespan_context(app):
        _, token = create_token(app.state.services.store, "tests")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test",
                                     headers={"Authorization": f"Bearer {token}"}) as client:
            yield Api(app=app, client=client, token=token, settings=config)


@dataclass
class ServedApp:
    """A real uvicorn server on 127.0.0.1 running the app in its own thread and event loop."""

    app: FastAPI
    port: int
    token: str
    server: uvicorn.Server
    thread: threading.Thread

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@contextmanager
def served_app(tmp_path: Path, *, overrides: Mapping[str, Any] | None = None, secrets: Any = None,
               log_level: str = "warning", **settings: Any) -> Iterator[ServedApp]:
    config = settings_for(tmp_path, **settings)
    app = create_app(config, invoker_overrides=overrides if overrides is not None else default_overrides(),
                     secrets=secrets)
    _, token = create_token(app.state.services.store, "tests")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level=log_level,
                                           lifespan="on", access_log=False))
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield ServedApp(app=app, port=port, token=token, server=server, thread=thread)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
