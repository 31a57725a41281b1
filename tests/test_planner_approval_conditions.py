"""The offline planner on approvals that depend on the data ("if the order is over $5,000 and the
manager approves", "refunds above $500 need finance's approval"), on "unless <someone> approves",
and on the text of chat messages ("post in #ops that ...").

Per the spec a skipped step does not stop the steps that need it: an approval carrying the data
condition as its `if`, needed by the action with no `if` of its own, runs the action either way when
the amount is small and only after an approval when it is large (a rejection fails the run)."""

from __future__ import annotations

import pytest
from test_planner_support import (
    S,
    _obj,
    boolean_inputs,
    depends,
    plan,
    run_inputs,
    step_of,
)

from planner.offline import OfflinePlanner, PlanResult
from workflow.catalog import ActionSpec, Catalog
from workflow.document import Step, Workflow


def _gated(wf: Workflow, action: str) -> tuple[Step, Step]:
    """The approval and the step it gates; the step needs it and has no `if` of its own."""
    approval, step = step_of(wf, "core.approval"), step_of(wf, action)
    assert depends(wf, step, approval), (step.needs, approval.id)
    assert step.if_ is None
    return approval, step


# -- a data condition and an approval in one "if"


@pytest.mark.parametrize(
    "request_text",
    [
        "If the order is over $5,000 and the manager approves, charge the card",
        "If the manager approves and the order is over $5,000, charge the card",
        "If the order is over $5,000 and it has been approved by the manager, charge the card",
        "Charge the card if the order is above $5,000 and the manager signs off",
        "Charge the card if the manager approves and the total is more than $5,000",
    ],
)
def test_amount_and_approval_make_a_conditional_approval(bench: OfflinePlanner, request_text: str) -> None:
    wf = plan(bench, request_text).workflow
    approval, charge = _gated(wf, "payments.charge_card")
    # money is in minor units in this catalog: $5,000 is 500000 cents, on the charge's own amount
    assert approval.if_ == "${{ inputs.amount > 500000 }}"
    assert charge.with_["amount"] == "${{ inputs.amount }}"
    assert approval.with_["approvers"] == ["manager"]
    assert boolean_inputs(wf) == []


def test_the_headline_request_fills_the_chat_message_too(bench: OfflinePlanner) -> None:
    wf = plan(
        bench,
        "If the order is over $5,000 and the manager approves, charge the card, then post in #sales "
        "that the deal closed",
    ).workflow
    approval, charge = _gated(wf, "payments.charge_card")
    post = step_of(wf, "chat.post_message")
    assert approval.if_ == "${{ inputs.amount > 500000 }}"
    assert approval.with_["prompt"] == "Approve: Charge the card?"  # the post comes after, not asked about
    assert post.if_ is None and depends(wf, post, charge)
    assert post.with_["channel"] == "#sales" and post.with_["text"] == "The deal closed"
    assert set(run_inputs(wf)) == {"amount", "currency"}


def test_an_amount_written_in_the_request_is_compared_as_written(bench: OfflinePlanner) -> None:
    wf = plan(bench, "Charge $7,000 to the card if it's over $5,000 and the manager approves").workflow
    approval, charge = _gated(wf, "payments.charge_card")
    assert charge.with_["amount"] == 700000
    assert approval.if_ == "${{ 700000 > 500000 }}"


def test_two_approvers_are_not_a_data_condition(bench: OfflinePlanner) -> None:
    wf = plan(bench, "If finance and legal approve, refund charge ch_1").workflow
    approval, _ = _gated(wf, "payments.refund_charge")
    assert approval.if_ is None


# -- an approval said of an amount ("for refunds over $1,000", "refunds above $500 need ...")


