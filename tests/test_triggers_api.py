"""Schedules inside the real app (lifespan, engine, scheduler, SQLite files) on a ManualClock: the
trigger API's next fire times, fires that start linked runs, a restart of the service that neither
misses nor doubles, pausing and resuming through the API, a fire whose inputs do not fit, and a
schedule whose actions nothing can invoke (not created; failed once and paused when the catalog
changed since; not resumed until fixed)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from api_support import CATALOG, WORKFLOW, default_overrides, settings_for
from fastapi import FastAPI

from runtime.clock import ManualClock
from service.app import create_app
from service.auth import create_token

BERLIN = ZoneInfo("Europe/Berlin")
DAILY = {"cron": "0 9 * * *", "timezone": "Europe/Berlin",
         "inputs": {"email": "digest@example.com", "amount": 0}}
SCHEDULED: dict[str, Any] = {**WORKFLOW, "name": "daily-charge", "triggers": {"schedule": [DAILY]}}


def berlin(day: int, hour: int, minute: int = 0, second: int = 0) -> float:
    return datetime(2030, 1, day, hour, minute, second, tzinfo=BERLIN).timestamp()


@dataclass
class Service:
    app: FastAPI
    client: httpx.AsyncClient
    clock: ManualClock

    async def at(self, when: float) -> None:
        """Move the clock and let the scheduler finish a pass at that time."""
        self.clock.set_time(when)
        await self.app.state.triggers.scheduler.tick()

    async def fires(self, workflow_id: str) -> list[dict[str, Any]]:
        r = await self.client.get(f"/v1/workflows/{workflow_id}/fires")
        assert r.status_code == 200, r.text
        return list(r.json())

    async def runs_of(self, workflow_id: str, count: int) -> list[dict[str, Any]]:
        """The workflow's runs, once there are `count` of them (the engine starts them in the background)."""
        for _ in range(300):
            r = await self.client.get("/v1/runs", params={"workflow_id": workflow_id})
            runs: list[dict[str, Any]] = r.json()
            if len(runs) >= count:
                return runs
            await asyncio.sleep(0.01)
        return runs


@asynccontextmanager
async def service(tmp_path: Path, clock: ManualClock, overrides: dict[str, Any] | None = None
                  ) -> AsyncIterator[Service]:
    app = create_app(settings_for(tmp_path), clock=clock,
                     invoker_overrides=default_overrides() if overrides is None else overrides)
    async with app.router.lifespan_context(app):
        _, token = create_token(app.state.services.store, "tests")
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test",
                                     headers={"Authorization": f"Bearer {token}"}) as client:
            yield Service(app, client, clock)


async def create(svc: Service, document: dict[str, Any] = SCHEDULED) -> str:
    r = await svc.client.post("/v1/catalogs", json={"name": "crm", "actions": CATALOG["actions"]})
    r = await svc.client.post("/v1/workflows", json={"document": document, "catalog_id": r.json()["id"]})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def test_the_trigger_api_lists_schedules_with_their_next_fire_times(tmp_path: Path) -> None:
    clock = ManualClock(berlin(7, 8, 0))
    async with service(tmp_path, clock) as svc:
        workflow_id = await create(svc)
        r = await svc.client.get(f"/v1/workflows/{workflow_id}/triggers")
        assert r.status_code == 200, r.text
        out = r.json()
        [schedule] = out["schedules"]
        assert schedule["cron"] == "0 9 * * *" and schedule["timezone"] == "Europe/Berlin"
        assert schedule["description"] == "every day at 09:00 (Europe/Berlin)"
        assert schedule["next_fires"][:2] == ["2030-01-07T08:00:00Z", "2030-01-08T08:00:00Z"]
        assert len(schedule["next_fires"]) == 5 and schedule["paused"] is False
        assert out["webhook"] is None and out["description"].startswith("Runs by itself every day")
        r = await svc.client.post(f"/v1/workflows/{workflow_id}/triggers/schedule-nope/pause")
        assert r.status_code == 404 and schedule["id"] in r.json()["detail"]
        r = await svc.client.get("/v1/workflows/wf_missing/triggers")
        assert r.status_code == 404


async def test_a_schedule_fires_runs_of_its_workflow_across_a_service_restart(tmp_path: Path) -> None:
    clock = ManualClock(berlin(7, 8, 0))
    async with service(tmp_path, clock) as svc:
        workflow_id = await create(svc)
        await svc.at(berlin(7, 8, 30))                  # the scheduler first sees the trigger
        await svc.at(berlin(7, 9, 0))
        [run] = await svc.runs_of(workflow_id, 1)
        [fire] = await svc.fires(workflow_id)
        assert fire["run_id"] == run["id"] and fire["scheduled_at"] == "2030-01-07T08:00:00Z"
        await svc.at(berlin(7, 9, 0, 20))
    clock.set_time(berlin(7, 9, 0, 40))                 # a restart, 40 s after the fire
    async with service(tmp_path, clock) as svc:
        await svc.at(berlin(7, 9, 0, 45))
        assert len(await svc.fires(workflow_id)) == 1
        await svc.at(berlin(8, 9, 0))
        runs = await svc.runs_of(workflow_id, 2)
        assert len(runs) == 2 and len(await svc.fires(workflow_id)) == 2
        r = await svc.client.get(f"/v1/runs/{runs[0]['id']}")
        assert r.json()["inputs"] == DAILY["inputs"]


