"""The web UI end to end: the real app on a real uvicorn server, the demo services behind it, and
headless Chromium (Debian's) driven by Playwright through describe → plan → edit → accept → run →
approve → history. Screenshots land in tests/screenshots/ (git-ignored)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from service.demo.catalog import write_demo_catalog
from service.demo.mail import MailServer
from service.demo.server_thread import ServerThread
from service.demo.services import DemoState, create_services_app

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parent / "screenshots"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
APPROVAL_REQUEST = ("Update the CRM, then ask a manager to approve, then provision the account and notify "
                    "the customer success team; if provisioning fails, undo the CRM update.")
TIMEOUT_MS = 20_000

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason=f"{CHROMIUM} is missing (apt-get install chromium)")


@dataclass
class Stack:
    url: str
    token: str
    """Signed in as `ui-test`, which is not among the planned approval's approvers (`manager`)."""
    manager_token: str
    state: DemoState
    mail: MailServer


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    from service.app import create_app
    from service.auth import create_token
    from service.settings import ServiceSettings

    state = DemoState(latency_scale=0.5, seed=5)
    with MailServer() as mail, ServerThread(create_services_app(state), name="demo-services") as services:
        catalog = write_demo_catalog(tmp_path / "catalog.yaml", services.url, mail.host, mail.port)
        app = create_app(ServiceSettings(data_dir=tmp_path / "data", catalogs=[str(catalog)]))
        _, token = create_token(app.state.services.store, "ui-test")
        _, manager_token = create_token(app.state.services.store, "Manager")
        with ServerThread(app, name="overture-app") as server:
            yield Stack(url=server.url, token=token, manager_token=manager_token, state=state, mail=mail)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.set_default_timeout(TIMEOUT_MS)
    page.errors = errors
    yield page
    context.close()
    # a failed API call (e.g. a 422 the test provokes) logs a console error; script errors never
    assert not [e for e in errors if "Failed to load resource" not in e], errors


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=False)


