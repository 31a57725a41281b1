"""The run view's approval card says whether the signed-in token may decide (GET /v1/me: its name
and roles against the approvers), and a token holding the approvers' role decides from it, the
decision recorded under the person's name. The real app over HTTP, headless Chromium."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import test_ui
from test_ui import APPROVAL_REQUEST, Stack

from service.auth import create_token
from service.store import Store

# the UI tests' fixtures: the app with the demo services on 127.0.0.1, the browser, a page
stack, browser, page = test_ui.stack, test_ui.browser, test_ui.page
pytestmark = test_ui.pytestmark

INPUTS = {"company": "Initech", "email": "ops@initech.example", "channel": "#cs", "text": "Initech signed up"}


def _waiting_run(stack: Stack) -> str:
    """The planned manager approval, started and waiting (through the API, as the UI would)."""
    headers = {"Authorization": f"Bearer {stack.token}"}
    with httpx.Client(base_url=stack.url, headers=headers, timeout=30) as client:
        plan = client.post("/v1/plans", json={"request": APPROVAL_REQUEST}).json()
        workflow = client.post("/v1/workflows", json={"plan_id": plan["id"]}).json()
        r = client.post("/v1/runs", json={"workflow_id": workflow["id"], "inputs": INPUTS})
        assert r.status_code == 201, r.text
        return str(r.json()["id"])


def _card_for(page: Any, stack: Stack, token: str, run_id: str) -> str:
    """The approval card's who-may-decide line, signed in with `token`."""
    page.goto(f"{stack.url}/ui/#/runs/{run_id}")
    page.evaluate("token => localStorage.setItem('overture.token', token)", token)
    page.reload()
    page.wait_for_selector("[data-approval=manager_approval]")
    return str(page.locator("#approvers-manager_approval").inner_text())


def test_the_card_says_whether_the_signed_in_token_may_decide(
    stack: Stack, page: Any, tmp_path: Path
) -> None:
    store = Store(f"sqlite:///{tmp_path / 'data' / 'overture.db'}")  # the stack's own database
    try:
        _, alice = create_token(store, "alice", ["finance-leads", "Manager"])
        _, owner = create_token(store, "owner", ["*"])
    finally:
        store.close()
    run_id = _waiting_run(stack)

    card = _card_for(page, stack, stack.token, run_id)
    assert card.startswith("Only manager may decide; you may not: signed in as ui-test (no roles).")
    assert "overture token create --name NAME --role manager" in card
    assert _card_for(page, stack, owner, run_id) == (
        "Only manager may decide; you (owner) may decide any approval (role *)."
    )
    assert (
        _card_for(page, stack, alice, run_id) == "Only manager may decide; you may, as alice (role manager)."
    )

    page.locator("#approve-manager_approval").click()
    page.wait_for_selector("#run-state[data-state=succeeded]")
    page.locator("svg.graph g.node[data-step=manager_approval]").focus()
    page.keyboard.press("Enter")
    page.wait_for_selector("#step-detail")
    assert "approved by alice (as manager)" in page.locator("#step-detail").inner_text()
    events = page.locator("#events").inner_text()
    assert "approval.given · manager_approval · approved by alice (as manager)" in events
