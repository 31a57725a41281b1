"""The offline planner on approvals, failure clauses, undo requests, dates and chat channels.

Each phrasing is checked with its variations (passive voice, "should X fail", "roll back",
"unless", roles as approvers), on a catalog written here and on the benchmark's catalog for the
product's own headline requests."""

from __future__ import annotations

import pytest
from test_planner_support import S, _obj, actions, boolean_inputs, depends, plan, step_of

from planner.offline import OfflinePlanner
from workflow.catalog import ActionSpec, Catalog


def _catalog() -> Catalog:
    return Catalog(
        [
            ActionSpec(
                name="pipeline.set_stage",
                description="Moves an opportunity to another stage of the sales pipeline.",
                input=_obj({"opportunity_id": S, "stage": S, "amount": {"type": "number"}},
                           ["opportunity_id", "stage"]),
                output=_obj({"opportunity_id": S, "stage": S, "previous_stage": S}),
            ),
            ActionSpec(
                name="pipeline.add_note",
                description="Attaches a note to an opportunity.",
                input=_obj({"opportunity_id": S, "body": S}, ["opportunity_id", "body"]),
                output=_obj({"note_id": S}),
            ),
            ActionSpec(
                name="billing.create_customer",
                description="Creates a customer in the billing system.",
                input=_obj({"email": {"type": "string", "format": "email"}, "name": S}, ["email"]),
                output=_obj({"customer_id": S}),
                compensation="billing.delete_customer",
            ),
            ActionSpec(
                name="billing.delete_customer",
                description="Deletes a billing customer.",
                input=_obj({"customer_id": S}, ["customer_id"]),
            ),
            ActionSpec(
                name="hosting.create_workspace",
                description="Provisions a new workspace for a customer.",
                input=_obj({"name": S}, ["name"]),
                output=_obj({"workspace_id": S}),
                compensation="hosting.delete_workspace",
            ),
            ActionSpec(
                name="hosting.delete_workspace",
                description="Deletes a workspace.",
                input=_obj({"workspace_id": S}, ["workspace_id"]),
            ),
            ActionSpec(
                name="payments.refund_charge",
                description="Refunds a charge in full or in part.",
                input=_obj({"charge_id": S, "amount": {"type": "number"}}, ["charge_id"]),
                output=_obj({"refund_id": S}),
            ),
            ActionSpec(
                name="chat.post_message",
                description="Posts a message to a team chat channel.",
                input=_obj({"channel": S, "text": S}, ["channel", "text"]),
            ),
            ActionSpec(
                name="helpdesk.open_ticket",
                description="Opens a ticket in the support desk.",
                input=_obj({"subject": S}, ["subject"]),
                output=_obj({"ticket_id": S}),
            ),
            ActionSpec(
                name="email.send_message",
                description="Sends an email.",
                input=_obj({"to": {"type": "string", "format": "email"}, "body": S}, ["to"]),
            ),
            ActionSpec(
                name="calendar.create_event",
                description="Creates a calendar event.",
                input=_obj(
                    {"title": S, "start": {"type": "string", "format": "date-time"}}, ["title", "start"]
                ),
            ),
        ]
    )


@pytest.fixture(scope="module")
def own() -> OfflinePlanner:
    return OfflinePlanner(_catalog())


# -- the headline requests, on the benchmark's catalog

HEADLINE_UNDO = (
    "When an enterprise customer signs up, update the CRM, then set up billing and provision the "
    "account in parallel; if provisioning fails, undo the CRM update"
)
HEADLINE_REFUND = (
    "Refund order 1234 on 2026-12-01 if the manager approves; if the refund fails, notify support on Slack"
)


def test_undoing_a_stage_update_writes_the_previous_stage_back(bench: OfflinePlanner) -> None:
    result = plan(bench, HEADLINE_UNDO)
    crm = step_of(result.workflow, "crm.update_deal_stage")
    assert crm.compensate is not None
    assert crm.compensate.action == "crm.update_deal_stage"
    assert crm.compensate.with_ == {
        "deal_id": crm.with_["deal_id"],
        "stage": f"${{{{ steps.{crm.id}.output.previous_stage }}}}",
    }
    assert not [w for w in result.warnings if "undo" in w or "compensation" in w], result.warnings


