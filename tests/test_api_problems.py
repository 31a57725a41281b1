"""One error format everywhere: RFC 9457 problem details for FastAPI's own validation errors,
404/405, bad JSON, oversized bodies and our own errors, each problem with its location."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from api_support import APPROVAL_WORKFLOW, api_client

PROBLEM = "application/problem+json"


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert {"type", "title", "status", "detail", "instance"} <= set(body)
    assert body["instance"] == response.request.url.path
    assert "Traceback" not in response.text
    for item in body.get("problems", []):
        assert set(item) <= {"location", "message", "hint", "code"} and item["location"] and item["message"]
    return body


async def test_unknown_paths_and_methods(tmp_path: Path) -> None:
    async with api_client(tmp_path) as api:
        body = assert_problem(await api.client.get("/v1/nothing-here"), 404)
        assert body["type"] == "about:blank" and body["title"] == "Not Found"
        body = assert_problem(await api.client.delete("/v1/runs"), 405)
        assert "DELETE" in body["detail"] and "GET" in body["detail"]
        assert "GET" in (await api.client.delete("/v1/runs")).headers["allow"]


async def test_request_validation_errors_name_each_location(tmp_path: Path) -> None:
    async with api_client(tmp_path) as api:
        r = await api.client.post("/v1/catalogs", json={"name": 7, "actions": "nope", "colour": "red"})
        body = assert_problem(r, 422)
        assert body["type"] == "urn:overture:problem:invalid-request"
        by_location = {p["location"]: p for p in body["problems"]}
        assert {"body.name", "body.actions", "body.colour"} <= set(by_location)
        assert by_location["body.colour"]["code"] == "extra_forbidden"
        assert by_location["body.colour"]["message"] == "unknown field `colour`"

        r = await api.client.post("/v1/plans", json={})
        body = assert_problem(r, 422)
        assert body["problems"][0] == {"location": "body.request", "code": "missing",
                                       "message": "required field `request` is missing"}

        r = await api.client.get("/v1/runs", params={"limit": "lots"})
        assert assert_problem(r, 422)["problems"][0]["location"] == "query.limit"

        r = await api.client.get("/v1/workflows/wf_x/versions/one")
        assert assert_problem(r, 422)["problems"][0]["location"] == "path.version"


async def test_broken_json_and_wrong_content(tmp_path: Path) -> None:
    async with api_client(tmp_path) as api:
        as_json = {"Content-Type": "application/json"}
        r = await api.client.post("/v1/catalogs", content=b'{"name": "x", ', headers=as_json)
        body = assert_problem(r, 422)
        assert body["problems"][0]["code"] == "json_invalid"
        assert body["problems"][0]["location"] == "body"

        r = await api.client.post("/v1/catalogs", content=b"[1, 2]", headers=as_json)
        assert_problem(r, 422)


async def test_an_oversized_body_is_a_413_problem(tmp_path: Path) -> None:
    async with api_client(tmp_path, max_body_bytes=2_000) as api:
        as_json = {"Content-Type": "application/json"}
        r = await api.client.post("/v1/catalogs", json={"name": "big", "content": "x" * 5_000})
        assert_problem(r, 413)

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
            yield b'{"name": "big", "content": "'
            for _ in range(10):
                yield b"x" * 500
            yield b'"}'

        r = await api.client.post("/v1/catalogs", content=chunks(), headers=as_json)
        assert "content-length" not in r.request.headers
        assert_problem(r, 413)
        assert (await api.client.get("/v1/catalogs")).json() == []


async def test_bad_last_event_id_is_a_located_400(tmp_path: Path) -> None:
    async with api_client(tmp_path) as api:
        workflow_id = await api.create_workflow()
        inputs = {"email": "a@b.example", "amount": 1}
        run = (await api.client.post("/v1/runs", json={"workflow_id": workflow_id, "inputs": inputs})).json()
        await api.wait_for_state(run["id"], "succeeded")
        r = await api.client.get(f"/v1/runs/{run['id']}/events", headers={"Last-Event-ID": "yesterday"})
        body = assert_problem(r, 400)
        assert body["problems"][0]["location"] == "header.Last-Event-ID"


async def test_an_unexpected_failure_is_a_500_problem_without_internals(tmp_path: Path) -> None:
    import httpx
    import sqlalchemy as sa

    async with api_client(tmp_path) as api:
        with api.app.state.services.store.engine.begin() as conn:  # the database breaks under the app
            conn.execute(sa.text("DROP TABLE overture_svc_catalogs"))
        transport = httpx.ASGITransport(app=api.app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test",
                                     headers={"Authorization": f"Bearer {api.token}"}) as client:
            r = await client.get("/v1/catalogs")
        body = assert_problem(r, 500)
        assert body["type"] == "urn:overture:problem:internal"
        assert "overture_svc_catalogs" not in r.text and "SELECT" not in r.text  # no SQL, no traceback


def located(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["location"]: item for item in body["problems"]}


async def test_unknown_ids_are_404s_located_where_the_request_named_them(tmp_path: Path) -> None:
    async with api_client(tmp_path) as api:
        catalog_id = await api.upload_catalog()
        for path, location in (("/v1/runs/nope", "path.run_id"), ("/v1/catalogs/nope", "path.catalog_id"),
                               ("/v1/plans/nope", "path.plan_id"), ("/v1/workflows/nope", "path.workflow_id"),
                               ("/v1/workflows/nope/versions/1", "path.workflow_id")):
            body = assert_problem(await api.client.get(path), 404)
            assert list(located(body)) == [location], path
            assert "nope" in located(body)[location]["message"]
        body = assert_problem(await api.client.post("/v1/runs", json={"workflow_id": "nope"}), 404)
        assert list(located(body)) == ["body.workflow_id"]
        assert body["type"] == "urn:overture:problem:workflow-not-found"
        body = assert_problem(await api.client.post("/v1/workflows", json={"plan_id": "nope"}), 404)
        assert list(located(body)) == ["body.plan_id"]
        body = assert_problem(await api.client.post("/v1/plans", json={"request": "update the crm account",
                                                                     "catalog_id": "nope"}), 404)
        assert list(located(body)) == ["body.catalog_id"]
        r = await api.client.get("/v1/runs", params={"workflow_id": "nope"})
        assert list(located(assert_problem(r, 404))) == ["query.workflow_id"]

        workflow_id = await api.create_workflow(catalog_id=catalog_id)
        body = assert_problem(await api.client.get(f"/v1/workflows/{workflow_id}/versions/9"), 404)
        assert list(located(body)) == ["path.version"] and "latest: 1" in body["detail"]
        r = await api.client.post("/v1/runs", json={"workflow_id": workflow_id, "version": 9})
        assert list(located(assert_problem(r, 404))) == ["body.version"]
        r = await api.client.post(f"/v1/workflows/{workflow_id}/proposals/prop_nope/accept")
        assert list(located(assert_problem(r, 404))) == ["path.proposal_id"]


async def test_a_step_not_waiting_for_approval_is_a_located_409_naming_the_waiting_steps(tmp_path: Path
                                                                                      ) -> None:
    async with api_client(tmp_path) as api:
        workflow_id = await api.create_workflow(APPROVAL_WORKFLOW)
        run = (await api.client.post("/v1/runs", json={"workflow_id": workflow_id,
                                                       "inputs": {"email": "a@b.example"}})).json()
        await api.wait_for_state(run["id"], "waiting")
        r = await api.client.post(f"/v1/runs/{run['id']}/approvals/nostep", json={"approved": True})
        body = assert_problem(r, 409)
        assert body["type"] == "urn:overture:problem:invalid-run-state"
        item = located(body)["path.step_id"]
        assert "`nostep`" in item["message"] and "`approve`" in item["message"]
        assert "`approve`" in (item["hint"] or "") and "`approve`" in body["detail"]

        r = await api.client.post(f"/v1/runs/{run['id']}/cancel")
        assert r.status_code == 202, r.text
        await api.wait_for_state(run["id"], "cancelled", "failed")
        again = assert_problem(await api.client.post(f"/v1/runs/{run['id']}/cancel"), 409)
        assert list(located(again)) == ["path.run_id"]


async def test_a_request_nothing_matches_is_located_at_body_request(tmp_path: Path) -> None:
    async with api_client(tmp_path) as api:
        catalog_id = await api.upload_catalog()
        r = await api.client.post("/v1/plans", json={"request": "frobnicate the zorblax",
                                                     "catalog_id": catalog_id, "planner": "offline"})
        body = assert_problem(r, 422)
        item = located(body)["body.request"]
        assert item["message"] and catalog_id in (item["hint"] or "")


async def test_a_body_that_is_not_json_is_a_415(tmp_path: Path) -> None:
    async with api_client(tmp_path) as api:
        for path in ("/v1/plans", "/v1/catalogs", "/v1/runs"):
            r = await api.client.post(path, content=b"update the crm", headers={"Content-Type": "text/plain"})
            body = assert_problem(r, 415)
            assert body["type"] == "urn:overture:problem:unsupported-media-type"
            assert "application/json" in body["detail"] and "text/plain" in body["detail"]
            assert list(located(body)) == ["header.Content-Type"]
            assert r.headers["accept-post"] == "application/json"
        # JSON with a charset, or +json, is still JSON: a wrong shape stays a 422
        r = await api.client.post("/v1/plans", content=b"[1]",
                                  headers={"Content-Type": "application/json; charset=utf-8"})
        assert_problem(r, 422)


async def test_the_413_uses_the_overture_problem_types(tmp_path: Path) -> None:
    async with api_client(tmp_path, max_body_bytes=2_000) as api:
        declared = assert_problem(await api.client.post("/v1/catalogs", json={"content": "x" * 5_000}), 413)

        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"content": "' + b"x" * 5_000 + b'"}'

        counted = assert_problem(await api.client.post("/v1/catalogs", content=chunks(),
                                                       headers={"Content-Type": "application/json"}), 413)
        for body in (declared, counted):
            assert body["type"] == "urn:overture:problem:body-too-large"
            assert list(located(body)) == ["body"]
