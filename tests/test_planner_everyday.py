"""The offline planner on everyday sentences it used to misread: billing someone is invoicing them,
not making a customer record; two messages paired by "and" go out together; "only once the manager
approves should we ship it" is an approval gating the shipment; a light verb ("get", "make",
"take") is only as good as its object ("get pizza for the team" is no shipping quote); and a
failure clause said before any step plans the step it is about, or says why nothing was planned."""

from __future__ import annotations

import pytest
from test_planner_support import actions, depends, edges, plan, step_of

from planner.offline import OfflinePlanner, PlanningError
from workflow.document import Workflow

_EMAIL = "email.send_message"
_SMS = "sms.send_message"
_CHAT = "chat.post_message"


def _needs(wf: Workflow, action: str) -> set[str]:
    """The actions of the steps `action`'s step needs directly."""
    by_id = {s.id: s.action for s in wf.steps}
    return {by_id[n] for n in step_of(wf, action).needs}


def _left_out(warnings: list[str], clause: str) -> bool:
    return any(clause.lower() in w.lower() and "left out of the plan" in w for w in warnings)


# -- billing, charging or refunding someone acts on their money, not on their record


@pytest.mark.parametrize(
    ("request_text", "action"),
    [
        ("Bill the customer, then email them a receipt.", "billing.create_invoice"),
        ("Bill the client for the setup fee.", "billing.create_invoice"),
        ("Bill the customer $200 for the setup fee and text them.", "billing.create_invoice"),
        ("Invoice the customer, then email them.", "billing.create_invoice"),
        ("Charge the customer and email them a receipt.", "payments.charge_card"),
        ("Charge the client $50, then email them a receipt.", "payments.charge_card"),
        ("Refund the customer and apologize by email.", "payments.refund_charge"),
    ],
)
def test_the_person_billed_is_not_a_customer_record(
    bench: OfflinePlanner, request_text: str, action: str
) -> None:
    steps = actions(plan(bench, request_text).workflow)
    assert action in steps
    assert not {"billing.create_customer", "billing.delete_customer"} & set(steps), steps


def test_creating_or_deleting_the_customer_still_names_the_record(bench: OfflinePlanner) -> None:
    assert actions(plan(bench, "Create the customer and email them a welcome message.").workflow) == [
        "billing.create_customer",
        _EMAIL,
    ]


# -- two messages paired by "and" go out together


def test_the_signup_request_bills_then_sends_both_messages_together(bench: OfflinePlanner) -> None:
    result = plan(
        bench,
        "When a customer signs up, bill the customer, then email them a receipt and text the account "
        "manager.",
    )
    wf = result.workflow
    assert actions(wf) == ["billing.create_invoice", _EMAIL, _SMS]
    assert _needs(wf, _EMAIL) == {"billing.create_invoice"}
    assert _needs(wf, _SMS) == {"billing.create_invoice"}
    assert wf.triggers is not None and wf.triggers.webhook is not None


@pytest.mark.parametrize(
    "request_text",
    [
        "Email the customer and text the manager.",
        "Text the customer and email the account manager.",
        "Post the report in #sales and email it to the CEO.",
    ],
)
def test_two_messages_joined_by_and_are_parallel(bench: OfflinePlanner, request_text: str) -> None:
    wf = plan(bench, request_text).workflow
    assert len(wf.steps) == 2
    assert all(not s.needs for s in wf.steps), [(s.id, s.needs) for s in wf.steps]


def test_what_follows_two_messages_waits_for_both(bench: OfflinePlanner) -> None:
    wf = plan(
        bench, "Email the customer a receipt and text the account manager, then close the ticket."
    ).workflow
    assert _needs(wf, "support.close_ticket") == {_EMAIL, _SMS}
    assert not step_of(wf, _EMAIL).needs and not step_of(wf, _SMS).needs


@pytest.mark.parametrize(
    "request_text",
    [
        "Email the customer and then text the manager.",
        "Create the customer, then email them a receipt and, after that, text the account manager.",
        "Email the customer and after that text the manager.",
    ],
)
def test_messages_said_in_order_stay_in_order(bench: OfflinePlanner, request_text: str) -> None:
    wf = plan(bench, request_text).workflow
    assert depends(wf, step_of(wf, _SMS), step_of(wf, _EMAIL))


def test_a_step_and_then_a_message_stay_in_order(bench: OfflinePlanner) -> None:
    wf = plan(bench, "Refund the charge and email the customer.").workflow
    assert edges(wf) == {("payments.refund_charge", _EMAIL)}