def test_describe_plan_edit_accept_run_approve_history(stack: Stack, page: Any) -> None:
    page.goto(f"{stack.url}/ui/#token={stack.token}")
    # the token left the address bar and the describe form has the focus
    page.wait_for_selector("#request:focus")
    assert "token=" not in page.url
    shot(page, "01-describe")

    page.keyboard.type(APPROVAL_REQUEST)
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("svg.graph g.node")
    nodes = page.locator("svg.graph g.node")
    assert nodes.count() == 4
    assert page.locator("svg.graph g.node[data-step=manager_approval] .badge-approval").count() == 1
    undo = page.locator("svg.graph g.node[data-step=update_account] .badge-undo text")
    assert undo.text_content() == "↶ delete_account"
    assert "Check the plan" in page.locator("h1").inner_text()
    assert page.locator("#plan-request").inner_text().startswith("“Update the CRM")
    plain = page.locator("[role=tabpanel]").inner_text()
    assert "crm.update_account" in plain and "approv" in plain.lower()
    shot(page, "02-plan")

    # keyboard: a step of the graph takes the focus; Enter opens its form with the focus in it
    page.locator("svg.graph g.node[data-step=provision_account]").focus()
    page.keyboard.press("Enter")
    page.wait_for_selector("#step-provision_account-name:focus")
    assert page.get_by_role("tab", name="Edit").get_attribute("aria-selected") == "true"

    # edit with the step form: three attempts for provisioning shows as a retry badge at once
    attempts = page.locator("#step-provision_account-retry")
    attempts.fill("3")
    attempts.press("Enter")
    attempts.blur()
    page.wait_for_selector("svg.graph g.node[data-step=provision_account] .badge-retry")
    badge = page.locator("svg.graph g.node[data-step=provision_account] .badge-retry text")
    assert badge.text_content() == "retry ×3"
    shot(page, "03-plan-edited")

    # and by instruction: the server edits the draft as it stands (the form edit is kept)
    page.locator("#instruction").fill("retry the CRM update up to 2 times")
    page.locator("#instruction").press("Enter")
    page.wait_for_selector("#change-note")
    page.wait_for_selector("svg.graph g.node[data-step=update_account] .badge-retry")
    crm_retry = page.locator("svg.graph g.node[data-step=update_account] .badge-retry text")
    assert crm_retry.text_content() == "retry ×3"
    assert page.locator("svg.graph g.node[data-step=provision_account] .badge-retry").count() == 1
    shot(page, "03b-plan-changed-by-instruction")

    page.locator("#workflow-name").fill("onboarding-with-approval")
    page.locator("#accept-button").click()
    page.wait_for_url(re.compile(r"#/workflows/wf_"))
    page.wait_for_selector("#run-form")
    assert page.locator("h1").inner_text() == "onboarding-with-approval"
    assert page.locator("svg.graph g.node[data-step=provision_account] .badge-retry").count() == 1
    shot(page, "04-workflow")

    for field, value in {"company": "Initech", "email": "ops@initech.example",
                         "channel": "#customer-success", "text": "Initech signed up"}.items():
        page.locator(f"#input-{field}").fill(value)
    page.locator("#run-button").click()
    page.wait_for_url(re.compile(r"#/runs/"))
    # the run waits for the approval; the card is there and the graph shows the waiting step
    page.wait_for_selector("[data-approval=manager_approval]")
    page.wait_for_selector("svg.graph g.node.state-waiting[data-step=manager_approval]")
    assert page.locator("svg.graph g.node.state-succeeded[data-step=update_account]").count() == 1
    assert page.locator("#live").inner_text().strip() == "live"
    shot(page, "05-run-waiting-for-approval")

    # the plan asked a manager: the card says who may decide, and `ui-test` is refused with the API's reason
    assert "Only manager may decide" in page.locator("#approvers-manager_approval").inner_text()
    page.locator("#approve-manager_approval").click()
    refusal = page.locator("#decision-status-manager_approval .error-box")
    refusal.wait_for()
    assert "`manager`" in refusal.inner_text() and "`ui-test`" in refusal.inner_text()
    assert "still pending" in refusal.inner_text()
    assert page.locator("#run-state").get_attribute("data-state") == "waiting"
    shot(page, "05b-approval-refused-not-an-approver")

    # signed in as the manager (names compare case-insensitively: the token is `Manager`), it goes on
    run_url = page.url
    page.locator("#signout").click()
    page.locator("#token").fill(stack.manager_token)
    page.keyboard.press("Enter")
    page.wait_for_selector("#request")
    page.goto(run_url)
    page.locator("#comment-manager_approval").fill("Initech is a good fit")
    page.locator("#approve-manager_approval").click()
    page.wait_for_selector("#run-state[data-state=succeeded]")
    page.wait_for_selector("svg.graph g.node.state-succeeded[data-step=notify_team]")
    assert page.locator("svg.graph g.node.state-succeeded").count() == 4
    assert page.locator("[data-approval]").count() == 0
    events = page.locator("#events").inner_text()
    assert "approval.requested" in events and "run.finished" in events

    # the decision is recorded under the token's name
    page.locator("svg.graph g.node[data-step=manager_approval]").focus()
    page.keyboard.press("Enter")
    page.wait_for_selector("#step-detail")
    assert "approved by Manager" in page.locator("#step-detail").inner_text()

    # keyboard: Tab to a step of the graph, Enter opens its attempts
    node = page.locator("svg.graph g.node[data-step=provision_account]")
    node.focus()
    page.keyboard.press("Enter")
    page.wait_for_selector("#step-detail")
    detail = page.locator("#step-detail").inner_text()
    assert "provisioning.provision_account" in detail and "tenant_id" in detail
    shot(page, "06-run-succeeded")

    page.get_by_role("link", name="Runs", exact=True).click()
    page.wait_for_selector("#runs-table tbody tr")
    row = page.locator("#runs-table tbody tr").first
    assert row.get_attribute("data-state") == "succeeded"
    assert re.search(r"\d+(\.\d+)? (ms|s)", row.inner_text())
    shot(page, "07-run-history")

    # the services were really called, with the engine's idempotency keys
    assert {c.service for c in stack.state.calls} == {"crm", "provisioning", "chat"}
    assert all(c.idempotency_key for c in stack.state.calls)


