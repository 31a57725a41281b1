"""Webhook deliveries through the real app (lifespan, engine, SQLite files) over httpx: good, bad,
missing and malformed signatures, replays, repeated deliveries, invalid bodies, pausing, secrets;
and, on a real server, workflows calling actions nothing can invoke (not created; a delivery after
the catalog changed is refused and recorded once) and bodies that miss an input (nothing recorded)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_support import CATALOG, WORKFLOW, Recorder, ServedApp, default_overrides, served_app, settings_for

from runtime.clock import ManualClock
from runtime.triggers import DELIVERY_HEADER, SIGNATURE_HEADER, delivery_fire_id, sign
from service.app import create_app
from service.auth import create_token

SECRET = "whsec_test_0123456789"
HOOKED: dict[str, Any] = {**WORKFLOW, "name": "onboard-on-signup",
                          "triggers": {"webhook": {"name": "customer-signed-up"}}}
BODY = {"email": "ada@example.com", "amount": 30}


@dataclass
class Hooks:
    client: httpx.AsyncClient
    anonymous: httpx.AsyncClient
    clock: ManualClock
    workflow_id: str
    recorders: dict[str, Recorder]

    async def deliver(self, body: Any = BODY, *, delivery: str | None = "dlv_1", secret: str = SECRET,
                      signed_at: float | None = None, name: str = "customer-signed-up",
                      signature: str | None = None, raw: bytes | None = None) -> httpx.Response:
        payload = raw if raw is not None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if signature is None:
            signature = sign(secret, payload, int(signed_at if signed_at is not None else self.clock.now()))
        if signature:
            headers[SIGNATURE_HEADER] = signature
        if delivery is not None:
            headers[DELIVERY_HEADER] = delivery
        return await self.anonymous.post(f"/hooks/{name}", content=payload, headers=headers)

    async def runs(self) -> list[dict[str, Any]]:
        r = await self.client.get("/v1/runs")
        assert r.status_code == 200, r.text
        return list(r.json())

    async def settled(self, run_id: str) -> dict[str, Any]:
        for _ in range(500):
            r = await self.client.get(f"/v1/runs/{run_id}")
            run: dict[str, Any] = r.json()
            if run["state"] in ("succeeded", "failed", "cancelled"):
                return run
            import asyncio

            await asyncio.sleep(0.01)
        raise AssertionError(f"run {run_id} did not finish")


@asynccontextmanager
async def hooks_app(tmp_path: Path, document: dict[str, Any] = HOOKED) -> AsyncIterator[Hooks]:
    clock = ManualClock(1_900_000_000.0)
    recorders = default_overrides()
    app = create_app(settings_for(tmp_path), invoker_overrides=recorders, clock=clock)
    async with app.router.lifespan_context(app):
        _, token = create_token(app.state.services.store, "tests")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test",
                                     headers={"Authorization": f"Bearer {token}"}) as client, \
                httpx.AsyncClient(transport=transport, base_url="http://api.test") as anonymous:
            r = await client.post("/v1/catalogs", json={"name": "crm", "actions": CATALOG["actions"]})
            assert r.status_code == 201, r.text
            r = await client.post("/v1/workflows", json={"document": document, "catalog_id": r.json()["id"]})
            assert r.status_code == 201, r.text
            yield Hooks(client, anonymous, clock, r.json()["id"], recorders)


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OVERTURE_SECRET_WEBHOOK_CUSTOMER_SIGNED_UP", SECRET)


async def test_a_signed_delivery_starts_a_run_with_the_body_as_inputs(tmp_path: Path) -> None:
    async with hooks_app(tmp_path) as h:
        r = await h.deliver()
        assert r.status_code == 202, r.text
        out = r.json()
        assert out == {"run_id": delivery_fire_id("customer-signed-up", "dlv_1"),
                       "workflow_id": h.workflow_id, "webhook": "customer-signed-up",
                       "delivery_id": "dlv_1", "duplicate": False}
        assert r.headers["Location"] == f"/v1/runs/{out['run_id']}"
        run = await h.settled(out["run_id"])
        assert run["state"] == "succeeded" and run["inputs"] == BODY
        assert h.recorders["crm.update_account"].calls[0].inputs["email"] == "ada@example.com"
        r = await h.client.get("/v1/runs", params={"workflow_id": h.workflow_id})
        assert [x["id"] for x in r.json()] == [out["run_id"]]
        r = await h.client.get(f"/v1/workflows/{h.workflow_id}/fires")
        [fire] = r.json()
        assert (fire["kind"], fire["delivery_id"], fire["run_id"], fire["state"]) == (
            "webhook", "dlv_1", out["run_id"], "started")


@pytest.mark.parametrize(("case", "reason"), [
    ("missing", "missing"), ("wrong-secret", "mismatch"), ("tampered-body", "mismatch"),
    ("malformed", "malformed"), ("replayed", "stale"), ("from-the-future", "stale"),
])
async def test_a_bad_signature_is_refused_and_starts_nothing(tmp_path: Path, case: str, reason: str) -> None:
    async with hooks_app(tmp_path) as h:
        body = json.dumps(BODY).encode()
        now = h.clock.now()
        if case == "missing":
            r = await h.deliver(signature="")
        elif case == "wrong-secret":
            r = await h.deliver(secret="whsec_someone_else")
        elif case == "tampered-body":
            good = sign(SECRET, body, int(now))
            r = await h.deliver(raw=json.dumps({**BODY, "amount": 9999}).encode(), signature=good)
        elif case == "malformed":
            r = await h.deliver(signature="sha256=" + "0" * 64)
        elif case == "replayed":  # a captured delivery, sent again six minutes later
            r = await h.deliver(signed_at=now - 360)
        else:
            r = await h.deliver(signed_at=now + 360)
        assert r.status_code == 401, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        problem = r.json()
        assert problem["type"] == f"urn:overture:problem:webhook-signature-{reason}"
        assert problem["status"] == 401 and problem["detail"]
        assert await h.runs() == []
        assert h.recorders["crm.update_account"].calls == []


async def test_a_signature_within_the_tolerance_is_accepted(tmp_path: Path) -> None:
    async with hooks_app(tmp_path) as h:
        r = await h.deliver(signed_at=h.clock.now() - 290)  # a slow sender, still under five minutes
        assert r.status_code == 202, r.text


async def test_a_repeated_delivery_returns_the_first_run_and_starts_nothing(tmp_path: Path) -> None:
    async with hooks_app(tmp_path) as h:
        first = await h.deliver(delivery="dlv_42")
        assert first.status_code == 202
        await h.settled(first.json()["run_id"])
        h.clock.advance(60)
        again = await h.deliver({**BODY, "amount": 31}, delivery="dlv_42")  # a retry, freshly signed
        assert again.status_code == 200, again.text
        assert again.json()["run_id"] == first.json()["run_id"] and again.json()["duplicate"] is True
        other = await h.deliver(delivery="dlv_43")
        assert other.status_code == 202 and other.json()["run_id"] != first.json()["run_id"]
        assert len(await h.runs()) == 2
        await h.settled(other.json()["run_id"])
        assert len(h.recorders["billing.charge_card"].calls) == 2


async def test_a_delivery_without_a_delivery_id_is_refused(tmp_path: Path) -> None:
    async with hooks_app(tmp_path) as h:
        r = await h.deliver(delivery=None)
        assert r.status_code == 400, r.text
        assert r.json()["type"] == "urn:overture:problem:webhook-delivery-id"
        assert "Overture-Delivery" in r.json()["detail"]
        assert await h.runs() == []


async def test_an_invalid_body_is_a_422_listing_every_problem_and_starts_nothing(tmp_path: Path) -> None:
    async with hooks_app(tmp_path) as h:
        r = await h.deliver({"amount": -5, "nickname": "ada"})
        assert r.status_code == 422, r.text
        problem = r.json()
        assert problem["type"] == "urn:overture:problem:invalid-inputs"
        locations = sorted(p["location"] for p in problem["problems"])
        assert locations == ["inputs", "inputs.amount", "inputs.email"]  # extra key, minimum, required
        assert "nothing was started" in problem["detail"]
        for raw in (b"not json", b"[1, 2]"):
            r = await h.deliver(raw=raw, delivery="dlv_raw")
            assert r.status_code == 422, r.text
            assert r.json()["problems"][0]["location"] == "body"
        assert await h.runs() == []
        # the same delivery id, fixed, is accepted: a refused body does not use up the id
        r = await h.deliver(BODY, delivery="dlv_raw")
        assert r.status_code == 202, r.text


async def test_unknown_webhooks_and_missing_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with hooks_app(tmp_path) as h:
        r = await h.deliver(name="order-placed")
        assert r.status_code == 404 and r.json()["type"] == "urn:overture:problem:webhook-not-found"
        monkeypatch.delenv("OVERTURE_SECRET_WEBHOOK_CUSTOMER_SIGNED_UP")
        r = await h.deliver()
        assert r.status_code == 503, r.text
        assert "OVERTURE_SECRET_WEBHOOK_CUSTOMER_SIGNED_UP" in r.json()["detail"]
        assert await h.runs() == []


async def test_the_secret_comes_from_the_variable_named_by_secret_env(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BILLING_WEBHOOK_SECRET", "whsec_billing_only")
    document = {**HOOKED, "triggers": {"webhook": {"name": "customer-signed-up",
                                                   "secret_env": "BILLING_WEBHOOK_SECRET"}}}
    async with hooks_app(tmp_path, document) as h:
        r = await h.deliver()  # signed with the default variable's secret: not this webhook's
        assert r.status_code == 401
        r = await h.deliver(secret="whsec_billing_only")
        assert r.status_code == 202, r.text


async def test_a_paused_webhook_refuses_deliveries_until_resumed(tmp_path: Path) -> None:
    async with hooks_app(tmp_path) as h:
        r = await h.client.post(f"/v1/workflows/{h.workflow_id}/triggers/webhook-customer-signed-up/pause")
        assert r.status_code == 200, r.text
        assert r.json()["webhook"]["paused"] is True
        r = await h.deliver()
        assert r.status_code == 409 and r.json()["type"] == "urn:overture:problem:trigger-paused"
        assert await h.runs() == []
        r = await h.client.post(f"/v1/workflows/{h.workflow_id}/triggers/webhook-customer-signed-up/resume")
        assert r.json()["webhook"]["paused"] is False
        r = await h.deliver()
        assert r.status_code == 202, r.text


async def test_webhooks_need_no_token_but_the_trigger_api_does(tmp_path: Path) -> None:
    async with hooks_app(tmp_path) as h:
        r = await h.anonymous.get(f"/v1/workflows/{h.workflow_id}/triggers")
        assert r.status_code == 401
        r = await h.client.get(f"/v1/workflows/{h.workflow_id}/triggers")
        assert r.status_code == 200
        hook = r.json()["webhook"]
        assert hook["path"] == "/hooks/customer-signed-up" and hook["secret_configured"] is True
        assert "customer-signed-up" in r.json()["description"]


# -- workflows whose actions nothing can invoke, over real HTTP (uvicorn on 127.0.0.1) ---------------

CALLABLE_CRM = {"name": "crm.update_account", "description": "Record the customer in the CRM.",
                "input": {"type": "object", "properties": {"email": {"type": "string"}},
                          "required": ["email"]},
                "output": {"type": "object"},
                "invoke": {"kind": "python", "callable": "builtins:dict"}}  # answers with its inputs
UNCALLABLE_CRM = {key: value for key, value in CALLABLE_CRM.items() if key != "invoke"}
SIGNUP: dict[str, Any] = {
    "name": "record-signup",
    "triggers": {"webhook": {"name": "customer-signed-up"}},
    "inputs": {"type": "object", "properties": {"email": {"type": "string"}}, "required": ["email"],
               "additionalProperties": False},
    "steps": [{"id": "crm", "action": "crm.update_account", "with": {"email": "${{ inputs.email }}"}}],
}


def _upload(client: httpx.Client, action: dict[str, Any]) -> str:
    r = client.post("/v1/catalogs", json={"name": "crm", "actions": [action]})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


@dataclass
class Signup:
    """A real server (no invoker overrides) where `SIGNUP` was posted against a catalog of `crm`."""

    server: ServedApp
    client: httpx.Client
    catalog_id: str
    created: httpx.Response
    """The answer to posting `SIGNUP`."""


@contextmanager
def signup_served(tmp_path: Path, crm: dict[str, Any]) -> Iterator[Signup]:
    with served_app(tmp_path, overrides={}) as server, \
            httpx.Client(base_url=server.url(), headers=server.headers, timeout=10) as client:
        catalog_id = _upload(client, crm)
        created = client.post("/v1/workflows", json={"document": SIGNUP, "catalog_id": catalog_id})
        yield Signup(server, client, catalog_id, created)


def _deliver(server: ServedApp, body: dict[str, Any], delivery: str) -> httpx.Response:
    payload = json.dumps(body).encode()
    return httpx.post(server.url("/hooks/customer-signed-up"), content=payload, timeout=10, headers={
        "Content-Type": "application/json", DELIVERY_HEADER: delivery,
        SIGNATURE_HEADER: sign(SECRET, payload, int(time.time()))})


def test_a_webhook_on_uncallable_actions_is_not_created(tmp_path: Path) -> None:
    with signup_served(tmp_path, UNCALLABLE_CRM) as s:
        client, catalog_id, r = s.client, s.catalog_id, s.created
        assert r.status_code == 422, r.text
        problem = r.json()
        assert problem["type"] == "urn:overture:problem:uncallable-actions"
        [item] = problem["problems"]
        assert (item["location"], item["code"]) == ("document.steps[0].action", "no_invoker")
        assert "`crm.update_account`" in item["message"] and "invoke:" in item["hint"]
        assert "nothing was saved" in problem["detail"]
        assert client.get("/v1/workflows").json() == []
        # without triggers the same document is stored: it starts nothing by itself
        untriggered = {key: value for key, value in SIGNUP.items() if key != "triggers"}
        r = client.post("/v1/workflows", json={"document": untriggered, "catalog_id": catalog_id})
        assert r.status_code == 201, r.text


def test_a_delivery_whose_actions_became_uncallable_is_refused_and_recorded_once(tmp_path: Path) -> None:
    with signup_served(tmp_path, CALLABLE_CRM) as s:
        server, client, r = s.server, s.client, s.created
        assert r.status_code == 201, r.text
        workflow_id = r.json()["id"]
        _upload(client, UNCALLABLE_CRM)  # a newer upload of the action, without its invoke: block

        for _ in range(2):  # the sender retries the same delivery
            r = _deliver(server, {"email": "ada@example.com"}, "dlv_7")
            assert r.status_code == 422, r.text
            problem = r.json()
            assert problem["type"] == "urn:overture:problem:uncallable-actions"
            assert [p["location"] for p in problem["problems"]] == ["workflow.steps[0].action"]
            assert "nothing was started" in problem["detail"]
        assert client.get("/v1/runs").json() == []
        [fire] = client.get(f"/v1/workflows/{workflow_id}/fires").json()
        assert fire["state"] == "failed" and fire["run_id"] is None and fire["delivery_id"] == "dlv_7"
        assert "crm.update_account at workflow.steps[0].action" in fire["error"]

        _upload(client, CALLABLE_CRM)  # fixed: the same delivery now starts its run
        r = _deliver(server, {"email": "ada@example.com"}, "dlv_7")
        assert r.status_code == 202, r.text
        run_id = r.json()["run_id"]
        for _ in range(500):
            run = client.get(f"/v1/runs/{run_id}").json()
            if run["state"] != "running":
                break
            time.sleep(0.01)
        assert run["state"] == "succeeded", run
        [fire] = client.get(f"/v1/workflows/{workflow_id}/fires").json()
        assert (fire["state"], fire["run_id"], fire["error"]) == ("started", run_id, None)


def test_a_body_that_misses_the_inputs_is_a_422_naming_the_field_and_records_nothing(tmp_path: Path) -> None:
    with signup_served(tmp_path, CALLABLE_CRM) as s:
        server, client, workflow_id = s.server, s.client, s.created.json()["id"]
        r = _deliver(server, {"mail": "ada@example.com"}, "dlv_8")
        assert r.status_code == 422, r.text
        assert sorted(p["location"] for p in r.json()["problems"]) == ["inputs", "inputs.email"]
        assert client.get("/v1/runs").json() == []
        assert client.get(f"/v1/workflows/{workflow_id}/fires").json() == []
