"""Catalogs through the real app: upload as data or YAML/JSON text, located errors, list, show, delete."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from api_support import CATALOG, WORKFLOW, api_client

PROBLEM = "application/problem+json"


async def test_upload_as_data_then_list_show_and_delete(tmp_path: Path) -> None:
    async with api_client(tmp_path) as api:
        r = await api.client.post("/v1/catalogs", json={"name": "crm", "actions": CATALOG["actions"]})
        assert r.status_code == 201
        body = r.json()
        assert r.headers["location"] == f"/v1/catalogs/{body['id']}"
        assert body["action_count"] == 3
        assert [a["name"] for a in body["actions"]] == [a["name"] for a in CATALOG["actions"]]

        listed = (await api.client.get("/v1/catalogs")).json()
        assert [c["id"] for c in listed] == [body["id"]]
        assert "actions" not in listed[0]

        shown = (await api.client.get(f"/v1/catalogs/{body['id']}")).json()
        assert shown["actions"][0]["invoke"]["kind"] == "http", shown

        assert (await api.client.delete(f"/v1/catalogs/{body['id']}")).status_code == 204
        gone = await api.client.get(f"/v1/catalogs/{body['id']}")
        assert gone.status_code == 404
        assert gone.headers["content-type"] == PROBLEM
        assert gone.json()["type"] == "urn:overture:problem:catalog-not-found"


async def test_upload_yaml_and_json_text(tmp_path: Path) -> None:
    async with api_client(tmp_path) as api:
        as_yaml = yaml.safe_dump(CATALOG, sort_keys=False)
        r = await api.client.post("/v1/catalogs", json={"name": "y", "content": as_yaml})
        assert r.status_code == 201, r.text
        r = await api.client.post("/v1/catalogs", json={"name": "j", "content": json.dumps(CATALOG),
                                                        "format": "json"})
        assert r.status_code == 201, r.text
        assert r.json()["action_count"] == 3


async def test_bad_catalogs_report_every_problem_with_its_location(tmp_path: Path) -> None:
    async with api_client(tmp_path) as api:
        broken = {"name": "bad", "actions": [
            {"name": "ok.action"},
            {"name": "bad name!", "descripton": "typo"},
            {"name": "x.y", "invoke": {"kind": "http", "method": "FETCH", "url": "http://x"}},
        ]}
        r = await api.client.post("/v1/catalogs", json=broken)
        assert r.status_code == 422
        assert r.headers["content-type"] == PROBLEM
        problem = r.json()
        assert problem["status"] == 422 and problem["type"] == "urn:overture:problem:invalid-document"
        locations = {p["location"] for p in problem["problems"]}
        assert "actions[1].name" in locations
        assert "actions[1].descripton" in locations
        assert "actions[2].invoke.method" in locations

        r = await api.client.post("/v1/catalogs", json={"name": "bad", "content": "actions: [\n  - {name: "})
        assert r.status_code == 422
        assert "not valid YAML" in r.json()["detail"]

        r = await api.client.post("/v1/catalogs", json={"name": "both", "content": "actions: []",
                                                        "actions": []})
        assert r.status_code == 422
        assert "exactly one of" in r.json()["problems"][0]["message"]


async def test_a_catalog_in_use_cannot_be_deleted(tmp_path: Path) -> None:
    async with api_client(tmp_path) as api:
        catalog_id = await api.upload_catalog()
        workflow_id = await api.create_workflow(WORKFLOW, catalog_id)
        r = await api.client.delete(f"/v1/catalogs/{catalog_id}")
        assert r.status_code == 409
        assert workflow_id in r.json()["detail"]


async def test_serve_catalog_option_becomes_the_default_catalog(tmp_path: Path) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(CATALOG), encoding="utf-8")
    async with api_client(tmp_path, catalogs=[str(path)]) as api:
        r = await api.client.get("/v1/catalogs/default")
        assert r.status_code == 200
        assert r.json()["source"] == str(path)
        r = await api.client.post("/v1/workflows", json={"document": WORKFLOW})  # catalog_id defaults
        assert r.status_code == 201, r.text
        assert r.json()["catalog_id"] == "default"
