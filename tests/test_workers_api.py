"""`OVERTURE_DISPATCH=workers`: the API journals and enqueues, a worker process elsewhere runs."""

from __future__ import annotations

import signal
from pathlib import Path

import yaml
from api_support import api_client
from test_workers import database, files, start_worker, stop, wait_ready  # noqa: F401 - a fixture
from workers_support import read_calls


async def test_the_api_enqueues_and_a_worker_runs(database: str, tmp_path: Path) -> None:  # noqa: F811
    catalog, flow = files(tmp_path)
    worker = start_worker(database, tmp_path, "api-worker")
    try:
        wait_ready({"api-worker": worker}, tmp_path)
        async with api_client(tmp_path, database_url=database, dispatch="workers",
                              catalogs=[str(catalog)], overrides={}) as api:
            services = api.app.state.services
            assert type(services.engine).__name__ == "QueueingEngine"
            workflow_id = await api.create_workflow(yaml.safe_load(flow.read_text()), catalog_id="default")
            r = await api.client.post("/v1/runs", json={"workflow_id": workflow_id, "inputs": {"sleep": 0}})
            assert r.status_code == 201, r.text
            run = await api.wait_for_state(r.json()["id"], "succeeded", "failed", timeout=60)
            assert run["state"] == "succeeded", run
        # every call was made by the worker process, none by the API's
        assert {c["pid"] for c in read_calls(tmp_path)} == {worker.pid}
        assert len(read_calls(tmp_path)) == 4
    finally:
        assert stop([worker]) == [0]
        if worker.poll() is None:
            worker.send_signal(signal.SIGKILL)


GATED = {
    "name": "gated-on-workers",
    "steps": [
        {"id": "a", "action": "w.work", "with": {"label": "a"}},
        {"id": "ok", "action": "core.approval", "needs": ["a"], "with": {"prompt": "go on?"}},
        {"id": "b", "action": "w.work", "needs": ["ok"], "with": {"label": "b"}},
    ],
}


async def test_an_approval_given_to_the_api_is_acted_on_by_a_worker(database: str, tmp_path: Path  # noqa: F811
                                                                    ) -> None:
    catalog, _ = files(tmp_path)
    worker = start_worker(database, tmp_path, "api-worker")
    try:
        wait_ready({"api-worker": worker}, tmp_path)
        async with api_client(tmp_path, database_url=database, dispatch="workers",
                              catalogs=[str(catalog)], overrides={}) as api:
            workflow_id = await api.create_workflow(GATED, catalog_id="default")
            r = await api.client.post("/v1/runs", json={"workflow_id": workflow_id, "inputs": {}})
            assert r.status_code == 201, r.text
            run_id = r.json()["id"]
            await api.wait_for_state(run_id, "waiting", timeout=60)
            r = await api.client.post(f"/v1/runs/{run_id}/approvals/ok", json={"approved": True})
            assert r.status_code == 200, r.text
            run = await api.wait_for_state(run_id, "succeeded", "failed", timeout=60)
            assert run["state"] == "succeeded", run
        assert [(c["step"], c["pid"]) for c in read_calls(tmp_path)] == [("a", worker.pid), ("b", worker.pid)]
    finally:
        assert stop([worker]) == [0]
        if worker.poll() is None:
            worker.send_signal(signal.SIGKILL)
