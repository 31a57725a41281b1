"""The offline planner on messages to people ("notify the customer by email", "text the
customer"), on steps said after an approval's "before we ..." / "prior to ..." tail, on numeric
conditions said as percentages, counts and amounts, and on the approvers an approval names."""

from __future__ import annotations

import pytest
from test_planner_support import (
    boolean_inputs,
    depends,
    plan,
    run_inputs,
    small_catalog,
    step_of,
)

from planner.matching import ActionMatcher
from planner.offline import OfflinePlanner
from workflow.document import Workflow

_EMAIL = "email.send_message"


def _order(wf: Workflow) -> list[str]:
    """The plan's actions along its dependency chain (the plan must be one chain)."""
    steps = {s.id: s for s in wf.steps}
    heads = [s for s in wf.steps if not s.needs]
    assert len(heads) == 1, [(s.id, s.needs) for s in wf.steps]
    chain = [heads[0]]
    while True:
        nxt = [s for s in wf.steps if chain[-1].id in (s.needs or [])]
        if not nxt:
            break
        assert len(nxt) == 1, [(s.id, s.needs) for s in wf.steps]
        chain.append(nxt[0])
    assert len(chain) == len(steps), [(s.id, s.needs) for s in wf.steps]
    return [s.action for s in chain]


# -- the person told is not the thing acted on


@pytest.mark.parametrize(
    ("request_text", "action"),
    [
        ("Refund charge ch_1, then notify the customer by email", "email.send_message"),
        ("Refund charge ch_1, then inform the customer via email", "email.send_message"),
        ("Refund charge ch_1 and email the customer", "email.send_message"),
        ("Refund charge ch_1, then email the customer the receipt", "email.send_message"),
        ("Refund charge ch_1, then tell the customer", "email.send_message"),
        ("Refund charge ch_1, then let the customer know", "email.send_message"),
        ("Refund charge ch_1, then notify the client", "email.send_message"),
        ("Refund charge ch_1, then warn the account owner", "email.send_message"),
        ("Refund charge ch_1, then thank the customer", "email.send_message"),
        ("Refund charge ch_1, then remind the customer to pay", "email.send_message"),
        ("Refund charge ch_1, then text the customer", "sms.send_message"),
        ("Refund charge ch_1, then send the customer an SMS", "sms.send_message"),
        ("Refund charge ch_1, then notify the buyer by text", "sms.send_message"),
        ("Refund charge ch_1, then email the customer the invoice", "email.send_message"),
        ("Refund charge ch_1, then email the invoice to the customer", "email.send_message"),
        ("Refund charge ch_1, then ping #ops on Slack", "chat.post_message"),
        ("Refund charge ch_1, then let #ops know", "chat.post_message"),
        ("Refund charge ch_1, then tell the team in chat", "chat.post_message"),
    ],
)
def test_a_message_verb_picks_a_messaging_action_not_the_persons_record(
    bench: OfflinePlanner, request_text: str, action: str
) -> None:
    wf = plan(bench, request_text).workflow
    assert [s.action for s in wf.steps] == ["payments.refund_charge", action]
    assert depends(wf, step_of(wf, action), step_of(wf, "payments.refund_charge"))


def test_refund_request_with_finance_approval_notifies_by_email(bench: OfflinePlanner) -> None:
    wf = plan(
        bench,
        "When a refund is requested, get approval from finance, then refund the payment and notify "
        "the customer by email",
    ).workflow
    assert "billing.create_customer" not in [s.action for s in wf.steps]
    assert _order(wf) == ["core.approval", "payments.refund_charge", "email.send_message"]


@pytest.mark.parametrize(
    "request_text",
    ["Create the customer in billing", "Add a new billing customer for Acme", "Delete the customer"],
)
def test_a_person_after_a_record_verb_still_names_the_record(
    bench: OfflinePlanner, request_text: str
) -> None:
    wf = plan(bench, request_text).workflow
    assert [s.action.split(".")[0] for s in wf.steps] == ["billing"]


@pytest.mark.parametrize(
    ("text", "action"),
    [
        ("notify the owner by email", "email.send_message"),
        ("tell the owner", "email.send_message"),
        ("send the owner an SMS", "sms.send_message"),
        ("let #ops know", "chat.post_message"),
    ],
)
def test_matcher_reads_the_recipient_as_a_recipient(text: str, action: str) -> None:
    ranked = ActionMatcher(small_catalog()).rank(text, 3, verb=text)
    assert ranked[0][0].name == action, ranked


