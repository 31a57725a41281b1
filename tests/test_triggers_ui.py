"""The workflow page's Triggers tab in headless Chromium against the real app on uvicorn: the
schedule in plain English with its next fire times, the webhook's endpoint, pause and resume."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_support import CATALOG, WORKFLOW, served_app

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = Path(__file__).resolve().parent / "screenshots"

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason=f"{CHROMIUM} is missing (apt-get install chromium)")
MONDAYS = "every Monday at 09:00 (Europe/Berlin)"

DOCUMENT: dict[str, Any] = {
    **WORKFLOW, "name": "weekly-charge",
    "triggers": {"schedule": [{"cron": "0 9 * * MON", "timezone": "Europe/Berlin",
                               "inputs": {"email": "ops@example.com", "amount": 5}}],
                 "webhook": {"name": "customer-signed-up"}},
}


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


def test_the_triggers_tab_shows_schedules_and_webhooks_and_pauses_them(tmp_path: Path, page: Any) -> None:
    with served_app(tmp_path) as server:
        with httpx.Client(base_url=server.url(), headers=server.headers) as client:
            r = client.post("/v1/catalogs", json={"name": "crm", "actions": CATALOG["actions"]})
            r = client.post("/v1/workflows", json={"document": DOCUMENT, "catalog_id": r.json()["id"]})
            assert r.status_code == 201, r.text
            workflow_id = r.json()["id"]
        page.goto(server.url(f"/ui/#token={server.token}"))
        page.goto(server.url(f"/ui/#/workflows/{workflow_id}"))
        page.get_by_role("tab", name="Triggers").click()
        page.wait_for_selector("#trigger-list")
        text = page.locator("#triggers-panel").inner_text()
        assert "every Monday at 09:00 (Europe/Berlin)" in text
        assert "POST /hooks/customer-signed-up" in text
        assert "No secret configured yet: set OVERTURE_SECRET_WEBHOOK_CUSTOMER_SIGNED_UP." in text
        assert "Next:" in text and "No runs started by triggers yet." in text
        schedule = page.locator("li.trigger").first
        schedule.get_by_role("button", name=f"Pause {MONDAYS}").click()
        page.wait_for_selector("li.trigger >> text=paused")
        assert "Next:" not in page.locator("li.trigger").first.inner_text()
        SHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SHOTS / "triggers-tab.png"))
        with httpx.Client(base_url=server.url(), headers=server.headers) as client:
            out = client.get(f"/v1/workflows/{workflow_id}/triggers").json()
            assert out["schedules"][0]["paused"] is True and out["webhook"]["paused"] is False
        page.locator("li.trigger").first.get_by_role("button", name=f"Resume {MONDAYS}").click()
        page.wait_for_selector("li.trigger >> text=Next:")
