"""The offline planner on what a request says about the party it is about and on the words around
its steps: one run input for what several steps need alike, a company's name (quoted or after
"for") filling every step's field for it, posting to a '#channel' as notifying it, line breaks
inside a sentence, currencies said by symbol, word or code, the run inputs an explanation lists,
and a warning for an outside event nothing in the plan makes happen."""

from __future__ import annotations

import pytest
from test_planner_support import plan, run_inputs, step_of

from planner.explain import explain
from planner.literals import as_currency, currency_said
from planner.offline import OfflinePlanner

_CRM = "crm.update_account"
_PROVISION = "provisioning.provision_account"
_CHAT = "chat.notify_team"
_CHARGE = "payments.charge_card"


# -- one run input for what several steps need alike


@pytest.mark.parametrize(
    "text",
    [
        "Update the CRM for the new customer, then provision their account and notify the customer "
        "success team",
        "Update the CRM, then provision the account",
        "Provision the account after updating the CRM record",
    ],
)
def test_steps_needing_the_same_thing_share_one_run_input(demo: OfflinePlanner, text: str) -> None:
    wf = plan(demo, text).workflow
    inputs = run_inputs(wf)
    assert "company" in inputs
    assert not [k for k in inputs if k != "company" and k.endswith("company")], sorted(inputs)
    assert step_of(wf, _CRM).with_["company"] == "${{ inputs.company }}"
    assert step_of(wf, _PROVISION).with_["company"] == "${{ inputs.company }}"
    descriptions = [v.get("description") for v in inputs.values() if v.get("description")]
    assert len(descriptions) == len(set(descriptions)), inputs


def test_a_format_alone_says_nothing_of_whose_it_is(bench: OfflinePlanner) -> None:
    # both described "ISO 3166-1 alpha-2 code.": the signer's country and the company's stay apart
    wf = plan(bench, "Verify the identity of the signer, then run a credit check on the company").workflow
    assert {"country", "run_check_country"} <= set(run_inputs(wf)), sorted(run_inputs(wf))


def test_inputs_described_differently_stay_apart(bench: OfflinePlanner) -> None:
    # the contact's email and the billing customer's email are not one value
    wf = plan(bench, "Create a contact, then create a billing customer").workflow
    emails = [k for k in run_inputs(wf) if "email" in k]
    assert len(emails) == 2, sorted(run_inputs(wf))


# -- the company a request names fills every step's field for it


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ('Update the CRM for company "Acme" (ops@acme.example), then provision the account', "Acme"),
        ("Update the CRM for Acme Robotics (ops@acme.example) and provision their account", "Acme Robotics"),
        ("Update the CRM for Acme Corp today, then provision their account", "Acme Corp"),
        ("Update the CRM for Globex, then provision the account", "Globex"),
        ("Update the CRM record for Acme Inc. and provision the account", "Acme Inc."),
        ("Update the CRM for O'Brien & Sons, then provision their account", "O'Brien & Sons"),
    ],
)
def test_a_company_named_once_fills_every_step(demo: OfflinePlanner, text: str, name: str) -> None:
    wf = plan(demo, text).workflow
    assert step_of(wf, _CRM).with_["company"] == name
    assert step_of(wf, _PROVISION).with_["company"] == name
    assert "company" not in run_inputs(wf)


def test_an_address_given_once_fills_later_steps_that_need_the_same(demo: OfflinePlanner) -> None:
    text = "Update the CRM for Acme (ops@acme.example), then provision the account and set up billing"
    wf = plan(demo, text).workflow
    assert step_of(wf, _CRM).with_["email"] == "ops@acme.example"
    assert step_of(wf, "billing.setup_billing").with_["email"] == "ops@acme.example"
    assert not run_inputs(wf), run_inputs(wf)


def test_a_capitalised_name_after_for_fills_the_company(demo: OfflinePlanner) -> None:
    wf = plan(demo, "Update the CRM for Acme").workflow
    assert step_of(wf, _CRM).with_["company"] == "Acme"
    assert "company" not in run_inputs(wf)
    # lower-case words after "for" are no name
    wf = plan(demo, "Update the CRM for the new customer").workflow
    assert step_of(wf, _CRM).with_["company"] == "${{ inputs.company }}"


