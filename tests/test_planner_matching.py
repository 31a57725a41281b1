"""The reusable matcher and the template explanation."""

from __future__ import annotations

import pytest
from test_planner_support import small_catalog

from planner.explain import explain
from planner.lexicon import lexicon, stem
from planner.matching import ActionMatcher
from planner.offline import OfflinePlanner


@pytest.fixture(scope="module")
def matcher() -> ActionMatcher:
    return ActionMatcher(small_catalog())


@pytest.mark.parametrize(
    ("text", "action"),
    [
        ("let the team know in chat", "chat.post_message"),
        ("cut off access to their workspace", "workspace.suspend_workspace"),
        ("lock the workspace", "workspace.suspend_workspace"),
        ("give them their money back", "payments.refund_charge"),
        ("text the owner", "sms.send_message"),
        ("email the owner", "email.send_message"),
        ("spin up a new workspace", "workspace.create_workspace"),
        ("tear down the workspace", "workspace.delete_workspace"),
    ],
)
def test_rank_understands_business_english(matcher: ActionMatcher, text: str, action: str) -> None:
    ranked = matcher.rank(text, 3, verb=text)
    assert ranked[0][0].name == action, ranked
    assert ranked[0][1] > ranked[1][1]


def test_rank_among_limits_the_choice(matcher: ActionMatcher) -> None:
    ranked = matcher.rank("refund it", 5, among=["crm.delete_account", "payments.refund_charge"])
    assert [a.name for a, _ in ranked] == ["payments.refund_charge", "crm.delete_account"]


def test_shortlist_keeps_the_relevant_actions_and_their_undo(matcher: ActionMatcher) -> None:
    names = [a.name for a in matcher.shortlist("Charge the customer, then post in the team channel.", k=4)]
    assert "payments.charge_card" in names and "chat.post_message" in names
    assert "payments.refund_charge" in names
    assert len(names) <= 4


def test_index_is_built_once_per_catalog() -> None:
    first, second = ActionMatcher(small_catalog()), ActionMatcher(small_catalog())
    assert first._index is second._index


def test_stem_meets_word_forms() -> None:
    assert stem("booked") == stem("booking") == stem("books") == stem("book")
    assert stem("cancelled") == stem("cancelling") == stem("cancel")
    assert "syn" in " ".join(lexicon().concepts("lock"))


def test_explain_tells_order_parallelism_conditions_undo_and_retries() -> None:
    planner = OfflinePlanner(small_catalog())
    wf = planner.plan(
        "Create a CRM account for Fern, retry up to 2 times. Then export report rep_5 and, at the "
        "same time, text the rep at +15550003333. If the export fails, delete the account. "
        "If the account is flagged, post in #risk."
    ).workflow
    text = explain(wf, planner.catalog)
    lines = text.splitlines()
    assert lines[1].startswith("1. ") and "crm.create_account" in lines[1] and "up to 3 attempts" in lines[1]
    assert any("after step 1" in line and "reports.export_report" in line for line in lines)
    assert any("can run in parallel" in line for line in lines)
    assert any("only if" in line and "chat.post_message" in line for line in lines)
    assert any("undone with crm.delete_account" in line for line in lines)
