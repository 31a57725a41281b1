"""`overture demo`'s sign-in token has the role `*`: in the demo's own service (real HTTP on
127.0.0.1) it decides the approval a plan asks of a manager, recorded under its name."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from service.demo.catalog import DEMO_INPUTS, inputs_for
from service.demo.runner import DemoOptions, run_demo

# the README's tour
REQUEST = (
    'Update the CRM for company "Acme" (ops@acme.example), ask a manager to approve, '
    "then provision the account"
)


def _quiet(_: str) -> None:
    pass


def _until_waiting(client: httpx.Client, run_id: str, timeout_s: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        run = dict(client.get(f"/v1/runs/{run_id}").json())
        if run["state"] != "running" or time.monotonic() > deadline:
            return run
        time.sleep(0.05)


def test_the_demo_token_decides_a_planned_manager_approval(tmp_path: Path) -> None:
    options = DemoOptions(data_dir=tmp_path / "demo", port=0, serve=True, latency_scale=0)
    result, session = run_demo(options, _quiet, keep_open=True)
    try:
        headers = {"Authorization": f"Bearer {result.token}"}
        with httpx.Client(base_url=result.app_url, headers=headers, timeout=30) as client:
            me = client.get("/v1/me").json()
            assert (me["name"], me["roles"]) == ("overture demo", ["*"])

            plan = client.post("/v1/plans", json={"request": REQUEST}).json()
            [gate] = [s for s in plan["workflow"]["steps"] if s["action"] == "core.approval"]
            assert gate["with"]["approvers"] == ["manager"]  # a role, not the demo token's name
            workflow = client.post("/v1/workflows", json={"plan_id": plan["id"]}).json()
            schema = client.get(f"/v1/workflows/{workflow['id']}").json()["document"].get("inputs")
            inputs = inputs_for(schema, {**DEMO_INPUTS, "company": "Acme"})
            r = client.post("/v1/runs", json={"workflow_id": workflow["id"], "inputs": inputs})
            assert r.status_code == 201, r.text
            run_id = r.json()["id"]
            assert _until_waiting(client, run_id)["state"] == "waiting"

            r = client.post(f"/v1/runs/{run_id}/approvals/{gate['id']}", json={"approved": True})
            assert r.status_code == 200, r.text
            [approval] = client.get(f"/v1/runs/{run_id}").json()["approvals"]
            assert (approval["approved"], approval["decided_by"]) == (True, "overture demo")
    finally:
        session.close()
