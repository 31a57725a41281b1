"""Plans and workflows through the real app: plan, accept, edit by document and by instruction,
versions, diffs, and the problems each can answer with."""

from __future__ import annotations

import asyncio
import copy
import importlib.util
from pathlib import Path

import pytest
from api_support import CATALOG, WORKFLOW, api_client

PROBLEM = "application/problem+json"
HAS_OFFLINE_PLANNER = importlib.util.find_spec("planner.offline") is not None


async def test_store_a_document_as_version_one(tmp_path: Path) -> None:
    async with api_client(tmp_path) as api:
        catalog_id = await api.upload_catalog()
        r = await api.client.post("/v1/workflows", json={"document": WORKFLOW, "catalog_id": catalog_id})
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["latest_version"] == 1 and body["name"] == "onboard"
        assert body["document"]["version"] == 1
        assert body["document"]["steps"][1]["needs"] == ["crm"]
        assert r.headers["location"] == f"/v1/workflows/{body['id']}"

        listed = (await api.client.get("/v1/workflows")).json()
        assert [w["id"] for w in listed] == [body["id"]]
        shown = (await api.client.get(f"/v1/workflows/{body['id']}")).json()
        assert shown["document"]["steps"][0]["with"] == {"email": "${{ inputs.email }}"}


async def test_an_invalid_document_is_refused_with_every_problem_located(tmp_path: Path) -> None:
    async with api_client(tmp_path) as api:
        catalog_id = await api.upload_catalog()
        bad = copy.deepcopy(WORKFLOW)
        bad["steps"][0]["action"] = "crm.update_acount"  # typo
        bad["steps"][1]["needs"] = ["nowhere"]
        r = await api.client.post("/v1/workflows", json={"document": bad, "catalog_id": catalog_id})
        assert r.status_code == 422
        assert r.headers["content-type"] == PROBLEM
        problem = r.json()
        assert problem["type"] == "urn:overture:problem:invalid-workflow"
        by_location = {p["location"]: p for p in problem["problems"]}
        assert "document.steps[0].action" in by_location
        assert "crm.update_account" in (by_location["document.steps[0].action"]["hint"] or "")
        assert any(loc.startswith("document.steps[1].needs") for loc in by_location)
        assert (await api.client.get("/v1/workflows")).json() == []  # nothing stored


async def test_put_makes_versions_and_diff_compares_them(tmp_path: Path) -> None:
    async with api_client(tmp_path) as api:
        workflow_id = await api.create_workflow()
        changed = copy.deepcopy(WORKFLOW)
        changed["steps"][1]["retry"] = {"max_attempts": 3}
        changed["steps"].append({"id": "note", "action": "core.log", "needs": ["charge"],
                                 "with": {"message": "charged"}})
        r = await api.client.put(f"/v1/workflows/{workflow_id}",
                                 json={"document": changed, "base_version": 1})
        assert r.status_code == 200, r.text
        assert r.json()["version"] == 2 and r.json()["source"] == "document"

        versions = (await api.client.get(f"/v1/workflows/{workflow_id}/versions")).json()
        assert [v["version"] for v in versions] == [1, 2]
        first = (await api.client.get(f"/v1/workflows/{workflow_id}/versions/1")).json()
        assert len(first["document"]["steps"]) == 2

        diff = (await api.client.get(f"/v1/workflows/{workflow_id}/diff", params={"from": 1, "to": 2})).json()
        assert [s["id"] for s in diff["steps_added"]] == ["note"]
        assert any(c["id"] == "charge" for c in diff["steps_changed"])
        assert "note" in diff["text"]

        stale = await api.client.put(f"/v1/workflows/{workflow_id}",
                                     json={"document": WORKFLOW, "base_version": 1})
        assert stale.status_code == 409
        assert stale.json()["type"] == "urn:overture:problem:version-conflict"
        assert len((await api.client.get(f"/v1/workflows/{workflow_id}/versions")).json()) == 2

        missing = await api.client.get(f"/v1/workflows/{workflow_id}/versions/9")
        assert missing.status_code == 404 and "latest: 2" in missing.json()["detail"]


async def test_put_of_an_invalid_document_keeps_the_old_version(tmp_path: Path) -> None:
    async with api_client(tmp_path) as api:
        workflow_id = await api.create_workflow()
        bad = copy.deepcopy(WORKFLOW)
        bad["steps"][0]["needs"] = ["charge"]  # a cycle
        r = await api.client.put(f"/v1/workflows/{workflow_id}", json={"document": bad})
        assert r.status_code == 422
        assert any(p["code"] == "cycle" for p in r.json()["problems"]), r.json()
        assert (await api.client.get(f"/v1/workflows/{workflow_id}")).json()["latest_version"] == 1


