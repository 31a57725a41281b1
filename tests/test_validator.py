# ruff: noqa: E501  (the documents under test are inline YAML, one step a line, as people write them)
"""The validator: every rule against a small catalog and the planner benchmark's catalog.

The small catalog uses the benchmark's action names with trimmed schemas, so each broken document
runs against both and must give the same problem.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workflow.catalog import Catalog
from workflow.document import Workflow
from workflow.errors import InvalidWorkflow, Problem
from workflow.loader import catalog_from_data, load_catalog
from workflow.validator import PROBLEM_CODES, ValidationReport, cron_problem, ensure_valid, validate

SHARED = Path(__file__).parents[2] / "shared"
BENCH_CATALOG = SHARED / "bench" / "planner" / "catalog.yaml"

SMALL_CATALOG = """
actions:
  - name: crm.create_account
    input:
      type: object
      properties: {name: {type: string}, employee_count: {type: integer, minimum: 0}}
      required: [name]
    output:
      type: object
      properties: {account_id: {type: string}, url: {type: string}}
      required: [account_id]
    compensation: crm.delete_account
  - name: crm.delete_account
    input: {type: object, properties: {account_id: {type: string}}, required: [account_id]}
    output: {type: object, properties: {deleted: {type: boolean}}}
  - name: crm.create_contact
    input: {type: object, properties: {email: {type: string}, account_id: {type: string}}, required: [email]}
    output: {type: object, properties: {contact_id: {type: string}}}
  - name: provisioning.create_tenant
    input:
      type: object
      properties:
        name: {type: string}
        region: {type: string, enum: [us-east, us-west, eu-west]}
        plan: {type: string}
      required: [name, region]
    output:
      type: object
      properties: {tenant_id: {type: string}, url: {type: string}, status: {type: string}}
      required: [tenant_id]
    compensation: provisioning.delete_tenant
  - name: provisioning.delete_tenant
    input: {type: object, properties: {tenant_id: {type: string}}, required: [tenant_id]}
    output: {type: object, properties: {deleted: {type: boolean}}}
  - name: provisioning.suspend_tenant
    input: {type: object, properties: {tenant_id: {type: string}, reason: {type: string}}, required: [tenant_id]}
    output: {type: object, properties: {tenant_id: {type: string}, status: {type: string}}}
  - name: payments.charge_card
    input:
      type: object
      properties: {amount: {type: integer, minimum: 1}, currency: {type: string}, customer_id: {type: string}}
      required: [amount, currency]
    output:
      type: object
      properties: {charge_id: {type: string}, status: {type: string}}
      required: [charge_id, status]
    compensation: payments.refund_charge
  - name: payments.refund_charge
    input:
      type: object
      properties:
        charge_id: {type: string}
        amount: {type: integer}
        reason: {type: string, enum: [duplicate, fraudulent, requested_by_customer]}
      required: [charge_id]
    output: {type: object, properties: {refund_id: {type: string}}}
  - name: chat.post_message
    input: {type: object, properties: {channel: {type: string}, text: {type: string}}, required: [channel, text]}
    output: {type: object, properties: {message_id: {type: string}, permalink: {type: string}}}
  - name: analytics.run_report
    input: {type: object, properties: {report_id: {type: string}, parameters: {type: object}}, required: [report_id]}
    output:
      type: object
      properties: {run_id: {type: string}, row_count: {type: integer}, rows: {type: array}}
"""


@pytest.fixture(scope="module")
def small_catalog() -> Catalog:
    return catalog_from_data(yaml.safe_load(SMALL_CATALOG), source="small")


@pytest.fixture(scope="module")
def bench_catalog() -> Catalog:
    return load_catalog(BENCH_CATALOG)


@pytest.fixture(params=["small", "bench"])
def catalog(request: pytest.FixtureRequest, small_catalog: Catalog, bench_catalog: Catalog) -> Catalog:
    return small_catalog if request.param == "small" else bench_catalog


def check(text: str, catalog: Catalog) -> ValidationReport:
    return validate(yaml.safe_load(text), catalog)


def only(report: ValidationReport, code: str) -> Problem:
    """The single problem with `code`; fails listing all problems otherwise."""
    found = [p for p in report.problems if p.code == code]
    assert len(found) == 1, f"expected one `{code}`, got: {[str(p) + ' [' + p.code + ']' for p in report.problems]}"
    return found[0]


def codes(report: ValidationReport) -> list[str]:
    return [p.code for p in report.problems]


VALID = """
name: onboarding
inputs:
  type: object
  properties: {company: {type: string}, region: {type: string}, amount: {type: integer}}
  required: [company]
steps:
  - id: account
    action: crm.create_account
    with: {name: "${{ inputs.company }}", employee_count: 40}
  - id: tenant
    action: provisioning.create_tenant
    needs: [account]
    with: {name: acme-corp, region: "${{ inputs.region }}", plan: growth}
    retry: {max_attempts: 4}
    compensate: {action: provisioning.delete_tenant}
  - id: charge
    action: payments.charge_card
    needs: [tenant]
    if: "${{ inputs.amount > 0 }}"
    with: {amount: "${{ inputs.amount }}", currency: usd}
  - id: notify
    action: chat.post_message
    with:
      channel: "#cs"
      text: "Tenant ${{ steps.tenant.output.tenant_id }} is ready for ${{ inputs.company }}"