# -- "only once X approves should we Y" is "once X approves, Y"


@pytest.mark.parametrize(
    ("request_text", "gated", "approver"),
    [
        (
            "When an order is placed, only once the manager approves should we ship the order; "
            "then email the customer.",
            "shipping.create_shipment",
            "manager",
        ),
        (
            "Only once the manager approves should we ship the order, then email the customer.",
            "shipping.create_shipment",
            "manager",
        ),
        (
            "Ship the order only after the manager approves, then email the customer.",
            "shipping.create_shipment",
            "manager",
        ),
        (
            "Ship the order once the manager signs off; then email the customer.",
            "shipping.create_shipment",
            "manager",
        ),
        ("Only after finance approves should we refund the charge.", "payments.refund_charge", "finance"),
        ("Only when the manager approves do we ship the order.", "shipping.create_shipment", "manager"),
        (
            "Not until legal signs off should we send the contract for signature.",
            "esign.send_envelope",
            "legal",
        ),
    ],
)
def test_an_inverted_approval_gates_the_step(
    bench: OfflinePlanner, request_text: str, gated: str, approver: str
) -> None:
    wf = plan(bench, request_text).workflow
    approval = step_of(wf, "core.approval")
    assert approval.if_ is None
    assert approval.with_.get("approvers") == [approver]
    assert depends(wf, step_of(wf, gated), approval)
    assert step_of(wf, gated).if_ is None
    if _EMAIL in actions(wf):
        assert depends(wf, step_of(wf, _EMAIL), step_of(wf, gated))
    assert not [k for k in (wf.inputs or {}).get("properties", {}) if k.startswith("we_")]


def test_an_inverted_data_condition_is_a_condition(bench: OfflinePlanner) -> None:
    wf = plan(
        bench, "Only if the order is over $500 should we ask the manager for approval, then charge the card."
    ).workflow
    approval = step_of(wf, "core.approval")
    assert approval.if_ is not None and "500" in approval.if_
    assert depends(wf, step_of(wf, "payments.charge_card"), approval)


# -- a light verb is only as good as its object


@pytest.mark.parametrize(
    ("request_text", "clause", "kept"),
    [
        (
            "Every Monday at 9am, pull the sales report and post it to the team channel, then get pizza "
            "for the team.",
            "get pizza for the team",
            ["analytics.run_report", _CHAT],
        ),
        ("Get lunch for the team and post in #ops.", "get lunch for the team", [_CHAT]),
        ("Make a cake for the team, then post in #ops.", "make a cake for the team", [_CHAT]),
        (
            "Take the customer to dinner, then log a note on the account.",
            "take the customer to dinner",
            ["crm.add_note"],
        ),
    ],
)
def test_a_light_verb_whose_object_nothing_does_is_left_out(
    bench: OfflinePlanner, request_text: str, clause: str, kept: list[str]
) -> None:
    result = plan(bench, request_text)
    assert actions(result.workflow) == sorted(kept)
    assert _left_out(result.warnings, clause), result.warnings


def test_the_warning_names_the_object_nothing_does(bench: OfflinePlanner) -> None:
    result = plan(bench, "Get lunch for the team and post in #ops.")
    said = [w for w in result.warnings if "lunch" in w]
    assert len(said) == 1 and 'nothing to do with "lunch"' in said[0]


@pytest.mark.parametrize(
    ("request_text", "action"),
    [
        ("Get the shipping rates for the parcel.", "shipping.get_rates"),
        ("Get the customer a shipping quote.", "shipping.get_rates"),
        ("Give the customer a refund and email them.", "payments.refund_charge"),
        ("Make a reservation of 5 units of SKU-1.", "inventory.reserve_stock"),
        ("Do a cancellation of the subscription.", "billing.cancel_subscription"),
        ("Run a credit check on Acme.", "credit.run_check"),
    ],
)
def test_a_light_verb_whose_object_an_action_does_is_planned(
    bench: OfflinePlanner, request_text: str, action: str
) -> None:
    assert action in actions(plan(bench, request_text).workflow)


# -- replies, comments and notes


@pytest.mark.parametrize(
    ("request_text", "first", "then"),
    [
        ("When a ticket comes in, reply to the customer and ping #support.", "support.add_comment", _CHAT),
        ("Comment on the ticket and ping #support.", "support.add_comment", _CHAT),
        (
            "File a ticket for the outage and leave a comment on it.",
            "support.create_ticket",
            "support.add_comment",
        ),
    ],
)
def test_replies_and_comments_are_ticket_comments(
    bench: OfflinePlanner, request_text: str, first: str, then: str
) -> None:
    wf = plan(bench, request_text).workflow
    assert edges(wf) == {(first, then)}


