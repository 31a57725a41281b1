"""The run event stream over a real uvicorn server on 127.0.0.1: `text/event-stream`, `id:` = the
event's seq, live events as they happen, the stream ending after `run.finished`, and
`Last-Event-ID` resuming exactly after the last event seen."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from api_support import APPROVAL_WORKFLOW, CATALOG, served_app


async def sse_messages(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """Parse a `text/event-stream` body into {id, event, data} messages (comments skipped)."""
    message: dict[str, Any] = {}
    async for line in response.aiter_lines():
        if line == "":
            if "data" in message:
                message["data"] = json.loads(message["data"])
                yield message
            message = {}
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            message[field] = value[1:] if value.startswith(" ") else value


async def _setup(client: httpx.AsyncClient) -> str:
    r = await client.post("/v1/catalogs", json={"name": "crm", "actions": CATALOG["actions"]})
    assert r.status_code == 201, r.text
    r = await client.post("/v1/workflows", json={"document": APPROVAL_WORKFLOW, "catalog_id": r.json()["id"]})
    assert r.status_code == 201, r.text
    start = {"workflow_id": r.json()["id"], "inputs": {"email": "a@b.example"}}
    r = await client.post("/v1/runs", json=start)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def test_stream_follows_a_run_live_and_resumes_after_last_event_id(tmp_path: Path) -> None:
    with served_app(tmp_path) as server:
        async with httpx.AsyncClient(base_url=server.url(), headers=server.headers, timeout=20) as client:
            run_id = await _setup(client)
            seen: list[dict[str, Any]] = []
            async with client.stream("GET", f"/v1/runs/{run_id}/events",
                                     headers={"Accept": "text/event-stream"}) as response:
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/event-stream")
                assert response.headers["cache-control"] == "no-cache"
                async for message in sse_messages(response):
                    seen.append(message)
                    if message["event"] == "approval.requested":
                        # decided while the stream is open: what follows must arrive live
                        r = await client.post(f"/v1/runs/{run_id}/approvals/approve", json={"approved": True})
                        assert r.status_code == 200, r.text
            # the server closed the stream after run.finished
            types = [m["event"] for m in seen]
            assert types[0] == "run.started" and types[-1] == "run.finished"
            assert types.index("approval.given") > types.index("approval.requested")
            ids = [int(m["id"]) for m in seen]
            assert ids == sorted(ids) and len(set(ids)) == len(ids)
            assert all(int(m["id"]) == m["data"]["seq"] and m["data"]["run_id"] == run_id for m in seen)
            assert seen[-1]["data"]["data"]["state"] == "succeeded"

            middle = seen[len(seen) // 2]
            async with client.stream("GET", f"/v1/runs/{run_id}/events",
                                     headers={"Last-Event-ID": middle["id"]}) as response:
                resumed = [m async for m in sse_messages(response)]
            assert [m["id"] for m in resumed] == [m["id"] for m in seen if int(m["id"]) > int(middle["id"])]

            async with client.stream("GET", f"/v1/runs/{run_id}/events",
                                     params={"after": ids[-2]}) as response:
                tail = [m async for m in sse_messages(response)]
            assert [m["event"] for m in tail] == ["run.finished"]

            as_json = await client.get(f"/v1/runs/{run_id}/events", headers={"Accept": "application/json"})
            assert [e["seq"] for e in as_json.json()] == ids


async def test_several_streams_of_one_run_all_see_every_event(tmp_path: Path) -> None:
    with served_app(tmp_path) as server:
        async with httpx.AsyncClient(base_url=server.url(), headers=server.headers, timeout=20) as client:
            run_id = await _setup(client)

            async def follow() -> list[str]:
                async with client.stream("GET", f"/v1/runs/{run_id}/events") as response:
                    return [m["event"] async for m in sse_messages(response)]

            followers = [asyncio.create_task(follow()) for _ in range(3)]
            for _ in range(200):
                run = (await client.get(f"/v1/runs/{run_id}")).json()
                if run["state"] == "waiting":
                    break
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.2)
            assert not any(f.done() for f in followers)  # still open while the run waits
            r = await client.post(f"/v1/runs/{run_id}/approvals/approve", json={"approved": False})
            assert r.status_code == 200
            results = await asyncio.wait_for(asyncio.gather(*followers), timeout=15)
            assert all(r == results[0] for r in results)
            assert results[0][-1] == "run.finished" and "approval.given" in results[0]
            metrics = (await client.get("/metrics")).text
            assert 'overture_runs_finished_total{state="failed"} 1.0' in metrics
            assert "overture_event_streams 0.0" in metrics