"""


# ----------------------------------------------------------------------------- valid documents


def test_valid_document_has_no_problems(catalog: Catalog) -> None:
    report = check(VALID, catalog)
    assert report.problems == []
    assert report.ok
    assert isinstance(report.workflow, Workflow)
    assert report.workflow.step_ids == ["account", "tenant", "charge", "notify"]
    assert report.to_data() == {"valid": True, "problems": []}


def test_a_parsed_workflow_validates_too(catalog: Catalog) -> None:
    workflow = Workflow.model_validate(yaml.safe_load(VALID))
    report = validate(workflow, catalog)
    assert report.ok and report.workflow is workflow


def test_ensure_valid_returns_the_workflow_or_raises_with_every_problem(catalog: Catalog) -> None:
    assert ensure_valid(yaml.safe_load(VALID), catalog).name == "onboarding"
    broken = yaml.safe_load(VALID)
    broken["steps"][0]["action"] = "crm.create_acount"
    broken["steps"][1]["needs"] = ["acount"]
    with pytest.raises(InvalidWorkflow) as caught:
        ensure_valid(broken, catalog)
    assert {p.code for p in caught.value.problems} == {"unknown_action", "unknown_step"}
    assert "2 problems" in str(caught.value)


def test_report_to_data_is_json(catalog: Catalog) -> None:
    broken = yaml.safe_load(VALID)
    broken["steps"][0]["action"] = "crm.create_acount"
    data = check(yaml.safe_dump(broken), catalog).to_data()
    assert data["valid"] is False
    (problem,) = json.loads(json.dumps(data))["problems"]
    assert problem == {
        "location": "steps[0].action",
        "message": "unknown action `crm.create_acount`: the catalog has no action of that name",
        "hint": "did you mean `crm.create_account`?",
        "code": "unknown_action",
        "step": "account",
        "severity": "error",
    }


# ----------------------------------------------------------------------------- actions and ids


def test_unknown_action_suggests_the_closest_name(catalog: Catalog) -> None:
    report = check("""
name: t
steps:
  - {id: a, action: crm.create_acount, with: {name: x}}
""", catalog)
    problem = only(report, "unknown_action")
    assert problem.location == "steps[0].action"
    assert problem.step == "a"
    assert "crm.create_acount" in problem.message
    assert problem.hint == "did you mean `crm.create_account`?"
    assert report.workflow is not None and not report.ok


def test_unknown_action_without_close_match_lists_the_namespace(catalog: Catalog) -> None:
    problem = only(check("name: t\nsteps: [{id: a, action: crm.frobnicate_widgets}]", catalog), "unknown_action")
    assert problem.hint is not None
    assert problem.hint.startswith("the `crm` actions are:")
    assert "`crm.create_account`" in problem.hint and "`crm.delete_account`" in problem.hint


def test_unknown_namespace_lists_the_namespaces(catalog: Catalog) -> None:
    problem = only(check("name: t\nsteps: [{id: a, action: zzz.qqq}]", catalog), "unknown_action")
    assert problem.hint is not None and "namespaces" in problem.hint
    assert "`crm`" in problem.hint and "`core`" in problem.hint


def test_duplicate_step_id(catalog: Catalog) -> None:
    report = check("""
name: t
steps:
  - {id: note, action: core.log, with: {message: a}}
  - {id: note, action: core.log, with: {message: b}}
""", catalog)
    problem = only(report, "duplicate_step_id")
    assert problem.location == "steps[1].id"
    assert "already used by steps[0]" in problem.message
    assert problem.hint is not None and "own id" in problem.hint


def test_duplicate_step_id_is_located_past_a_step_without_id(catalog: Catalog) -> None:
    report = check("""
name: t
steps:
  - {action: core.log, with: {message: a}}
  - {id: note, action: core.log, with: {message: a}}
  - {id: note, action: core.log, with: {message: b}}
""", catalog)
    assert only(report, "duplicate_step_id").message == "step id `note` is already used by steps[1]"
    assert only(report, "duplicate_step_id").location == "steps[2].id"
    assert only(report, "missing").location == "steps[0].id"


def test_malformed_step_id_names_the_allowed_characters(catalog: Catalog) -> None:
    report = check("""
name: t
steps:
  - {id: "send email!", action: core.log, with: {message: a}}
""", catalog)
    problem = only(report, "invalid_step_id")
    assert problem.location == "steps[0].id"
    assert "letters, digits, `_` and `-`" in problem.message
    assert problem.hint is not None and "`send_email`" in problem.hint
    assert report.workflow is None


# ----------------------------------------------------------------------------- references between steps


def test_unknown_step_in_needs_suggests_an_id(catalog: Catalog) -> None:
    report = check("""
name: t
steps:
  - {id: account, action: crm.create_account, with: {name: x}}
  - {id: log, action: core.log, needs: [acount], with: {message: done}}