def test_refund_headline_asks_for_approval_waits_for_the_date_and_invents_no_input(
    bench: OfflinePlanner,
) -> None:
    result = plan(bench, HEADLINE_REFUND)
    wf = result.workflow
    assert actions(wf) == ["core.approval", "core.wait", "payments.refund_charge"]
    approval, wait = step_of(wf, "core.approval"), step_of(wf, "core.wait")
    refund = step_of(wf, "payments.refund_charge")
    assert approval.with_["approvers"] == ["manager"]
    assert "Refund order 1234" in approval.with_["prompt"]
    assert wait.with_ == {"until": "2026-12-01T00:00:00Z"}
    assert depends(wf, refund, wait) and depends(wf, wait, approval)
    assert refund.if_ is None
    assert boolean_inputs(result.workflow) == []
    unplanned = [w for w in result.warnings if "not planned" in w and "notify support on Slack" in w]
    assert unplanned, result.warnings


def test_slack_means_the_chat_action_on_the_benchmark_catalog(bench: OfflinePlanner) -> None:
    wf = plan(bench, "Refund charge ch_1, then notify support on Slack").workflow
    assert actions(wf) == ["chat.post_message", "payments.refund_charge"]


# -- undo: a step without a catalog compensation


STAGE_THEN_WORKSPACE = "Move opportunity OP-7 to negotiation, then provision a workspace named acme"


@pytest.mark.parametrize(
    "undo",
    [
        "if provisioning fails, undo the stage change",
        "if the workspace can't be provisioned, roll back the stage change",
        "should provisioning fail, reverse the opportunity stage update",
        "if provisioning fails, revert the stage",
        "if provisioning fails, put the opportunity back",
        "if provisioning fails, the stage change should be undone",
        "if the workspace can't be provisioned, the stage update must be rolled back",
        "if provisioning fails, have the stage change reversed",
    ],
)
def test_undo_of_an_action_reporting_its_previous_value_restores_it(own: OfflinePlanner, undo: str) -> None:
    result = plan(own, f"{STAGE_THEN_WORKSPACE}; {undo}")
    stage = step_of(result.workflow, "pipeline.set_stage")
    assert stage.compensate is not None, result.warnings
    assert stage.compensate.action == "pipeline.set_stage"
    assert stage.compensate.with_ == {
        "opportunity_id": "OP-7",
        "stage": f"${{{{ steps.{stage.id}.output.previous_stage }}}}",
    }
    assert step_of(result.workflow, "hosting.create_workspace").compensate is None


def test_an_input_without_a_previous_value_is_named_in_a_warning(own: OfflinePlanner) -> None:
    result = plan(
        own, "Move opportunity OP-7 to negotiation for $500, then provision a workspace "
        "named acme; if provisioning fails, undo the stage change"
    )
    stage = step_of(result.workflow, "pipeline.set_stage")
    assert stage.with_["amount"] == 500
    assert stage.compensate is not None and "amount" not in stage.compensate.with_
    assert any("cannot restore amount" in w for w in result.warnings), result.warnings


def test_undo_of_a_step_nothing_can_undo_says_what_to_add(own: OfflinePlanner) -> None:
    result = plan(
        own, "Add a note to opportunity OP-7, then provision a workspace named acme; "
        "if provisioning fails, undo the note"
    )
    note = step_of(result.workflow, "pipeline.add_note")
    assert note.compensate is None
    warning = next(w for w in result.warnings if "undo the note" in w)
    assert "pipeline.add_note" in warning
    assert "compensation:" in warning and "compensate:" in warning


@pytest.mark.parametrize(
    "undo", ["delete the billing customer", "the billing customer should be deleted"]
)
def test_catalog_compensations_still_win(own: OfflinePlanner, undo: str) -> None:
    result = plan(
        own, "Create the billing customer for a@b.example, then provision a workspace named acme; "
        f"if provisioning fails, {undo}"
    )
    customer = step_of(result.workflow, "billing.create_customer")
    assert customer.compensate is not None and customer.compensate.action == "billing.delete_customer"


# -- approvals that gate a step


@pytest.mark.parametrize(
    ("text", "approver"),
    [
        ("If the manager approves, refund charge ch_1.", "manager"),
        ("Refund charge ch_1 if the manager approves.", "manager"),
        ("Once finance signs off, refund charge ch_1.", "finance"),
        ("Refund charge ch_1 once finance signs off.", "finance"),
        ("If finance approves, refund charge ch_1.", "finance"),
        ("Should the account director approve, refund charge ch_1.", "account director"),
        ("Refund charge ch_1 with a manager's approval.", "manager"),
        ("Refund charge ch_1 subject to approval from legal.", "legal"),
        ("If the refund is approved by the VP of Sales, refund charge ch_1.", "VP of Sales"),
        ("Refund charge ch_1 unless legal objects.", "legal"),
        ("Once the manager has approved it, refund charge ch_1.", "manager"),
        ("Refund charge ch_1 when it's approved.", None),
    ],
)
def test_an_approval_gate_becomes_an_approval_step(
    own: OfflinePlanner, text: str, approver: str | None
) -> None:
    result = plan(own, text)
    wf = result.workflow
    assert actions(wf) == ["core.approval", "payments.refund_charge"]
    approval, refund = step_of(wf, "core.approval"), step_of(wf, "payments.refund_charge")
    assert refund.needs == [approval.id]
    assert refund.if_ is None and approval.if_ is None
    assert approval.with_.get("approvers") == ([approver] if approver else None)
    assert "refund charge ch_1" in approval.with_["prompt"].lower()
    assert boolean_inputs(result.workflow) == []