def test_reject_fails_the_run_and_undoes(stack: Stack, page: Any) -> None:
    page.goto(f"{stack.url}/ui/#token={stack.manager_token}")
    page.wait_for_selector("#request:focus")
    page.locator("#request").fill(APPROVAL_REQUEST)
    page.locator("#plan-button").click()
    page.wait_for_selector("#accept-button")
    page.locator("#accept-button").click()
    page.wait_for_selector("#run-form")
    for field, value in {"company": "Hooli", "email": "it@hooli.example", "channel": "#cs",
                         "text": "Hooli"}.items():
        page.locator(f"#input-{field}").fill(value)
    # a slow CRM (about a second): the step is seen running live, then done, without a reload
    stack.state.latency_scale = 25.0
    page.locator("#run-form").evaluate("form => form.requestSubmit()")
    page.wait_for_selector("svg.graph g.node.state-running[data-step=update_account]")
    shot(page, "08a-run-step-running")
    stack.state.latency_scale = 0.5
    page.wait_for_selector("svg.graph g.node.state-succeeded[data-step=update_account]")
    page.wait_for_selector("#reject-manager_approval")
    page.locator("#reject-manager_approval").click()
    page.wait_for_selector("#run-state[data-state=failed]")
    page.wait_for_selector("svg.graph g.node.state-undone[data-step=update_account]")
    page.wait_for_selector("#compensation")
    assert "complete" in page.locator("#compensation").inner_text()
    assert page.locator("svg.graph g.node.state-failed[data-step=manager_approval]").count() == 1
    shot(page, "08-run-rejected-compensated")
    assert [c.operation for c in stack.state.calls if c.is_undo] == ["delete_account"]


def test_problems_are_listed_where_they_happen(stack: Stack, page: Any) -> None:
    page.goto(f"{stack.url}/ui/#token={stack.token}")
    page.wait_for_selector("#request:focus")
    page.locator("#request").fill(APPROVAL_REQUEST)
    page.locator("#plan-button").click()
    page.wait_for_selector("#accept-button")
    # a typo in the document: accepting it lists the problem with its location
    page.get_by_role("tab", name="JSON").click()
    document = page.locator("#document-json")
    document.fill(document.input_value().replace('"chat.notify_team"', '"chat.notify_teams"'))
    page.get_by_role("button", name="Apply document").click()
    page.locator("#accept-button").click()
    page.wait_for_selector(".sticky-actions .error-box")
    problem = page.locator(".sticky-actions .error-box").inner_text()
    assert "steps[3].action" in problem and "chat.notify_teams" in problem
    shot(page, "11-accept-refused")

    # the run form asks the browser to check required inputs before anything is sent
    page.get_by_role("tab", name="JSON").click()
    document.fill(document.input_value().replace('"chat.notify_teams"', '"chat.notify_team"'))
    page.get_by_role("button", name="Apply document").click()
    page.locator("#accept-button").click()
    page.wait_for_selector("#run-form")
    page.locator("#run-button").click()
    assert page.locator("#input-company:invalid").count() == 1
    assert "#/workflows/" in page.url


def test_edit_an_accepted_workflow_by_instruction_and_save_a_version(stack: Stack, page: Any) -> None:
    page.goto(f"{stack.url}/ui/#token={stack.token}")
    page.wait_for_selector("#request:focus")
    page.locator("#request").fill(APPROVAL_REQUEST)
    page.locator("#plan-button").click()
    page.locator("#accept-button").click()
    page.wait_for_selector("#run-form")
    assert page.locator("#version-badge").inner_text() == "version 1"

    page.locator("#instruction").fill("remove the approval step")
    page.locator("#instruction").press("Enter")
    page.wait_for_selector("#save-version")
    assert "removed step `manager_approval`" in page.locator("[role=status].warn-box").inner_text()
    assert page.locator("svg.graph g.node[data-step=manager_approval]").count() == 0
    # a draft cannot be run until it is saved
    assert page.locator("#run-form").count() == 0
    shot(page, "12-workflow-edit-preview")

    page.locator("#save-version").click()
    page.wait_for_selector("#version-badge:text('version 2')")
    assert page.locator("svg.graph g.node").count() == 3
    page.get_by_role("tab", name="Versions").click()
    versions = page.locator("[role=tabpanel]").inner_text()
    assert "v2 document" in versions and "v1 plan" in versions


