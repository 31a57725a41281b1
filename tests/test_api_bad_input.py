"""Bad input to the REST API that once got a 500, was silently changed or dropped, or was refused
without saying where: each case answers with located problem details, and nothing is stored.

(`test_api_problems.py` covers the basic shapes: unknown ids, broken JSON, wrong content types,
oversized bodies.)
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_support import APPROVAL_WORKFLOW, CATALOG, WORKFLOW, api_client, served_app
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.triggers import DELIVERY_HEADER, SIGNATURE_HEADER, sign

PROBLEM = "application/problem+json"
AS_JSON = {"Content-Type": "application/json"}
HUGE = "99999999999999999999999"  # more than a 64-bit database integer holds


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status and "Traceback" not in response.text
    for item in body.get("problems", []):
        assert item["location"] and item["message"]
    return body


def located(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["location"]: item for item in body["problems"]}


def raw(document: dict[str, Any]) -> bytes:
    """JSON as Python writes it by default: `NaN` and `Infinity` bare, surrogates as escapes."""
    return json.dumps(document, allow_nan=True).encode()


# -- values JSON cannot carry: NaN, Infinity, unpaired surrogates ---------------------------------------


async def test_nan_and_infinity_in_run_inputs_are_refused_not_stored_as_null(tmp_path: Path) -> None:
    async with api_client(tmp_path) as api:
        workflow_id = await api.create_workflow()
        for value, name in ((float("nan"), "NaN"), (float("inf"), "Infinity"), (float("-inf"), "-Infinity")):
            body = {"workflow_id": workflow_id, "inputs": {"email": "a@b.example", "amount": value}}
            problem = assert_problem(
                await api.client.post("/v1/runs", content=raw(body), headers=AS_JSON), 422
            )
            item = located(problem)["body.inputs.amount"]
            assert item["message"] == f"{name} is not a JSON number" and item["code"] == "json_value"
            assert "finite number" in (item["hint"] or "")
        assert (await api.client.get("/v1/runs")).json() == []  # nothing started (it would charge NaN)


async def test_inputs_are_checked_against_the_formats_their_schema_names(tmp_path: Path) -> None:
    async with api_client(tmp_path) as api:
        workflow_id = await api.create_workflow()  # inputs.email is {type: string, format: email}
        r = await api.client.post(
            "/v1/runs", json={"workflow_id": workflow_id, "inputs": {"email": "not an address", "amount": 1}}
        )
        item = located(assert_problem(r, 422))["inputs.email"]
        assert item["code"] == "format" and "'not an address' is not a 'email'" in item["message"]
        assert "valid email" in (item["hint"] or "")
        assert (await api.client.get("/v1/runs")).json() == []


async def test_an_unpaired_surrogate_is_refused_before_it_makes_a_run_unreadable(tmp_path: Path) -> None:
    async with api_client(tmp_path) as api:
        workflow_id = await api.create_workflow()
        body = {"workflow_id": workflow_id, "inputs": {"email": "\ud800@b.example", "amount": 1}}
        problem = assert_problem(await api.client.post("/v1/runs", content=raw(body), headers=AS_JSON), 422)
        item = located(problem)["body.inputs.email"]
        assert "surrogate" in item["message"] and "Unicode" in (item["hint"] or "")
        body = {"workflow_id": workflow_id, "inputs": {"amount": 1, "\udc00": "x"}}
        problem = assert_problem(await api.client.post("/v1/runs", content=raw(body), headers=AS_JSON), 422)
        assert list(located(problem)) == ["body.inputs.\\udc00"]
        assert (await api.client.get("/v1/runs")).json() == []


async def test_documents_with_nan_or_surrogates_are_refused_and_not_stored(tmp_path: Path) -> None:
    async with api_client(tmp_path) as api:
        catalog_id = await api.upload_catalog()
        described = {**WORKFLOW, "description": "on\udfffboarding"}
        r = await api.client.post(
            "/v1/workflows", content=raw({"document": described, "catalog_id": catalog_id}), headers=AS_JSON
        )
        assert list(located(assert_problem(r, 422))) == ["body.document.description"]
        steps = copy.deepcopy(WORKFLOW["steps"])
        steps[1]["with"]["amount"] = float("nan")
        r = await api.client.post(
            "/v1/workflows",
            headers=AS_JSON,
            content=raw({"document": {**WORKFLOW, "steps": steps}, "catalog_id": catalog_id}),
        )
        assert list(located(assert_problem(r, 422))) == ["body.document.steps[1].with.amount"]
        assert (await api.client.get("/v1/workflows")).json() == []  # the 500 came after the row was stored

        workflow_id = await api.create_workflow(catalog_id=catalog_id)
        r = await api.client.put(
            f"/v1/workflows/{workflow_id}", content=raw({"document": described}), headers=AS_JSON
        )
        assert list(located(assert_problem(r, 422))) == ["body.document.description"]
        assert (await api.client.get(f"/v1/workflows/{workflow_id}")).json()["latest_version"] == 1

        actions = copy.deepcopy(CATALOG["actions"])
        actions[2]["cost"] = float("inf")
        r = await api.client.post(
            "/v1/catalogs", content=raw({"name": "c", "actions": actions}), headers=AS_JSON
        )
        assert list(located(assert_problem(r, 422))) == ["body.actions[2].cost"]

        r = await api.client.post("/v1/optimizer/train", content=b'{"window_s": Infinity}', headers=AS_JSON)
        assert list(located(assert_problem(r, 422))) == ["body.window_s"]


async def test_a_plan_edit_with_a_nan_draft_is_located(tmp_path: Path) -> None:
    async with api_client(tmp_path) as api:
        catalog_id = await api.upload_catalog()
        r = await api.client.post(
            "/v1/plans",
            json={
                "request": "update the crm account for the email",
                "catalog_id": catalog_id,
                "planner": "offline",
            },
        )
        assert r.status_code == 201, r.text
        plan = r.json()
        draft = copy.deepcopy(plan["workflow"])
        draft["steps"][0]["with"]["email"] = float("nan")
        r = await api.client.post(
            f"/v1/plans/{plan['id']}/edits",
            headers=AS_JSON,
            content=raw({"instruction": "retry it 3 times", "document": draft}),
        )
        assert list(located(assert_problem(r, 422))) == ["body.document.steps[0].with.email"]
        r = await api.client.post(
            f"/v1/plans/{plan['id']}/edits", json={"instruction": "retry it 3 times", "document": {"name": 1}}
        )
        assert set(located(assert_problem(r, 422))) == {"body.document.name", "body.document.steps"}


async def test_an_expression_nested_thousands_deep_is_a_located_problem(tmp_path: Path) -> None:
    async with api_client(tmp_path) as api:
        catalog_id = await api.upload_catalog()
        steps = copy.deepcopy(WORKFLOW["steps"])
        steps[1]["if"] = (
            "${{ " + "(" * 3000 + "inputs.amount > 5" + ")" * 3000 + " }}"
        )  # was a RecursionError
        steps[1]["with"]["amount"] = "${{ " + " + ".join(["inputs.amount"] * 200) + " }}"
        r = await api.client.post(
            "/v1/workflows", json={"document": {**WORKFLOW, "steps": steps}, "catalog_id": catalog_id}
        )
        items = located(assert_problem(r, 422))
        assert set(items) == {"document.steps[1].if", "document.steps[1].with.amount"}
        assert all("nests more than 64 levels deep" in item["message"] for item in items.values())


# -- numbers too large for the database --------------------------------------------------------------


async def test_huge_version_and_event_numbers_are_422s_not_500s(tmp_path: Path) -> None:
    async with api_client(tmp_path) as api:
        workflow_id = await api.create_workflow(APPROVAL_WORKFLOW)
        run = (
            await api.client.post(
                "/v1/runs", json={"workflow_id": workflow_id, "inputs": {"email": "a@b.example"}}
            )
        ).json()
        await api.wait_for_state(run["id"], "waiting")
        cases = [
            ("GET", f"/v1/workflows/{workflow_id}/versions/{HUGE}", None, "path.version"),
            ("GET", f"/v1/workflows/{workflow_id}/diff?from={HUGE}", None, "query.from"),
            ("GET", f"/v1/workflows/{workflow_id}/diff?from=1&to={HUGE}", None, "query.to"),
            ("GET", f"/v1/runs/{run['id']}/events?after={HUGE}", None, "query.after"),
            ("POST", "/v1/runs", f'{{"workflow_id": "{workflow_id}", "version": {HUGE}}}', "body.version"),
            (
                "PUT",
                f"/v1/workflows/{workflow_id}",
                json.dumps({"document": APPROVAL_WORKFLOW})[:-1] + f', "base_version": {HUGE}}}',
                "body.base_version",
            ),
            (
                "POST",
                f"/v1/workflows/{workflow_id}/edits",
                f'{{"instruction": "retry the crm update 3 times", "base_version": {HUGE}}}',
                "body.base_version",
            ),
            (
                "POST",
                f"/v1/runs/{run['id']}/approvals/approve",
                f'{{"approved": true, "iteration": {HUGE}}}',
                "body.iteration",
            ),
        ]
        for method, path, body, location in cases:
            r = await api.client.request(method, path, content=body, headers=AS_JSON if body else None)
            problem = assert_problem(r, 422)
            assert list(located(problem)) == [location], (path, problem)
            assert "less than or equal" in located(problem)[location]["message"]
        # a version below 1 names the rule instead of looking the version up
        r = await api.client.get(f"/v1/workflows/{workflow_id}/versions/0")
        assert located(assert_problem(r, 422))["path.version"]["code"] == "greater_than_equal"

        r = await api.client.get(
            f"/v1/runs/{run['id']}/events", headers={"Last-Event-ID": HUGE, "Accept": "application/json"}
        )
        assert list(located(assert_problem(r, 400))) == ["header.Last-Event-ID"]
        # the run is untouched: still waiting for its approval
        assert (await api.client.get(f"/v1/runs/{run['id']}")).json()["state"] == "waiting"


# -- bodies that cannot be parsed at all -------------------------------------------------------------


def test_bodies_that_are_not_utf8_or_nest_too_deeply_are_located_over_http(tmp_path: Path) -> None:
    with (
        served_app(tmp_path) as server,
        httpx.Client(base_url=server.url(), headers=server.headers) as client,
    ):
        r = client.post("/v1/plans", content=b'{"request": "\xff\xfe update the crm"}', headers=AS_JSON)
        problem = assert_problem(r, 422)
        assert problem["type"] == "urn:overture:problem:invalid-request"
        item = located(problem)["body"]
        assert (
            item["code"] == "json_invalid" and "UTF-8" in item["message"] and "UTF-8" in (item["hint"] or "")
        )

        deep = b'{"workflow_id": "x", "inputs": ' + b'{"a":' * 5_000 + b"1" + b"}" * 5_000 + b"}"
        problem = assert_problem(client.post("/v1/runs", content=deep, headers=AS_JSON), 422)
        item = located(problem)["body"]
        assert item["code"] == "json_too_deep" and "nested too deeply" in item["message"]


def _laughs(levels: int) -> str:
    """A few hundred bytes of YAML whose aliases expand to 9**levels values."""
    lines = ["l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "\n".join(lines)


async def test_yaml_alias_bombs_and_deep_nesting_are_refused_quickly(tmp_path: Path) -> None:
    async with api_client(tmp_path) as api:
        bomb = "x-laughs:\n" + "\n".join("  " + line for line in _laughs(9).splitlines())  # 387 million
        spec = "openapi: 3.0.0\ninfo: {title: t}\nservers: [{url: 'http://127.0.0.1:9'}]\npaths: {}\n" + bomb
        r = await api.client.post("/v1/catalogs/import-openapi", json={"content": spec})
        assert "anchors and aliases" in assert_problem(r, 422)["detail"]
        r = await api.client.post("/v1/catalogs", json={"name": "c", "content": "actions: &a [*a]\n"})
        assert "its own anchor" in assert_problem(r, 422)["detail"]
        r = await api.client.post("/v1/catalogs", json={"name": "c", "content": "[" * 50_000 + "]" * 50_000})
        assert "nested too deeply" in assert_problem(r, 422)["detail"]  # was a RecursionError: 500

        nested: Any = "deep"
        for _ in range(300):  # deeper than the models can serialize: the upload was a 500
            nested = [nested]
        actions = copy.deepcopy(CATALOG["actions"])
        actions[0]["input"]["properties"]["email"]["default"] = nested
        r = await api.client.post("/v1/catalogs", json={"name": "c", "actions": actions})
        [item] = assert_problem(r, 422)["problems"]
        assert item["location"] == "body.actions[0].input.properties"  # where the deep part starts
        assert item["message"] == "nested more than 100 levels deep"
        assert (await api.client.get("/v1/catalogs")).json() == []


# -- catalogs: what an upload would silently lose --------------------------------------------------------


async def test_a_catalog_may_not_define_core_actions_or_broken_schemas(tmp_path: Path) -> None:
    async with api_client(tmp_path) as api:
        actions = copy.deepcopy(CATALOG["actions"])
        actions[0]["name"] = "core.log"  # was stored as a catalog of two actions: the third silently gone
        actions[2]["input"]["properties"]["amount"] = {"type": "money"}
        r = await api.client.post("/v1/catalogs", json={"name": "crm", "actions": actions})
        problem = assert_problem(r, 422)
        items = located(problem)
        assert set(items) == {"actions[0].name", "actions[2].input.properties.amount.type"}
        assert (
            "built-in" in items["actions[0].name"]["message"]
            and "ops.log" in items["actions[0].name"]["hint"]
        )
        assert items["actions[2].input.properties.amount.type"]["code"] == "invalid_schema"

        content = "actions:\n  - name: core.wait\n    description: Wait a while.\n"
        r = await api.client.post("/v1/catalogs", json={"name": "waits", "content": content})
        assert list(located(assert_problem(r, 422))) == ["actions[0].name"]
        assert (await api.client.get("/v1/catalogs")).json() == []


_SPEC = """\
openapi: 3.0.0
info: {title: Core}
servers: [{url: "http://127.0.0.1:9"}]
paths:
  /x:
    post:
      operationId: do_x
      requestBody: {content: {application/json: {schema: {type: object, properties: {
        n: {type: integer, minimum: 0, exclusiveMinimum: true}, f: {type: file}}}}}}
      responses: {"200": {description: ok}}