# -- "before we ...", "prior to ...", "ahead of ...": the step said there comes next


@pytest.mark.parametrize(
    "request_text",
    [
        "The manager has to approve before we charge the card, then email the receipt",
        "The manager must approve before charging the card, then email the receipt",
        "The manager needs to approve before you charge the card, then email the receipt",
        "Get the manager's approval prior to charging the card, then email the receipt",
        "Get the manager's approval ahead of charging the card, and then email the receipt",
        "Before we charge the card, the manager has to approve; then email the receipt",
        "Prior to charging the card, get the manager's approval. Then email the receipt",
        "Only after the manager approves, charge the card, then email the receipt",
        "Charge the card only after the manager approves, then email the receipt",
        "Once the manager approves, charge the card and then email the receipt",
    ],
)
def test_approval_then_the_step_said_after_before_then_the_rest(
    bench: OfflinePlanner, request_text: str
) -> None:
    wf = plan(bench, request_text).workflow
    assert _order(wf) == ["core.approval", "payments.charge_card", "email.send_message"]
    approval = step_of(wf, "core.approval")
    assert approval.with_.get("approvers") == ["manager"]
    assert step_of(wf, "payments.charge_card").if_ is None


@pytest.mark.parametrize(
    ("request_text", "expected"),
    [
        (
            "Finance has to sign off ahead of the refund, then email the customer",
            ["core.approval", "payments.refund_charge", "email.send_message"],
        ),
        ("Charge the card before we book the shipment", ["payments.charge_card", "shipping.create_shipment"]),
        (
            "Open a support ticket before they close the deal, then post in #sales",
            ["support.create_ticket", "crm.update_deal_stage", "chat.post_message"],
        ),
    ],
)
def test_a_before_tail_names_the_next_step(
    bench: OfflinePlanner, request_text: str, expected: list[str]
) -> None:
    assert _order(plan(bench, request_text).workflow) == expected


@pytest.mark.parametrize(
    "request_text",
    [
        "Get the manager's approval before we go further, then charge the card",
        "The manager has to approve before anything goes out, then charge the card",
        "The manager must approve before any money moves; then charge the card",
    ],
)
def test_a_before_tail_that_names_no_step_is_filler_and_keeps_what_follows(
    bench: OfflinePlanner, request_text: str
) -> None:
    wf = plan(bench, request_text).workflow
    assert _order(wf) == ["core.approval", "payments.charge_card"]


# -- who approves, with or without a limit


@pytest.mark.parametrize(
    ("request_text", "approver"),
    [
        ("Get approval from finance, then refund charge ch_1", "finance"),
        ("Ask finance to approve, then refund charge ch_1", "finance"),
        ("Ask the sales director to approve, then refund charge ch_1", "sales director"),
        ("Get the CFO's sign-off, then refund charge ch_1", "CFO"),
        ("Get VP approval, then refund charge ch_1", "VP"),
        ("Have the CFO sign off, then refund charge ch_1", "CFO"),
        ("The account director must approve, then refund charge ch_1", "account director"),
    ],
)
def test_an_approval_without_a_limit_names_its_approver(
    bench: OfflinePlanner, request_text: str, approver: str
) -> None:
    wf = plan(bench, request_text).workflow
    assert _order(wf) == ["core.approval", "payments.refund_charge"]
    assert step_of(wf, "core.approval").with_.get("approvers") == [approver]


@pytest.mark.parametrize(
    "request_text",
    [
        "Get approval, then refund charge ch_1",
        "Get a manual approval, then refund charge ch_1",
        "Get their approval, then refund charge ch_1",
    ],
)
def test_an_approval_naming_no_one_has_no_approvers(bench: OfflinePlanner, request_text: str) -> None:
    wf = plan(bench, request_text).workflow
    assert "approvers" not in step_of(wf, "core.approval").with_


def test_limit_and_no_limit_approvals_name_approvers_alike(bench: OfflinePlanner) -> None:
    limited = plan(bench, "Get approval from finance for refunds over $500, then refund charge ch_1").workflow
    plain = plan(bench, "Get approval from finance, then refund charge ch_1").workflow
    assert step_of(limited, "core.approval").with_.get("approvers") == ["finance"]
    assert step_of(plain, "core.approval").with_.get("approvers") == ["finance"]


# -- numbers in conditions: percentages, counts, amounts no step takes


