"""The offline planner on messages to people ("notify the customer by email", "text the
customer"), on steps said after an approval's "before we ..." / "prior to ..." tail, on numeric
conditions said as percentages, counts and amounts, and on the approvers an approval names."""

from __future__ import annotations

import pytest
from test_planner_support import bench_planner, depends, plan, small_catalog, step_of

from planner.matching import ActionMatcher
from planner.offline import OfflinePlanner
from workflow.document import Workflow


@pytest.fixture(scope="module")
def bench() -> OfflinePlanner:
    return bench_planner()


@pytest.fixture(scope="module")
def small() -> OfflinePlanner:
    return OfflinePlanner(small_catalog())


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
        ("Refund charge ch_1, then text the customer", "sms.send_message"),
        ("Refund charge ch_1, then send the customer an SMS", "sms.send_message"),
        ("Refund charge ch_1, then notify the buyer by text", "sms.send_message"),
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