""", catalog)
    problem = only(report, "unknown_step")
    assert problem.location == "steps[1].needs[0]"
    assert "`acount`" in problem.message
    assert problem.hint == "did you mean `account`?"


@pytest.mark.parametrize(
    ("field", "location"),
    [
        ("with: {message: \"${{ steps.acount.output.account_id }}\"}", "steps[1].with.message"),
        ("if: \"${{ steps.acount.status == 'succeeded' }}\"\n    with: {message: x}", "steps[1].if"),
        ("for_each: \"${{ steps.acount.output.ids }}\"\n    with: {message: x}", "steps[1].for_each"),
        ("with: {message: x}\n    compensate: {action: core.log, with: {message: \"${{ steps.acount.output.url }}\"}}",
         "steps[1].compensate.with.message"),
    ],
)
def test_unknown_step_in_a_reference(catalog: Catalog, field: str, location: str) -> None:
    report = check(f"""
name: t
steps:
  - id: account
    action: crm.create_account
    with: {{name: x}}
  - id: log
    action: core.log
    {field}
""", catalog)
    problem = only(report, "unknown_step")
    assert problem.location == location
    assert "steps.acount" in problem.message and "no step has that id" in problem.message
    assert problem.hint == "did you mean `account`?"


def test_a_step_needing_itself(catalog: Catalog) -> None:
    report = check("name: t\nsteps: [{id: a, action: core.log, needs: [a], with: {message: x}}]", catalog)
    problem = only(report, "self_dependency")
    assert problem.location == "steps[0].needs[0]"
    assert "lists itself" in problem.message
    assert "cycle" not in codes(report)


def test_a_step_reading_its_own_output_outside_compensation(catalog: Catalog) -> None:
    report = check("""
name: t
steps:
  - id: tenant
    action: provisioning.create_tenant
    with: {name: acme, region: us-east, plan: "${{ steps.tenant.output.status }}"}
    compensate: {action: provisioning.delete_tenant, with: {tenant_id: "${{ steps.tenant.output.tenant_id }}"}}
""", catalog)
    problem = only(report, "self_dependency")
    assert problem.location == "steps[0].with.plan"


def test_cycle_names_the_steps_in_order(catalog: Catalog) -> None:
    report = check("""
name: t
steps:
  - {id: a, action: core.log, needs: [c], with: {message: x}}
  - {id: b, action: core.log, needs: [a], with: {message: x}}
  - {id: c, action: core.log, with: {message: "${{ steps.b.output.message }}"}}
  - {id: d, action: core.log, with: {message: x}}
""", catalog)
    problem = only(report, "cycle")
    assert problem.location == "steps[0]"
    assert problem.message.endswith("a → b → c → a")
    assert problem.hint is not None and "needs" in problem.hint


def test_ordered_after_and_alternatives_are_checked(catalog: Catalog) -> None:
    report = check("""
name: t
steps:
  - {id: account, action: crm.create_account, with: {name: x}}
  - id: log
    action: core.log
    with: {message: x}
    ordered_after: [acount]
    alternatives: [core.logg]
""", catalog)
    assert only(report, "unknown_step").location == "steps[1].ordered_after[0]"
    alternative = only(report, "unknown_action")
    assert alternative.location == "steps[1].alternatives[0]"
    assert alternative.hint == "did you mean `core.log`?"


# ----------------------------------------------------------------------------- inputs of actions


def test_missing_required_input(catalog: Catalog) -> None:
    problem = only(check("name: t\nsteps: [{id: t1, action: provisioning.create_tenant, with: {name: acme}}]",
                         catalog), "missing_input")
    assert problem.location == "steps[0].with"
    assert "`provisioning.create_tenant` requires input `region`" in problem.message
    assert problem.hint == "add `region: ...` under `with`"


def test_a_misspelled_required_input_is_named_in_the_hint(catalog: Catalog) -> None:
    report = check("name: t\nsteps: [{id: t1, action: provisioning.create_tenant, with: {name: acme, regoin: us-east}}]",
                   catalog)
    assert only(report, "missing_input").hint == "rename `regoin` to `region`"
    assert only(report, "unknown_input").hint == "did you mean `region`?"


def test_core_wait_needs_seconds_or_until(catalog: Catalog) -> None:
    problem = only(check("name: t\nsteps: [{id: w, action: core.wait}]", catalog), "missing_input")
    assert "`seconds` or `until`" in problem.message
    assert check("name: t\nsteps: [{id: w, action: core.wait, with: {seconds: 60}}]", catalog).ok
    assert check("name: t\nsteps: [{id: w, action: core.wait, with: {until: '2030-01-01T09:00:00Z'}}]", catalog).ok
    bad = only(check("name: t\nsteps: [{id: w, action: core.wait, with: {until: 'next monday'}}]", catalog),
               "input_type")
    assert bad.location == "steps[0].with.until" and "ISO-8601" in bad.message


def test_unknown_input_suggests_the_property(catalog: Catalog) -> None:
    report = check("""
name: t
steps:
  - {id: t1, action: provisioning.create_tenant, with: {name: acme, region: us-east, regoin: eu-west}}
