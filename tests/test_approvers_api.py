"""Deciding approvals through the API with real tokens: the decider is the token's name (a `by`
naming someone else is a 403), a step's `approvers` admit only tokens named among them (403 naming
them and the caller; the approval stays pending), and `POST /v1/runs` refuses a workflow whose
actions the service's invoker cannot call (422, located) before anything is recorded."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from api_support import APPROVAL_WORKFLOW, CATALOG, Api, Recorder, api_client, default_overrides

from service.auth import create_token

PROBLEM = "application/problem+json"


def with_approvers(*approvers: str) -> dict[str, Any]:
    steps = [dict(s) for s in APPROVAL_WORKFLOW["steps"]]
    steps[1] = {**steps[1], "with": {"prompt": "Charge them?", "approvers": list(approvers)}}
    return {**APPROVAL_WORKFLOW, "steps": steps}


@asynccontextmanager
async def signed_in(api: Api, name: str, roles: Sequence[str] = ()) -> AsyncIterator[httpx.AsyncClient]:
    """A client holding a fresh token named `name`, with `roles`."""
    _, token = create_token(api.app.state.services.store, name, roles)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api.app),
        base_url="http://api.test",
        headers={"Authorization": f"Bearer {token}"},
    ) as client:
        yield client


async def waiting_run(api: Api, document: dict[str, Any]) -> str:
    workflow_id = await api.create_workflow(document)
    r = await api.client.post(
        "/v1/runs", json={"workflow_id": workflow_id, "inputs": {"email": "a@b.example"}}
    )
    assert r.status_code == 201, r.text
    run_id = str(r.json()["id"])
    await api.wait_for_state(run_id, "waiting")
    return run_id


def given_events(api: Api, run_id: str) -> list[Any]:
    return [e for e in api.app.state.services.journal.events_since(run_id, 0) if e.type == "approval.given"]


async def test_the_decider_is_the_token_and_a_by_naming_someone_else_is_refused(tmp_path: Path) -> None:
    async with api_client(tmp_path) as api:
        run_id = await waiting_run(api, APPROVAL_WORKFLOW)
        url = f"/v1/runs/{run_id}/approvals/approve"
        r = await api.client.post(url, json={"approved": True, "by": "dana"})
        assert r.status_code == 403 and r.headers["content-type"] == PROBLEM
        problem = r.json()
        assert problem["type"] == "urn:overture:problem:not-the-decider"
        assert "`dana`" in problem["detail"] and "`tests`" in problem["detail"]
        [item] = problem["problems"]
        assert item["location"] == "body.by" and "overture token create --name dana" in item["hint"]
        assert given_events(api, run_id) == []
        assert (await api.client.get(f"/v1/runs/{run_id}")).json()["approvals"][0]["approved"] is None

        # the token's own name, however spelled, is accepted; the token's spelling is recorded
        r = await api.client.post(url, json={"approved": True, "by": " TESTS ", "comment": "mine"})
        assert r.status_code == 200, r.text
        done = await api.wait_for_state(run_id, "succeeded", "failed")
        assert done["state"] == "succeeded"
        assert done["approvals"][0]["decided_by"] == "tests"
        assert [e.data["by"] for e in given_events(api, run_id)] == ["tests"]


async def test_a_token_not_among_the_approvers_is_refused_and_the_approval_waits_for_one_who_is(
    tmp_path: Path,
) -> None:
    overrides = default_overrides()
    async with api_client(tmp_path, overrides=overrides) as api:
        run_id = await waiting_run(api, with_approvers("Finance-Leads", "ann"))
        url = f"/v1/runs/{run_id}/approvals/approve"
        shown = (await api.client.get(f"/v1/runs/{run_id}")).json()
        assert shown["approvals"][0]["approvers"] == ["Finance-Leads", "ann"]

        r = await api.client.post(url, json={"approved": True})
        assert r.status_code == 403 and r.headers["content-type"] == PROBLEM
        problem = r.json()
        assert problem["type"] == "urn:overture:problem:not-an-approver"
        assert "`Finance-Leads`, `ann`" in problem["detail"] and "`tests` with no roles" in problem["detail"]
        assert "still pending" in problem["detail"]
        [item] = problem["problems"]
        assert item["location"] == "path.step_id" and item["code"] == "not_an_approver"
        assert "overture token create --name NAME --role Finance-Leads" in item["hint"]
        # `by` naming an approver does not help a token that is not one
        r = await api.client.post(url, json={"approved": True, "by": "ann"})
        assert r.status_code == 403 and r.json()["type"] == "urn:overture:problem:not-the-decider"

        # nothing lost: still waiting, nothing decided, the charge not made
        run = (await api.client.get(f"/v1/runs/{run_id}")).json()
        assert run["state"] == "waiting" and run["approvals"][0]["decided_at"] is None
        assert given_events(api, run_id) == [] and overrides["billing.charge_card"].calls == []

        async with signed_in(api, "finance-leads") as finance:  # case-insensitive match
            r = await finance.post(url, json={"approved": True, "comment": "budgeted"})
            assert r.status_code == 200, r.text
        done = await api.wait_for_state(run_id, "succeeded", "failed")
        assert done["state"] == "succeeded"
        assert (done["approvals"][0]["decided_by"], done["approvals"][0]["comment"]) == (
            "finance-leads",
            "budgeted",
        )
        assert done["approvals"][0]["decided_as"] == "Finance-Leads"  # the name matched, as listed
        [decided] = api.app.state.services.journal.approvals(run_id)  # what the journal recorded
        assert decided.decided_by == "finance-leads" and decided.approved is True
        assert len(overrides["billing.charge_card"].calls) == 1


async def test_a_token_decides_as_one_of_its_roles_and_is_recorded_by_its_name(tmp_path: Path) -> None:
    overrides = default_overrides()
    async with api_client(tmp_path, overrides=overrides) as api:
        run_id = await waiting_run(api, with_approvers("manager"))  # as the planner writes them
        url = f"/v1/runs/{run_id}/approvals/approve"

        async with signed_in(api, "alice", ["finance-leads", "vp-sales"]) as alice:
            me = (await alice.get("/v1/me")).json()
            assert (me["name"], me["roles"]) == ("alice", ["finance-leads", "vp-sales"])
            assert me["token_id"].startswith("tok_")
            r = await alice.post(url, json={"approved": True})
        assert r.status_code == 403 and r.json()["type"] == "urn:overture:problem:not-an-approver"
        problem = r.json()
        assert "only by `manager` (a token's name or role)" in problem["detail"]
        assert "this token is `alice` with the roles `finance-leads`, `vp-sales`" in problem["detail"]
        assert "overture token create --name NAME --role manager" in problem["problems"][0]["hint"]
        assert given_events(api, run_id) == [] and overrides["billing.charge_card"].calls == []

        async with signed_in(api, "bob", ["support", "Manager"]) as bob:  # case-insensitive role
            assert (await bob.get("/v1/me")).json()["roles"] == ["support", "Manager"]
            r = await bob.post(url, json={"approved": True, "by": "Bob", "comment": "as the manager"})
            assert r.status_code == 200, r.text
        done = await api.wait_for_state(run_id, "succeeded", "failed")
        assert done["state"] == "succeeded"
        assert done["approvals"][0]["decided_by"] == "bob"  # the person, not the role
        assert done["approvals"][0]["decided_as"] == "manager"  # the approver that let him
        assert [(e.data["by"], e.data["as"]) for e in given_events(api, run_id)] == [("bob", "manager")]
        [decided] = api.app.state.services.journal.approvals(run_id)
        assert decided.decided_by == "bob" and len(overrides["billing.charge_card"].calls) == 1
        schema = (await api.client.get("/openapi.json")).json()["components"]["schemas"]["ApprovalOut"]
        assert "decided_as" in schema["properties"]


async def test_the_role_star_decides_any_approval_and_a_name_cannot_stand_for_it(tmp_path: Path) -> None:
    async with api_client(tmp_path) as api:
        run_id = await waiting_run(api, with_approvers("vp-sales", "finance-leads"))
        url = f"/v1/runs/{run_id}/approvals/approve"
        async with signed_in(api, "*") as named_star:  # a *name* `*` is no wildcard
            r = await named_star.post(url, json={"approved": True})
            assert r.status_code == 403 and "`*` with no roles" in r.json()["detail"]
        async with signed_in(api, "owner", ["*"]) as owner:
            assert (await owner.get("/v1/me")).json()["roles"] == ["*"]
            r = await owner.post(url, json={"approved": False, "comment": "not this quarter"})
            assert r.status_code == 200, r.text
        done = await api.wait_for_state(run_id, "failed")
        assert done["approvals"][0]["decided_by"] == "owner" and done["approvals"][0]["approved"] is False
        assert done["approvals"][0]["decided_as"] == "*"


async def test_who_am_i_needs_a_token_and_is_in_the_openapi_document(tmp_path: Path) -> None:
    async with api_client(tmp_path) as api:
        me = (await api.client.get("/v1/me")).json()
        assert (me["name"], me["roles"]) == ("tests", [])
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=api.app), base_url="http://api.test"
        ) as anon:
            r = await anon.get("/v1/me")
            assert r.status_code == 401 and r.headers["content-type"] == PROBLEM
        schema = (await api.client.get("/openapi.json")).json()
        get_me = schema["paths"]["/v1/me"]["get"]
        assert get_me["security"] and "roles" in get_me["description"]
        ref = get_me["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        model = schema["components"]["schemas"][ref.rsplit("/", 1)[-1]]
        assert set(model["properties"]) == {"token_id", "name", "roles"}
        assert "`*` decides any" in model["properties"]["roles"]["description"]
        decide = schema["paths"]["/v1/runs/{run_id}/approvals/{step_id}"]["post"]
        assert "one of whose roles" in decide["description"]


def _catalog_without_invoke(*names: str) -> dict[str, Any]:
    actions = [dict(a) for a in CATALOG["actions"]]
    for a in actions:
        if a["name"] in names:
            a.pop("invoke")
    return {"actions": actions}


RUN_BODY = {"inputs": {"email": "ops@acme.example", "amount": 3}}


async def test_a_workflow_whose_actions_cannot_be_invoked_is_a_located_422_and_nothing_is_recorded(
    tmp_path: Path,
) -> None:
    overrides = {"crm.update_account": Recorder({"account_id": "a1"})}  # the other two: by invoke only
    async with api_client(tmp_path, overrides=overrides) as api:
        catalog_id = await api.upload_catalog(
            _catalog_without_invoke("billing.charge_card", "crm.delete_account")
        )
        workflow_id = await api.create_workflow(catalog_id=catalog_id)
        r = await api.client.post("/v1/runs", json={"workflow_id": workflow_id, **RUN_BODY})
        assert r.status_code == 422 and r.headers["content-type"] == PROBLEM
        problem = r.json()
        assert problem["type"] == "urn:overture:problem:uncallable-actions"
        assert "nothing was recorded" in problem["detail"]
        assert "step `crm` (undo crm.delete_account)" in problem["detail"]
        assert "step `charge` (billing.charge_card)" in problem["detail"]
        items = {p["location"]: p for p in problem["problems"]}
        assert set(items) == {"workflow.steps[0].compensate.action", "workflow.steps[1].action"}
        charge = items["workflow.steps[1].action"]
        assert "`charge`" in charge["message"] and "`billing.charge_card`" in charge["message"]
        assert "add an `invoke:` block" in charge["hint"] and charge["code"] == "no_invoker"
        # before the inputs are even looked at, and nothing is recorded or called
        r = await api.client.post("/v1/runs", json={"workflow_id": workflow_id, "inputs": {}})
        assert r.json()["type"] == "urn:overture:problem:uncallable-actions"
        assert (await api.client.get("/v1/runs")).json() == []
        assert api.app.state.services.journal.list_runs() == []
        assert overrides["crm.update_account"].calls == []

        # a newer upload of the catalog with the invoke blocks back: the same workflow runs
        await api.upload_catalog(CATALOG)
        r = await api.client.post("/v1/runs", json={"workflow_id": workflow_id, **RUN_BODY})
        assert r.status_code == 201, r.text


async def test_an_invoker_registered_for_an_action_without_invoke_block_lets_it_run(tmp_path: Path) -> None:
    # the service's invoker can call these by their overrides: it does not refuse what it can call
    async with api_client(tmp_path) as api:
        catalog_id = await api.upload_catalog(
            _catalog_without_invoke("billing.charge_card", "crm.update_account")
        )
        workflow_id = await api.create_workflow(catalog_id=catalog_id)
        r = await api.client.post("/v1/runs", json={"workflow_id": workflow_id, **RUN_BODY})
        assert r.status_code == 201, r.text
        done = await api.wait_for_state(r.json()["id"], "succeeded", "failed")
        assert done["state"] == "succeeded", done
