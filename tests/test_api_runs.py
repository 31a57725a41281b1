"""Runs through the real app and engine: start (inputs checked), show with steps and attempts,
list, approve, reject, cancel, and the problems each answers with."""

from __future__ import annotations

import asyncio
from pathlib import Path

from api_support import APPROVAL_WORKFLOW, Recorder, api_client, default_overrides

from runtime.secrets import SecretStore

PROBLEM = "application/problem+json"


async def test_a_run_goes_through_and_shows_every_step_and_attempt(tmp_path: Path) -> None:
    overrides = default_overrides()
    async with api_client(tmp_path, overrides=overrides) as api:
        workflow_id = await api.create_workflow()
        r = await api.client.post("/v1/runs", json={"workflow_id": workflow_id,
                                                    "inputs": {"email": "ops@acme.example", "amount": 12.5}})
        assert r.status_code == 201, r.text
        run = r.json()
        assert r.headers["location"] == f"/v1/runs/{run['id']}"
        assert run["workflow_id"] == workflow_id and run["workflow_version"] == 1

        done = await api.wait_for_state(run["id"], "succeeded", "failed")
        assert done["state"] == "succeeded", done
        steps = {s["id"]: s for s in done["steps"]}
        assert steps["crm"]["output"] == {"account_id": "acc_1"}
        assert steps["charge"]["inputs"] == {"account_id": "acc_1", "amount": 12.5}
        assert [a["outcome"] for a in steps["charge"]["attempts"]] == ["succeeded"]
        assert steps["charge"]["attempts"][0]["action"] == "billing.charge_card"
        assert done["inputs"] == {"email": "ops@acme.example", "amount": 12.5}
        assert done["last_event_seq"] > 0
        assert overrides["billing.charge_card"].calls[0].inputs == {"account_id": "acc_1", "amount": 12.5}

        listed = (await api.client.get("/v1/runs")).json()
        assert [x["id"] for x in listed] == [run["id"]]
        assert (await api.client.get("/v1/runs", params={"state": "failed"})).json() == []
        by_workflow = (await api.client.get("/v1/runs", params={"workflow_id": workflow_id})).json()
        assert [x["id"] for x in by_workflow] == [run["id"]]


async def test_inputs_that_break_the_schema_are_a_422_listing_each_problem(tmp_path: Path) -> None:
    overrides = default_overrides()
    async with api_client(tmp_path, overrides=overrides) as api:
        workflow_id = await api.create_workflow()
        r = await api.client.post("/v1/runs", json={"workflow_id": workflow_id,
                                                    "inputs": {"amount": -3, "extra": True}})
        assert r.status_code == 422
        assert r.headers["content-type"] == PROBLEM
        problem = r.json()
        assert problem["type"] == "urn:overture:problem:invalid-inputs"
        locations = {p["location"]: p for p in problem["problems"]}
        assert set(locations) == {"inputs.email", "inputs.amount", "inputs"}
        assert locations["inputs.email"]["code"] == "required"
        assert locations["inputs.amount"]["code"] == "minimum"
        assert "extra" in locations["inputs"]["message"]
        assert (await api.client.get("/v1/runs")).json() == []  # no run was started
        assert overrides["crm.update_account"].calls == []


async def test_approval_approved_then_the_run_finishes(tmp_path: Path) -> None:
    async with api_client(tmp_path) as api:
        workflow_id = await api.create_workflow(APPROVAL_WORKFLOW)
        run = (await api.client.post("/v1/runs", json={"workflow_id": workflow_id,
                                                       "inputs": {"email": "a@b.example"}})).json()
        waiting = await api.wait_for_state(run["id"], "waiting")
        assert waiting["approvals"][0]["prompt"] == "Charge them?"
        assert waiting["approvals"][0]["approved"] is None

        early = await api.client.post(f"/v1/runs/{run['id']}/approvals/charge", json={"approved": True})
        assert early.status_code == 409
        assert early.json()["type"] == "urn:overture:problem:invalid-run-state"

        r = await api.client.post(f"/v1/runs/{run['id']}/approvals/approve",
                                  json={"approved": True, "comment": "fine"})
        assert r.status_code == 200, r.text
        done = await api.wait_for_state(run["id"], "succeeded", "failed")
        assert done["state"] == "succeeded"
        approval = done["approvals"][0]
        assert approval["approved"] is True
        assert approval["decided_by"] == "tests" and approval["comment"] == "fine"
        steps = {s["id"]: s for s in done["steps"]}
        assert steps["approve"]["output"]["approved"] is True


