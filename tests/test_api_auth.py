"""Bearer tokens: every endpoint but /health refuses without one (401 problem details with
`WWW-Authenticate: Bearer`), tokens are stored hashed, `overture token create|list|revoke` work."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from api_support import api_client
from typer.testing import CliRunner

from service.cli import app as cli_app
from service.store import Store

PROBLEM = "application/problem+json"


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli_app, list(args))
    return result.exit_code, result.output


async def test_every_api_route_refuses_requests_without_a_valid_token(tmp_path: Path) -> None:
    async with api_client(tmp_path) as api:
        operations = [(method.upper(), path) for path, item in api.app.openapi()["paths"].items()
                      for method in item if path.startswith("/v1/")]
        assert len(operations) >= 18
        async with api.anonymous as anonymous:
            for method, template in operations:
                path = re.sub(r"\{[^}]+\}", "x", template)
                for headers in ({}, {"Authorization": "Bearer ovt_not_a_real_token"},
                                {"Authorization": f"Basic {api.token}"}):
                    r = await anonymous.request(method, path, headers=headers, json={})
                    assert r.status_code == 401, (method, path, headers, r.text)
                    assert r.headers["www-authenticate"].startswith("Bearer")
                    assert r.headers["content-type"] == PROBLEM
                    assert r.json()["type"] == "urn:overture:problem:unauthorized"
            health = await anonymous.get("/health")
            assert health.status_code == 200 and health.json()["status"] == "ok"
            assert (await anonymous.get("/metrics")).status_code == 401
        assert (await api.client.get("/metrics")).status_code == 200


async def test_metrics_can_be_made_public(tmp_path: Path) -> None:
    async with api_client(tmp_path, metrics_public=True) as api, api.anonymous as anonymous:
        r = await anonymous.get("/metrics")
        assert r.status_code == 200 and "overture_http_requests_total" in r.text
        assert (await anonymous.get("/v1/runs")).status_code == 401


def test_token_cli_create_list_revoke_and_the_token_is_stored_hashed(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    code, out = _cli("token", "create", "--name", "ci-bot", "--data-dir", str(data_dir))
    assert code == 0, out
    token = next(line for line in out.splitlines() if line.startswith("ovt_"))
    assert len(token) > 40

    db = (data_dir / "overture.db").read_bytes()
    assert token.encode() not in db  # only its hash is kept
    store = Store(f"sqlite:///{data_dir / 'overture.db'}")
    try:
        [row] = store.list_tokens()
        assert row.name == "ci-bot" and row.token_hash != token and len(row.token_hash) == 64
    finally:
        store.close()

    code, listed = _cli("token", "list", "--data-dir", str(data_dir))
    assert code == 0 and "ci-bot" in listed and "active" in listed
    assert token not in listed and token[:8] in listed

    code, out = _cli("token", "revoke", "ci-bot", "--data-dir", str(data_dir))
    assert code == 0 and "revoked" in out
    code, listed = _cli("token", "list", "--data-dir", str(data_dir))
    assert "revoked" in listed
    code, out = _cli("token", "revoke", "ci-bot", "--data-dir", str(data_dir))
    assert code == 1 and "no active token" in out


async def test_a_token_made_by_the_cli_works_until_it_is_revoked(tmp_path: Path) -> None:
    async with api_client(tmp_path) as api:
        data_dir = str(api.settings.data_dir)
        code, out = _cli("token", "create", "--name", "ops", "--data-dir", data_dir)
        assert code == 0, out
        token = next(line for line in out.splitlines() if line.startswith("ovt_"))
        transport = httpx.ASGITransport(app=api.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test",
                                     headers={"Authorization": f"Bearer {token}"}) as client:
            assert (await client.get("/v1/catalogs")).status_code == 200
            code, out = _cli("token", "revoke", "ops", "--data-dir", data_dir)
            assert code == 0, out
            r = await client.get("/v1/catalogs")
            assert r.status_code == 401 and "revoked" in r.json()["detail"]
        assert (await api.client.get("/v1/catalogs")).status_code == 200  # other tokens still work