# -- posting to a channel is notifying it


@pytest.mark.parametrize(
    ("text", "channel", "said"),
    [
        (
            "Update the CRM for Acme, then provision the account and post to #customer-success that the "
            "account is ready",
            "#customer-success",
            "The account is ready",
        ),
        ("Provision the account, then post in #launches that Acme is live", "#launches", "Acme is live"),
        ("Provision the account and publish the news to #general", "#general", None),
    ],
)
def test_posting_to_a_channel_notifies_it(
    demo: OfflinePlanner, text: str, channel: str, said: str | None
) -> None:
    result = plan(demo, text)
    chat = step_of(result.workflow, _CHAT)
    assert chat.with_["channel"] == channel
    if said is not None:
        assert chat.with_["text"] == said
    assert not [w for w in result.warnings if "post" in w or "publish" in w], result.warnings


def test_posting_in_the_team_chat_notifies_the_team(demo: OfflinePlanner) -> None:
    result = plan(demo, "Provision the account, then post in the team chat that it is ready")
    assert step_of(result.workflow, _CHAT).with_["text"] == "It is ready"


def test_posting_to_a_team_notifies_it(demo: OfflinePlanner) -> None:
    result = plan(demo, "Provision the account, then post an update to the customer success team")
    assert [s.action for s in result.workflow.steps] == [_PROVISION, _CHAT]


def test_posting_names_no_chat_without_a_channel(demo: OfflinePlanner) -> None:
    # "post the invoice" says nothing of a chat: no team is notified
    with pytest.raises(Exception, match="post"):
        demo.plan("Post the invoice")


# -- line breaks


def test_a_line_break_inside_a_sentence_is_a_space(demo: OfflinePlanner) -> None:
    text = "Update the CRM for Acme, ask a manager to approve, then\nprovision the account"
    wf = plan(demo, text).workflow
    descriptions = [s.description or "" for s in wf.steps]
    assert not [d for d in descriptions if d.endswith("then") or "\n" in d], descriptions
    assert [s.action for s in wf.steps] == [_CRM, "core.approval", _PROVISION]


@pytest.mark.parametrize(
    "text",
    [
        "Update the CRM for Acme\nProvision the account\nnotify the customer success team",
        "Update the CRM for Acme.\n\nProvision the account.\n\nNotify the customer success team.",
        "- update the CRM for Acme\n- provision the account\n- notify the customer success team",
        "Update the CRM for Acme, then\r\nprovision the account and\r\nnotify the customer success team",
        "Update the CRM   for Acme,\n  then provision\n  the account, and\nnotify the customer success team",
    ],
)
def test_lines_and_paragraphs_still_part_steps(demo: OfflinePlanner, text: str) -> None:
    wf = plan(demo, text).workflow
    assert sorted(s.action for s in wf.steps) == sorted([_CRM, _PROVISION, _CHAT])
    assert all("\n" not in (s.description or "") for s in wf.steps)
    assert step_of(wf, _CRM).with_["company"] == "Acme"


# -- currencies


@pytest.mark.parametrize(
    ("text", "amount", "currency"),
    [
        (
            "Charge customer cus_42 $1,200, retry up to 3 times, then email the receipt to ap@acme.example",
            120000,
            "USD",
        ),
        ("Charge customer cus_42 €75", 7500, "EUR"),
        ("Charge customer cus_42 £30", 3000, "GBP"),
        ("Charge customer cus_42 1,200 euros", 120000, "EUR"),
        ("Charge customer cus_42 20 dollars", 2000, "USD"),
        ("Charge customer cus_42 CHF 250", 25000, "CHF"),
        ("Charge customer cus_42 5k USD", 500000, "USD"),
    ],
)
def test_the_currency_said_fills_the_currency(
    bench: OfflinePlanner, text: str, amount: int, currency: str
) -> None:
    wf = plan(bench, text).workflow
    charge = step_of(wf, _CHARGE)
    assert charge.with_["amount"] == amount
    assert charge.with_["currency"] == currency
    assert "currency" not in run_inputs(wf)


def test_the_currency_takes_the_case_the_catalog_shows(bench: OfflinePlanner) -> None:
    # billing.create_customer: "ISO 4217 code; defaults to usd."
    wf = plan(bench, "Create a billing customer for Acme (billing@acme.example) in EUR").workflow
    assert step_of(wf, "billing.create_customer").with_["currency"] == "eur"


