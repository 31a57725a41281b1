"""A small catalog written for the planner tests, and helpers to read plans."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from planner.offline import OfflinePlanner, PlanResult
from workflow.catalog import ActionSpec, Catalog
from workflow.document import Step, Workflow
from workflow.graph import dependency_graph, transitive_reduction
from workflow.loader import load_catalog
from workflow.validator import validate

BENCH_CATALOG = Path(__file__).resolve().parents[2] / "shared" / "bench" / "planner" / "catalog.yaml"


def _obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        schema["required"] = required
    return schema


S = {"type": "string"}


def small_catalog() -> Catalog:
    actions = [
        ActionSpec(
            name="crm.create_account",
            description="Creates a company account in the CRM.",
            input=_obj({"name": S, "owner_email": {"type": "string", "format": "email"}}, ["name"]),
            output=_obj({"account_id": S}),
            compensation="crm.delete_account",
        ),
        ActionSpec(
            name="crm.delete_account",
            description="Deletes a company account from the CRM.",
            input=_obj({"account_id": S}, ["account_id"]),
            output=_obj({"deleted": {"type": "boolean"}}),
        ),
        ActionSpec(
            name="payments.charge_card",
            description="Charges a customer's card.",
            input=_obj(
                {
                    "customer_id": S,
                    "amount": {"type": "integer", "description": "Amount in cents."},
                    "currency": S,
                },
                ["customer_id", "amount"],
            ),
            output=_obj({"charge_id": S, "status": S}),
            compensation="payments.refund_charge",
        ),
        ActionSpec(
            name="payments.refund_charge",
            description="Refunds a charge.",
            input=_obj({"charge_id": S}, ["charge_id"]),
            output=_obj({"refund_id": S}),
        ),
        ActionSpec(
            name="quotes.create_quote",
            description="Creates a price quote for a customer.",
            input=_obj(
                {"customer_id": S, "total": {"type": "number"}, "seats": {"type": "integer"}},
                ["customer_id", "total"],
            ),
            output=_obj({"quote_id": S}),
        ),
        ActionSpec(
            name="chat.post_message",
            description="Posts a message to a team chat channel.",
            input=_obj({"channel": S, "text": S}, ["channel", "text"]),
            output=_obj({"message_id": S}),
        ),
        ActionSpec(
            name="sms.send_message",
            description="Sends a text message to a mobile phone.",
            input=_obj({"to": S, "body": S}, ["to", "body"]),
            output=_obj({"message_id": S}),
        ),
        ActionSpec(
            name="email.send_message",
            description="Sends an email.",
            input=_obj({"to": {"type": "string", "format": "email"}, "subject": S, "body": S}, ["to"]),
            output=_obj({"message_id": S}),
        ),
        ActionSpec(
            name="workspace.create_workspace",
            description="Provisions a new workspace in a region.",
            input=_obj({"name": S, "region": S, "account_id": S}, ["name"]),
            output=_obj({"workspace_id": S}),
            compensation="workspace.delete_workspace",
        ),
        ActionSpec(
            name="workspace.delete_workspace",
            description="Deletes a workspace and its data.",
            input=_obj({"workspace_id": S}, ["workspace_id"]),
            output=_obj({"deleted": {"type": "boolean"}}),
        ),
        ActionSpec(
            name="workspace.suspend_workspace",
            description="Suspends a workspace so its users can no longer sign in.",
            input=_obj({"workspace_id": S}, ["workspace_id"]),
            output=_obj({"status": S}),
        ),
        ActionSpec(
            name="workspace.invite_user",
            description="Invites a user to a workspace by email.",
            input=_obj(
                {"workspace_id": S, "email": {"type": "string", "format": "email"}}, ["workspace_id", "email"]
            ),
            output=_obj({"user_id": S}),
        ),
        ActionSpec(
            name="risk.score_customer",
            description="Scores a customer's fraud risk.",
            input=_obj({"customer_id": S}, ["customer_id"]),
            output=_obj({"score": {"type": "integer"}, "decision": S}),
        ),
        ActionSpec(
            name="reports.export_report",
            description="Exports a saved report as a file.",
            input=_obj({"report_id": S}, ["report_id"]),
            output=_obj({"file_url": S}),
        ),
    ]
    return Catalog(actions)


def step_of(workflow: Workflow, action: str, nth: int = 0) -> Step:
    steps = [s for s in workflow.steps if s.action == action]
    assert len(steps) > nth, f"no step #{nth} with action {action}: {[s.action for s in workflow.steps]}"
    return steps[nth]


def actions(workflow: Workflow) -> list[str]:
    return sorted(s.action for s in workflow.steps)


def edges(workflow: Workflow) -> set[tuple[str, str]]:
    """Reduced dependency edges as (action, action) pairs."""
    reduced = transitive_reduction(workflow)
    action = {s.id: s.action for s in workflow.steps}
    return {(action[u], action[v]) for u, v in reduced.edges()}


def depends(workflow: Workflow, later: Step, earlier: Step) -> bool:
    import networkx as nx

    return nx.has_path(dependency_graph(workflow), earlier.id, later.id)


def bench_planner() -> OfflinePlanner:
    """The offline planner on the planner benchmark's catalog (skips without ../shared)."""
    if not BENCH_CATALOG.exists():
        pytest.skip("../shared/bench is not present")
    return OfflinePlanner(load_catalog(BENCH_CATALOG))


def plan(planner: OfflinePlanner, text: str) -> PlanResult:
    """The offline plan for `text`, checked to pass the validator."""
    result = planner.plan(text)
    report = validate(result.workflow, planner.catalog)
    assert report.ok, [str(p) for p in report.errors]
    assert result.planner == "offline"
    return result


def run_inputs(workflow: Workflow) -> dict[str, Any]:
    """The plan's run inputs: property name → schema."""
    return dict((workflow.inputs or {}).get("properties", {}))


def boolean_inputs(workflow: Workflow) -> list[str]:
    """The plan's yes/no run inputs (what a misread condition turns into)."""
    return [k for k, v in run_inputs(workflow).items() if v.get("type") == "boolean"]
