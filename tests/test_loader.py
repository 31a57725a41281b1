"""Reading and writing workflow documents: round trips keep content and key order; bad files fail clearly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from workflow.document import Workflow
from workflow.errors import DocumentError
from workflow.loader import (
    dumps_workflow,
    format_location,
    load_workflow,
    loads_workflow,
    save_workflow,
    workflow_from_data,
)

DOCUMENT = """
name: enterprise-onboarding
description: New enterprise customer onboarding
triggers:
  schedule: [{cron: "0 9 * * MON-FRI", timezone: America/New_York}]
  webhook: {name: customer-signed-up}
inputs:
  type: object
  properties: {email: {type: string}, seats: {type: integer}}
steps:
  - id: update_crm
    action: crm.update_account
    with: {zeta: 1, email: "${{ inputs.email }}", alpha: [3, 2, 1], mid: {y: 1, b: 2}}
  - id: provision
    action: provisioning.create_tenant
    needs: [update_crm]
    with: {account_id: "${{ steps.update_crm.output.account_id }}"}
    retry: {max_attempts: 3, initial_interval_s: 1, backoff: 2.0, max_interval_s: 60}
    timeout_s: 30
    compensate:
      action: provisioning.delete_tenant
      with: {tenant_id: "${{ steps.provision.output.tenant_id }}"}
  - id: approve
    action: core.approval
    needs: [provision]
    if: "${{ inputs.seats > 100 }}"
    with: {prompt: "Approve ${{ inputs.seats }} seats?"}
"""


@pytest.fixture
def workflow() -> Workflow:
    return loads_workflow(DOCUMENT, source="doc.yaml")


def test_the_spec_example_loads(workflow: Workflow) -> None:
    assert workflow.step_ids == ["update_crm", "provision", "approve"]
    provision = workflow.step("provision")
    assert provision.retry is not None and provision.retry.max_attempts == 3
    assert provision.compensate is not None and provision.compensate.action == "provisioning.delete_tenant"
    assert workflow.step("approve").if_ == "${{ inputs.seats > 100 }}"
    assert workflow.triggers is not None and workflow.triggers.schedule[0].timezone == "America/New_York"


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_round_trip_through_a_file(workflow: Workflow, tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"wf{suffix}"
    save_workflow(workflow, path)
    again = load_workflow(path)
    assert again == workflow
    assert list(again.step("update_crm").with_) == ["zeta", "email", "alpha", "mid"]
    assert list(again.step("update_crm").with_["mid"]) == ["y", "b"]
    assert again.step("update_crm").with_["alpha"] == [3, 2, 1]


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_saved_text_uses_spec_field_names_and_order(workflow: Workflow, fmt: str) -> None:
    text = dumps_workflow(workflow, fmt)  # type: ignore[arg-type]
    data = json.loads(text) if fmt == "json" else yaml.safe_load(text)
    assert list(data) == ["name", "description", "triggers", "inputs", "steps"]
    step = data["steps"][1]
    assert list(step) == ["id", "action", "needs", "with", "retry", "timeout_s", "compensate"]
    assert "with" in step["compensate"] and "with_" not in text and "if_" not in text
    assert data["steps"][2]["if"] == "${{ inputs.seats > 100 }}"
    # defaults are left out so a saved plan stays as small as the one a person wrote
    assert "alternatives" not in step and "metadata" not in data
    assert loads_workflow(text, source=f"x.{fmt}") == workflow


def test_yaml_and_json_give_the_same_document(workflow: Workflow) -> None:
    from_yaml = loads_workflow(dumps_workflow(workflow, "yaml"), source="a.yaml")
    from_json = loads_workflow(dumps_workflow(workflow, "json"), source="a.json")
    assert from_yaml == from_json == workflow


def test_bad_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nsteps:\n  - id: a\n   action: core.log\n", encoding="utf-8")
    with pytest.raises(DocumentError, match=r"not valid YAML at line \d+, column \d+") as caught:
        load_workflow(path)
    assert caught.value.path == str(path)
    assert str(path) in str(caught.value)


def test_bad_json_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"name": "x",\n "steps": [}', encoding="utf-8")
    with pytest.raises(DocumentError, match="not valid JSON at line 2"):
        load_workflow(path)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(DocumentError, match="file not found"):
        load_workflow(tmp_path / "nope.yaml")
    with pytest.raises(DocumentError, match="is a directory"):
        load_workflow(tmp_path)


def test_wrong_shape_lists_every_field_problem() -> None:
    with pytest.raises(DocumentError, match="not a valid workflow document") as caught:
        workflow_from_data({"name": "x", "steps": [{"id": "a"}, {"id": "b", "action": "core.log", "retry": {
            "max_attempts": 0}}], "colour": "blue"})
    locations = {p.location: p for p in caught.value.problems}
    assert set(locations) == {"steps[0].action", "steps[1].retry.max_attempts", "colour"}
    assert locations["steps[0].action"].message == "required field `action` is missing"
    assert locations["colour"].message == "unknown field `colour`"


def test_top_level_must_be_a_mapping() -> None:
    with pytest.raises(DocumentError, match="`name` and `steps` at the top, found list"):
        loads_workflow("- a\n- b\n")


def test_format_location() -> None:
    assert format_location(("steps", 2, "with", "account_id")) == "steps[2].with.account_id"
    assert format_location(("retry",), prefix="steps[0]") == "steps[0].retry"
    assert format_location(()) == "(document)"


def test_unicode_survives_a_round_trip(tmp_path: Path) -> None:
    workflow = loads_workflow("name: t\nsteps: [{id: a, action: core.log, with: {message: 'Grüße, 東京 ✓'}}]")
    for suffix in (".yaml", ".json"):
        save_workflow(workflow, tmp_path / f"u{suffix}")
        assert "Grüße" in (tmp_path / f"u{suffix}").read_text(encoding="utf-8")
        assert load_workflow(tmp_path / f"u{suffix}") == workflow