@pytest.mark.parametrize(
    ("request_text", "name", "kind", "expression"),
    [
        (
            "If the discount is more than 20%, ask the sales director to approve, then update the deal stage "
            "in the CRM",
            "discount",
            "number",
            "inputs.discount > 20",
        ),
        (
            "When the discount exceeds 15 percent, the VP must approve; then update the deal stage",
            "discount",
            "number",
            "inputs.discount > 15",
        ),
        (
            "Get approval from the sales director for discounts over 25%, then update the deal stage",
            "discount",
            "number",
            "inputs.discount > 25",
        ),
        (
            "If the deal has more than 10 seats, get VP approval, then update the deal stage",
            "seats",
            "integer",
            "inputs.seats > 10",
        ),
        (
            "If the order is over $500, ask the manager to approve, then email the receipt",
            "order_amount",
            "number",
            "inputs.order_amount > 500",
        ),
        (
            "If the order total is at least 5000 dollars, get approval from finance, then email the receipt",
            "order_total",
            "number",
            "inputs.order_total >= 5000",
        ),
    ],
)
def test_a_number_in_a_condition_is_a_number_input_compared_in_the_if(
    bench: OfflinePlanner, request_text: str, name: str, kind: str, expression: str
) -> None:
    wf = plan(bench, request_text).workflow
    assert boolean_inputs(wf) == []
    inputs = run_inputs(wf)
    assert inputs[name]["type"] == kind, inputs
    approval = step_of(wf, "core.approval")
    assert approval.if_ == f"${{{{ {expression} }}}}"
    later = [s for s in wf.steps if s.action != "core.approval"]
    assert len(later) == 1 and later[0].if_ is None and depends(wf, later[0], approval)


def test_a_percentage_input_says_it_is_a_percentage(bench: OfflinePlanner) -> None:
    wf = plan(
        bench,
        "If the discount is more than 20%, ask the sales director to approve, then update the deal stage "
        "in the CRM",
    ).workflow
    discount = run_inputs(wf)["discount"]
    assert "percent" in discount["description"]
    approval = step_of(wf, "core.approval")
    assert approval.with_.get("approvers") == ["sales director"]
    assert _order(wf) == ["core.approval", "crm.update_deal_stage"]


def test_two_comparisons_make_two_number_inputs(bench: OfflinePlanner) -> None:
    said = "If the deal has more than 10 seats and the discount is over 5%, get VP approval"
    wf = plan(bench, said).workflow
    assert step_of(wf, "core.approval").if_ == "${{ inputs.seats > 10 and inputs.discount > 5 }}"
    assert run_inputs(wf)["seats"]["type"] == "integer"
    assert run_inputs(wf)["discount"]["type"] == "number"


def test_a_comparison_beside_a_fact_keeps_its_number(bench: OfflinePlanner) -> None:
    said = "If the customer is on the Enterprise plan and the discount is over 5%, get VP approval"
    wf = plan(bench, said).workflow
    expression = step_of(wf, "core.approval").if_ or ""
    assert "inputs.discount > 5" in expression and " and inputs." in expression
    assert run_inputs(wf)["discount"]["type"] == "number"
    assert len(boolean_inputs(wf)) == 1


def test_an_amount_a_step_takes_is_still_that_steps_input(bench: OfflinePlanner) -> None:
    wf = plan(bench, "If the order is over $5,000, get the manager's approval, then charge the card").workflow
    approval = step_of(wf, "core.approval")
    assert approval.if_ == "${{ inputs.amount > 500000 }}"  # the charge's amount, in cents
    assert step_of(wf, "payments.charge_card").with_["amount"] == "${{ inputs.amount }}"


def test_two_approvers_named_together(bench: OfflinePlanner) -> None:
    wf = plan(bench, "Get approval from finance and legal, then refund charge ch_1").workflow
    assert step_of(wf, "core.approval").with_.get("approvers") == ["finance", "legal"]


@pytest.mark.parametrize(
    ("request_text", "action", "expression"),
    [
        (
            "Ask the manager to approve before charging the card for more than $1,000",
            "payments.charge_card",
            "${{ inputs.amount > 100000 }}",
        ),
        (
            "The manager must approve before we refund anything over $500, then email the customer",
            "payments.refund_charge",
            "${{ inputs.amount > 50000 }}",
        ),
    ],
)
def test_a_limit_in_a_before_tail_is_the_approvals_condition(
    bench: OfflinePlanner, request_text: str, action: str, expression: str
) -> None:
    wf = plan(bench, request_text).workflow
    approval, step = step_of(wf, "core.approval"), step_of(wf, action)
    assert approval.if_ == expression
    assert approval.with_.get("approvers") == ["manager"]
    assert step.if_ is None and depends(wf, step, approval)
    assert boolean_inputs(wf) == []


