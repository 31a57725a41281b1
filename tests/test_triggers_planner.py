"""Triggers read from plain English: the phrasings of issue 10, the team's own sentences (the
examples' descriptions, the README), sentences that must stay untouched (the planner benchmark),
and both planners: offline (the rest plans exactly as before) and LLM (through a fake server)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from conftest import PLANNER_CATALOG, REPO, SHARED
from llm_support import TEST_CATALOG, FakeOpenAI, completion, invoice_then_email

from planner.llm_planner import LLMPlanner
from planner.llm_settings import LLMSettings
from planner.triggers import describe_schedule, describe_triggers, extract_triggers, webhook_name
from workflow.document import ScheduleTrigger, Triggers, WebhookTrigger
from workflow.loader import catalog_from_data, load_catalog
from workflow.validator import validate


def schedule(request: str) -> tuple[ScheduleTrigger, str]:
    triggers, rest = extract_triggers(request)
    assert triggers is not None and triggers.webhook is None and len(triggers.schedule) == 1, triggers
    return triggers.schedule[0], rest


@pytest.mark.parametrize(("request_text", "cron", "zone", "business_day", "rest"), [
    # the phrasings
    ("Every Monday at 9am Berlin time, send the usage digest to the team.",
     "0 9 * * MON", "Europe/Berlin", None, "Send the usage digest to the team."),
    ("On the first business day of each month, pull the churn report and email it to finance.",
     "0 9 * * *", "UTC", "first", "Pull the churn report and email it to finance."),
    # the team's sentence in examples/weekly-usage-digest.yaml
    ("Every Monday at 8:00 New York time, run the weekly usage report, email every account owner in it "
     "their usage, and post a summary to the #cs-ops channel.",
     "0 8 * * MON", "America/New_York", None,
     "Run the weekly usage report, email every account owner in it their usage, and post a summary to "
     "the #cs-ops channel."),
    # more ways people say it
    ("Send the digest every weekday at 9:30 am ET.", "30 9 * * MON-FRI", "America/New_York", None,
     "Send the digest."),
    ("Every Monday and Thursday at 8:30 CET, export the new leads.", "30 8 * * MON,THU", "Europe/Berlin",
     None, "Export the new leads."),
    ("Post the standup reminder in #eng every weekday morning.", "0 9 * * MON-FRI", "UTC", None,
     "Post the standup reminder in #eng."),
    ("Run the billing sync daily at 02:00 UTC.", "0 2 * * *", "UTC", None, "Run the billing sync."),
    ("Email finance the invoice report on the 15th of every month at 10pm (Europe/London).",
     "0 22 15 * *", "Europe/London", None, "Email finance the invoice report."),
    ("Every 15 minutes, check the payment queue.", "*/15 * * * *", "UTC", None, "Check the payment queue."),
    ("On the last business day of the month at 5pm in Chicago, close the books.", "0 17 * * *",
     "America/Chicago", "last", "Close the books."),
    ("At noon every Friday, post the weekly wins to #general.", "0 12 * * FRI", "UTC", None,
     "Post the weekly wins to #general."),
])
def test_schedules_are_read_and_cut_from_the_request(request_text: str, cron: str, zone: str,
                                                      business_day: str | None, rest: str) -> None:
    trigger, remaining = schedule(request_text)
    assert (trigger.cron, trigger.timezone, trigger.business_day) == (cron, zone, business_day)
    assert remaining == rest


@pytest.mark.parametrize(("request_text", "name", "rest"), [
    ("Whenever a new customer signs up, create their CRM account and send a welcome email.",
     "customer-signed-up", "Create their CRM account and send a welcome email."),
    # the README's sentence
    ("When an enterprise customer signs up, update the CRM, then set up billing and provision the account "
     "in parallel; if provisioning fails, undo the CRM update.", "enterprise-customer-signed-up",
     "Update the CRM, then set up billing and provision the account in parallel; if provisioning fails, "
     "undo the CRM update."),
    # the team's sentence in examples/dunning.yaml
    ("When a subscription payment fails, email a reminder, wait three days, retry the charge.",
     "subscription-payment-failed", "Email a reminder, wait three days, retry the charge."),
    ("When an order is placed, reserve the stock.", "order-placed", "Reserve the stock."),
    ("Open a ticket whenever a payment fails.", "payment-failed", "Open a ticket."),
    ("Each time a trial expires, email the account owner.", "trial-expired", "Email the account owner."),
])
def test_events_become_webhooks_named_from_the_event(request_text: str, name: str, rest: str) -> None:
    triggers, remaining = extract_triggers(request_text)
    assert triggers == Triggers(webhook=WebhookTrigger(name=name))
    assert remaining == rest


def test_a_schedule_and_an_event_in_one_request() -> None:
    triggers, rest = extract_triggers("Whenever a deal closes, and every Friday at 4pm, update the forecast.")
    assert triggers is not None
    assert [s.cron for s in triggers.schedule] == ["0 16 * * FRI"]
    assert triggers.webhook == WebhookTrigger(name="deal-closed")
    assert rest == "Update the forecast."


@pytest.mark.parametrize("request_text", [
    "Pull the monthly churn report and the expansion revenue report at the same time.",
    "Schedule a postmortem review for Thursday at 2pm with the ticket number in the invite.",
    "Book a kickoff call with Raj for next Tuesday at 10am Pacific.",
    "Create the account, then email the weekly plan to the admin.",
    "If the charge fails, when the customer replies, escalate.",  # a "when" not at the start
])
def test_times_and_adjectives_that_are_not_triggers_stay_in_the_request(request_text: str) -> None:
    assert extract_triggers(request_text) == (None, request_text)


def test_no_request_of_the_planner_benchmark_is_read_as_a_trigger(shared_dir: Path) -> None:
    cases = [json.loads(line) for line in (shared_dir / "bench" / "planner" / "cases.jsonl").open()]
    assert len(cases) >= 20
    touched = [c["id"] for c in cases if extract_triggers(c["request"]) != (None, c["request"])]
    assert touched == []


def test_the_examples_descriptions_give_back_their_own_triggers() -> None:
    for name in ("weekly-usage-digest", "dunning"):
        data = yaml.safe_load((REPO / "examples" / f"{name}.yaml").read_text())
        triggers, _ = extract_triggers(data["description"])
        assert triggers is not None
        if name == "weekly-usage-digest":
            expected = data["triggers"]["schedule"][0]
            assert (triggers.schedule[0].cron, triggers.schedule[0].timezone) == (
                expected["cron"], expected["timezone"])
        else:  # the example names its hook after the invoice; the sentence says "subscription payment"
            assert triggers.webhook is not None and triggers.webhook.name.endswith("payment-failed")


def test_webhook_names() -> None:
    assert webhook_name("a new customer signs up") == "customer-signed-up"
    assert webhook_name("the invoice is paid") == "invoice-paid"
    assert webhook_name("an order gets cancelled") == "order-cancelled"
    assert webhook_name("a user cancels") == "user-cancelled"
    assert webhook_name("it") is None


def test_descriptions() -> None:
    assert describe_schedule(ScheduleTrigger(cron="0 9 * * MON", timezone="Europe/Berlin")) == (
        "every Monday at 09:00 (Europe/Berlin)")
    assert describe_schedule(ScheduleTrigger(cron="0 9 * * *", business_day="first")) == (
        "on the first business day of each month at 09:00 (UTC)")
    assert describe_schedule(ScheduleTrigger(cron="*/5 * * * *", missed="catch_up")).startswith(
        "every 5 minutes (UTC); a time missed while the service was down runs once")
    assert describe_schedule(ScheduleTrigger(cron="0 9 1-7 */2 MON")) == "on cron `0 9 1-7 */2 MON` (UTC)"
    both = Triggers(schedule=[ScheduleTrigger(cron="30 8 * * MON-FRI", timezone="America/New_York")],
                    webhook=WebhookTrigger(name="deal-signed", secret_env="DEALS_SECRET"))
    text = describe_triggers(both)
    assert text.startswith("Runs by itself every weekday (Monday to Friday) at 08:30 (America/New_York)")
    assert "/hooks/deal-signed" in text and "$DEALS_SECRET" in text
    assert describe_triggers(None) == "" and describe_triggers(Triggers()) == ""


# -- the planners ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def offline() -> object:
    if not SHARED.exists():
        pytest.skip(f"{SHARED} is not present")
    from planner.offline import OfflinePlanner

    return OfflinePlanner(load_catalog(PLANNER_CATALOG))


def test_the_offline_planner_plans_the_rest_as_before_and_attaches_the_trigger(offline: object) -> None:
    from planner.offline import OfflinePlanner

    assert isinstance(offline, OfflinePlanner)
    request = "Whenever a new customer signs up, create their CRM account and send a welcome email."
    with_trigger = offline.plan(request)
    without = offline.plan("Create their CRM account and send a welcome email.")
    assert [s.model_dump() for s in with_trigger.workflow.steps] == [
        s.model_dump() for s in without.workflow.steps]
    assert with_trigger.workflow.triggers == Triggers(webhook=WebhookTrigger(name="customer-signed-up"))
    assert with_trigger.workflow.description == request
    assert "/hooks/customer-signed-up" in with_trigger.explanation
    assert validate(with_trigger.workflow, offline.catalog).ok


def test_the_offline_planner_attaches_a_schedule_its_plan_can_run(offline: object) -> None:
    from planner.offline import OfflinePlanner

    assert isinstance(offline, OfflinePlanner)
    result = offline.plan("Every Monday at 9am Berlin time, send the weekly usage digest email to "
                          "team@acme.example.")
    triggers = result.workflow.triggers
    assert triggers is not None and [(s.cron, s.timezone) for s in triggers.schedule] == [
        ("0 9 * * MON", "Europe/Berlin")]
    assert "every Monday at 09:00 (Europe/Berlin)" in result.explanation
    assert validate(result.workflow, offline.catalog).ok


def test_a_schedule_whose_plan_needs_inputs_is_left_off_with_a_warning_saying_what_to_add(
        offline: object) -> None:
    from planner.offline import OfflinePlanner

    assert isinstance(offline, OfflinePlanner)
    result = offline.plan("On the first business day of each month, pull the monthly churn report and "
                          "email it to finance@acme.example.")
    assert result.workflow.triggers is None
    required = result.workflow.inputs["required"] if result.workflow.inputs else []
    assert required, "this plan was expected to need a run input"
    [warning] = [w for w in result.warnings if "was read as a schedule" in w]
    assert "first business day" in warning and all(name in warning for name in required)
    assert validate(result.workflow, offline.catalog).ok


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


def test_the_llm_planner_is_shown_the_rest_and_its_plan_gets_the_triggers(server: FakeOpenAI) -> None:
    catalog = catalog_from_data(TEST_CATALOG)
    server.script(completion(invoice_then_email()))
    planner = LLMPlanner(catalog, LLMSettings(base_url=server.base_url, api_key="sk-test", model="m",
                                              max_retries=0, timeout_s=10))
    request = "Whenever an order is placed, invoice cus_1 for $45, then email ap@example.com"
    result = planner.plan(request)
    shown = server.chat_requests[0].text
    assert "invoice cus_1 for $45" in shown.lower() and "order is placed" not in shown
    assert result.workflow.triggers == Triggers(webhook=WebhookTrigger(name="order-placed"))
    assert result.workflow.description == request
    assert "/hooks/order-placed" in result.explanation
    assert validate(result.workflow, catalog).ok