async def test_edit_by_instruction_as_draft_then_saved(tmp_path: Path) -> None:
    async with api_client(tmp_path) as api:
        workflow_id = await api.create_workflow()
        draft = await api.client.post(f"/v1/workflows/{workflow_id}/edits",
                                      json={"instruction": "retry charge up to 2 times", "save": False,
                                            "planner": "offline"})
        assert draft.status_code == 200, draft.text
        body = draft.json()
        assert body["saved"] is False and body["version"] is None
        charge = next(s for s in body["document"]["steps"] if s["id"] == "charge")
        assert charge["retry"]["max_attempts"] == 3
        assert body["diff"]["steps_changed"][0]["id"] == "charge"
        assert (await api.client.get(f"/v1/workflows/{workflow_id}")).json()["latest_version"] == 1

        saved = await api.client.post(f"/v1/workflows/{workflow_id}/edits",
                                      json={"instruction": "retry charge up to 2 times",
                                            "planner": "offline"})
        assert saved.status_code == 201, saved.text
        assert saved.json()["version"]["version"] == 2
        assert saved.json()["version"]["note"] == "retry charge up to 2 times"
        assert saved.json()["version"]["source"] == "instruction"


async def test_an_instruction_the_editor_cannot_read_is_a_422(tmp_path: Path) -> None:
    async with api_client(tmp_path) as api:
        workflow_id = await api.create_workflow()
        r = await api.client.post(f"/v1/workflows/{workflow_id}/edits",
                                  json={"instruction": "remove the frobnicator", "planner": "offline"})
        assert r.status_code == 422
        assert r.headers["content-type"] == PROBLEM
        assert (await api.client.get(f"/v1/workflows/{workflow_id}")).json()["latest_version"] == 1


async def test_unknown_workflow_and_plan_are_404(tmp_path: Path) -> None:
    async with api_client(tmp_path) as api:
        for path in ("/v1/workflows/wf_nope", "/v1/workflows/wf_nope/versions", "/v1/plans/plan_nope"):
            r = await api.client.get(path)
            assert r.status_code == 404, path
            assert r.headers["content-type"] == PROBLEM
        r = await api.client.post("/v1/workflows", json={"plan_id": "plan_nope"})
        assert r.status_code == 404


async def test_llm_planning_without_an_endpoint_is_a_503(tmp_path: Path) -> None:
    async with api_client(tmp_path) as api:
        catalog_id = await api.upload_catalog()
        r = await api.client.post("/v1/plans", json={"request": "update the crm account",
                                                     "catalog_id": catalog_id, "planner": "llm"})
        assert r.status_code == 503
        assert r.json()["type"] == "urn:overture:problem:llm-not-configured"
        r = await api.client.post("/v1/plans", json={"request": "update the crm", "catalog_id": "cat_nope"})
        assert r.status_code == 404
        r = await api.client.post("/v1/plans", json={"request": "update the crm", "planner": "magic"})
        assert r.status_code == 422
        assert r.json()["problems"][0]["location"] == "body.planner"


@pytest.mark.skipif(not HAS_OFFLINE_PLANNER, reason="planner.offline has not landed")
async def test_plan_offline_then_accept_as_a_workflow(tmp_path: Path) -> None:
    async with api_client(tmp_path) as api:
        catalog_id = await api.upload_catalog(CATALOG)
        r = await api.client.post("/v1/plans", json={
            "request": "Update the CRM account for the customer's email, then charge the card 10 dollars.",
            "catalog_id": catalog_id, "planner": "offline"})
        assert r.status_code == 201, r.text
        plan = r.json()
        assert plan["planner"] == "offline"
        assert {s["action"] for s in plan["workflow"]["steps"]} >= {"crm.update_account"}
        assert plan["explanation"]
        shown = (await api.client.get(f"/v1/plans/{plan['id']}")).json()
        assert shown["workflow"] == plan["workflow"]

        if not plan["valid"]:
            pytest.fail(f"the offline plan is not valid: {plan['problems']}")
        r = await api.client.post("/v1/workflows", json={"plan_id": plan["id"], "name": "from-plan"})
        assert r.status_code == 201, r.text
        workflow = r.json()
        assert workflow["name"] == "from-plan" and workflow["latest_version"] == 1
        versions = (await api.client.get(f"/v1/workflows/{workflow['id']}/versions")).json()
        assert versions[0]["source"] == "plan" and versions[0]["note"] == plan["id"]
        assert (await api.client.get(f"/v1/plans/{plan['id']}")).json()["workflow_id"] == workflow["id"]


async def test_concurrent_saves_on_one_base_version_keep_exactly_one(tmp_path: Path) -> None:
    async with api_client(tmp_path) as api:
        workflow_id = await api.create_workflow()

        async def save(n: int) -> int:
            document = copy.deepcopy(WORKFLOW)
            document["description"] = f"edit {n}"
            r = await api.client.put(f"/v1/workflows/{workflow_id}",
                                     json={"document": document, "base_version": 1})
            return r.status_code

        statuses = await asyncio.gather(*(save(n) for n in range(8)))
        assert sorted(statuses) == [200] + [409] * 7, statuses
        versions = (await api.client.get(f"/v1/workflows/{workflow_id}/versions")).json()
        assert [v["version"] for v in versions] == [1, 2]

        async def append(n: int) -> int:  # no base version: every save lands, each with its own number
            document = copy.deepcopy(WORKFLOW)
            document["description"] = f"append {n}"
            r = await api.client.put(f"/v1/workflows/{workflow_id}", json={"document": document})
            return r.status_code

        assert await asyncio.gather(*(append(n) for n in range(6))) == [200] * 6
        versions = (await api.client.get(f"/v1/workflows/{workflow_id}/versions")).json()
        assert [v["version"] for v in versions] == list(range(1, 9))