@pytest.mark.parametrize(
    ("request_text", "expected"),
    [
        ("Update the deal stage before the end of the quarter", ["crm.update_deal_stage"]),
        ("Close the ticket before they notice", ["support.close_ticket"]),
        ("Charge the card before we go live, then email the receipt", ["payments.charge_card", _EMAIL]),
        ("Charge the card before I leave, then email the receipt", ["payments.charge_card", _EMAIL]),
    ],
)
def test_a_before_tail_about_a_time_or_a_person_adds_no_step(
    bench: OfflinePlanner, request_text: str, expected: list[str]
) -> None:
    assert _order(plan(bench, request_text).workflow) == expected


@pytest.mark.parametrize(
    ("request_text", "name", "expression"),
    [
        ("If the customer has over 50 users, open a ticket", "users", "inputs.users > 50"),
        (
            "If the invoice is overdue by more than 30 days, open a ticket",
            "days_overdue",
            "inputs.days_overdue > 30",
        ),
        ("If more than 5 items are out of stock, post in #ops", "items", "inputs.items > 5"),
    ],
)
def test_a_count_is_an_integer_input(
    bench: OfflinePlanner, request_text: str, name: str, expression: str
) -> None:
    wf = plan(bench, request_text).workflow
    assert boolean_inputs(wf) == []
    assert run_inputs(wf)[name]["type"] == "integer"
    assert [s.if_ for s in wf.steps] == [f"${{{{ {expression} }}}}"]


# -- "once/when <someone> approves, ...": an approval, not an event or a lost clause


@pytest.mark.parametrize(
    ("request_text", "approver"),
    [
        ("When finance signs off, refund charge ch_1, then notify the customer", "finance"),
        ("When it is approved by finance, refund charge ch_1, then notify the customer", "finance"),
        ("Once we have finance's approval, refund charge ch_1, then notify the customer", "finance"),
        ("When we get the manager's approval, refund charge ch_1, then notify the customer", "manager"),
        ("Once there is sign-off from finance, refund charge ch_1, then notify the customer", "finance"),
    ],
)
def test_once_someone_approves_is_an_approval_first(
    bench: OfflinePlanner, request_text: str, approver: str
) -> None:
    wf = plan(bench, request_text).workflow
    assert wf.triggers is None or wf.triggers.webhook is None
    assert _order(wf) == ["core.approval", "payments.refund_charge", "email.send_message"]
    assert step_of(wf, "core.approval").with_.get("approvers") == [approver]


def test_an_event_is_still_a_webhook(bench: OfflinePlanner) -> None:
    wf = plan(bench, "When a refund is requested, refund charge ch_1, then notify the customer").workflow
    assert wf.triggers is not None and wf.triggers.webhook is not None
    assert _order(wf) == ["payments.refund_charge", "email.send_message"]


@pytest.mark.parametrize(
    ("request_text", "expected"),
    [
        ("Once the card is charged, email the receipt", ["payments.charge_card", _EMAIL]),
        ("After the shipment is booked, text the customer", ["shipping.create_shipment", "sms.send_message"]),
        ("Charge the card. Once the card is charged, email the receipt", ["payments.charge_card", _EMAIL]),
    ],
)
def test_once_a_step_is_done_plans_that_step_first(
    bench: OfflinePlanner, request_text: str, expected: list[str]
) -> None:
    assert _order(plan(bench, request_text).workflow) == expected


@pytest.mark.parametrize(
    "request_text",
    [
        "Once the invoice is paid, email the receipt",
        "Once the customer is verified, email the receipt",
    ],
)
def test_once_something_is_done_by_others_adds_no_unrelated_step(
    bench: OfflinePlanner, request_text: str
) -> None:
    assert [s.action for s in plan(bench, request_text).workflow.steps] == [_EMAIL]


@pytest.mark.parametrize(
    "request_text",
    [
        "Charge the card, then email the receipt. The manager has to approve before we charge the card.",
        "Charge the card, then email the receipt. The manager has to approve before charging.",
        "Charge the card, then email the receipt. Before we charge the card, get the manager's approval.",
    ],
)
def test_a_before_tail_naming_a_planned_step_puts_the_approval_before_it(
    bench: OfflinePlanner, request_text: str
) -> None:
    wf = plan(bench, request_text).workflow
    assert _order(wf) == ["core.approval", "payments.charge_card", "email.send_message"]
