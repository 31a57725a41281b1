"""A clause whose verb nothing in the catalog does is left out with a warning, not matched on its
nouns alone ("order pizza for the team" is not a chat post, "call the customer" is not a billing
customer made); matches where the verb differs from the action's name but means it stay."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_planner_support import plan, small_catalog

from planner.offline import OfflinePlanner
from workflow.loader import load_catalog


def _actions(planner: OfflinePlanner, text: str) -> tuple[list[str], list[str]]:
    result = plan(planner, text)
    return [s.action for s in result.workflow.steps], result.warnings


def _left_out(warnings: list[str], clause: str) -> bool:
    return any(clause.lower() in w.lower() and "left out of the plan" in w for w in warnings)


@pytest.mark.parametrize(
    ("request_text", "clause", "kept"),
    [
        ("Order pizza for the team, then email the receipt to finance", "order pizza for the team",
         ["email.send_message"]),
        ("Buy lunch for the team, then post in #ops", "buy lunch for the team", ["chat.post_message"]),
        ("Order food for everyone and email the receipt to finance", "order food for everyone",
         ["email.send_message"]),
        ("When a VIP customer complains, call the customer and open a support ticket", "call the customer",
         ["support.create_ticket"]),
        ("Call the customer, then open a support ticket", "call the customer", ["support.create_ticket"]),
        ("Please call the client and then open a ticket", "call the client", ["support.create_ticket"]),
    ],
)
def test_a_verb_nothing_does_is_left_out_with_a_warning(
    bench: OfflinePlanner, request_text: str, clause: str, kept: list[str]
) -> None:
    steps, warnings = _actions(bench, request_text)
    assert steps == kept
    assert _left_out(warnings, clause), warnings


def test_the_warning_says_which_verb_and_what_came_closest(bench: OfflinePlanner) -> None:
    _, warnings = _actions(bench, "Order pizza for the team, then email the receipt to finance")
    said = [w for w in warnings if "pizza" in w]
    assert len(said) == 1
    assert '"order"' in said[0] and "chat.post_message" in said[0]


def test_a_request_of_nothing_but_such_a_clause_plans_nothing(bench: OfflinePlanner) -> None:
    from planner.offline import PlanningError

    with pytest.raises(PlanningError) as failed:
        bench.plan("Call the customer")
    assert _left_out(failed.value.warnings, "call the customer")


@pytest.mark.parametrize(
    ("request_text", "action"),
    [
        ("Invoice the customer for the upgrade", "billing.create_invoice"),
        ("Charge the card $50", "payments.charge_card"),
        ("Notify the customer that the order shipped", "email.send_message"),
        ("Tell finance the invoice is paid", "email.send_message"),
        ("Ping #ops that the invoice went out", "chat.post_message"),
        ("Let the team know in #billing", "chat.post_message"),
        ("Text the customer the tracking number", "sms.send_message"),
        ("Provision the account in eu-west", "provisioning.create_tenant"),
        ("Spin up a sandbox for Acme", "provisioning.create_tenant"),
        ("Refund the charge", "payments.refund_charge"),
        ("Take care of the refund for charge ch_1", "payments.refund_charge"),
        ("Ship the order by UPS", "shipping.create_shipment"),
        ("Reserve stock for order 991", "inventory.reserve_stock"),
        ("Put the customer on the growth plan", "billing.create_subscription"),
        ("Move the deal to closed won", "crm.update_deal_stage"),
        ("Invite the user to the tenant", "provisioning.create_user"),
        ("Hold $50 on the card", "payments.authorize_payment"),
        ("Release the hold", "payments.void_authorization"),
        ("Mark the ticket as solved", "support.close_ticket"),
        ("Turn on SSO for the tenant", "provisioning.enable_feature"),
        ("Draft a contract for Acme", "contracts.generate_contract"),
        ("Schedule a call with the customer", "calendar.create_event"),
        ("Book a kickoff call with Acme", "calendar.create_event"),
        ("Add a chat message to #ops", "chat.post_message"),
    ],
)
def test_a_verb_that_means_the_action_still_matches(
    bench: OfflinePlanner, request_text: str, action: str
) -> None:
    steps, warnings = _actions(bench, request_text)
    assert steps == [action], warnings
    assert not any("left out of the plan" in w for w in warnings)


@pytest.mark.parametrize("request_text", ["Bill the customer for 10 seats", "Sign up the customer"])
def test_billing_and_signing_up_still_plan_a_step(bench: OfflinePlanner, request_text: str) -> None:
    steps, warnings = _actions(bench, request_text)
    assert len(steps) == 1 and steps[0].startswith(("billing.", "crm.")), (steps, warnings)


def test_a_close_runner_up_that_does_what_the_verb_says_is_taken() -> None:
    # small catalog: "account" finds crm.create_account, but only the workspace action provisions
    planner = OfflinePlanner(small_catalog())
    steps, warnings = _actions(planner, "Provision the account in eu-west, then email ops@acme.example")
    assert steps == ["workspace.create_workspace", "email.send_message"], warnings


def test_a_note_is_a_note_not_the_refund_it_mentions(bench: OfflinePlanner) -> None:
    steps, _ = _actions(bench, "Note the refund on the account")
    assert steps == ["crm.add_note"]


@pytest.mark.parametrize(
    ("request_text", "approvers"),
    [
        ("Finance has to sign off before we refund the charge", ["finance"]),
        ("Get approval from finance, then refund the charge", ["finance"]),
        ("The Manager has to approve before we charge the card", ["manager"]),
        ("Legal and Finance must approve, then send the contract for signature", ["legal", "finance"]),
        ("Maria has to approve before we charge the card", ["Maria"]),
    ],
)
def test_a_team_or_role_approver_is_lower_case_and_a_name_as_written(
    bench: OfflinePlanner, request_text: str, approvers: list[str]
) -> None:
    steps = plan(bench, request_text).workflow.steps
    approval = next(s for s in steps if s.action == "core.approval")
    assert approval.with_.get("approvers") == approvers


@pytest.mark.parametrize(
    ("request_text", "prompt"),
    [
        ("The manager has to approve before we charge the card", "Approve: Charge the card?"),
        ("Get approval from finance, then refund the charge", "Approve: Refund the charge?"),
    ],
)
def test_an_approval_prompt_names_the_step_it_gates(
    bench: OfflinePlanner, request_text: str, prompt: str
) -> None:
    steps = plan(bench, request_text).workflow.steps
    approval = next(s for s in steps if s.action == "core.approval")
    assert approval.with_["prompt"] == prompt


def test_catalogs_that_differ_only_in_how_actions_are_called_plan_alike(tmp_path: Path) -> None:
    """The matcher's index is shared by catalogs with the same actions (names, descriptions,
    fields); one whose actions call other URLs is still read verb by verb, not left out."""
    from service.demo.catalog import REQUEST, write_demo_catalog

    plans = []
    for port in (1001, 1002):
        written = write_demo_catalog(tmp_path / f"c{port}.yaml", f"http://127.0.0.1:{port}", "127.0.0.1", 25)
        catalog = load_catalog(written)
        plans.append([(s.id, s.action) for s in OfflinePlanner(catalog).plan(REQUEST).workflow.steps])
    assert plans[0] == plans[1]
    assert len(plans[0]) == 5
