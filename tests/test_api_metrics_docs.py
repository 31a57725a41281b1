"""Prometheus metrics by route template and run/step outcome; the OpenAPI document with examples;
the interactive docs served from a package, with no CDN."""

from __future__ import annotations

import re
from pathlib import Path

from api_support import api_client


async def test_metrics_count_requests_by_route_template_and_runs_by_outcome(tmp_path: Path) -> None:
    async with api_client(tmp_path) as api:
        workflow_id = await api.create_workflow()
        for _ in range(2):
            start = {"workflow_id": workflow_id, "inputs": {"email": "a@b.example", "amount": 1}}
            run = (await api.client.post("/v1/runs", json=start)).json()
            await api.wait_for_state(run["id"], "succeeded")
        await api.client.get("/v1/no/such/thing")
        text = (await api.client.get("/metrics")).text

        def value(pattern: str) -> float:
            match = re.search(pattern + r" ([0-9.e+]+)$", text, re.MULTILINE)
            assert match, f"{pattern} not in metrics:\n{text}"
            return float(match.group(1))

        assert value(r'overture_http_requests_total\{method="POST",route="/v1/runs",status="201"\}') == 2
        one_run = r'overture_http_requests_total\{method="GET",route="/v1/runs/\{run_id\}",status="200"\}'
        assert value(one_run) >= 2
        assert value(r'overture_http_requests_total\{method="GET",route="<unmatched>",status="404"\}') == 1
        assert value(r'overture_http_request_duration_seconds_count\{method="POST",route="/v1/runs"\}') == 2
        assert value(r"overture_runs_started_total") == 2
        assert value(r'overture_runs_finished_total\{state="succeeded"\}') == 2
        assert value(r'overture_steps_total\{outcome="succeeded"\}') == 4
        assert run["id"] not in text  # raw paths never become labels


async def test_openapi_document_has_examples_security_and_problem_responses(tmp_path: Path) -> None:
    async with api_client(tmp_path) as api, api.anonymous as anonymous:
        r = await anonymous.get("/openapi.json")
        assert r.status_code == 200
        doc = r.json()
        schemas = doc["components"]["schemas"]
        for name in ("PlanCreate", "CatalogCreate", "OpenAPIImport", "WorkflowCreate", "WorkflowUpdate",
                     "WorkflowEdit", "RunCreate", "Decision"):
            assert schemas[name].get("examples"), f"{name} has no examples"
        assert schemas["PlanCreate"]["properties"]["planner"]["description"].startswith("`offline`")
        assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
        run_post = doc["paths"]["/v1/runs"]["post"]
        assert "application/problem+json" in run_post["responses"]["422"]["content"]
        assert "ProblemDetails" in str(run_post["responses"]["401"])
        events = doc["paths"]["/v1/runs/{run_id}/events"]["get"]
        assert "text/event-stream" in events["responses"]["200"]["content"]


async def test_docs_are_served_without_a_cdn(tmp_path: Path) -> None:
    async with api_client(tmp_path) as api, api.anonymous as anonymous:
        page = await anonymous.get("/docs")
        assert page.status_code == 200
        assert "/docs/assets/swagger-ui-bundle.js" in page.text and "/docs/assets/swagger-ui.css" in page.text
        assert "cdn" not in page.text.lower() and "https://" not in page.text.replace("https://fastapi", "")
        js = await anonymous.get("/docs/assets/swagger-ui-bundle.js")
        assert js.status_code == 200 and len(js.content) > 100_000
        css = await anonymous.get("/docs/assets/swagger-ui.css")
        assert css.status_code == 200 and "swagger-ui" in css.text
        redoc = await anonymous.get("/redoc")
        assert redoc.status_code == 200 and "/docs/assets/redoc.standalone.js" in redoc.text
        assert "fonts.googleapis" not in redoc.text and "cdn" not in redoc.text.lower()
        assert (await anonymous.get("/docs/assets/redoc.standalone.js")).status_code == 200
