"""The service on PostgreSQL (`--database-url`): its tables and the journal in one fresh database,
through a whole catalog → workflow → run → approval → events round trip."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_support import APPROVAL_WORKFLOW, api_client

ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    psycopg = pytest.importorskip("psycopg")
    name = f"overture_api_{secrets.token_hex(4)}"
    try:
        with psycopg.connect(ADMIN, autocommit=True, connect_timeout=2) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL on 127.0.0.1:5432 is not reachable: {exc}")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_round_trip_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    async with api_client(tmp_path, database_url=postgres_url) as api:
        assert api.app.state.services.store.url.startswith("postgresql")
        workflow_id = await api.create_workflow(APPROVAL_WORKFLOW)
        run = (await api.client.post("/v1/runs", json={"workflow_id": workflow_id,
                                                       "inputs": {"email": "pg@b.example"}})).json()
        await api.wait_for_state(run["id"], "waiting")
        r = await api.client.post(f"/v1/runs/{run['id']}/approvals/approve", json={"approved": True})
        assert r.status_code == 200, r.text
        done = await api.wait_for_state(run["id"], "succeeded", "failed")
        assert done["state"] == "succeeded"
        events = (await api.client.get(f"/v1/runs/{run['id']}/events",
                                       headers={"Accept": "application/json"})).json()
        assert events[0]["type"] == "run.started" and events[-1]["type"] == "run.finished"
        listed = (await api.client.get("/v1/runs", params={"workflow_id": workflow_id})).json()
        assert [r["id"] for r in listed] == [run["id"]]
    assert not (tmp_path / "service" / "journal.db").exists()  # nothing went to SQLite
