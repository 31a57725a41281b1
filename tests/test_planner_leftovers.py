"""The offline planner on four requests it used to misread: two things made by one verb ("create the
customer and their subscription"), a company named as the verb's object ("add Initech to the CRM"),
a step held back until something outside the plan happens ("don't ship until the customer pays"),
and a condition that is such an event ("if the customer pays, ship")."""

from __future__ import annotations

import pytest
from test_planner_support import boolean_inputs, depends, plan, run_inputs, step_of

from planner.offline import OfflinePlanner

_CUSTOMER = "billing.create_customer"
_SUBSCRIPTION = "billing.create_subscription"
_SHIP = "shipping.create_shipment"


def _event_warnings(warnings: list[str], event: str) -> list[str]:
    return [w for w in warnings if f'"{event}"' in w and "nothing in this plan makes" in w]


# -- one verb, two things the catalog makes apart


@pytest.mark.parametrize(
    "text",
    [
        "create the customer and their subscription",
        "Create the billing customer and the subscription",
        "Please create the customer (ap@initech.example) and their subscription to the growth plan",
    ],
)
def test_two_things_made_by_one_verb_are_two_steps(bench: OfflinePlanner, text: str) -> None:
    wf = plan(bench, text).workflow
    assert sorted(s.action for s in wf.steps) == [_CUSTOMER, _SUBSCRIPTION]
    # the subscription is the customer's: it comes after them and is made for them
    customer, subscription = step_of(wf, _CUSTOMER), step_of(wf, _SUBSCRIPTION)
    assert depends(wf, subscription, customer)
    assert subscription.with_["customer_id"] == f"${{{{ steps.{customer.id}.output.customer_id }}}}"


def test_each_of_the_two_keeps_its_own_words(bench: OfflinePlanner) -> None:
    text = "Create the customer (ap@initech.example) and their subscription to the growth plan"
    wf = plan(bench, text).workflow
    assert step_of(wf, _CUSTOMER).with_["email"] == "ap@initech.example"
    assert "plan_id" in run_inputs(wf) or step_of(wf, _SUBSCRIPTION).with_.get("plan_id")


def test_the_two_follow_what_came_before_them(bench: OfflinePlanner) -> None:
    wf = plan(
        bench, "Run a credit check on the company, then create the customer and their subscription"
    ).workflow
    check = step_of(wf, "credit.run_check")
    customer, subscription = step_of(wf, _CUSTOMER), step_of(wf, _SUBSCRIPTION)
    assert depends(wf, customer, check)
    assert depends(wf, subscription, customer)


def test_a_thing_named_like_a_message_is_still_made(bench: OfflinePlanner) -> None:
    # "contact" is also a verb of telling, but a contact record made is no message
    wf = plan(bench, "Create the account and the contact for Raj (raj@cobalt.example)").workflow
    account, contact = step_of(wf, "crm.create_account"), step_of(wf, "crm.create_contact")
    assert depends(wf, contact, account)
    assert contact.with_["email"] == "raj@cobalt.example"


@pytest.mark.parametrize(
    ("text", "action"),
    [
        # one action does both: one step
        ("Update the deal stage and the amount", "crm.update_deal_stage"),
        # a message to two people is one message
        ("Email the customer and their manager", "email.send_message"),
    ],
)
def test_one_thing_of_one_action_stays_one_step(bench: OfflinePlanner, text: str, action: str) -> None:
    wf = plan(bench, text).workflow
    assert [s.action for s in wf.steps] == [action]


# -- a company named as the object of the verb


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("add Initech to the CRM", "Initech"),
        ("Add Acme Robotics to the CRM", "Acme Robotics"),
        ("Put Globex into the CRM", "Globex"),
        ("Register Initech Inc. in the CRM", "Initech Inc."),
    ],
)
def test_a_company_named_as_the_object_fills_its_field(demo: OfflinePlanner, text: str, name: str) -> None:
    wf = plan(demo, text).workflow
    assert step_of(wf, "crm.update_account").with_["company"] == name
    assert "company" not in run_inputs(wf)


def test_the_named_company_fills_the_later_steps_too(demo: OfflinePlanner) -> None:
    wf = plan(demo, "Add Initech to the CRM, then provision their account").workflow
    assert step_of(wf, "crm.update_account").with_["company"] == "Initech"
    assert step_of(wf, "provisioning.provision_account").with_["company"] == "Initech"
    assert "company" not in run_inputs(wf)


