"""The documents in `examples/` run on the engine as their comments say, with scripted actions.

Each action answers with an output built from its output schema in the benchmark catalog, so the
expressions of the examples are rendered against realistic data; the branches are steered by
scripting the fields they test.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from runtime_support import pause, settle

from runtime import Engine, Journal, ManualClock, RunResult, RunState, StepState
from runtime.errors import PermanentActionError
from runtime.invocation import ActionCall
from runtime.testing import ScriptedInvoker
from workflow.catalog import ActionSpec, Catalog
from workflow.document import Workflow
from workflow.loader import load_catalog, load_workflow
from workflow.validator import ensure_valid

ROOT = Path(__file__).parents[1]
BENCH_CATALOG = Path(__file__).parents[2] / "shared" / "bench" / "planner" / "catalog.yaml"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(BENCH_CATALOG)


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    journal = Journal.open(tmp_path / "journal.db")
    yield journal
    journal.close()


def example(name: str, catalog: Catalog) -> Workflow:
    return ensure_valid(load_workflow(ROOT / "examples" / f"{name}.yaml"), catalog)


def sample(schema: Any, name: str) -> Any:
    """A plausible value for a JSON Schema: the first enum value, or one of the declared type."""
    if not isinstance(schema, dict):
        return f"{name}-1"
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object":
        return {k: sample(v, k) for k, v in (schema.get("properties") or {}).items()}
    return {"integer": 1, "number": 1.5, "boolean": True, "array": []}.get(str(kind), f"{name}-1")


class SchemaInvoker(ScriptedInvoker):
    """Answers every action from its output schema, with per-action overrides."""

    def __init__(self, catalog: Catalog, overrides: dict[str, Any] | None = None) -> None:
        super().__init__(default=self._answer)
        self.catalog = catalog
        self.overrides = overrides or {}

    def _answer(self, call: ActionCall) -> Any:
        override = self.overrides.get(call.action.name)
        if isinstance(override, BaseException):
            raise override
        output = sample(call.action.output, call.action.name)
        output.update(override or {})
        return output

    def inputs_of(self, action: str) -> list[dict[str, Any]]:
        return [dict(c.inputs) for c in self.calls if c.action.name == action]


def engine_for(catalog: Catalog, journal: Journal, clock: ManualClock, invoker: Any) -> Engine:
    return Engine(catalog, journal, invoker, clock=clock, rng=random.Random(3), worker_id="examples")


def states(result: RunResult) -> dict[str, str]:
    return {step: state.value for step, state in result.steps.items()}


ONBOARDING_INPUTS = {
    "company_name": "Acme Corp",
    "domain": "acme.example",
    "subdomain": "acme",
    "region": "eu-west",
    "plan": "enterprise",
    "seats": 250,
    "admin_email": "it@acme.example",
    "admin_name": "Ada",
    "billing_email": "ap@acme.example",
}


async def test_enterprise_onboarding_runs_every_step(catalog: Catalog, journal: Journal) -> None:
    clock = ManualClock()
    invoker = SchemaInvoker(catalog, {"provisioning.create_tenant": {"url": "https://acme.app.example"}})
    async with engine_for(catalog, journal, clock, invoker) as engine:
        run_id = await engine.start_run(example("enterprise-onboarding", catalog), ONBOARDING_INPUTS)
        result = await settle(engine, clock, run_id)
    assert result.state == RunState.SUCCEEDED, result.error
    assert set(states(result).values()) == {"succeeded"}
    (subscription,) = invoker.inputs_of("billing.create_subscription")
    assert subscription["quantity"] == 250 and subscription["customer_id"] == "customer_id-1"
    (welcome,) = invoker.inputs_of("email.send_message")
    assert welcome["to"] == ["it@acme.example"]
    assert welcome["variables"]["invite_url"] == "invite_url-1"
    (chat,) = invoker.inputs_of("chat.post_message")
    assert "Acme Corp is live on enterprise (250 seats)" in chat["text"]
    assert "https://acme.app.example" in chat["text"]


async def test_enterprise_onboarding_undoes_provisioning_and_crm_when_billing_fails(
    catalog: Catalog, journal: Journal
) -> None:
    clock = ManualClock()
    declined = PermanentActionError("plan not available", type="validation")
    invoker = SchemaInvoker(catalog, {"billing.create_subscription": declined})
    async with engine_for(catalog, journal, clock, invoker) as engine:
        run_id = await engine.start_run(example("enterprise-onboarding", catalog), ONBOARDING_INPUTS)
        result = await settle(engine, clock, run_id)
    assert result.state != RunState.SUCCEEDED
    assert result.steps["subscription"] == StepState.FAILED
    called = invoker.actions_called()
    # not retried: `validation` is in the step's non_retryable list
    assert called.count("billing.create_subscription") == 1
    assert "email.send_message" not in called and "billing.cancel_subscription" not in called
    undo = [a for a in called if a.split(".")[1].startswith("delete")]
    assert set(undo) == {
        "crm.delete_account",
        "provisioning.delete_tenant",
        "billing.delete_customer",
        "provisioning.delete_user",
    }
    # reverse dependency order: the admin user before its tenant, the CRM account last
    assert undo.index("provisioning.delete_user") < undo.index("provisioning.delete_tenant")
    assert undo[-1] == "crm.delete_account"
    assert invoker.inputs_of("provisioning.delete_tenant") == [{"tenant_id": "tenant_id-1"}]
    assert invoker.inputs_of("crm.delete_account") == [{"account_id": "account_id-1"}]
    assert invoker.inputs_of("provisioning.delete_user") == [
        {"tenant_id": "tenant_id-1", "user_id": "user_id-1"}
    ]


REFUND_INPUTS = {
    "charge_id": "ch_1",
    "ticket_id": "t_9",
    "customer_email": "c@x.example",
    "reason": "duplicate",
}


async def test_small_refund_skips_the_approval(catalog: Catalog, journal: Journal) -> None:
    clock = ManualClock()
    invoker = SchemaInvoker(catalog)
    async with engine_for(catalog, journal, clock, invoker) as engine:
        run_id = await engine.start_run(
            example("refund-with-approval", catalog), {**REFUND_INPUTS, "amount": 1999}
        )
        result = await settle(engine, clock, run_id)
    assert result.state == RunState.SUCCEEDED, result.error
    assert states(result) == {
        "approve": "skipped",
        "refund": "succeeded",
        "ticket_comment": "succeeded",
        "confirm": "succeeded",
    }
    assert invoker.inputs_of("payments.refund_charge") == [
        {"charge_id": "ch_1", "amount": 1999, "reason": "duplicate"}
    ]
    assert "We refunded 19.99 USD" in invoker.inputs_of("email.send_message")[0]["body"]


async def test_large_refund_waits_for_approval(catalog: Catalog, journal: Journal) -> None:
    clock = ManualClock()
    invoker = SchemaInvoker(catalog)
    async with engine_for(catalog, journal, clock, invoker) as engine:
        run_id = await engine.start_run(
            example("refund-with-approval", catalog), {**REFUND_INPUTS, "amount": 75000}
        )
        paused = await pause(engine, clock, run_id)
        assert paused.state == RunState.WAITING
        assert "payments.refund_charge" not in invoker.actions_called()
        await engine.approve(run_id, "approve", True, by="finance-leads")  # one of its approvers
        result = await settle(engine, clock, run_id)
    assert result.state == RunState.SUCCEEDED, result.error
    assert result.steps["approve"] == StepState.SUCCEEDED
    assert invoker.inputs_of("payments.refund_charge")[0]["amount"] == 75000


DUNNING_INPUTS = {
    "customer_id": "cus_1",
    "tenant_id": "t_acme",
    "email": "ap@acme.example",
    "amount": 4900,
    "invoice_number": "INV-7",
}


@pytest.mark.parametrize(
    ("charge_status", "expected"),
    [
        ("succeeded", {"receipt": "succeeded", "suspend": "skipped", "alert_billing": "skipped"}),
        ("failed", {"receipt": "skipped", "suspend": "succeeded", "alert_billing": "succeeded"}),
    ],
)
async def test_dunning_waits_three_days_then_branches(
    catalog: Catalog, journal: Journal, charge_status: str, expected: dict[str, str]
) -> None:
    clock = ManualClock()
    start = clock.now()
    invoker = SchemaInvoker(catalog, {"payments.charge_card": {"status": charge_status}})
    async with engine_for(catalog, journal, clock, invoker) as engine:
        run_id = await engine.start_run(example("dunning", catalog), DUNNING_INPUTS)
        result = await settle(engine, clock, run_id)
    assert result.state == RunState.SUCCEEDED, result.error
    assert {k: v for k, v in states(result).items() if k in expected} == expected
    assert clock.now() - start >= 259200
    (charge,) = invoker.inputs_of("payments.charge_card")
    assert charge == {
        "customer_id": "cus_1",
        "amount": 4900,
        "currency": "usd",
        "description": "Invoice INV-7",
        "idempotency_key": "dunning-INV-7",
    }


async def test_weekly_digest_emails_each_row(catalog: Catalog, journal: Journal) -> None:
    rows = [
        {"owner_email": f"o{i}@x.example", "account_name": f"A{i}", "active_users": i, "seats": 10}
        for i in range(3)
    ]
    clock = ManualClock()
    invoker = SchemaInvoker(catalog, {"analytics.run_report": {"rows": rows, "row_count": 3}})
    async with engine_for(catalog, journal, clock, invoker) as engine:
        run_id = await engine.start_run(
            example("weekly-usage-digest", catalog), {"report_id": "weekly-usage"}
        )
        result = await settle(engine, clock, run_id)
    assert result.state == RunState.SUCCEEDED, result.error
    emails = invoker.inputs_of("email.send_message")
    assert sorted(e["to"][0] for e in emails) == ["o0@x.example", "o1@x.example", "o2@x.example"]
    assert sorted(e["variables"]["active_users"] for e in emails) == [0, 1, 2]
    assert invoker.inputs_of("analytics.run_report")[0]["parameters"] == {"week_offset": 1}
    assert invoker.inputs_of("chat.post_message")[0]["text"].startswith(
        "Weekly usage digest sent to 3 accounts"
    )


DEAL_INPUTS = {
    "deal_id": "d_1",
    "company_name": "Acme",
    "country": "DE",
    "billing_email": "ap@acme.example",
    "plan": "growth",
    "seats": 40,
    "requested_limit": 1_000_000,
}


@pytest.mark.parametrize(
    ("decision", "ran", "skipped"),
    [
        (
            "approve",
            {"credit", "customer", "subscription", "close_won"},
            {"review_ticket", "tell_owner", "log_decline"},
        ),
        (
            "review",
            {"credit", "review_ticket", "tell_owner"},
            {"customer", "subscription", "close_won", "log_decline"},
        ),
        (
            "decline",
            {"credit", "review_ticket", "tell_owner", "log_decline"},
            {"customer", "subscription", "close_won"},
        ),
    ],
)
async def test_credit_gated_deal_takes_one_branch(
    catalog: Catalog, journal: Journal, decision: str, ran: set[str], skipped: set[str]
) -> None:
    clock = ManualClock()
    invoker = SchemaInvoker(catalog, {"credit.run_check": {"decision": decision}})
    async with engine_for(catalog, journal, clock, invoker) as engine:
        run_id = await engine.start_run(example("credit-gated-deal", catalog), DEAL_INPUTS)
        result = await settle(engine, clock, run_id)
    assert result.state == RunState.SUCCEEDED, result.error
    assert {s for s, st in result.steps.items() if st == StepState.SUCCEEDED} == ran
    assert {s for s, st in result.steps.items() if st == StepState.SKIPPED} == skipped
    if decision != "approve":
        assert invoker.inputs_of("chat.post_message")[0]["channel"] == "#deal-desk"


def test_the_sample_outputs_fit_the_catalog(catalog: Catalog) -> None:
    # the scripted outputs above are only meaningful if they match the schemas they stand in for
    from jsonschema import Draft202012Validator

    spec: ActionSpec
    for spec in catalog.user_actions():
        Draft202012Validator(spec.output).validate(sample(spec.output, spec.name))