def test_graph_layers_put_parallel_branches_side_by_side(stack: Stack, page: Any) -> None:
    import httpx

    fan_out = [{"id": f"notify_{n}", "action": "chat.notify_team", "needs": ["crm"],
                "with": {"channel": f"#team-{n}", "text": "${{ steps.crm.output.account_id }}"}}
               for n in range(6)]
    document = {"name": "wide-fan-out", "steps": [
        {"id": "crm", "action": "crm.update_account", "with": {"company": "Acme", "email": "a@acme.example"},
         "retry": {"max_attempts": 3}},
        *fan_out,
        {"id": "bill", "action": "billing.setup_billing", "needs": [f"notify_{n}" for n in range(6)],
         "if": "${{ steps.crm.output.stage == 'customer' }}", "timeout_s": 20,
         "with": {"account_id": "${{ steps.crm.output.account_id }}", "tenant_id": "t",
                  "email": "a@acme.example"},
         "compensate": {"action": "billing.cancel_billing",
                        "with": {"customer_id": "${{ steps.bill.output.customer_id }}"}}},
    ]}
    created = httpx.post(f"{stack.url}/v1/workflows", json={"document": document, "catalog_id": "default"},
                         headers={"Authorization": f"Bearer {stack.token}"})
    assert created.status_code == 201, created.text
    page.goto(f"{stack.url}/ui/#token={stack.token}")
    page.wait_for_selector("#request:focus")
    page.goto(f"{stack.url}/ui/#/workflows/{created.json()['id']}")
    page.wait_for_selector("svg.graph g.node")
    rows: dict[str, list[str]] = {}
    for node in page.locator("svg.graph g.node").all():
        y = re.search(r"translate\(([\d.]+),([\d.]+)\)", node.get_attribute("transform") or "")
        assert y is not None
        rows.setdefault(y.group(2), []).append(node.get_attribute("data-step") or "")
    assert sorted(map(len, rows.values())) == [1, 1, 6]  # three layers; the six branches in one row
    assert page.locator(".band-label").text_content() == "in parallel · 6"
    assert page.locator("svg.graph path.edge-cond").count() == 6  # the condition's incoming edges are dashed
    bill = page.locator("svg.graph g.node[data-step=bill]")
    assert "node-cond" in (bill.get_attribute("class") or "")
    assert bill.locator(".badge-cond text").text_content().startswith("if steps.crm.output")
    shot(page, "13-wide-fan-out")


def test_sign_in_refuses_a_wrong_token_then_accepts_the_right_one(stack: Stack, page: Any) -> None:
    page.goto(f"{stack.url}/ui/")
    page.wait_for_selector("#token:focus")
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Shift+Tab")
    assert page.evaluate("document.activeElement.textContent") == "Runs"  # the nav comes before the form
    page.locator("#token").focus()
    page.keyboard.type("ovt_not-a-token")
    page.keyboard.press("Enter")
    page.wait_for_selector(".error-box")
    assert "not valid" in page.locator(".error-box").inner_text()
    shot(page, "00-sign-in-refused")
    page.locator("#token").fill(stack.token)
    page.keyboard.press("Enter")
    page.wait_for_selector("#request")
    assert page.locator("nav a[aria-current=page]").inner_text() == "Describe"


def test_demo_history_shows_compensation_on_a_larger_screen(tmp_path: Path, browser: Any) -> None:
    from service.demo.runner import DemoOptions, run_demo

    result, session = run_demo(DemoOptions(data_dir=tmp_path / "demo", port=0, serve=True, latency_scale=0.2),
                               lambda _: None, keep_open=True)
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    try:
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(f"{result.app_url}/ui/#token={result.token}")
        page.wait_for_selector("#request")
        page.goto(f"{result.app_url}/ui/#/runs")
        page.wait_for_selector("#runs-table tbody tr")
        assert page.locator("#runs-table tbody tr").count() == 2
        shot(page, "09-demo-history-1440")
        failed = result.runs[1].id
        page.locator(f"#runs-table tr[data-run='{failed}'] a").first.click()
        page.wait_for_selector("#compensation")
        assert page.locator("svg.graph g.node.state-undone").count() == 2
        assert page.locator("svg.graph g.node.state-failed").count() == 1
        assert "declined" in page.locator("#run-error").inner_text()
        shot(page, "10-demo-compensated-run-1440")
    finally:
        context.close()
        session.close()
