"""The engine lives in the app's lifespan: a run in flight when the service stops is resumed when it
starts again on the same data dir (completed steps are not called again); without an engine the
service still answers, with 503 problem details for runs and a degraded /health."""

from __future__ import annotations

import asyncio
from pathlib import Path

from api_support import Recorder, api_client, default_overrides

from service.app import create_app
from service.settings import ServiceSettings


async def test_a_run_interrupted_by_shutdown_resumes_on_the_next_start(tmp_path: Path) -> None:
    first = default_overrides()
    first["billing.charge_card"] = Recorder({"charge_id": "never"}, gate=asyncio.Event())  # hangs
    async with api_client(tmp_path, overrides=first) as api:
        workflow_id = await api.create_workflow()
        run = (await api.client.post("/v1/runs", json={
            "workflow_id": workflow_id, "inputs": {"email": "a@b.example", "amount": 3}})).json()
        for _ in range(500):
            if first["billing.charge_card"].calls:
                break
            await asyncio.sleep(0.01)
        assert first["billing.charge_card"].calls, "the charge step never started"
    # the service stopped with the charge in flight

    second = default_overrides()
    async with api_client(tmp_path, overrides=second) as api:
        done = await api.wait_for_state(run["id"], "succeeded", "failed")
        assert done["state"] == "succeeded", done
        assert second["crm.update_account"].calls == []  # completed before the stop: not called again
        [resumed] = second["billing.charge_card"].calls
        assert resumed.idempotency_key == first["billing.charge_card"].calls[0].idempotency_key
        steps = {s["id"]: s for s in done["steps"]}
        assert steps["charge"]["output"] == {"charge_id": "ch_1"}
        assert [a["outcome"] for a in steps["charge"]["attempts"]][-1] == "succeeded"
        assert done["workflow_id"] == workflow_id


async def test_without_an_engine_runs_answer_503_and_health_is_degraded(tmp_path: Path) -> None:
    import httpx

    from service.auth import create_token

    app = create_app(ServiceSettings(data_dir=tmp_path / "svc"), start_engine=False)
    async with app.router.lifespan_context(app):
        _, token = create_token(app.state.services.store, "t")
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test",
                                     headers={"Authorization": f"Bearer {token}"}) as client:
            health = await client.get("/health")
            assert health.status_code == 503 and health.json()["status"] == "degraded"
            assert health.json()["engine"] is False and health.json()["database"] is True
            r = await client.get("/v1/runs")
            assert r.status_code == 503
            assert r.json()["type"] == "urn:overture:problem:engine-unavailable"
            assert (await client.get("/v1/catalogs")).status_code == 200  # the rest still works