def test_a_company_added_to_the_crm_is_an_account(bench: OfflinePlanner) -> None:
    # a company added to the CRM is its account record, not a note on one
    result = plan(bench, "add Initech to the CRM")
    assert [s.action for s in result.workflow.steps] == ["crm.create_account"]
    assert result.workflow.steps[0].with_["name"] == "Initech"
    # a name alone does not say it is a company's: the person is told how to say otherwise
    said = [w for w in result.warnings if '"Initech"' in w]
    assert said and "company" in said[0] and "as a contact" in said[0], result.warnings
    wf = plan(bench, "Add Dana Smith to the CRM as a contact").workflow
    assert [s.action for s in wf.steps] == ["crm.create_contact"]


@pytest.mark.parametrize(
    "text",
    [
        "Update the CRM",  # no name: a run input as before
        "Add the account to the CRM",
    ],
)
def test_no_name_no_literal(demo: OfflinePlanner, text: str) -> None:
    wf = plan(demo, text).workflow
    assert step_of(wf, "crm.update_account").with_["company"] == "${{ inputs.company }}"


# -- "don't ship until the customer pays"


@pytest.mark.parametrize(
    ("text", "event"),
    [
        ("don't ship until the customer pays", "the customer pays"),
        ("Do not ship the order until the invoice is paid", "the invoice is paid"),
        ("Never ship the order before the customer pays", "the customer pays"),
        ("We shouldn't ship the order until the customer has paid", "the customer has paid"),
    ],
)
def test_a_step_held_back_for_an_outside_event_is_planned_and_warned(
    bench: OfflinePlanner, text: str, event: str
) -> None:
    result = plan(bench, text)
    assert [s.action for s in result.workflow.steps] == [_SHIP]
    said = _event_warnings(result.warnings, event)
    assert said, result.warnings
    assert "trigger" in said[0] and "approval" in said[0] and "wait" in said[0]
    assert not [w for w in result.warnings if "background" in w], result.warnings


@pytest.mark.parametrize(
    "text",
    [
        "Don't ship the order until we've created the invoice",
        "Don't ship the order before we create the invoice",
        "Do not ship the order until we have created the invoice",
    ],
)
def test_a_step_held_back_for_one_of_ours_comes_after_it(bench: OfflinePlanner, text: str) -> None:
    result = plan(bench, text)
    invoice, ship = step_of(result.workflow, "billing.create_invoice"), step_of(result.workflow, _SHIP)
    assert depends(result.workflow, ship, invoice)
    assert not [w for w in result.warnings if "nothing in this plan makes" in w], result.warnings


def test_a_step_held_back_for_news_from_outside_is_warned(bench: OfflinePlanner) -> None:
    result = plan(bench, "Don't ship the order until we hear back from the customer")
    assert [s.action for s in result.workflow.steps] == [_SHIP]
    assert _event_warnings(result.warnings, "we hear back from the customer"), result.warnings


def test_a_step_held_back_for_a_person_is_still_an_approval(bench: OfflinePlanner) -> None:
    wf = plan(bench, "Don't refund the charge until the manager approves").workflow
    assert [s.action for s in wf.steps] == ["core.approval", "payments.refund_charge"]


def test_a_step_held_back_after_other_steps_follows_them(bench: OfflinePlanner) -> None:
    result = plan(bench, "Create the invoice, but don't ship the order until the customer pays")
    invoice, ship = step_of(result.workflow, "billing.create_invoice"), step_of(result.workflow, _SHIP)
    assert depends(result.workflow, ship, invoice)
    assert _event_warnings(result.warnings, "the customer pays"), result.warnings


# -- "if the customer pays, ship"


@pytest.mark.parametrize(
    ("text", "event"),
    [
        ("if the customer pays, ship", "the customer pays"),
        ("If the customer pays, ship the order", "the customer pays"),
        ("Ship the order if the customer pays", "the customer pays"),
        ("If the contract is signed, create the account", "the contract is signed"),
        ("If the customer replies, close the ticket", "the customer replies"),
    ],
)
def test_a_condition_that_is_an_outside_event_is_warned_about(
    bench: OfflinePlanner, text: str, event: str
) -> None:
    result = plan(bench, text)
    said = _event_warnings(result.warnings, event)
    assert said, result.warnings
    assert "trigger" in said[0] and "approval" in said[0]
    # the condition may stay a yes/no run input, and the warning says so
    assert len(boolean_inputs(result.workflow)) == 1
    assert "yes/no run input" in said[0]


@pytest.mark.parametrize(
    "text",
    [
        "If the customer is on the enterprise plan, create a subscription",
        "If the order is over $5,000, charge the card",
        "Run a credit check on the company. If the check passes, create the account",
        "If the manager approves, refund the charge",
    ],
)
def test_data_conditions_are_not_outside_events(bench: OfflinePlanner, text: str) -> None:
    result = plan(bench, text)
    assert not [w for w in result.warnings if "nothing in this plan makes" in w], result.warnings