# -- failure clauses


def test_a_failure_clause_alone_plans_the_step_it_is_about(bench: OfflinePlanner) -> None:
    result = plan(bench, "If the payment fails, remove the charge and notify finance on Slack.")
    wf = result.workflow
    assert actions(wf) == ["payments.charge_card"]
    charge = step_of(wf, "payments.charge_card")
    assert charge.compensate is not None and charge.compensate.action == "payments.refund_charge"
    assert any("the payment" in w and "payments.charge_card" in w for w in result.warnings)
    told = [w for w in result.warnings if "notify finance on Slack" in w]
    assert len(told) == 1 and told[0].startswith("not planned") and "undoes" not in told[0]


@pytest.mark.parametrize(
    "request_text",
    [
        "If the payment fails, notify finance on Slack and remove the charge.",
        "Refund the charge and notify finance if the payment fails.",
    ],
)
def test_every_item_of_a_failure_clause_is_said_of_the_failure(
    bench: OfflinePlanner, request_text: str
) -> None:
    result = plan(bench, request_text)
    wf = result.workflow
    assert actions(wf) == ["payments.charge_card"]
    assert step_of(wf, "payments.charge_card").compensate is not None
    assert any(w.startswith("not planned") and "notify finance" in w for w in result.warnings)


def test_a_message_after_an_undo_is_not_run_on_every_run(bench: OfflinePlanner) -> None:
    result = plan(bench, "If the shipment can't be booked, cancel the shipment and email the customer.")
    wf = result.workflow
    assert actions(wf) == ["shipping.create_shipment"]
    assert step_of(wf, "shipping.create_shipment").compensate is not None
    assert any(w.startswith("not planned") and "email the customer" in w for w in result.warnings)


@pytest.mark.parametrize(
    "request_text",
    [
        "If the shipment can't be booked, cancel the order and email the customer.",
        "If the workspace can't be created, delete the billing customer and tell the admin.",
    ],
)
def test_a_failing_step_is_not_planned_for_an_undo_that_is_not_its_own(
    bench: OfflinePlanner, request_text: str
) -> None:
    with pytest.raises(PlanningError) as failed:
        bench.plan(request_text)
    assert any("can be undone" in w for w in failed.value.warnings)
    assert any(w.startswith("not planned") for w in failed.value.warnings)


@pytest.mark.parametrize(
    ("request_text", "failing"),
    [
        ("If the payment fails, refund it.", "payments.charge_card"),
        ("If provisioning the workspace fails, undo it.", "provisioning.create_tenant"),
        ("If the subscription can't be created, cancel it.", "billing.create_subscription"),
    ],
)
def test_a_failure_clause_said_first_plans_the_step_that_stands_on_its_own(
    bench: OfflinePlanner, request_text: str, failing: str
) -> None:
    wf = plan(bench, request_text).workflow
    assert actions(wf) == [failing]
    assert step_of(wf, failing).compensate is not None


def test_a_failure_clause_after_steps_undoes_them_and_warns_about_the_message(bench: OfflinePlanner) -> None:
    result = plan(
        bench, "Charge the card. If the payment fails, remove the charge and notify finance on Slack."
    )
    wf = result.workflow
    assert actions(wf) == ["payments.charge_card"]
    assert step_of(wf, "payments.charge_card").compensate is not None
    assert not any("undoes" in w for w in result.warnings), result.warnings


def test_nothing_plannable_says_each_reason_without_contradiction(bench: OfflinePlanner) -> None:
    with pytest.raises(PlanningError) as failed:
        bench.plan("If the refund fails, notify support and cancel the subscription.")
    message = str(failed.value)
    assert "no step of this request matches" not in message
    assert "notify support" in message and "cancel the subscription" in message
    assert len(failed.value.warnings) == 2


# -- more everyday phrasings


def test_an_approval_said_after_the_step_and_before_another_item_gates_the_step(
    bench: OfflinePlanner,
) -> None:
    wf = plan(bench, "Ship the order after the manager approves it and text the customer.").workflow
    approval = step_of(wf, "core.approval")
    ship = step_of(wf, "shipping.create_shipment")
    assert ship.needs == [approval.id]
    assert depends(wf, step_of(wf, _SMS), ship)