@pytest.mark.parametrize(
    ("request_text", "limit"),
    [
        ("Get a manager's approval for refunds over $1,000, then refund charge ch_1", 100000),
        ("Refund the charge; if it's over $500, finance has to approve first", 50000),
        ("Refund charge ch_1. Refunds above $500 need finance's approval.", 50000),
        ("Refunds over $500 require approval by finance. Refund charge ch_1.", 50000),
        ("Refund charge ch_1, but refunds over $500 need sign-off from finance first", 50000),
        ("Refund charge ch_1; it requires approval by finance when the amount is over $500", 50000),
        ("Refund charge ch_1; it needs sign-off from finance if it's above $500", 50000),
        ("Refund charge ch_1. Approval from finance is needed for refunds over $500.", 50000),
        ("Refund charge ch_1. Finance must approve any refund above $500.", 50000),
        ("Refund charge ch_1; anything over $500 needs the CFO to sign off", 50000),
        ("Refund charge ch_1 with finance's approval if it's over $500", 50000),
        ("When the refund is over $500, get finance's sign-off first, then refund charge ch_1", 50000),
        ("Refund charge ch_1 and email a@b.example if the refund is over $500 and finance approves", 50000),
    ],
)
def test_an_approval_above_an_amount_goes_before_the_step(
    bench: OfflinePlanner, request_text: str, limit: int
) -> None:
    wf = plan(bench, request_text).workflow
    approval, refund = _gated(wf, "payments.refund_charge")
    assert approval.if_ == f"${{{{ inputs.amount > {limit} }}}}"
    # the refund takes the amount the approval was asked about
    assert refund.with_["amount"] == "${{ inputs.amount }}"
    assert [s.action for s in wf.steps].index("core.approval") < [s.action for s in wf.steps].index(
        "payments.refund_charge"
    )
    assert boolean_inputs(wf) == []


def test_when_an_amount_is_over_a_limit_is_no_trigger(bench: OfflinePlanner) -> None:
    request_text = "When the refund is over $500, get finance's sign-off first, then refund charge ch_1"
    wf = plan(bench, request_text).workflow
    assert wf.triggers is None or wf.triggers.webhook is None


def test_a_branch_with_an_otherwise_keeps_its_condition(bench: OfflinePlanner) -> None:
    # with an "otherwise", what follows the approval is the branch, not the step it guards
    wf = plan(
        bench,
        "If the score is low, ask the manager to approve, then charge the card; otherwise email a@b.example",
    ).workflow
    approval, charge = step_of(wf, "core.approval"), step_of(wf, "payments.charge_card")
    email = step_of(wf, "email.send_message")
    assert approval.if_ == charge.if_ and email.if_ == f"${{{{ not ({approval.if_[4:-3]}) }}}}"


def test_the_steps_after_a_guarding_approval_run_either_way(bench: OfflinePlanner) -> None:
    wf = plan(
        bench,
        "If the order is over $5,000, get the manager's approval, then charge the card and email a@b.example",
    ).workflow
    approval, _ = _gated(wf, "payments.charge_card")
    assert approval.if_ == "${{ inputs.amount > 500000 }}"
    assert step_of(wf, "email.send_message").if_ is None


@pytest.mark.parametrize(
    ("request_text", "approver"),
    [
        ("Refund the charge; if it's over $500, finance has to approve first", "finance"),
        ("Refund charge ch_1. Refunds above $500 need finance's approval.", "finance"),
        ("Refund charge ch_1; anything over $500 needs the CFO to sign off", "CFO"),
        ("Refund charge ch_1; it needs sign-off from finance if it's above $500", "finance"),
        ("Get a manager's approval for refunds over $1,000, then refund charge ch_1", "manager"),
        ("Refund charge ch_1. Approval from the VP of Sales is needed for refunds over $500.", "VP of Sales"),
    ],
)
def test_an_approval_with_a_limit_names_its_approver(
    bench: OfflinePlanner, request_text: str, approver: str
) -> None:
    approval = step_of(plan(bench, request_text).workflow, "core.approval")
    assert approval.with_["approvers"] == [approver]