def test_no_currency_is_read_from_other_capitals() -> None:
    assert currency_said("Create 3 API keys and retry 2 times") is None
    assert currency_said("the CRM 500 record") is None
    assert currency_said("order 12 pcs") is None
    assert currency_said("bill them 30 Canadian dollars") == ("CAD", 30.0)
    assert currency_said("pay it in euros") == ("EUR", None)


def test_the_currency_respects_enum_and_pattern() -> None:
    assert as_currency("EUR", {"type": "string", "enum": ["usd", "eur"]}) == "eur"
    assert as_currency("GBP", {"type": "string", "enum": ["usd", "eur"]}) is None
    assert as_currency("EUR", {"type": "string", "pattern": "^[a-z]{3}$"}) == "eur"
    assert as_currency("EUR", {"type": "string", "pattern": "^[A-Z]{3}$"}) == "EUR"
    assert as_currency("EUR", {"type": "string"}) == "EUR"
    assert as_currency("EUR", {"type": "string", "default": "usd"}) == "eur"


# -- the explanation names the run inputs to give


def test_the_explanation_lists_the_inputs_to_give(demo: OfflinePlanner, bench: OfflinePlanner) -> None:
    result = plan(demo, "Update the CRM for the new customer, then provision their account")
    text = explain(result.workflow, demo.catalog)
    assert "Inputs to give when starting a run:" in text
    assert "  - company (string; The customer's company name)" in text
    assert "  - email (email; The customer's admin contact email)" in text
    assert text == result.explanation
    charged = plan(bench, "Charge customer cus_42 $1,200").workflow
    assert "Inputs to give" not in explain(charged, bench.catalog)
    asked = plan(bench, "Charge the card").workflow
    shown = explain(asked, bench.catalog)
    assert "  - amount (integer; Amount in minor units)" in shown
    assert "  - currency (string)" in shown


# -- an outside event nothing in the plan makes happen


@pytest.mark.parametrize(
    ("text", "event"),
    [
        ("Only after the customer pays should we ship", "the customer pays"),
        ("Once the invoice is paid, ship the order", "the invoice is paid"),
        ("After the customer pays, create the account for Acme", "the customer pays"),
        (
            "Only once the contract is signed by the customer should we create the account",
            "the contract is signed by the customer",
        ),
        ("Create the account. Once the payment succeeds, ship the order", "the payment succeeds"),
        ("Ship the order once the customer pays", "the customer pays"),
        ("Ship the order only when the customer has paid", "the customer has paid"),
        ("Refund it once the return arrives", "the return arrives"),
    ],
)
def test_an_outside_event_is_warned_about(bench: OfflinePlanner, text: str, event: str) -> None:
    result = plan(bench, text)
    said = [w for w in result.warnings if f'"{event}"' in w]
    assert said, result.warnings
    assert "trigger" in said[0] and "approval" in said[0] and "wait" in said[0]


def test_an_outside_event_said_last_does_not_pick_the_action(bench: OfflinePlanner) -> None:
    # "the contract is signed" is what someone else does: the step is the account created
    result = plan(bench, "Create the account once the contract is signed")
    assert [s.action for s in result.workflow.steps] == ["crm.create_account"]
    assert [w for w in result.warnings if '"the contract is signed"' in w], result.warnings


@pytest.mark.parametrize(
    "text",
    [
        "Remind them by email after two weeks",
        "Email the customer when Friday comes",
        "Create the account. Once that's done, provision the workspace",
        "Create the account. When everything is ready, provision the workspace",
        "Charge the card; once the charge goes through, email the receipt",
        "Create the account for Acme, and once the account is created, provision a workspace",
        "Once finance approves, refund the charge",
        "Create a subscription for customer cus_1, then charge their card $49. Once the payment "
        "succeeds, enable 'priority_support' on the tenant",
    ],
)
def test_events_the_plan_makes_are_not_warned_about(bench: OfflinePlanner, text: str) -> None:
    result = plan(bench, text)
    assert not [w for w in result.warnings if "nothing in this plan makes" in w], result.warnings