@pytest.mark.parametrize(
    ("request_text", "steps"),
    [
        (
            "We should only ship the order once the manager approves.",
            ["core.approval", "shipping.create_shipment"],
        ),
        ("You must email the customer, then close the ticket.", [_EMAIL, "support.close_ticket"]),
        ("We need to charge the card and email the receipt.", [_EMAIL, "payments.charge_card"]),
    ],
)
def test_a_we_should_opening_is_an_instruction(
    bench: OfflinePlanner, request_text: str, steps: list[str]
) -> None:
    assert actions(plan(bench, request_text).workflow) == sorted(steps)


@pytest.mark.parametrize(
    ("request_text", "told"),
    [
        ("Notify the customer by email and the manager by text.", {_EMAIL, _SMS}),
        ("Text the customer a code and the manager by email.", {_EMAIL, _SMS}),
        ("Tell the customer by email and finance on Slack.", {_EMAIL, _CHAT}),
    ],
)
def test_a_second_message_that_leaves_out_its_verb_is_a_step_of_its_own(
    bench: OfflinePlanner, request_text: str, told: set[str]
) -> None:
    wf = plan(bench, request_text).workflow
    assert {s.action for s in wf.steps} == told and len(wf.steps) == 2
    assert all(not s.needs for s in wf.steps)


@pytest.mark.parametrize(
    ("request_text", "clause"),
    [
        ("Have lunch with the customer, then open a ticket.", "open a ticket"),
        ("Open a ticket and create the account for Acme.", "open a ticket"),
    ],
)
def test_a_generic_verb_whose_object_no_action_is_about_is_left_out(
    small: OfflinePlanner, request_text: str, clause: str
) -> None:
    """The small catalog has no tickets: "open" alone must not find the workspace it can make."""
    try:
        result = small.plan(request_text)
    except PlanningError as failed:
        warnings, steps = failed.warnings, []
    else:
        warnings, steps = result.warnings, [s.action for s in result.workflow.steps]
    assert "workspace.create_workspace" not in steps
    assert _left_out(warnings, clause), warnings


@pytest.mark.parametrize(
    ("request_text", "kept", "clause"),
    [
        (
            "Grab coffee with the team, then open a ticket for the outage.",
            ["support.create_ticket"],
            "grab coffee with the team",
        ),
        ("Grab the usage report and email it to finance.", ["analytics.run_report", _EMAIL], None),
    ],
)
def test_grab_is_get(bench: OfflinePlanner, request_text: str, kept: list[str], clause: str | None) -> None:
    result = plan(bench, request_text)
    assert actions(result.workflow) == sorted(kept)
    if clause:
        assert _left_out(result.warnings, clause), result.warnings


@pytest.mark.parametrize(
    ("request_text", "gated"),
    [
        ("Don't ship the order until the manager approves.", "shipping.create_shipment"),
        ("Don't ship the order before the manager approves it.", "shipping.create_shipment"),
        (
            "Do not refund the charge until finance signs off, then email the customer.",
            "payments.refund_charge",
        ),
    ],
)
def test_dont_do_it_until_someone_approves_gates_it(
    bench: OfflinePlanner, request_text: str, gated: str
) -> None:
    wf = plan(bench, request_text).workflow
    approval = step_of(wf, "core.approval")
    assert step_of(wf, gated).needs == [approval.id]
    if _EMAIL in actions(wf):
        assert depends(wf, step_of(wf, _EMAIL), step_of(wf, gated))


@pytest.mark.parametrize(
    ("request_text", "first"),
    [
        ("Make sure the customer is billed, then email them the receipt.", "billing.create_invoice"),
        ("Make sure the workspace gets suspended and tell the admin.", "provisioning.suspend_tenant"),
    ],
)
def test_make_sure_something_is_done_is_doing_it(
    bench: OfflinePlanner, request_text: str, first: str
) -> None:
    wf = plan(bench, request_text).workflow
    assert edges(wf) == {(first, _EMAIL)}


@pytest.mark.parametrize(
    "request_text",
    [
        "Reverse the last charge and email the customer.",
        "When a payment fails, remove the charge and notify finance.",
    ],
)
def test_removing_or_reversing_a_charge_is_a_refund(bench: OfflinePlanner, request_text: str) -> None:
    wf = plan(bench, request_text).workflow
    assert "payments.refund_charge" in actions(wf)
    assert not [s for s in wf.steps if s.action.endswith(("delete_user", "delete_customer"))]


def test_a_light_verb_runner_up_needs_its_object_too(bench: OfflinePlanner) -> None:
    result = plan(bench, "Get flowers for the customer and email them a thank-you note.")
    assert actions(result.workflow) == [_EMAIL]
    assert _left_out(result.warnings, "get flowers for the customer")