""", catalog)
    problem = only(report, "unknown_input")
    assert problem.location == "steps[0].with.regoin"
    assert "missing_input" not in codes(report)  # region is given; regoin is extra
    assert "has no input `regoin`" in problem.message
    assert problem.hint == "did you mean `region`?"


def test_unknown_input_is_allowed_when_the_schema_is_open() -> None:
    catalog = catalog_from_data({"actions": [
        {"name": "ops.track", "input": {"type": "object", "properties": {"event": {"type": "string"}},
                                        "additionalProperties": True}},
        {"name": "ops.untyped"},
    ]})
    report = validate({"name": "t", "steps": [
        {"id": "a", "action": "ops.track", "with": {"event": "x", "anything": 1}},
        {"id": "b", "action": "ops.untyped", "with": {"whatever": [1, 2]}},
    ]}, catalog)
    assert report.problems == []


def test_literal_of_the_wrong_type(catalog: Catalog) -> None:
    problem = only(check("name: t\nsteps: [{id: a, action: crm.create_account, with: {name: x, employee_count: many}}]",
                         catalog), "input_type")
    assert problem.location == "steps[0].with.employee_count"
    assert "'many' is not of type 'integer'" in problem.message
    assert problem.hint == "give a value of type integer"


def test_literal_outside_an_enum_lists_the_choices(catalog: Catalog) -> None:
    problem = only(check("name: t\nsteps: [{id: a, action: provisioning.create_tenant, with: {name: acme, region: mars}}]",
                         catalog), "input_type")
    assert problem.location == "steps[0].with.region"
    assert "'mars' is not one of" in problem.message
    assert problem.hint is not None and "`us-east`" in problem.hint and problem.hint.startswith("use one of")


def test_literal_checks_skip_expressions_and_allow_integers_for_numbers(catalog: Catalog) -> None:
    report = check("""
name: t
inputs: {type: object, properties: {region: {type: string}, n: {type: integer}}}
steps:
  - id: a
    action: provisioning.create_tenant
    with: {name: acme, region: "${{ inputs.region }}"}
  - id: b
    action: crm.create_account
    with: {name: "acct ${{ inputs.n }}", employee_count: "${{ inputs.n }}"}
""", catalog)
    assert report.problems == []


def test_literal_minimum_is_checked(catalog: Catalog) -> None:
    problem = only(check("name: t\nsteps: [{id: a, action: crm.create_account, with: {name: x, employee_count: -1}}]",
                         catalog), "input_type")
    assert "minimum" in problem.message or "less than" in problem.message


# ----------------------------------------------------------------------------- outputs and types


def test_unknown_output_field_suggests_the_field(catalog: Catalog) -> None:
    report = check("""
name: t
steps:
  - {id: account, action: crm.create_account, with: {name: x}}
  - {id: log, action: core.log, with: {message: "${{ steps.account.output.acount_id }}"}}
""", catalog)
    problem = only(report, "unknown_output_field")
    assert problem.location == "steps[1].with.message"
    assert "returns no field `acount_id`" in problem.message
    assert problem.hint == "did you mean `account_id`?"


def test_step_reference_must_read_output_or_status(catalog: Catalog) -> None:
    report = check("""
name: t
steps:
  - {id: account, action: crm.create_account, with: {name: x}}
  - {id: log, action: core.log, with: {message: "${{ steps.account.outputs.account_id }}"}}
""", catalog)
    problem = only(report, "unknown_output_field")
    assert "not `outputs`" in problem.message
    assert problem.hint == "did you mean `output`?"


def test_type_mismatch_between_output_and_input(catalog: Catalog) -> None:
    report = check("""
name: t
steps:
  - {id: account, action: crm.create_account, with: {name: x}}
  - {id: charge, action: payments.charge_card, with: {amount: "${{ steps.account.output.account_id }}", currency: usd}}
""", catalog)
    problem = only(report, "type_mismatch")
    assert problem.location == "steps[1].with.amount"
    assert "expects integer" in problem.message and "`steps.account.output.account_id` is string" in problem.message
    assert problem.hint is not None and "| int" in problem.hint


def test_type_mismatch_against_workflow_inputs(catalog: Catalog) -> None:
    mismatch = check("""
name: t
inputs: {type: object, properties: {amount: {type: number}}}
steps:
  - {id: charge, action: payments.charge_card, with: {amount: "${{ inputs.amount }}", currency: usd}}
""", catalog)
    problem = only(mismatch, "type_mismatch")
    assert "expects integer" in problem.message and "`inputs.amount` is number" in problem.message
    integer_to_number = check("""
name: t
inputs: {type: object, properties: {seats: {type: integer}}}
steps:
  - {id: note, action: core.wait, with: {seconds: "${{ inputs.seats }}"}}
""", catalog)
    assert integer_to_number.problems == []


def test_computed_values_are_not_type_checked(catalog: Catalog) -> None:
    report = check("""
name: t
inputs: {type: object, properties: {dollars: {type: number}}}
steps:
  - {id: charge, action: payments.charge_card, with: {amount: "${{ (inputs.dollars * 100) | int }}", currency: usd}}
