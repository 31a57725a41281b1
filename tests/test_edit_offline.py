"""Offline plan editing: each kind of instruction, step references, and clear refusals."""

from __future__ import annotations

import pytest
from llm_support import TEST_CATALOG

from planner.edit import EditNotUnderstood, edit_offline, overlap_ranker, words
from workflow.catalog import Catalog
from workflow.document import Workflow
from workflow.errors import InvalidWorkflow
from workflow.graph import parallel_groups
from workflow.loader import catalog_from_data, workflow_from_data
from workflow.validator import validate


@pytest.fixture
def catalog() -> Catalog:
    return catalog_from_data(TEST_CATALOG)


@pytest.fixture
def workflow() -> Workflow:
    return workflow_from_data({
        "name": "invoice-charge-notify",
        "inputs": {"type": "object", "properties": {"customer_id": {"type": "string"}}},
        "steps": [
            {"id": "invoice", "action": "billing.create_invoice", "name": "Create the invoice",
             "with": {"customer_id": "${{ inputs.customer_id }}", "amount": 4500}},
            {"id": "charge", "action": "payments.charge_card", "name": "Charge the card",
             "needs": ["invoice"], "with": {"amount": 4500, "customer_id": "${{ inputs.customer_id }}"}},
            {"id": "receipt", "action": "email.send_message", "name": "Email the receipt",
             "needs": ["charge"], "with": {"to": "ap@example.com", "subject": "Receipt"}},
            {"id": "announce", "action": "chat.post_message", "name": "Tell finance", "needs": ["charge"],
             "with": {"channel": "#finance", "text": "paid"}},
        ],
    })


def edit(workflow: Workflow, catalog: Catalog, instruction: str) -> Workflow:
    result = edit_offline(workflow, instruction, catalog, ranker=overlap_ranker(catalog))
    assert validate(result.workflow, catalog).ok
    return result.workflow


# ----------------------------------------------------------------------------- adding steps


def test_also_x_once_y_adds_a_step_after_y(workflow: Workflow, catalog: Catalog) -> None:
    result = edit_offline(workflow, "also text the customer once the card is charged", catalog,
                          ranker=overlap_ranker(catalog))
    new = result.workflow
    added = [s for s in new.steps if s.id not in workflow.step_ids]
    assert [s.action for s in added] == ["sms.send_message"]
    assert added[0].needs == ["charge"]
    # required inputs no step provides become declared run inputs
    assert added[0].with_ == {"to": "${{ inputs.to }}", "body": "${{ inputs.body }}"}
    assert new.inputs is not None and {"to", "body"} <= set(new.inputs["properties"])
    assert [r.action for r in result.diff.steps_added] == ["sms.send_message"]
    assert ("charge", added[0].id) in result.diff.edges_added
    assert result.changes == [f"added step `{added[0].id}` (sms.send_message) after `charge`"]
    assert new.metadata["edited_by"] == "offline"


def test_add_before_rewires_the_anchor(workflow: Workflow, catalog: Catalog) -> None:
    new = edit(workflow, catalog, "add a chat message to #ops before the charge")
    added = next(s for s in new.steps if s.id not in workflow.step_ids)
    assert added.action == "chat.post_message" and added.needs == ["invoice"]
    assert new.step("charge").needs == [added.id]
    assert new.step_ids.index(added.id) < new.step_ids.index("charge")


def test_add_in_parallel_with(workflow: Workflow, catalog: Catalog) -> None:
    new = edit(workflow, catalog, "send a text message in parallel with the receipt")
    added = next(s for s in new.steps if s.id not in workflow.step_ids)
    assert added.needs == ["charge"]
    assert any({added.id, "receipt"} <= set(group) for group in parallel_groups(new))


def test_new_step_inputs_come_from_upstream_outputs(workflow: Workflow, catalog: Catalog) -> None:
    new = edit(workflow, catalog, "refund the charge after the receipt")
    added = next(s for s in new.steps if s.id not in workflow.step_ids)
    assert added.action == "payments.refund_charge"
    assert added.with_ == {"charge_id": "${{ steps.charge.output.charge_id }}"}


def test_add_without_a_place_goes_at_the_end(workflow: Workflow, catalog: Catalog) -> None:
    new = edit(workflow, catalog, "post a chat message")
    assert new.steps[-1].needs == ["announce"]


# ----------------------------------------------------------------------------- removing


def test_remove_keeps_the_order_it_gave(catalog: Catalog) -> None:
    chain = workflow_from_data({"name": "chain", "steps": [
        {"id": "a", "action": "email.send_message", "with": {"to": "a@example.com"}},
        {"id": "b", "action": "chat.post_message", "needs": ["a"], "with": {"channel": "#x", "text": "t"}},
        {"id": "c", "action": "email.send_message", "needs": ["b"], "with": {"to": "c@example.com"}},
    ]})
    result = edit_offline(chain, "drop step b", catalog)
    assert result.workflow.step_ids == ["a", "c"]
    assert result.workflow.step("c").needs == ["a"]
    assert [r.id for r in result.diff.steps_removed] == ["b"]


def test_remove_refuses_a_step_others_read(workflow: Workflow, catalog: Catalog) -> None:
    wf = workflow.model_copy(deep=True)
    wf.step("receipt").with_["subject"] = "Charge ${{ steps.charge.output.charge_id }}"
    with pytest.raises(EditNotUnderstood, match="read by receipt"):
        edit_offline(wf, "remove the charge", catalog)


# ----------------------------------------------------------------------------- retries, compensation


