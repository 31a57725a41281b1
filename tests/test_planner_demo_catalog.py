"""The offline planner on the product's own demo catalog and on requests it used to misread there:
the system a sentence names ("add the customer to the CRM") decides whose action it is, "set up" a
thing that does not exist yet makes it, and the customer's email asked for by two steps under two
names ("email", "to") is one run input."""

from __future__ import annotations

from typing import Any

import pytest
from test_planner_support import depends, plan, run_inputs, step_of

from planner.offline import OfflinePlanner
from service.demo.catalog import REQUEST
from workflow.loader import catalog_from_data

_CRM = "crm.update_account"
_EMAIL = "email.send_onboarding_sequence"


def _only_action(planner: OfflinePlanner, text: str) -> str:
    wf = plan(planner, text).workflow
    assert len(wf.steps) == 1, [s.action for s in wf.steps]
    return wf.steps[0].action


# -- the system a sentence names


@pytest.mark.parametrize(
    "text",
    [
        "Add the customer to the CRM",  # was billing.setup_billing: "customer" is all over its description
        "Put the new customer in the CRM",
        "Record the customer in the CRM",  # was no step at all
        "Add Acme to our CRM",
    ],
)
def test_a_customer_put_in_the_crm_is_the_crm_account(demo: OfflinePlanner, text: str) -> None:
    assert _only_action(demo, text) == _CRM


def test_the_system_named_decides_between_alike_actions(demo: OfflinePlanner) -> None:
    # the same words, another system: its action
    assert _only_action(demo, "Add the customer to billing") == "billing.setup_billing"
    assert _only_action(demo, "Tell the team in Slack that the account is ready") == "chat.notify_team"


def _action(name: str, description: str, props: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "description": description,
        "input": {"type": "object", "properties": props, "required": list(props)},
        "output": {"type": "object", "properties": {"id": {"type": "string"}}},
    }


def test_a_system_named_by_its_word_or_a_synonym() -> None:
    # the customer's words are all over the billing note; where the note goes decides. No catalog
    # action is called "slack": the chat system is
    text = {"type": "string"}
    planner = OfflinePlanner(
        catalog_from_data(
            {
                "actions": [
                    _action("crm.add_note", "Adds a note to a record.", {"record": text, "note": text}),
                    _action(
                        "billing.add_customer_note",
                        "Adds a note to the customer's billing account, seen on the customer's invoices.",
                        {"customer": text, "note": text},
                    ),
                    _action("chat.post_note", "Posts a note to a channel.", {"channel": text, "note": text}),
                ]
            }
        )
    )
    assert _only_action(planner, "Add a note about the customer to the CRM") == "crm.add_note"
    assert _only_action(planner, "Add a note about the customer in billing") == "billing.add_customer_note"
    assert _only_action(planner, "Add a note about the customer in Slack") == "chat.post_note"


# -- "set up" a thing that does not exist yet


def test_set_up_the_customer_and_their_subscription_is_two_steps(bench: OfflinePlanner) -> None:
    wf = plan(bench, "Set up the customer and their subscription").workflow
    assert sorted(s.action for s in wf.steps) == ["billing.create_customer", "billing.create_subscription"]
    customer, subscription = (
        step_of(wf, "billing.create_customer"),
        step_of(wf, "billing.create_subscription"),
    )
    assert depends(wf, subscription, customer)


def test_set_up_makes_and_set_changes(bench: OfflinePlanner) -> None:
    assert _only_action(bench, "Set up their subscription") == "billing.create_subscription"
    # "set" alone still changes what is there
    assert _only_action(bench, "Set the subscription to 20 seats") == "billing.update_subscription"


# -- one party's email, asked for under two names


def test_the_demo_story_asks_for_the_customers_email_once(demo: OfflinePlanner) -> None:
    wf = plan(demo, REQUEST).workflow
    inputs = run_inputs(wf)
    assert "email" in inputs and "to" not in inputs, sorted(inputs)
    assert step_of(wf, _EMAIL).with_["to"] == "${{ inputs.email }}"
    assert step_of(wf, _CRM).with_["email"] == "${{ inputs.email }}"
    # nothing in the sentence or the catalog says the message's words: the run gives them
    assert {"subject", "body"} <= set(inputs)


def test_the_email_the_request_gives_is_the_one_sent_to(demo: OfflinePlanner) -> None:
    wf = plan(
        demo, "Update the CRM for Acme (ops@acme.example), then send the onboarding email sequence"
    ).workflow
    assert step_of(wf, _EMAIL).with_["to"] == "ops@acme.example"
    assert "to" not in run_inputs(wf) and "email" not in run_inputs(wf)


def test_two_emails_that_say_which_they_are_stay_two_inputs() -> None:
    def email(description: str) -> dict[str, Any]:
        return {"type": "string", "format": "email", "description": description}

    planner = OfflinePlanner(
        catalog_from_data(
            {
                "actions": [
                    _action(
                        "billing.create_customer",
                        "Creates a customer in the billing system.",
                        {"billing_email": email("The customer's billing email.")},
                    ),
                    _action(
                        "provisioning.create_workspace",
                        "Creates a workspace for the customer.",
                        {"admin_email": email("The customer's admin email.")},
                    ),
                    _action(
                        "support.open_ticket",
                        "Opens a ticket for a person.",
                        {"requester": email("The requester's email address.")},
                    ),
                ]
            }
        )
    )
    wf = plan(planner, "Create the billing customer, then create the workspace, then open a ticket").workflow
    assert {"billing_email", "admin_email", "requester"} <= set(run_inputs(wf))