""", catalog)
    assert report.problems == []


# ----------------------------------------------------------------------------- expressions


@pytest.mark.parametrize(
    ("text", "code", "words"),
    [
        ("${{ inputs.x + }}", "expression_syntax", "does not parse"),
        ("${{ inputs.x", "expression_syntax", "without closing"),
        ("${{ }}", "expression_syntax", "empty expression"),
        ("${{ inputs.__class__ }}", "unsafe_expression", "private attribute `__class__`"),
        ("${{ range(10) }}", "unsafe_expression", "calls are not allowed"),
        ("${{ inputs.x.upper() }}", "unsafe_expression", "calls are not allowed"),
        ("${{ inputs['__globals__'] }}", "unsafe_expression", "private key"),
        ("${{ 'a' * 10**9 }}", "unsafe_expression", "longer than 100000"),
        ("${{ 10 ** 10000 }}", "unsafe_expression", "exponent too large"),
        ("${{ 1 / 0 }}", "expression_syntax", "always fails"),
    ],
)
def test_bad_expressions_are_located(catalog: Catalog, text: str, code: str, words: str) -> None:
    doc = {"name": "t", "inputs": {"type": "object", "properties": {"x": {"type": "string"}}},
           "steps": [{"id": "a", "action": "core.log", "with": {"message": text}}]}
    problem = only(validate(doc, catalog), code)
    assert problem.location == "steps[0].with.message"
    assert words in problem.message
    assert problem.hint


def test_bad_condition_is_located_at_if(catalog: Catalog) -> None:
    report = check("name: t\nsteps: [{id: a, action: core.log, if: 'inputs.x >', with: {message: m}}]", catalog)
    assert only(report, "expression_syntax").location == "steps[0].if"


def test_undeclared_input_without_inputs_schema(catalog: Catalog) -> None:
    problem = only(check("name: t\nsteps: [{id: a, action: core.log, with: {message: '${{ inputs.email }}'}}]",
                         catalog), "undeclared_input")
    assert problem.location == "steps[0].with.message"
    assert "declares no `inputs`" in problem.message
    assert problem.hint is not None and "properties: {email:" in problem.hint


def test_undeclared_input_with_a_schema(catalog: Catalog) -> None:
    report = check("""
name: t
inputs: {type: object, properties: {email: {type: string}}}
steps:
  - {id: a, action: core.log, with: {message: "${{ inputs.emial }} ${{ inputs.phone }}"}}
""", catalog)
    found = [p for p in report.problems if p.code == "undeclared_input"]
    assert [p.hint for p in found] == ["did you mean `email`?", "add `phone` under `inputs.properties`"]


@pytest.mark.parametrize(
    ("text", "code", "words"),
    [
        ("${{ foo.bar }}", "unknown_reference_root", "`foo`"),
        ("${{ item.name }}", "unknown_reference_root", "only defined in a step with `for_each`"),
        ("${{ secrets.CRM_TOKEN }}", "secret_in_document", "reads a secret"),
        ("${{ input.email }}", "unknown_reference_root", "`input`"),
    ],
)
def test_reference_roots(catalog: Catalog, text: str, code: str, words: str) -> None:
    doc = {"name": "t", "steps": [{"id": "a", "action": "core.log", "with": {"message": text}}]}
    problem = only(validate(doc, catalog), code)
    assert problem.location == "steps[0].with.message"
    assert words in problem.message
    if text.startswith("${{ input."):
        assert problem.hint == "did you mean `inputs`?"
    if code == "secret_in_document":
        assert problem.hint is not None and "invoke" in problem.hint


def test_item_is_known_inside_for_each(catalog: Catalog) -> None:
    report = check("""
name: t
inputs: {type: object, properties: {emails: {type: array, items: {type: string}}}}
steps:
  - {id: a, action: core.log, for_each: "${{ inputs.emails }}", concurrency: 5, with: {message: "${{ item }}"}}
""", catalog)
    assert report.problems == []


# ----------------------------------------------------------------------------- compensation


def test_unknown_compensation_action(catalog: Catalog) -> None:
    report = check("""
name: t
steps:
  - id: tenant
    action: provisioning.create_tenant
    with: {name: acme, region: us-east}
    compensate: {action: provisioning.delete_tenat}
""", catalog)
    problem = only(report, "unknown_action")
    assert problem.location == "steps[0].compensate.action"
    assert problem.hint == "did you mean `provisioning.delete_tenant`?"


def test_compensation_inputs_are_filled_from_output_and_with(catalog: Catalog) -> None:
    report = check("""
name: t
steps:
  - id: tenant
    action: provisioning.create_tenant
    with: {name: acme, region: us-east}
    compensate: {action: provisioning.delete_tenant}
  - id: charge
    action: payments.charge_card
    with: {amount: 100, currency: usd}
    compensate: {action: payments.refund_charge, with: {reason: requested_by_customer}}
""", catalog)
    assert report.problems == []


def test_compensation_missing_an_input_nothing_can_fill(catalog: Catalog) -> None:
    report = check("""
name: t
steps:
  - id: post
    action: chat.post_message
    with: {channel: "#cs", text: hi}
    compensate: {action: crm.delete_account}
""", catalog)
    problem = only(report, "missing_input")
    assert problem.location == "steps[0].compensate.with"
    assert "`crm.delete_account` requires input `account_id`" in problem.message
    assert problem.hint == "add `account_id: ...` under `with`"


def test_compensation_other_than_the_catalogs_is_a_warning(catalog: Catalog) -> None:
    report = check("""
