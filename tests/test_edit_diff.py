"""The structural diff of two workflow documents, for people and as JSON."""

from __future__ import annotations

import json
from typing import Any

from planner.edit_diff import diff_workflows
from workflow.document import Workflow
from workflow.loader import workflow_from_data


def doc(*steps: dict[str, Any], **top: Any) -> Workflow:
    return workflow_from_data({"name": "w", "steps": list(steps), **top})


A = {"id": "a", "action": "crm.create_account", "with": {"name": "Acme"}}
B = {"id": "b", "action": "email.send_message", "needs": ["a"], "with": {"to": "x@example.com"}}
C = {"id": "c", "action": "chat.post_message", "needs": ["b"], "name": "Tell sales"}


def test_identical_documents_have_no_diff() -> None:
    diff = diff_workflows(doc(A, B), doc(A, B))
    assert diff.empty and diff.render() == "no changes\n" and diff.summary() == "no changes"


def test_metadata_and_version_are_not_changes() -> None:
    diff = diff_workflows(doc(A, version=1, metadata={"planner": "llm"}), doc(A, version=2))
    assert diff.empty


def test_added_removed_and_changed_steps_and_edges() -> None:
    old = doc(A, B)
    new = doc({**A, "with": {"name": "Acme Inc"}, "retry": {"max_attempts": 3}},
              {**C, "needs": ["a"]})
    diff = diff_workflows(old, new)
    assert [s.id for s in diff.steps_added] == ["c"] and diff.steps_added[0].title == "Tell sales"
    assert [s.id for s in diff.steps_removed] == ["b"]
    (changed,) = diff.steps_changed
    assert changed.id == "a"
    assert [(c.field, c.before, c.after) for c in changed.changes] == [
        ("with.name", "Acme", "Acme Inc"), ("retry.max_attempts", None, 3)]
    assert diff.edges_added == [("a", "c")] and diff.edges_removed == [("a", "b")]
    text = diff.render()
    assert "+ step c (chat.post_message) “Tell sales”" in text
    assert "- step b (email.send_message)" in text
    assert "    with.name: Acme → Acme Inc" in text
    assert "    retry.max_attempts: (none) → 3" in text
    assert "+ edge a → c" in text and "- edge a → b" in text
    assert diff.summary() == "+1 step, -1 step, ~1 changed step, +1 edge, -1 edge"


def test_edges_from_references_count_and_redundant_needs_do_not() -> None:
    old = doc(A, B, C)
    # c now also needs a: redundant (a → b → c), so no edge change, only a field change
    new = doc(A, B, {**C, "needs": ["b", "a"]})
    diff = diff_workflows(old, new)
    assert not diff.edges_added and not diff.edges_removed
    assert diff.steps_changed[0].changes[0].field == "needs"
    # a data reference is an edge as much as `needs` is
    referenced = doc(A, {**B, "needs": [], "with": {"to": "${{ steps.a.output.email }}"}})
    assert diff_workflows(doc(A, {**B, "needs": []}), referenced).edges_added == [("a", "b")]


def test_document_level_changes() -> None:
    old = doc(A, description="old")
    new = doc(A, description="new", inputs={"type": "object", "properties": {"email": {"type": "string"}}})
    diff = diff_workflows(old, new)
    fields = {c.field: (c.before, c.after) for c in diff.document_changes}
    assert fields["description"] == ("old", "new")
    assert fields["inputs.properties.email"] == (None, {"type": "string"})


def test_json_rendering_round_trips() -> None:
    diff = diff_workflows(doc(A, B), doc(A, C | {"needs": ["a"]}))
    data = json.loads(json.dumps(diff.to_data()))
    assert set(data) == {"steps_added", "steps_removed", "steps_changed", "edges_added", "edges_removed",
                         "document_changes"}
    assert data["edges_added"] == [["a", "c"]]
    assert data["steps_added"][0] == {"id": "c", "action": "chat.post_message", "title": "Tell sales"}


def test_long_values_are_shortened_for_people() -> None:
    diff = diff_workflows(doc(A), doc({**A, "with": {"name": "x" * 200}}))
    line = diff.render().splitlines()[1]
    assert line.endswith("...") and len(line) < 120