"""


async def test_openapi_imports_say_what_cannot_be_checked_and_refuse_the_core_namespace(
    tmp_path: Path,
) -> None:
    async with api_client(tmp_path) as api:
        # the title `Core` made every action `core.*`: stored as a catalog of nothing
        r = await api.client.post("/v1/catalogs/import-openapi", json={"content": _SPEC})
        item = located(assert_problem(r, 422))["body.namespace"]
        assert "`core` is reserved" in item["message"] and "namespace" in (item["hint"] or "")
        assert (await api.client.get("/v1/catalogs")).json() == []

        r = await api.client.post("/v1/catalogs/import-openapi", json={"content": _SPEC, "namespace": "ops"})
        assert r.status_code == 201, r.text
        schema = r.json()["actions"][0]["input"]["properties"]
        assert schema["n"] == {
            "type": "integer",
            "exclusiveMinimum": 0,
        }  # OpenAPI 3.0's boolean form, converted
        [warning] = [w for w in r.json()["warnings"] if w["code"] == "invalid_schema"]
        assert warning["location"] == "actions[0].input.properties.f.type"
        assert "will not be checked" in warning["message"]


async def test_duplicate_action_names_and_empty_content_say_where_and_what(tmp_path: Path) -> None:
    async with api_client(tmp_path) as api:
        actions = [CATALOG["actions"][0], CATALOG["actions"][1], CATALOG["actions"][0]]
        problem = assert_problem(
            await api.client.post("/v1/catalogs", json={"name": "c", "actions": actions}), 422
        )
        item = located(problem)["actions[2].name"]
        assert item["code"] == "duplicate_action" and "actions[0]" in item["message"]

        r = await api.client.post("/v1/catalogs", json={"name": "c", "content": "   \n"})
        assert "found nothing (the document is empty)" in assert_problem(r, 422)["detail"]


async def test_blank_and_multi_line_names_are_refused(tmp_path: Path) -> None:
    async with api_client(tmp_path) as api:
        catalog_id = await api.upload_catalog()
        r = await api.client.post("/v1/catalogs", json={"name": "   ", "actions": CATALOG["actions"]})
        assert "blank" in located(assert_problem(r, 422))["body.name"]["message"]
        for name, message in (("  ", "the name is blank"), ("on\nboard", "control character")):
            r = await api.client.post(
                "/v1/workflows", json={"document": {**WORKFLOW, "name": name}, "catalog_id": catalog_id}
            )
            item = located(assert_problem(r, 422))["document.name"]
            assert message in item["message"] and item["hint"]
            r = await api.client.post(
                "/v1/workflows", json={"document": WORKFLOW, "catalog_id": catalog_id, "name": name}
            )
            assert list(located(assert_problem(r, 422))) == ["document.name"]
        assert (await api.client.get("/v1/workflows")).json() == []
        assert len((await api.client.get("/v1/catalogs")).json()) == 1


# -- requests that were silently half-ignored, or refused without a location ---------------------------


async def test_a_plan_accepted_with_another_catalog_is_refused(tmp_path: Path) -> None:
    async with api_client(tmp_path) as api:
        catalog_id = await api.upload_catalog()
        other = await api.upload_catalog(name="other")
        r = await api.client.post(
            "/v1/plans",
            json={
                "request": "update the crm account for the email",
                "catalog_id": catalog_id,
                "planner": "offline",
            },
        )
        plan_id = r.json()["id"]
        r = await api.client.post("/v1/workflows", json={"plan_id": plan_id, "catalog_id": other})
        item = located(assert_problem(r, 422))["body.catalog_id"]
        assert catalog_id in item["message"] and other in item["message"]
        assert (await api.client.get("/v1/workflows")).json() == []
        r = await api.client.post("/v1/workflows", json={"plan_id": plan_id, "catalog_id": catalog_id})
        assert r.status_code == 201, r.text  # naming the plan's own catalog is fine


async def test_a_plan_whose_catalog_was_deleted_stays_readable_and_says_why_it_cannot_be_accepted(
    tmp_path: Path,
) -> None:
    async with api_client(tmp_path) as api:
        catalog_id = await api.upload_catalog()
        r = await api.client.post(
            "/v1/plans",
            json={
                "request": "update the crm account for the email",
                "catalog_id": catalog_id,
                "planner": "offline",
            },
        )
        plan_id = r.json()["id"]
        assert (
            await api.client.delete(f"/v1/catalogs/{catalog_id}")
        ).status_code == 204  # no workflow uses it
        r = await api.client.get(f"/v1/plans/{plan_id}")  # was a 404 "no catalog" for a plan that exists
        assert r.status_code == 200, r.text
        assert r.json()["problems"][0]["code"] == "catalog_deleted"
        for path, body, location in (
            ("/v1/workflows", {"plan_id": plan_id}, "body.plan_id"),
            (f"/v1/plans/{plan_id}/edits", {"instruction": "retry it 3 times"}, "path.plan_id"),
        ):
            problem = assert_problem(await api.client.post(path, json=body), 409)
            item = located(problem)[location]
            assert "has been deleted" in item["message"] and "POST /v1/plans" in (item["hint"] or "")


async def test_an_instruction_the_editor_cannot_apply_is_located_at_body_instruction(tmp_path: Path) -> None:
    async with api_client(tmp_path) as api:
        workflow_id = await api.create_workflow()
        r = await api.client.post(
            f"/v1/workflows/{workflow_id}/edits",
            json={"instruction": "frobnicate the zorblax", "planner": "offline"},
        )
        problem = assert_problem(r, 422)
        assert problem["type"] == "urn:overture:problem:edit-not-understood"
        item = located(problem)["body.instruction"]
        assert "zorblax" in item["message"] and item["hint"]
        assert (await api.client.get(f"/v1/workflows/{workflow_id}")).json()["latest_version"] == 1


async def test_an_unknown_trigger_is_a_not_found_with_a_hint(tmp_path: Path) -> None:
    async with api_client(tmp_path) as api:
        workflow_id = await api.create_workflow()
        r = await api.client.post(
            f"/v1/workflows/{workflow_id}/triggers/all/pause"
        )  # was a 200 that did nothing
        item = located(assert_problem(r, 404))["path.workflow_id"]
        assert item["message"].endswith("has no triggers") and "triggers:" in (item["hint"] or "")
        scheduled = {
            **WORKFLOW,
            "name": "scheduled",
            "triggers": {"schedule": [{"cron": "0 9 * * 1", "timezone": "UTC"}]},
        }
        workflow_id = await api.create_workflow(scheduled)
        r = await api.client.post(f"/v1/workflows/{workflow_id}/triggers/sched_nope/pause")
        item = located(assert_problem(r, 404))["path.trigger_id"]
        assert item["code"] == "not_found" and f"/v1/workflows/{workflow_id}/triggers" in (item["hint"] or "")


async def test_a_schedule_that_never_fires_is_refused_and_one_stored_before_still_lists(
    tmp_path: Path,
) -> None:
    never = {**WORKFLOW, "triggers": {"schedule": [{"cron": "0 9 30 2 *", "timezone": "UTC"}]}}
    async with api_client(tmp_path) as api:
        catalog_id = await api.upload_catalog()
        r = await api.client.post("/v1/workflows", json={"document": never, "catalog_id": catalog_id})
        item = located(assert_problem(r, 422))["document.triggers.schedule[0].cron"]
        assert "never fires" in item["message"] and "0 9 28 2 *" in (item["hint"] or "")
        # a document stored before the validator knew: its triggers still list (no fire times), not a 500
        row, _ = api.app.state.services.store.create_workflow(
            "never", catalog_id, never, source="document", note=None
        )
        r = await api.client.get(f"/v1/workflows/{row.id}/triggers")
        assert r.status_code == 200, r.text
        assert r.json()["schedules"][0]["next_fires"] == []


async def test_a_webhook_name_another_workflow_uses_is_refused(tmp_path: Path) -> None:
    hooked = {**WORKFLOW, "triggers": {"webhook": {"name": "signed-up"}}}
    async with api_client(tmp_path) as api:
        catalog_id = await api.upload_catalog()
        first = await api.create_workflow(hooked, catalog_id=catalog_id)
        # was stored, and from then on every delivery to /hooks/signed-up was a 409 for both workflows
        r = await api.client.post(
            "/v1/workflows", json={"document": {**hooked, "name": "other"}, "catalog_id": catalog_id}
        )
        problem = assert_problem(r, 409)
        item = located(problem)["document.triggers.webhook.name"]
        assert first in item["message"] and "signed-up-2" in (item["hint"] or "")
        second = await api.create_workflow({**WORKFLOW, "name": "other"}, catalog_id=catalog_id)
        r = await api.client.put(f"/v1/workflows/{second}", json={"document": {**hooked, "name": "other"}})
        assert list(located(assert_problem(r, 409))) == ["document.triggers.webhook.name"]
        r = await api.client.put(f"/v1/workflows/{first}", json={"document": {**hooked, "description": "v2"}})
        assert r.status_code == 200, r.text  # its own name, kept across versions
        assert len((await api.client.get("/v1/workflows")).json()) == 2


async def test_a_webhook_body_with_nan_starts_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OVERTURE_SECRET_WEBHOOK_SIGNED_UP", "whsec_0123456789")
    hooked = {**WORKFLOW, "triggers": {"webhook": {"name": "signed-up"}}}
    async with api_client(tmp_path) as api:
        await api.create_workflow(hooked)
        payload = b'{"email": "a@b.example", "amount": NaN}'
        headers = {
            **AS_JSON,
            SIGNATURE_HEADER: sign("whsec_0123456789", payload, int(__import__("time").time())),
            DELIVERY_HEADER: "dlv_1",
        }
        async with api.anonymous as anonymous:
            r = await anonymous.post("/hooks/signed-up", content=payload, headers=headers)
        item = located(assert_problem(r, 422))["body.amount"]
        assert item["message"] == "NaN is not a JSON number"
        assert (await api.client.get("/v1/runs")).json() == []


# -- a property sweep: any value anywhere in a document: a 201 that reads back, or a located 4xx


_SCALARS = (
    st.just("\udc00 an unpaired surrogate")
    | st.just(float("nan"))
    | st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63 - 2, max_value=2**70)
    | st.floats()
    | st.text(alphabet=st.characters(codec=None, categories=None), max_size=6)
    | st.sampled_from(
        [
            "${{ inputs.email }}",
            "${{ steps.crm.output.account_id }}",
            "${{ ",
            "core.log",
            "",
            "${{ steps.nope.status }}",
            "0 9 * * MON",
            "Mars/Phobos",
            "x" * 300,
            "\ud800",
        ]
    )
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "id",
                    "action",
                    "with",
                    "needs",
                    "if",
                    "for_each",
                    "retry",
                    "timeout_s",
                    "steps",
                    "cron",
                    "name",
                ]
            )
            | st.text(max_size=5),
            inner,
            max_size=3,
        )
    ),
    max_leaves=6,
)


def _paths(value: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [at]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*at, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*at, index))
    return found


_BASE: dict[str, Any] = {
    **copy.deepcopy(APPROVAL_WORKFLOW),
    "description": "Approve, then charge.",
    "triggers": {"schedule": [{"cron": "0 9 * * 1", "timezone": "UTC"}], "webhook": {"name": "hook-a"}},
}
_BASE["steps"][2].update(retry={"max_attempts": 3}, timeout_s=30)


def _replaced(document: dict[str, Any], path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    copied = copy.deepcopy(document)
    node: Any = copied
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return copied


def test_any_value_anywhere_in_a_document_gets_a_located_answer(tmp_path: Path) -> None:
    with (
        served_app(tmp_path) as server,
        httpx.Client(base_url=server.url(), headers=server.headers, timeout=30) as client,
    ):
        catalog_id = client.post("/v1/catalogs", json={"name": "crm", "actions": CATALOG["actions"]}).json()[
            "id"
        ]

        def answered(r: httpx.Response) -> None:
            assert r.status_code < 500, r.text
            if r.status_code >= 400:
                assert_problem(r, r.status_code)

        @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
        @given(path=st.sampled_from(_paths(_BASE)), value=_VALUES)
        def sweep(path: tuple[Any, ...], value: Any) -> None:
            document = _replaced(_BASE, path, value)
            r = client.post(
                "/v1/workflows",
                content=raw({"document": document, "catalog_id": catalog_id}),
                headers=AS_JSON,
            )
            answered(r)
            if r.status_code == 201:  # what was stored reads back and runs (or says why not)
                workflow_id = r.json()["id"]
                for sub in ("", "/versions/1", "/triggers"):
                    assert client.get(f"/v1/workflows/{workflow_id}{sub}").status_code == 200
                answered(
                    client.post(
                        "/v1/runs", json={"workflow_id": workflow_id, "inputs": {"email": "a@b.example"}}
                    )
                )

        sweep()
