"""The workflow page's Suggestions tab in headless Chromium against the real app on uvicorn: an
over-serialized chain with a few runs behind it gets a parallelize proposal (predicted gain,
evidence, diff), and Accept saves it as the next version."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_support import served_app
from test_api_optimizer import CATALOG, CHAIN, _overrides

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason=f"{CHROMIUM} is missing (apt-get install chromium)")


@pytest.fixture
def page() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        context = browser.new_context(viewport={"width": 1366, "height": 900})
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.set_default_timeout(20_000)
        yield page
        browser.close()
        assert errors == []


def _finish(client: httpx.Client, run_id: str) -> None:
    deadline = time.monotonic() + 15
    while client.get(f"/v1/runs/{run_id}").json()["state"] != "succeeded":
        assert time.monotonic() < deadline, client.get(f"/v1/runs/{run_id}").json()
        time.sleep(0.02)


def test_the_suggestions_tab_lists_a_parallelize_proposal_and_accepts_it(tmp_path: Path, page: Any) -> None:
    with served_app(tmp_path, overrides=_overrides()) as server:
        with httpx.Client(base_url=server.url(), headers=server.headers) as client:
            r = client.post("/v1/catalogs", json={"name": "lookups", "actions": CATALOG["actions"]})
            r = client.post("/v1/workflows", json={"document": CHAIN, "catalog_id": r.json()["id"]})
            assert r.status_code == 201, r.text
            workflow_id = r.json()["id"]
            for _ in range(3):
                _finish(client, client.post("/v1/runs", json={"workflow_id": workflow_id}).json()["id"])
        page.goto(server.url(f"/ui/#token={server.token}"))
        page.goto(server.url(f"/ui/#/workflows/{workflow_id}"))
        page.get_by_role("tab", name="Suggestions").click()
        page.wait_for_selector("#proposal-list")
        card = page.locator("li.proposal[data-kind=parallelize]")
        text = card.inner_text()
        assert "run in parallel" in text.lower() and "makespan:" in text
        assert "Evidence: 3 runs, 9 attempts" in text
        assert "three no longer waits for two" in text
        card.get_by_role("button", name="Accept", exact=False).click()
        page.wait_for_selector("#version-badge >> text=version 2")
        with httpx.Client(base_url=server.url(), headers=server.headers) as client:
            latest = client.get(f"/v1/workflows/{workflow_id}").json()
            assert latest["latest_version"] == 2
            needs = {s["id"]: s.get("needs") or [] for s in latest["document"]["steps"]}
            assert "two" not in needs["three"]