def test_steps_after_the_gated_one_follow_the_approval(own: OfflinePlanner) -> None:
    wf = plan(own, "If finance approves, refund charge ch_1, then email a@b.example.").workflow
    approval = step_of(wf, "core.approval")
    assert depends(wf, step_of(wf, "email.send_message"), approval)
    assert depends(wf, step_of(wf, "payments.refund_charge"), approval)


def test_a_step_result_is_not_a_person_approving(own: OfflinePlanner) -> None:
    result = plan(own, "If the risk check approves, refund charge ch_1.")
    assert "core.approval" not in actions(result.workflow)
    assert step_of(result.workflow, "payments.refund_charge").if_ is not None


# -- "if <step> fails, <do something>" is not an input


@pytest.mark.parametrize(
    "text",
    [
        "Refund charge ch_1; if the refund fails, notify support on Slack.",
        "Refund charge ch_1. Should the refund fail, post in #support.",
        "Refund charge ch_1. If the refund doesn't go through, open a support ticket.",
        "Refund charge ch_1. If the refund can't be processed, email support@x.example.",
        "Refund charge ch_1 and post in #support if the refund fails.",
        "Refund charge ch_1; if anything goes wrong, post in #ops.",
    ],
)
def test_a_failure_handler_is_warned_about_not_turned_into_an_input(own: OfflinePlanner, text: str) -> None:
    result = plan(own, text)
    assert actions(result.workflow) == ["payments.refund_charge"]
    assert boolean_inputs(result.workflow) == []
    assert step_of(result.workflow, "payments.refund_charge").if_ is None
    warning = next(w for w in result.warnings if w.startswith("not planned"))
    assert "fails the run" in warning and "compensate" in warning


def test_failing_the_run_on_failure_needs_no_step(own: OfflinePlanner) -> None:
    result = plan(own, "Refund charge ch_1. If refunding fails, fail the run.")
    assert actions(result.workflow) == ["payments.refund_charge"]
    assert any("already fails the run" in w for w in result.warnings), result.warnings


def test_a_person_who_wont_do_something_is_still_a_condition(own: OfflinePlanner) -> None:
    result = plan(
        own, "Create the billing customer for a@b.example. If the customer won't pay, email a@b.example."
    )
    assert "email.send_message" in actions(result.workflow)
    assert step_of(result.workflow, "email.send_message").if_ is not None


# -- dates


@pytest.mark.parametrize(
    ("text", "until"),
    [
        ("Refund charge ch_1 on 2026-12-01.", "2026-12-01T00:00:00Z"),
        ("Refund charge ch_1 on December 1, 2026 at 9am.", "2026-12-01T09:00:00Z"),
        ("Refund charge ch_1 on the 3rd of December 2026 at 5pm.", "2026-12-03T17:00:00Z"),
        ("Refund charge ch_1 after 2026-12-01T08:30:00+02:00.", "2026-12-01T08:30:00+02:00"),
        ("Wait until 2026-12-01, then refund charge ch_1.", "2026-12-01T00:00:00Z"),
    ],
)
def test_a_date_on_a_step_becomes_a_wait_until(own: OfflinePlanner, text: str, until: str) -> None:
    wf = plan(own, text).workflow
    assert actions(wf) == ["core.wait", "payments.refund_charge"]
    wait = step_of(wf, "core.wait")
    assert wait.with_ == {"until": until}
    assert step_of(wf, "payments.refund_charge").needs == [wait.id]


def test_a_deadline_or_a_date_without_year_is_warned_not_dropped(own: OfflinePlanner) -> None:
    for text in ("Refund charge ch_1 by December 1.", "Refund charge ch_1 on December 1."):
        result = plan(own, text)
        assert actions(result.workflow) == ["payments.refund_charge"]
        assert any("December 1" in w and "not planned" in w for w in result.warnings), result.warnings