name: t
steps:
  - id: tenant
    action: provisioning.create_tenant
    with: {name: acme, region: us-east}
    compensate: {action: provisioning.suspend_tenant}
""", catalog)
    problem = only(report, "compensation_mismatch")
    assert problem.severity == "warning"
    assert problem.location == "steps[0].compensate.action"
    assert "`provisioning.delete_tenant`" in problem.message
    assert report.ok and report.warnings == [problem] and report.errors == []


# ----------------------------------------------------------------------------- retry, conditions, loops


@pytest.mark.parametrize("attempts", [0, 101])
def test_retry_out_of_range_names_the_range(catalog: Catalog, attempts: int) -> None:
    report = check(f"""
name: t
steps:
  - {{id: a, action: core.log, with: {{message: x}}, retry: {{max_attempts: {attempts}}}}}
""", catalog)
    problem = only(report, "out_of_range")
    assert problem.location == "steps[0].retry.max_attempts"
    assert problem.message == f"`max_attempts` must be between 1 and 100, found {attempts}"
    assert problem.hint is not None and "1 = no retry" in problem.hint
    assert problem.step == "a"


def test_a_broken_field_does_not_hide_the_rest_of_its_step(catalog: Catalog) -> None:
    report = check("""
name: t
steps:
  - {id: account, action: crm.create_account, with: {name: x}}
  - {id: a, action: core.log, needs: [acount], with: {mesage: x}, retry: {max_attempts: 0}}
""", catalog)
    assert sorted(codes(report)) == ["missing_input", "out_of_range", "unknown_input", "unknown_step"]
    assert report.workflow is None


def test_constant_condition_is_a_warning(catalog: Catalog) -> None:
    always = only(check("name: t\nsteps: [{id: a, action: core.log, if: '${{ true }}', with: {message: x}}]",
                        catalog), "constant_condition")
    assert always.severity == "warning" and always.location == "steps[0].if"
    assert "always runs" in always.message
    never = only(check("name: t\nsteps: [{id: a, action: core.log, if: 'false', with: {message: x}}]", catalog),
                 "constant_condition")
    assert "never runs" in never.message


def test_condition_written_as_a_yaml_boolean_is_refused(catalog: Catalog) -> None:
    report = check("name: t\nsteps: [{id: a, action: core.log, if: true, with: {message: x}}]", catalog)
    (problem,) = report.problems
    assert problem.location == "steps[0].if"
    assert problem.hint is not None and "expression string" in problem.hint


@pytest.mark.parametrize(
    ("for_each", "words"),
    [
        ("5", "found integer 5"),
        ("'${{ 5 }}'", "found integer 5"),
        ("'${{ inputs.name }}'", "`inputs.name` is string"),
        ("'{a: 1}'", "found object"),
        ("'${{ steps.account.output.account_id }}'", "is string"),
    ],
)
def test_for_each_must_be_a_list(catalog: Catalog, for_each: str, words: str) -> None:
    if for_each == "'{a: 1}'":
        for_each = "{a: 1}"
    report = check(f"""
name: t
inputs: {{type: object, properties: {{name: {{type: string}}}}}}
steps:
  - {{id: account, action: crm.create_account, with: {{name: x}}}}
  - {{id: a, action: core.log, for_each: {for_each}, with: {{message: x}}}}
""", catalog)
    problem = only(report, "for_each_not_list")
    assert problem.location == "steps[1].for_each"
    assert words in problem.message


def test_for_each_over_an_array_output_is_fine(catalog: Catalog) -> None:
    report = check("""
name: t
steps:
  - {id: report, action: analytics.run_report, with: {report_id: r1}}
  - {id: each, action: core.log, for_each: "${{ steps.report.output.rows }}", with: {message: "${{ item.name }}"}}
  - {id: literal, action: core.log, for_each: [1, 2, 3], with: {message: "${{ item }}"}}
""", catalog)
    assert report.problems == []


def test_concurrency_without_for_each_is_a_warning(catalog: Catalog) -> None:
    problem = only(check("name: t\nsteps: [{id: a, action: core.log, concurrency: 4, with: {message: x}}]", catalog),
                   "concurrency_without_for_each")
    assert problem.severity == "warning" and problem.location == "steps[0].concurrency"


def test_reading_the_output_of_a_step_that_may_be_skipped_is_a_warning(catalog: Catalog) -> None:
    report = check("""
name: t
inputs: {type: object, properties: {amount: {type: integer}}}
steps:
  - {id: approve, action: core.approval, if: "${{ inputs.amount > 500 }}", with: {prompt: "ok?"}}
  - {id: log, action: core.log, with: {message: "approved by ${{ steps.approve.output.by }}"}}
  - {id: same_branch, action: core.log, if: "${{inputs.amount > 500}}", with: {message: "${{ steps.approve.output.by }}"}}
  - {id: fallback, action: core.log, with: {message: "${{ steps.approve.output.by | default('nobody') }}"}}
  - {id: status_only, action: core.log, with: {message: "${{ steps.approve.status }}"}}
