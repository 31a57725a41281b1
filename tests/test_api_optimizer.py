"""The optimizer through the real app: train on the journal the engine wrote, list a workflow's
proposals (an over-serialized chain yields a parallelize proposal), accept one as a new version,
and the engine routing with the learned router once models exist."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from api_support import api_client

from optimizer.router import LearnedRouter
from runtime.invocation import ActionCall
from runtime.routing import DefaultRouter


@pytest.fixture(autouse=True)
def _unfreeze_gc() -> Iterator[None]:
    # a learned router freezes what is alive when it loads; the rest of the test process need not
    # keep this test's objects out of the collector
    yield
    gc.unfreeze()


def _action(name: str) -> dict[str, Any]:
    return {"name": name, "description": f"Look something up ({name}).", "side_effects": False,
            "input": {"type": "object"}, "output": {"type": "object"},
            "invoke": {"kind": "http", "method": "GET", "url": f"http://127.0.0.1:9/{name}"}}


CATALOG = {"actions": [_action("svc.one"), _action("svc.two"), _action("svc.three")]}
# a chain as a planner might write it: no data flows between the steps, so two of them can run in parallel
CHAIN = {"name": "lookups", "steps": [
    {"id": "one", "action": "svc.one"},
    {"id": "two", "action": "svc.two", "needs": ["one"]},
    {"id": "three", "action": "svc.three", "needs": ["two"]},
]}


@dataclass
class Sleeper:
    seconds: float
    calls: list[str] = field(default_factory=list)

    async def invoke(self, call: ActionCall) -> dict[str, Any]:
        self.calls.append(call.step_id)
        await asyncio.sleep(self.seconds)
        return {"ok": True}


def _overrides() -> dict[str, Sleeper]:
    return {"svc.one": Sleeper(0.01), "svc.two": Sleeper(0.05), "svc.three": Sleeper(0.05)}


async def _history(api: Any, runs: int = 4) -> str:
    r = await api.client.post("/v1/catalogs", json={"name": "lookups", "actions": CATALOG["actions"]})
    assert r.status_code == 201, r.text
    workflow_id = await api.create_workflow(CHAIN, catalog_id=r.json()["id"])
    for _ in range(runs):
        r = await api.client.post("/v1/runs", json={"workflow_id": workflow_id})
        assert r.status_code in (201, 202), r.text
        await api.wait_for_state(r.json()["id"], "succeeded")
    return workflow_id


async def test_train_suggest_and_accept_a_parallelize_proposal(tmp_path: Path) -> None:
    async with api_client(tmp_path, overrides=_overrides()) as api:
        assert isinstance(api.app.state.services.engine.router, DefaultRouter)  # no models yet
        r = await api.client.post("/v1/optimizer/train")
        assert r.status_code == 409 and r.json()["type"].endswith("no-history")
        workflow_id = await _history(api)

        r = await api.client.post("/v1/optimizer/train", json={})
        assert r.status_code == 200, r.text
        trained = r.json()
        assert trained["version"] == 1 and trained["attempts"] == 12
        assert trained["actions"] == ["svc.one", "svc.three", "svc.two"]
        assert trained["router"] == "learned"
        learned = api.app.state.services.engine.router
        assert isinstance(learned, LearnedRouter)
        # built as a restart builds it: over the stored version, with the models frozen out of gc
        assert learned.models.version == 1 and learned.freeze_gc and gc.get_freeze_count() > 0

        r = await api.client.get(f"/v1/workflows/{workflow_id}/proposals")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["version"] == 1 and body["runs"] == 4 and body["attempts"] == 12
        par = next(p for p in body["proposals"] if p["kind"] == "parallelize")
        # two and three each take ~50 ms after one: serial ~110 ms, in parallel ~60 ms
        assert par["gain"]["metric"] == "makespan"
        assert par["gain"]["before"] == pytest.approx(0.11, abs=0.04)
        assert 0.3 < par["gain"]["relative"] < 0.6
        assert par["evidence"]["runs"] == 4
        assert "needs" in par["diff"]

        r = await api.client.post(f"/v1/workflows/{workflow_id}/proposals/{par['id']}/accept")
        assert r.status_code == 201, r.text
        saved = r.json()
        assert saved["version"] == 2 and saved["source"] == "optimizer" and saved["note"] == par["id"]
        r = await api.client.get(f"/v1/workflows/{workflow_id}")
        steps = {s["id"]: s for s in r.json()["document"]["steps"]}
        assert not steps["three"].get("needs") or "two" not in steps["three"]["needs"]
        assert r.json()["latest_version"] == 2

        # made for version 1: accepting it again would overwrite version 2's document
        r = await api.client.post(f"/v1/workflows/{workflow_id}/proposals/{par['id']}/accept")
        assert r.status_code == 409 and r.headers["content-type"].startswith("application/problem+json")
        r = await api.client.post(f"/v1/workflows/{workflow_id}/proposals/pa-00000000/accept")
        assert r.status_code == 404 and r.json()["type"].endswith("proposal-not-found")
        r = await api.anonymous.get(f"/v1/workflows/{workflow_id}/proposals")
        assert r.status_code == 401
        r = await api.client.get("/v1/workflows/wf_nope/proposals")
        assert r.status_code == 404


async def test_engine_routes_with_the_stored_models_unless_told_not_to(tmp_path: Path) -> None:
    async with api_client(tmp_path, overrides=_overrides()) as api:
        await _history(api, runs=2)
        assert (await api.client.post("/v1/optimizer/train")).status_code == 200
    async with api_client(tmp_path, overrides=_overrides()) as api:
        router = api.app.state.services.engine.router
        assert isinstance(router, LearnedRouter) and set(router.models.actions) == {
            "svc.one", "svc.two", "svc.three"}
    async with api_client(tmp_path, overrides=_overrides(), router="default") as api:
        assert isinstance(api.app.state.services.engine.router, DefaultRouter)
        r = await api.client.post("/v1/optimizer/train", json={"incremental": True})
        assert r.status_code == 200 and r.json()["version"] == 2 and r.json()["router"] == "default"
        assert isinstance(api.app.state.services.engine.router, DefaultRouter)


async def test_accepting_a_rewrite_whose_action_can_no_longer_be_invoked_is_a_located_422(
    tmp_path: Path,
) -> None:
    # svc.one runs by its `invoke:` block alone (no invoker registered for it); the others sleep
    lookups = [{**_action("svc.one"), "invoke": {"kind": "python", "callable": "builtins:dict"}},
               _action("svc.two"), _action("svc.three")]
    overrides = {"svc.two": Sleeper(0.05), "svc.three": Sleeper(0.05)}
    async with api_client(tmp_path, overrides=overrides) as api:
        r = await api.client.post("/v1/catalogs", json={"name": "lookups", "actions": lookups})
        assert r.status_code == 201, r.text
        workflow_id = await api.create_workflow(CHAIN, catalog_id=r.json()["id"])
        for _ in range(4):
            r = await api.client.post("/v1/runs", json={"workflow_id": workflow_id})
            assert r.status_code == 201, r.text
            await api.wait_for_state(r.json()["id"], "succeeded")
        r = await api.client.get(f"/v1/workflows/{workflow_id}/proposals")
        par = next(p for p in r.json()["proposals"] if p["kind"] == "parallelize")

        # a newer upload of the catalog drops svc.one's invoke block: nothing can call it now
        without = [{k: v for k, v in lookups[0].items() if k != "invoke"}, *lookups[1:]]
        r = await api.client.post("/v1/catalogs", json={"name": "lookups", "actions": without})
        assert r.status_code == 201, r.text
        url = f"/v1/workflows/{workflow_id}/proposals/{par['id']}/accept"
        r = await api.client.post(url)
        assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
        problem = r.json()
        assert problem["type"] == "urn:overture:problem:uncallable-actions"
        assert problem["detail"] == (
            "cannot run: 1 step calls actions with no `invoke:` block, which nothing can call: step `one` "
            f"(svc.one); proposal `{par['id']}` was not accepted; nothing was saved"
        )
        [item] = problem["problems"]
        assert item["location"] == "document.steps[0].action" and item["code"] == "no_invoker"
        assert "`svc.one`" in item["message"] and "add an `invoke:` block" in item["hint"]
        # nothing saved: still version 1, the proposal still open
        r = await api.client.get(f"/v1/workflows/{workflow_id}")
        assert r.json()["latest_version"] == 1 and r.json()["document"]["steps"][2]["needs"] == ["two"]
        r = await api.client.get(f"/v1/workflows/{workflow_id}/versions")
        assert [v["version"] for v in r.json()] == [1]

        # the invoke block back (another upload): the same proposal is accepted
        r = await api.client.post("/v1/catalogs", json={"name": "lookups", "actions": lookups})
        assert r.status_code == 201, r.text
        r = await api.client.post(url)
        assert r.status_code == 201, r.text
        assert r.json()["version"] == 2 and r.json()["note"] == par["id"]
