"""The dependency graph: needs plus references, parallel groups, critical path, exports, cycles."""

from __future__ import annotations

import json

import pytest

from workflow.document import Workflow
from workflow.graph import (
    critical_path,
    dependency_graph,
    find_cycle,
    parallel_groups,
    referenced_steps,
    step_dependencies,
    to_json,
    to_mermaid,
)
from workflow.loader import loads_workflow

ONBOARDING = """
name: onboarding
steps:
  - {id: crm, action: crm.create_account, with: {name: x}}
  - id: tenant
    action: provisioning.create_tenant
    with: {account: "${{ steps.crm.output.account_id }}"}
    retry: {max_attempts: 3}
    compensate: {action: provisioning.delete_tenant}
  - {id: mail, action: email.send_message, needs: [crm]}
  - id: chat
    action: chat.post_message
    needs: [tenant, mail, crm]
    if: "${{ steps.tenant.output.ok }}"
  - {id: each, action: core.log, for_each: "${{ steps.mail.output.ids }}", timeout_s: 5, name: 'Say "hi"'}
  - {id: solo, action: core.log}
"""


@pytest.fixture
def workflow() -> Workflow:
    return loads_workflow(ONBOARDING)


def test_dependencies_come_from_needs_and_references(workflow: Workflow) -> None:
    assert step_dependencies(workflow.step("tenant")) == {"crm"}  # with reference only
    assert step_dependencies(workflow.step("mail")) == {"crm"}  # needs only
    assert step_dependencies(workflow.step("chat")) == {"tenant", "mail", "crm"}  # needs + if
    assert step_dependencies(workflow.step("each")) == {"mail"}  # for_each reference
    assert step_dependencies(workflow.step("solo")) == set()


def test_edges_record_whether_data_flows(workflow: Workflow) -> None:
    graph = dependency_graph(workflow)
    assert set(graph.nodes) == set(workflow.step_ids)
    assert graph.nodes["tenant"]["step"] is workflow.step("tenant")
    data = {(u, v): d["data"] for u, v, d in graph.edges(data=True)}
    assert data == {
        ("crm", "tenant"): True,
        ("crm", "mail"): False,
        ("crm", "chat"): False,
        ("tenant", "chat"): True,
        ("mail", "chat"): False,
        ("mail", "each"): True,
    }


def test_references_in_compensation_and_unknown_ids_are_not_dependencies() -> None:
    workflow = loads_workflow("""
name: t
steps:
  - id: a
    action: core.log
    needs: [ghost]
    compensate: {action: core.log, with: {message: "${{ steps.b.output.message }}"}}
  - {id: b, action: core.log, with: {message: "${{ steps.a.output.message }} ${{ steps.a.status }}"}}
""")
    assert referenced_steps(workflow.step("a")) == set()
    assert list(dependency_graph(workflow).edges) == [("a", "b")]


def test_a_step_referring_to_itself_is_not_its_own_dependency() -> None:
    workflow = loads_workflow(
        "name: t\nsteps: [{id: a, action: core.log, with: {m: '${{ steps.a.status }}'}}]"
    )
    assert step_dependencies(workflow.step("a")) == set()
    assert find_cycle(workflow) is None


def test_unparseable_expressions_still_count_their_step_references() -> None:
    workflow = loads_workflow("""
name: t
steps:
  - {id: a, action: core.log}
  - {id: b, action: core.log, with: {m: "${{ steps.a.output.x + }}"}}
""")
    assert referenced_steps(workflow.step("b")) == {"a"}


def test_parallel_groups_are_topological_generations(workflow: Workflow) -> None:
    assert parallel_groups(workflow) == [["crm", "solo"], ["tenant", "mail"], ["chat", "each"]]


def test_critical_path_on_durations(workflow: Workflow) -> None:
    path, length = critical_path(workflow, {"crm": 1, "tenant": 5, "mail": 2, "chat": 1, "each": 10})
    assert path == ["crm", "mail", "each"] and length == 13.0
    path, length = critical_path(workflow, {"crm": 1, "tenant": 50, "mail": 2, "chat": 1, "each": 10})
    assert path == ["crm", "tenant", "chat"] and length == 52.0
    # missing durations count as zero
    path, length = critical_path(workflow, {"solo": 3})
    assert path == ["solo"] and length == 3.0


def test_mermaid_structure(workflow: Workflow) -> None:
    text = to_mermaid(workflow)
    lines = text.splitlines()
    assert lines[0] == "flowchart TD"
    # one node per step, with its action; a condition makes a hexagon
    assert '  s_crm["crm<br/><small>crm.create_account</small>"]' in lines
    assert any(line.startswith('  s_chat{{"') and "if: steps.tenant.output.ok" in line for line in lines)
    assert any("retry ×3" in line for line in lines if line.startswith("  s_tenant["))
    assert any("for each item, timeout 5s" in line for line in lines if line.startswith("  s_each["))
    # quotes in titles cannot break the label
    assert any("Say #quot;hi#quot;" in line for line in lines)
    # edges are transitively reduced: crm → chat is implied by crm → mail → chat
    edges = sorted(line.strip() for line in lines if "-->" in line and "-.->" not in line)
    assert edges == ["s_crm --> s_mail", "s_crm --> s_tenant", "s_mail --> s_chat", "s_mail --> s_each",
                     "s_tenant --> s_chat"]
    assert "  s_tenant -.->|on failure| s_tenant_undo" in lines
    assert '  s_tenant_undo(["undo: provisioning.delete_tenant"])' in lines
    assert text.endswith("\n")


def test_mermaid_ids_are_safe_for_dashes() -> None:
    workflow = loads_workflow("name: t\nsteps: [{id: send-mail, action: core.log}, {id: b, action: core.log, "
                              "needs: [send-mail]}]")
    assert "  s_send_mail --> s_b" in to_mermaid(workflow).splitlines()


def test_json_export(workflow: Workflow) -> None:
    data = to_json(workflow)
    json.dumps(data)  # plain data all the way down
    assert data["name"] == "onboarding"
    assert [n["id"] for n in data["nodes"]] == workflow.step_ids
    tenant = data["nodes"][1]
    assert tenant == {"id": "tenant", "action": "provisioning.create_tenant", "title": "tenant",
                      "condition": None, "for_each": False, "max_attempts": 3, "timeout_s": None,
                      "compensate": "provisioning.delete_tenant"}
    assert data["nodes"][3]["condition"] == "steps.tenant.output.ok"
    assert {"from": "crm", "to": "tenant", "data": True} in data["edges"]
    assert {"from": "crm", "to": "chat", "data": False} not in data["edges"]  # reduced away
    assert data["groups"] == parallel_groups(workflow)


def test_cycle_detection_through_needs_and_references() -> None:
    workflow = loads_workflow("""
name: t
steps:
  - {id: a, action: core.log, needs: [c]}
  - {id: b, action: core.log, if: "${{ steps.a.status == 'succeeded' }}"}
  - {id: c, action: core.log, for_each: "${{ steps.b.output.list }}"}
  - {id: d, action: core.log}
""")
    cycle = find_cycle(workflow)
    assert cycle is not None
    assert sorted(cycle) == ["a", "b", "c"]
    # in dependency order: each step waits for the one before it
    for u, v in zip(cycle, [*cycle[1:], cycle[0]], strict=True):
        assert dependency_graph(workflow).has_edge(u, v)


def test_acyclic_graph_has_no_cycle(workflow: Workflow) -> None:
    assert find_cycle(workflow) is None