""", catalog)
    problem = only(report, "skippable_output")
    assert problem.severity == "warning" and report.ok
    assert problem.location == "steps[1].with.message" and problem.step == "log"
    assert "runs only if `inputs.amount > 500`" in problem.message
    assert problem.hint is not None and "same `if`" in problem.hint and "| default('')" in problem.hint


def test_schedule_inputs_must_fit_the_inputs_schema(catalog: Catalog) -> None:
    report = check("""
name: t
triggers:
  schedule:
    - {cron: "0 8 * * MON", inputs: {report_id: weekly, week_offset: 1}}
    - {cron: "0 8 * * TUE", inputs: {week_offset: one}}
inputs:
  type: object
  properties: {report_id: {type: string}, week_offset: {type: integer}}
  required: [report_id]
steps: [{id: a, action: core.log, with: {message: "${{ inputs.report_id }}"}}]
""", catalog)
    found = sorted((p.location, p.message) for p in report.problems if p.code == "trigger_inputs")
    assert len(found) == 2 and len(report.problems) == 2
    assert found[0][0] == "triggers.schedule[1].inputs" and "'report_id' is a required property" in found[0][1]
    assert found[1][0] == "triggers.schedule[1].inputs.week_offset" and "'one' is not of type 'integer'" in found[1][1]


def test_problem_codes_are_documented() -> None:
    # `add` refuses an undocumented code, so every test above also checks its codes are listed
    assert {"unknown_action", "duplicate_step_id", "unknown_step", "cycle", "missing_input", "unknown_input",
            "input_type", "unknown_output_field", "type_mismatch", "expression_syntax", "unsafe_expression",
            "undeclared_input", "unknown_reference_root", "secret_in_document", "invalid_cron",
            "invalid_timezone"} <= set(PROBLEM_CODES)
    assert all(text.strip() for text in PROBLEM_CODES.values())


# ----------------------------------------------------------------------------- triggers and document level


def test_cron_and_timezone_are_checked(catalog: Catalog) -> None:
    report = check("""
name: t
triggers:
  schedule:
    - {cron: "0 9 * * MON-FRI", timezone: America/New_York}
    - {cron: "0 9 * *", timezone: Europe/Berln}
    - {cron: "61 * * * *"}
steps: [{id: a, action: core.log, with: {message: x}}]
""", catalog)
    found = {p.location: p for p in report.problems}
    assert set(found) == {"triggers.schedule[1].cron", "triggers.schedule[1].timezone", "triggers.schedule[2].cron"}
    assert found["triggers.schedule[1].cron"].code == "invalid_cron"
    assert "5 fields" in found["triggers.schedule[1].cron"].message
    assert found["triggers.schedule[1].timezone"].code == "invalid_timezone"
    assert found["triggers.schedule[1].timezone"].hint == "did you mean `Europe/Berlin`?"
    assert "minute field has 61, outside 0-59" in found["triggers.schedule[2].cron"].message


@pytest.mark.parametrize("cron", ["*/15 * * * *", "0 0 1 JAN,JUL *", "30 8 * * 1-5", "@daily", "0 9-17/2 * * sun"])
def test_valid_cron_expressions(cron: str) -> None:
    assert cron_problem(cron) is None


@pytest.mark.parametrize("cron", ["* * * * * *", "0 24 * * *", "0 0 0 * *", "0 0 * 13 *", "*/0 * * * *", "x * * * *",
                                  "0 0 * * FUNDAY"])
def test_invalid_cron_expressions(cron: str) -> None:
    assert cron_problem(cron) is not None


def test_invalid_inputs_schema(catalog: Catalog) -> None:
    problem = only(check("name: t\ninputs: {type: objekt}\nsteps: [{id: a, action: core.log, with: {message: x}}]",
                         catalog), "invalid_schema")
    assert problem.location == "inputs"


def test_top_level_shape_problems(catalog: Catalog) -> None:
    report = check("steps: []\nowner: me", catalog)
    locations = {p.location: p for p in report.problems}
    assert set(locations) == {"name", "steps", "owner"}
    assert locations["name"].message == "required field `name` is missing"
    assert locations["owner"].code == "extra_forbidden"
    assert locations["steps"].hint is not None and "at least one step" in locations["steps"].hint


def test_a_document_that_is_not_a_mapping(catalog: Catalog) -> None:
    report = validate(["not", "a", "workflow"], catalog)  # type: ignore[arg-type]
    (problem,) = report.problems
    assert problem.code == "invalid_document" and "found list" in problem.message


# ----------------------------------------------------------------------------- all at once


def test_every_problem_is_reported_at_once(catalog: Catalog) -> None:
    report = check("""
name: t
steps:
  - {id: account, action: crm.create_acount, with: {name: x}}
  - {id: tenant, action: provisioning.create_tenant, needs: [acount], with: {name: acme}}
  - {id: log, action: core.log, with: {message: "${{ steps.tenant.output.tenantid }}"}}
  - {id: bad, action: core.log, with: {message: "${{ inputs.__class__ }}"}, retry: {max_attempts: 500}}
""", catalog)
    assert sorted(codes(report)) == sorted(
        ["unknown_action", "unknown_step", "missing_input", "unknown_output_field", "unsafe_expression",
         "out_of_range"]
    )
    # reported in document order
    assert [p.location.split(".")[0] for p in report.problems] == [
        "steps[0]", "steps[1]", "steps[1]", "steps[2]", "steps[3]", "steps[3]"
    ]


def test_a_broken_step_does_not_hide_problems_in_other_steps(catalog: Catalog) -> None:
    report = check("""