async def test_a_rejection_fails_the_run(tmp_path: Path) -> None:
    async with api_client(tmp_path) as api:
        workflow_id = await api.create_workflow(APPROVAL_WORKFLOW)
        run = (await api.client.post("/v1/runs", json={"workflow_id": workflow_id,
                                                       "inputs": {"email": "a@b.example"}})).json()
        await api.wait_for_state(run["id"], "waiting")
        r = await api.client.post(f"/v1/runs/{run['id']}/approvals/approve",
                                  json={"approved": False, "comment": "no"})
        assert r.status_code == 200
        done = await api.wait_for_state(run["id"], "failed", "succeeded")
        assert done["state"] == "failed"
        steps = {s["id"]: s for s in done["steps"]}
        assert steps["approve"]["state"] == "failed"
        assert steps["charge"]["state"] in ("pending", "cancelled")
        assert done["approvals"][0]["decided_by"] == "tests"  # the token's name

        again = await api.client.post(f"/v1/runs/{run['id']}/approvals/approve", json={"approved": True})
        assert again.status_code == 409


async def test_cancel_undoes_completed_steps(tmp_path: Path) -> None:
    overrides = default_overrides()
    gate = asyncio.Event()
    overrides["billing.charge_card"] = Recorder({"charge_id": "ch"}, gate=gate)
    async with api_client(tmp_path, overrides=overrides) as api:
        workflow_id = await api.create_workflow()
        inputs = {"email": "a@b.example", "amount": 1}
        run = (await api.client.post("/v1/runs", json={"workflow_id": workflow_id, "inputs": inputs})).json()
        for _ in range(500):
            if overrides["billing.charge_card"].calls:
                break
            await asyncio.sleep(0.01)
        r = await api.client.post(f"/v1/runs/{run['id']}/cancel")
        assert r.status_code == 202, r.text
        gate.set()
        done = await api.wait_for_state(run["id"], "cancelled", "failed", "succeeded")
        assert done["state"] == "cancelled", done
        assert overrides["crm.delete_account"].calls, "the CRM update should have been undone"
        assert overrides["crm.delete_account"].calls[0].inputs["account_id"] == "acc_1"

        again = await api.client.post(f"/v1/runs/{run['id']}/cancel")
        assert again.status_code == 409


async def test_unknown_runs_and_bad_requests(tmp_path: Path) -> None:
    async with api_client(tmp_path) as api:
        for method, path in (("GET", "/v1/runs/nope"), ("POST", "/v1/runs/nope/cancel"),
                             ("GET", "/v1/runs/nope/events")):
            r = await api.client.request(method, path)
            assert r.status_code == 404, (path, r.text)
            assert r.json()["type"] == "urn:overture:problem:run-not-found"
        r = await api.client.post("/v1/runs", json={"workflow_id": "wf_nope"})
        assert r.status_code == 404
        r = await api.client.post("/v1/runs", json={"inputs": []})
        assert r.status_code == 422
        assert {p["location"] for p in r.json()["problems"]} == {"body.workflow_id", "body.inputs"}
        r = await api.client.get("/v1/runs", params={"state": "exploded"})
        assert r.status_code == 422 and r.json()["problems"][0]["location"] == "query.state"


async def test_secrets_stay_out_of_run_responses(tmp_path: Path) -> None:
    secret = "sk_live_very_secret_value"
    leaky = Recorder({"account_id": "acc_1", "echo": f"token was {secret}"})
    overrides = {**default_overrides(), "crm.update_account": leaky}
    async with api_client(tmp_path, overrides=overrides, secrets=SecretStore({"CRM_TOKEN": secret})) as api:
        workflow_id = await api.create_workflow()
        inputs = {"email": "a@b.example", "amount": 1}
        run = (await api.client.post("/v1/runs", json={"workflow_id": workflow_id, "inputs": inputs})).json()
        await api.wait_for_state(run["id"], "succeeded")
        shown = await api.client.get(f"/v1/runs/{run['id']}")
        events = await api.client.get(f"/v1/runs/{run['id']}/events", headers={"Accept": "application/json"})
        assert "token was ***" in shown.text
        for text in (shown.text, events.text):
            assert secret not in text