@pytest.mark.parametrize(("instruction", "attempts"), [
    ("retry the charge up to 3 times", 4),
    ("retry the charge up to three times", 4),
    ("try the charge up to 5 times", 5),
    ("add a retry to the charge", 3),
    ("the charge should be retried up to 2 times", 3),
])
def test_retry(workflow: Workflow, catalog: Catalog, instruction: str, attempts: int) -> None:
    new = edit(workflow, catalog, instruction)
    retry = new.step("charge").retry
    assert retry is not None and retry.max_attempts == attempts


@pytest.mark.parametrize("instruction", [
    "if the charge fails, void the invoice",
    "if the card charge fails undo the invoice",
    "add a compensation to the invoice",
    "undo the invoice if the charge fails",
])
def test_compensation(workflow: Workflow, catalog: Catalog, instruction: str) -> None:
    new = edit(workflow, catalog, instruction)
    compensate = new.step("invoice").compensate
    assert compensate is not None and compensate.action == "billing.void_invoice"
    assert compensate.with_ == {"invoice_id": "${{ steps.invoice.output.invoice_id }}"}


def test_compensation_needs_an_undo_action_in_the_catalog(workflow: Workflow, catalog: Catalog) -> None:
    with pytest.raises(EditNotUnderstood, match="no undo action"):
        edit_offline(workflow, "add a compensation to the receipt", catalog)


# ----------------------------------------------------------------------------- ordering


def test_make_two_steps_sequential(workflow: Workflow, catalog: Catalog) -> None:
    new = edit(workflow, catalog, "make announce wait for receipt")
    assert "receipt" in new.step("announce").needs
    result = edit_offline(workflow, "run the receipt before the announce step", catalog)
    assert ("receipt", "announce") in result.diff.edges_added
    assert ("charge", "announce") in result.diff.edges_removed


def test_make_two_steps_parallel(catalog: Catalog) -> None:
    chain = workflow_from_data({"name": "chain", "steps": [
        {"id": "start", "action": "email.send_message", "with": {"to": "a@example.com"}},
        {"id": "mail", "action": "email.send_message", "needs": ["start"], "with": {"to": "b@example.com"}},
        {"id": "chat", "action": "chat.post_message", "needs": ["mail"],
         "with": {"channel": "#x", "text": "t"}},
    ]})
    result = edit_offline(chain, "run mail and chat in parallel", catalog)
    assert result.workflow.step("chat").needs == ["start"]
    assert ["mail", "chat"] in parallel_groups(result.workflow)
    assert result.diff.edges_added == [("start", "chat")]
    assert result.diff.edges_removed == [("mail", "chat")]


def test_parallel_refused_when_data_flows(workflow: Workflow, catalog: Catalog) -> None:
    wf = workflow.model_copy(deep=True)
    wf.step("receipt").with_["subject"] = "${{ steps.charge.output.charge_id }}"
    with pytest.raises(EditNotUnderstood, match="reads the output of `charge`"):
        edit_offline(wf, "run the charge and the receipt in parallel", catalog)


def test_a_cycle_is_reported_not_returned(workflow: Workflow, catalog: Catalog) -> None:
    with pytest.raises(InvalidWorkflow, match="cycle"):
        edit_offline(workflow, "make the invoice wait for the receipt", catalog)


# ----------------------------------------------------------------------------- several, and failures


def test_several_instructions_at_once(workflow: Workflow, catalog: Catalog) -> None:
    result = edit_offline(workflow, "Retry the charge up to 2 times; remove the announce step.", catalog)
    assert result.workflow.step_ids == ["invoice", "charge", "receipt"]
    assert len(result.changes) == 2
    assert result.diff.summary() == "-1 step, ~1 changed step, -1 edge"


def test_unknown_step_lists_the_steps(workflow: Workflow, catalog: Catalog) -> None:
    with pytest.raises(EditNotUnderstood, match="the steps are invoice, charge, receipt, announce"):
        edit_offline(workflow, "remove the xylophone", catalog)


def test_unknown_action(workflow: Workflow, catalog: Catalog) -> None:
    with pytest.raises(EditNotUnderstood, match="no catalog action matches"):
        edit_offline(workflow, "frobnicate", catalog)


def test_empty_instruction(workflow: Workflow, catalog: Catalog) -> None:
    with pytest.raises(EditNotUnderstood, match="empty"):
        edit_offline(workflow, "  ", catalog)


def test_the_original_is_untouched(workflow: Workflow, catalog: Catalog) -> None:
    before = workflow.to_data()
    edit_offline(workflow, "retry the charge up to 3 times; remove the receipt", catalog)
    assert workflow.to_data() == before


def test_words_stem_and_drop_filler() -> None:
    assert words("once the invoice is paid") == {"invoice", "pay"}
    assert words("payments.charge_card") == {"pay", "charge", "card"}


def test_retry_without_up_to(workflow: Workflow, catalog: Catalog) -> None:
    retry = edit(workflow, catalog, "retry the charge 3 times").step("charge").retry
    assert retry is not None and retry.max_attempts == 4


def test_built_ins_take_their_inputs_from_the_instruction(workflow: Workflow, catalog: Catalog) -> None:
    new = edit(workflow, catalog, "wait 2 hours before the receipt")
    wait = next(s for s in new.steps if s.action == "core.wait")
    assert wait.with_ == {"seconds": 7200.0} and new.step("receipt").needs == [wait.id]
    new = edit(workflow, catalog, "get an approval from finance before the charge")
    approval = next(s for s in new.steps if s.action == "core.approval")
    assert approval.with_ == {"prompt": "Get an approval from finance"}
    assert new.step("charge").needs == [approval.id] and approval.needs == ["invoice"]
    assert new.inputs == workflow.inputs  # nothing new asked of the run