async def test_pausing_and_resuming_a_schedule_through_the_api(tmp_path: Path) -> None:
    clock = ManualClock(berlin(7, 8, 0))
    async with service(tmp_path, clock) as svc:
        workflow_id = await create(svc)
        await svc.at(berlin(7, 8, 30))
        r = await svc.client.post(f"/v1/workflows/{workflow_id}/triggers/all/pause")
        assert r.status_code == 200, r.text
        [schedule] = r.json()["schedules"]
        assert schedule["paused"] is True and schedule["next_fires"] == []
        await svc.at(berlin(7, 9, 0))
        await svc.at(berlin(8, 9, 0))
        assert await svc.fires(workflow_id) == []
        r = await svc.client.post(f"/v1/workflows/{workflow_id}/triggers/{schedule['id']}/resume")
        assert r.json()["schedules"][0]["paused"] is False
        await svc.at(berlin(8, 10, 0))                  # the paused days are not caught up
        assert await svc.fires(workflow_id) == []
        await svc.at(berlin(9, 9, 0))
        [fire] = await svc.fires(workflow_id)
        assert fire["scheduled_at"] == "2030-01-09T08:00:00Z"


async def test_a_schedule_whose_inputs_do_not_fit_is_refused_before_it_can_fire(tmp_path: Path) -> None:
    broken = {**SCHEDULED, "triggers": {"schedule": [{**DAILY, "inputs": {"email": "x@example.com"}}]}}
    clock = ManualClock(berlin(7, 8, 0))
    async with service(tmp_path, clock) as svc:
        r = await svc.client.post("/v1/catalogs", json={"name": "crm", "actions": CATALOG["actions"]})
        r = await svc.client.post("/v1/workflows", json={"document": broken, "catalog_id": r.json()["id"]})
        assert r.status_code == 422
        assert [p["location"] for p in r.json()["problems"]] == ["document.triggers.schedule[0].inputs"]
        await svc.at(berlin(7, 9, 0))
        r = await svc.client.get("/v1/runs")
        assert r.json() == []


def _billing(invoke: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The test catalog's actions, `billing.charge_card` with `invoke` (none: nothing can call it)."""
    charge = {key: value for key, value in CATALOG["actions"][2].items() if key != "invoke"}
    return [{**charge, **({"invoke": invoke} if invoke else {})}]


async def test_a_schedule_on_uncallable_actions_fails_once_pauses_and_resumes_once_fixed(tmp_path: Path
                                                                                          ) -> None:
    crm_only = {name: recorder for name, recorder in default_overrides().items() if name.startswith("crm.")}
    clock = ManualClock(berlin(7, 8, 0))
    async with service(tmp_path, clock, crm_only) as svc:
        r = await svc.client.post("/v1/catalogs", json={"name": "crm", "actions": CATALOG["actions"]})
        full_id = r.json()["id"]
        r = await svc.client.post("/v1/catalogs", json={"name": "billing", "actions": _billing(None)})
        r = await svc.client.post("/v1/workflows", json={"document": SCHEDULED, "catalog_id": full_id})
        assert r.status_code == 422, r.text                 # the newer upload's charge has no invoke:
        assert r.json()["type"] == "urn:overture:problem:uncallable-actions"
        assert [p["location"] for p in r.json()["problems"]] == ["document.steps[1].action"]

        r = await svc.client.post("/v1/catalogs", json={"name": "billing", "actions": CATALOG["actions"][2:]})
        workflow_id = await create(svc)                     # callable now: created
        r = await svc.client.post("/v1/catalogs", json={"name": "billing", "actions": _billing(None)})
        await svc.at(berlin(7, 8, 30))
        await svc.at(berlin(7, 9, 0))
        [fire] = await svc.fires(workflow_id)
        assert fire["state"] == "failed" and fire["run_id"] is None
        assert "billing.charge_card at workflow.steps[1].action" in fire["error"]
        assert "paused" in fire["error"]
        r = await svc.client.get(f"/v1/workflows/{workflow_id}/triggers")
        [schedule] = r.json()["schedules"]
        assert schedule["paused"] is True and schedule["paused_by"] == "overture: the workflow cannot run"
        await svc.at(berlin(8, 9, 0))                       # recorded once, not at every fire
        assert len(await svc.fires(workflow_id)) == 1
        assert (await svc.client.get("/v1/runs")).json() == []

        r = await svc.client.post(f"/v1/workflows/{workflow_id}/triggers/all/resume")
        assert r.status_code == 422, r.text
        assert [p["location"] for p in r.json()["problems"]] == ["workflow.steps[1].action"]
        assert "nothing was resumed" in r.json()["detail"]
        r = await svc.client.get(f"/v1/workflows/{workflow_id}/triggers")
        assert r.json()["schedules"][0]["paused"] is True

        fixed = _billing({"kind": "python", "callable": "builtins:dict"})  # answers with its inputs
        r = await svc.client.post("/v1/catalogs", json={"name": "billing", "actions": fixed})
        r = await svc.client.post(f"/v1/workflows/{workflow_id}/triggers/all/resume")
        assert r.status_code == 200, r.text
        await svc.at(berlin(9, 9, 0))
        [run] = await svc.runs_of(workflow_id, 1)
        fires = await svc.fires(workflow_id)
        assert [f["state"] for f in fires] == ["started", "failed"] and fires[0]["run_id"] == run["id"]