def test_three_messages_joined_by_and_go_out_together(bench: OfflinePlanner) -> None:
    wf = plan(
        bench,
        "Refund the charge, then email the customer and text the manager and post in #ops, then close "
        "the ticket.",
    ).workflow
    for told in (_EMAIL, _SMS, _CHAT):
        assert _needs(wf, told) == {"payments.refund_charge"}
    assert _needs(wf, "support.close_ticket") == {_EMAIL, _SMS, _CHAT}


@pytest.mark.parametrize(
    ("request_text", "told"),
    [
        ("After the meeting, send the customer a recap and bill them for the session.", _EMAIL),
        ("Send the invoice to the customer.", _EMAIL),
        ("Send the customer a text.", _SMS),
        ("Send the customer a message on Slack.", _CHAT),
    ],
)
def test_a_message_that_names_no_medium_is_an_email(
    bench: OfflinePlanner, request_text: str, told: str
) -> None:
    steps = actions(plan(bench, request_text).workflow)
    assert told in steps
    assert not {_EMAIL, _SMS, _CHAT} - {told} & set(steps), steps


@pytest.mark.parametrize(
    ("request_text", "first", "later", "seconds"),
    [
        ("Send the invoice to the customer and remind them in a week.", _EMAIL, _EMAIL, 604800),
        (
            "Suspend the workspace and delete it in 30 days.",
            "provisioning.suspend_tenant",
            "provisioning.delete_tenant",
            2592000,
        ),
    ],
)
def test_a_step_said_to_happen_in_a_while_waits_first(
    bench: OfflinePlanner, request_text: str, first: str, later: str, seconds: int
) -> None:
    wf = plan(bench, request_text).workflow
    wait = step_of(wf, "core.wait")
    assert wait.with_ == {"seconds": seconds}
    assert wait.needs == [step_of(wf, first).id]
    assert step_of(wf, later, 1 if later == first else 0).needs == [wait.id]


@pytest.mark.parametrize(
    "request_text",
    ["Book the meeting in two weeks.", "Email the admin that their trial ends in three days."],
)
def test_a_time_that_belongs_to_the_step_is_no_wait(bench: OfflinePlanner, request_text: str) -> None:
    assert "core.wait" not in actions(plan(bench, request_text).workflow)


@pytest.mark.parametrize(
    "request_text", ["Sign the customer up for the Pro plan.", "Set the customer up in billing."]
)
def test_a_phrasal_verb_split_by_its_object_means_the_whole_verb(
    bench: OfflinePlanner, request_text: str
) -> None:
    steps = actions(plan(bench, request_text).workflow)
    assert "esign.send_envelope" not in steps and "billing.update_subscription" not in steps
    assert {"billing.create_customer", "billing.create_subscription"} & set(steps)


@pytest.mark.parametrize(
    ("request_text", "clause", "kept"),
    [
        ("Book a table for the team, then email the customer.", "book a table for the team", [_EMAIL]),
    ],
)
def test_booking_something_no_action_books_is_left_out(
    bench: OfflinePlanner, request_text: str, clause: str, kept: list[str]
) -> None:
    result = plan(bench, request_text)
    assert actions(result.workflow) == kept
    assert _left_out(result.warnings, clause), result.warnings


@pytest.mark.parametrize(
    ("request_text", "action"),
    [
        ("Book the cheapest one.", "shipping.create_shipment"),
        ("Book a kickoff call with the customer.", "calendar.create_event"),
        ("Schedule a review with the team for Friday.", "calendar.create_event"),
        ("Reserve 5 units of SKU-1.", "inventory.reserve_stock"),
    ],
)
def test_words_that_name_nothing_do_not_stop_a_booking(
    bench: OfflinePlanner, request_text: str, action: str
) -> None:
    assert actions(plan(bench, request_text).workflow) == [action]


@pytest.mark.parametrize("joiner", ["as well as", "plus"])
def test_as_well_as_and_plus_join_two_steps(bench: OfflinePlanner, joiner: str) -> None:
    wf = plan(
        bench, f"Bill the customer, then email them a receipt {joiner} text the account manager."
    ).workflow
    assert actions(wf) == ["billing.create_invoice", _EMAIL, _SMS]
    assert _needs(wf, _SMS) == {"billing.create_invoice"}


def test_plus_inside_an_amount_is_no_join(bench: OfflinePlanner) -> None:
    assert actions(plan(bench, "Charge $100 plus tax to the customer's card.").workflow) == [
        "payments.charge_card"
    ]