def test_an_approval_that_says_only_it_names_what_it_approves(bench: OfflinePlanner) -> None:
    wf = plan(bench, "Refund the charge; if it's over $500, finance has to approve first").workflow
    assert step_of(wf, "core.approval").with_["prompt"] == "Approve: Refund the charge (it's over $500)?"


def test_a_rule_alone_plans_the_step_it_is_about(bench: OfflinePlanner) -> None:
    result = plan(bench, "Refunds above $500 need finance's approval")
    approval, _ = _gated(result.workflow, "payments.refund_charge")
    assert approval.if_ == "${{ inputs.amount > 50000 }}"
    assert any('planned "refund"' in w for w in result.warnings)


def test_a_rule_before_the_step_keeps_its_order(bench: OfflinePlanner) -> None:
    request_text = "Refunds above $500 need finance's approval. Refund charge ch_1 and email a@b.example."
    wf = plan(bench, request_text).workflow
    approval, refund = _gated(wf, "payments.refund_charge")
    assert approval.if_ == "${{ inputs.amount > 50000 }}"
    assert depends(wf, step_of(wf, "email.send_message"), refund)


def test_a_percentage_is_not_an_amount(bench: OfflinePlanner) -> None:
    wf = plan(bench, "If the discount is above 20%, it needs VP approval. Then refund charge ch_1").workflow
    approval, refund = _gated(wf, "payments.refund_charge")
    assert "amount" not in str(approval.if_) and "amount" not in refund.with_


@pytest.mark.parametrize(
    ("request_text", "condition", "key"),
    [
        # a count, by the input it names; a total in whole units (no "minor units" in its description)
        (
            "If it's more than 100 seats and finance approves, create the quote for customer cus_1",
            "${{ inputs.seats > 100 }}",
            "seats",
        ),
        (
            "Create a quote for customer cus_1; quotes over $20,000 need the CFO's sign-off",
            "${{ inputs.total > 20000 }}",
            "total",
        ),
        (
            "Charge customer cus_1 if the amount is at least $300 and the manager okays it",
            "${{ inputs.amount >= 30000 }}",
            "amount",
        ),
    ],
)
def test_the_condition_reads_the_input_the_catalog_gives(
    small: OfflinePlanner, request_text: str, condition: str, key: str
) -> None:
    wf = plan(small, request_text).workflow
    approval = step_of(wf, "core.approval")
    step = next(s for s in wf.steps if s.action != "core.approval")
    assert approval.if_ == condition and step.if_ is None and depends(wf, step, approval)
    assert step.with_[key] == f"${{{{ inputs.{key} }}}}"


# -- "unless <someone> approves"


def _unless_warned(result: PlanResult) -> None:
    opening = 'not planned: "refund charge ch_1'
    warned = [w for w in result.warnings if w.lower().startswith(opening) and "(unless " in w]
    assert warned and "the manager" in warned[0] and "a rejection fails" in warned[0].lower(), result.warnings


@pytest.mark.parametrize(
    "request_text",
    [
        "Create the account for Acme, then unless the manager approves, refund charge ch_1.",
        "Create the account for Acme. Refund charge ch_1 unless the manager approves.",
        "Create the account for Acme; unless it's approved by the manager, refund charge ch_1.",
        "Create the account for Acme. Refund charge ch_1 and email a@b.example unless the manager approves.",
    ],
)
def test_a_step_unless_approved_is_warned_about(bench: OfflinePlanner, request_text: str) -> None:
    # it would run only on a rejection, which fails the approval and the run: nothing to plan
    result = plan(bench, request_text)
    wf = result.workflow
    assert [s.action for s in wf.steps] == ["crm.create_account"]
    _unless_warned(result)
    assert not run_inputs(wf)


@pytest.mark.parametrize(
    "request_text",
    [
        "Don't refund charge ch_1 unless the manager approves",
        "Unless the manager approves, do not refund charge ch_1",
        "Never refund charge ch_1 unless the manager signs off",
    ],
)
def test_not_unless_approved_is_an_approval(bench: OfflinePlanner, request_text: str) -> None:
    wf = plan(bench, request_text).workflow
    approval, refund = _gated(wf, "payments.refund_charge")
    assert approval.if_ is None and approval.with_["approvers"] == ["manager"]
    assert refund.with_["charge_id"] == "ch_1"
    assert not run_inputs(wf)