def test_a_date_an_action_takes_itself_is_no_wait(own: OfflinePlanner) -> None:
    wf = plan(own, "Schedule a kickoff meeting on 2026-12-01 at 10:00.").workflow
    assert actions(wf) == ["calendar.create_event"]


# -- channels


@pytest.mark.parametrize(
    "text",
    [
        "Refund charge ch_1, then notify support on Slack.",
        "Refund charge ch_1, then tell support in #help that it went out.",
        "Refund charge ch_1, then let the support team know over Teams.",
    ],
)
def test_a_chat_medium_picks_the_chat_action(own: OfflinePlanner, text: str) -> None:
    wf = plan(own, text).workflow
    assert actions(wf) == ["chat.post_message", "payments.refund_charge"]


def test_without_a_medium_a_support_ticket_is_still_a_ticket(own: OfflinePlanner) -> None:
    wf = plan(own, "Refund charge ch_1, then open a support ticket about it.").workflow
    assert actions(wf) == ["helpdesk.open_ticket", "payments.refund_charge"]


# -- an approval already asked for, and its rejection


@pytest.mark.parametrize(
    "text",
    [
        "Ask the manager to approve the refund. If they approve, refund charge ch_1.",
        "Get finance's sign-off. If approved, refund charge ch_1.",
        "Get finance's sign-off. Once it's approved, refund charge ch_1.",
    ],
)
def test_if_approved_after_an_approval_means_that_approval(own: OfflinePlanner, text: str) -> None:
    result = plan(own, text)
    wf = result.workflow
    assert actions(wf) == ["core.approval", "payments.refund_charge"]
    assert step_of(wf, "payments.refund_charge").needs == [step_of(wf, "core.approval").id]
    assert step_of(wf, "payments.refund_charge").if_ is None
    assert boolean_inputs(result.workflow) == []


@pytest.mark.parametrize(
    "text",
    [
        "Ask the manager to approve the refund. If they approve, refund charge ch_1; "
        "if they reject it, email a@b.example.",
        "If the manager approves, refund charge ch_1; otherwise email a@b.example.",
        "Refund charge ch_1 if the manager approves. If it's not approved, email a@b.example.",
    ],
)
def test_a_step_on_rejection_is_warned_about(own: OfflinePlanner, text: str) -> None:
    result = plan(own, text)
    assert actions(result.workflow) == ["core.approval", "payments.refund_charge"]
    assert boolean_inputs(result.workflow) == []
    warning = next(w for w in result.warnings if w.startswith("not planned"))
    assert "email a@b.example" in warning and "rejection fails" in warning


# -- "if <step> succeeds" is a dependency, not an input


@pytest.mark.parametrize(
    "text",
    [
        "Refund charge ch_1, then create a billing customer for x@y.example. "
        "If the refund goes through, email a@b.example.",
        "Refund charge ch_1, then create a billing customer for x@y.example. "
        "If the refund succeeds, email a@b.example.",
    ],
)
def test_a_step_succeeding_is_a_dependency(own: OfflinePlanner, text: str) -> None:
    result = plan(own, text)
    wf = result.workflow
    mail = step_of(wf, "email.send_message")
    assert mail.if_ is None and boolean_inputs(result.workflow) == []
    assert mail.needs == [step_of(wf, "payments.refund_charge").id]


def test_a_fact_about_a_person_is_still_a_condition(own: OfflinePlanner) -> None:
    result = plan(
        own, "Create a billing customer for x@y.example. If the customer is happy, email a@b.example."
    )
    assert step_of(result.workflow, "email.send_message").if_ is not None


@pytest.mark.parametrize(
    "text",
    [
        "If finance approves, refund charge ch_1 and email a@b.example at the same time.",
        "Refund charge ch_1 and email a@b.example in parallel once finance signs off.",
    ],
)
def test_one_approval_gates_every_item_of_its_clause(own: OfflinePlanner, text: str) -> None:
    wf = plan(own, text).workflow
    assert actions(wf) == ["core.approval", "email.send_message", "payments.refund_charge"]
    approval = step_of(wf, "core.approval")
    assert step_of(wf, "payments.refund_charge").needs == [approval.id]
    assert step_of(wf, "email.send_message").needs == [approval.id]
    assert approval.with_["approvers"] == ["finance"]


def test_a_gate_after_then_belongs_to_the_last_item(own: OfflinePlanner) -> None:
    wf = plan(
        own, "Create the billing customer for a@b.example, then refund charge ch_1 if the manager approves."
    ).workflow
    approval = step_of(wf, "core.approval")
    assert step_of(wf, "payments.refund_charge").needs == [approval.id]
    assert approval.needs == [step_of(wf, "billing.create_customer").id]