name: t
steps:
  - {id: a, with: {message: x}}
  - {id: b, action: core.lgo, with: {message: x}}
  - {id: c, action: core.log, needs: [a, d], with: {message: x}}
""", catalog)
    assert {(p.location, p.code) for p in report.problems} == {
        ("steps[0].action", "missing"),
        ("steps[1].action", "unknown_action"),
        ("steps[2].needs[1]", "unknown_step"),
    }


def test_validating_fifty_steps_is_fast(bench_catalog: Catalog) -> None:
    steps: list[dict[str, Any]] = [{"id": "s0", "action": "crm.create_account", "with": {"name": "${{ inputs.name }}"}}]
    for i in range(1, 50):
        steps.append({
            "id": f"s{i}", "action": "crm.add_note", "needs": [f"s{i - 1}"], "if": "${{ inputs.n > 3 }}",
            "with": {"record_type": "account", "record_id": "${{ steps.s0.output.account_id }}",
                     "body": f"note {i} after ${{{{ steps.s{i - 1}.status }}}}"},
        })
    doc = {"name": "big", "inputs": {"type": "object", "properties": {"name": {"type": "string"},
                                                                         "n": {"type": "integer"}}},
           "steps": steps}
    assert validate(doc, bench_catalog).problems == []
    runs = 20
    # CPU time, not wall time: the suite shares the machine with other work (about 5 ms when idle)
    start = time.process_time()
    for _ in range(runs):
        validate(doc, bench_catalog)
    per_run = (time.process_time() - start) / runs
    assert per_run < 0.025, f"{per_run * 1000:.1f} ms per validation"


# ----------------------------------------------------------------------------- the examples

EXAMPLES = sorted((Path(__file__).parents[1] / "examples").glob("*.yaml"))


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 5


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_is_valid_against_the_benchmark_catalog(path: Path, bench_catalog: Catalog) -> None:
    from workflow.loader import load_workflow, read_data

    report = validate(read_data(path), bench_catalog)
    assert report.problems == [], [str(p) for p in report.problems]
    assert report.workflow == load_workflow(path)
    assert report.workflow.name == path.stem


def test_enterprise_onboarding_example_shape(bench_catalog: Catalog) -> None:
    from workflow.graph import parallel_groups
    from workflow.loader import load_workflow

    workflow = ensure_valid(load_workflow(Path(__file__).parents[1] / "examples" / "enterprise-onboarding.yaml"),
                            bench_catalog)
    assert parallel_groups(workflow) == [
        ["crm_account"], ["provision_tenant", "billing_customer"], ["subscription", "admin_user"],
        ["welcome_email", "notify_cs"],
    ]
    undo = {s.id: s.compensate.action for s in workflow.steps if s.compensate}
    assert undo["crm_account"] == "crm.delete_account"
    assert undo["provision_tenant"] == "provisioning.delete_tenant"
    retried = {s.id for s in workflow.steps if s.retry and s.retry.max_attempts > 1}
    assert {"crm_account", "provision_tenant", "subscription"} <= retried


# ----------------------------------------------------------------------------- robustness

_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 200), st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["x", "a", "crm.create_account", "core.wait", "${{ steps.a.output.account_id }}",
                     "${{ inputs.n }}", "${{", "${{ item }}", "${{ 1 + }}", "${{ x.__class__ }}", "0 9 * * *",
                     "bad id", "Europe/Berlin"]),
)
_JSON = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.sampled_from(["id", "action", "with", "needs", "if", "for_each", "retry", "max_attempts", "seconds",
                     "compensate", "cron", "timezone", "schedule", "properties", "type", "name"]), inner, max_size=4),
    max_leaves=12)
_STEP = st.fixed_dictionaries(
    {"id": st.sampled_from(["a", "b", "c", "bad id"]),
     "action": st.sampled_from(["crm.create_account", "core.log", "core.wait", "provisioning.create_tenant", "x.y"])},
    optional={"with": st.dictionaries(st.sampled_from(["name", "message", "seconds", "region", "nme"]), _JSON,
                                      max_size=3),
              "needs": st.lists(st.sampled_from(["a", "b", "c", "z"]), max_size=2), "if": _JSON, "for_each": _JSON,
              "retry": _JSON, "compensate": _JSON, "concurrency": _JSON, "timeout_s": _JSON},
)
_DOCUMENT = st.fixed_dictionaries(
    {"steps": st.lists(_STEP, max_size=4) | _JSON},
    optional={"name": _JSON, "inputs": _JSON, "triggers": _JSON, "deadline_s": _JSON},
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=_DOCUMENT)
def test_any_document_gives_a_report_never_an_exception(document: dict[str, Any], small_catalog: Catalog) -> None:
    report = validate(document, small_catalog)
    data = json.loads(json.dumps(report.to_data()))
    assert data["valid"] == report.ok
    if report.ok:
        assert report.workflow is not None
    for problem in report.problems:
        assert problem.location and problem.message and problem.code
        assert problem.severity in ("error", "warning")