def test_unless_someone_objects_is_still_an_approval(bench: OfflinePlanner) -> None:
    wf = plan(bench, "Refund charge ch_1 unless legal objects").workflow
    _gated(wf, "payments.refund_charge")


# -- the text of a message


@pytest.mark.parametrize(
    ("request_text", "channel", "text"),
    [
        ("Post in #ops that the deploy is done", "#ops", "The deploy is done"),
        ("Post in the #billing channel saying the invoice is overdue", "#billing", "The invoice is overdue"),
        ("Refund charge ch_1 and let #ae-team know it's out", "#ae-team", "It's out"),
        ("Tell #ops the deploy is done", "#ops", "The deploy is done"),
        ("Send a message to the #ops channel that the backup finished", "#ops", "The backup finished"),
        ("Notify the team on Slack that the refund went out", None, "The refund went out"),
    ],
)
def test_a_chat_message_takes_its_channel_and_text(
    bench: OfflinePlanner, request_text: str, channel: str | None, text: str
) -> None:
    wf = plan(bench, request_text).workflow
    post = step_of(wf, "chat.post_message")
    assert post.with_["text"] == text
    if channel is None:
        assert post.with_["channel"] == "${{ inputs.channel }}"  # not said: asked for at run time
    else:
        assert post.with_["channel"] == channel


def test_that_after_a_thing_is_not_a_message(bench: OfflinePlanner) -> None:
    wf = plan(bench, "Post the report that finance made in #ops").workflow
    post = step_of(wf, "chat.post_message")
    assert post.with_["text"] == "${{ inputs.text }}" and post.with_["channel"] == "#ops"


def test_email_and_text_bodies(bench: OfflinePlanner) -> None:
    wf = plan(bench, "Email ops@acme.example that the refund went out").workflow
    assert step_of(wf, "email.send_message").with_["body"] == "The refund went out"
    wf = plan(bench, "Text the customer at +15550001111 that their order shipped").workflow
    assert step_of(wf, "sms.send_message").with_["body"] == "Their order shipped"


def test_the_message_input_is_found_by_its_name_or_description() -> None:
    catalog = Catalog(
        [
            ActionSpec(
                name="teamchat.broadcast",
                description="Broadcasts a note to a team room.",
                input=_obj(
                    {
                        "channel_name": {"type": "string", "description": "Room to post in, like #general."},
                        "words": {"type": "string", "description": "The message text to broadcast."},
                    },
                    ["channel_name", "words"],
                ),
                output=_obj({"id": S}),
            )
        ]
    )
    wf = plan(OfflinePlanner(catalog), "Broadcast in #general that the office is closed").workflow
    step = step_of(wf, "teamchat.broadcast")
    assert step.with_ == {"channel_name": "#general", "words": "The office is closed"}


@pytest.mark.parametrize(
    ("request_text", "condition"),
    [
        (
            "Score customer cus_1. If the score is over 700, get the manager's approval, then charge "
            "customer cus_1 $50.",
            "${{ steps.score_customer.output.score > 700 }}",
        ),
        (
            "Score customer cus_1, then if the score is under 300 and the manager approves, charge customer "
            "cus_1 $50",
            "${{ steps.score_customer.output.score < 300 }}",
        ),
    ],
)
def test_a_condition_on_an_earlier_result_keeps_the_approval_after_it(
    small: OfflinePlanner, request_text: str, condition: str
) -> None:
    wf = plan(small, request_text).workflow
    score = step_of(wf, "risk.score_customer")
    approval, charge = _gated(wf, "payments.charge_card")
    assert approval.if_ == condition and depends(wf, approval, score)
    assert charge.with_["amount"] == 5000  # $50 in cents, written in the request
