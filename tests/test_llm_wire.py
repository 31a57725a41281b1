"""The wire format: a strict-mode schema, lenient parsing, and mapping to the document."""

from __future__ import annotations

import json
from typing import Any

import pytest
from llm_support import TEST_CATALOG, wire_plan, wire_step

from planner.llm_wire import (
    WireError,
    decode_value,
    extract_json,
    parse_wire,
    safe_id,
    to_document,
    wire_schema,
)
from workflow.loader import catalog_from_data

CATALOG = catalog_from_data(TEST_CATALOG)


def _objects(schema: Any) -> list[dict[str, Any]]:
    found = []
    if isinstance(schema, dict):
        if schema.get("type") == "object":
            found.append(schema)
        for value in schema.values():
            found += _objects(value)
    elif isinstance(schema, list):
        for value in schema:
            found += _objects(value)
    return found


def test_schema_is_strict_mode_friendly() -> None:
    schema = wire_schema(["a.b", "core.log", "a.b"], ["a.undo"])
    objects = _objects(schema)
    assert len(objects) == 4  # plan, step, with-arg, compensate_with-arg
    for obj in objects:
        assert obj["additionalProperties"] is False
        assert obj["required"] == list(obj["properties"])
    step = schema["properties"]["steps"]["items"]["properties"]
    assert step["action"]["enum"] == ["a.b", "core.log"]
    assert step["compensate"]["anyOf"][0]["enum"] == ["a.undo"]
    assert "anyOf" in step["if"] and {"type": "null"} in step["if"]["anyOf"]


@pytest.mark.parametrize("text", [
    '{"name": "x", "steps": []}',
    'Here you go:\n```json\n{"name": "x", "steps": []}\n```',
    'Plan: {"name": "x", "steps": []} -- done',
])
def test_json_is_found_in_common_wrappings(text: str) -> None:
    assert extract_json(text) == {"name": "x", "steps": []}


def test_malformed_json_is_a_located_problem() -> None:
    with pytest.raises(WireError) as caught:
        extract_json('{"name": "x", "steps": [')
    assert caught.value.problems[0].code == "malformed_json"


def test_a_wrapped_plan_is_unwrapped() -> None:
    plan = parse_wire(json.dumps({"workflow": {"name": "x", "steps": [{"id": "a", "action": "core.log"}]}}))
    assert plan.steps[0].id == "a" and plan.steps[0].with_ == []


def test_shape_problems_have_locations() -> None:
    with pytest.raises(WireError) as caught:
        parse_wire('{"name": "x", "steps": [{"id": "a"}]}')
    assert [p.location for p in caught.value.problems] == ["steps[0].action"]


def test_values_are_json_text_or_plain_strings() -> None:
    assert decode_value('"abc"') == "abc"
    assert decode_value("42") == 42
    assert decode_value('{"a": [1]}') == {"a": [1]}
    assert decode_value("${{ steps.a.output.id }}") == "${{ steps.a.output.id }}"
    assert decode_value(7) == 7
    assert decode_value("3391", {"type": "string"}) == "3391"
    assert decode_value("3391", {"type": "integer"}) == 3391
    assert decode_value('"x"', {"type": "string"}) == "x"


def test_ids_are_made_safe_and_references_follow() -> None:
    doc = to_document(parse_wire(wire_plan(
        wire_step("send mail!", "email.send_message", with_={"to": "a@example.com"}),
        wire_step("log", "core.log", needs=["send mail!", "log"], with_={"message": "sent"}),
    )), CATALOG)
    assert [s["id"] for s in doc["steps"]] == ["send_mail", "log"]
    assert doc["steps"][1]["needs"] == ["send_mail"]  # its own id dropped
    assert safe_id("!!!", 2) == "step_3"


def test_useless_retry_and_timeout_are_dropped() -> None:
    doc = to_document(parse_wire(wire_plan(
        wire_step("a", "core.log", with_={"message": "m"}, max_attempts=1, timeout_s=0),
        wire_step("b", "core.log", with_={"message": "m"}, max_attempts=0, timeout_s=30),
    )), CATALOG)
    assert "retry" not in doc["steps"][0] and "timeout_s" not in doc["steps"][0]
    assert "retry" not in doc["steps"][1] and doc["steps"][1]["timeout_s"] == 30


def test_given_compensation_inputs_win() -> None:
    doc = to_document(parse_wire(wire_plan(
        wire_step("charge", "payments.charge_card", with_={"amount": 5}, compensate="payments.refund_charge",
                  compensate_with=[{"name": "charge_id", "value": '"ch_fixed"'}]),
    )), CATALOG)
    assert doc["steps"][0]["compensate"] == {"action": "payments.refund_charge",
                                             "with": {"charge_id": "ch_fixed"}}


def test_the_request_becomes_the_description_and_the_name_a_slug() -> None:
    doc = to_document(parse_wire(wire_plan(wire_step("a", "core.log", with_={"message": "m"}),
                                           name="Refund Flow")), CATALOG, request="refund it")
    assert doc["name"] == "refund-flow" and doc["description"] == "refund it"


def test_catalog_renders_compactly_with_required_marks() -> None:
    from planner.llm_prompts import Prompts, schema_fields

    assert schema_fields({"type": "object", "properties": {
        "email": {"type": "string", "description": "Where to write."},
        "tags": {"type": "array", "items": {"type": "string"}},
        "plan": {"enum": ["free", "pro"]},
    }, "required": ["email"]}) == 'email*: string (Where to write.), tags: [string], plan: "free"|"pro"'
    text = Prompts().system(list(CATALOG))
    assert "- billing.create_invoice: Creates an invoice for a customer.\n" in text
    assert "  with: customer_id*: string, amount*: integer\n" in text
    assert "  undone by: billing.void_invoice\n" in text


def test_for_each_accepts_an_expression_or_a_literal_list() -> None:
    doc = to_document(parse_wire(wire_plan(
        wire_step("a", "core.log", with_={"message": "${{ item }}"}, for_each='["x", "y"]'),
        wire_step("b", "core.log", with_={"message": "${{ item }}"}, for_each="${{ inputs.names }}"),
    )), CATALOG)
    assert doc["steps"][0]["for_each"] == ["x", "y"]
    assert doc["steps"][1]["for_each"] == "${{ inputs.names }}"
    assert doc["inputs"]["properties"] == {"names": {"type": "array"}}
