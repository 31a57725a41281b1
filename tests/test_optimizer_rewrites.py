"""Parallelize and fail-fast reorder on documents where the right answer is known."""

from __future__ import annotations

import random

import networkx as nx
import numpy as np
import pytest

from optimizer.constraints import requirements, violations
from optimizer.rewrites.parallelize import parallelize
from optimizer.rewrites.reorder import fail_fast
from optimizer.waste import simulate_waste
from workflow.catalog import ActionSpec, Catalog
from workflow.document import Workflow
from workflow.graph import dependency_graph


def wf(steps: list[dict]) -> Workflow:
    return Workflow.model_validate({"name": "t", "steps": steps})


def edges(workflow: Workflow) -> set[tuple[str, str]]:
    return set(dependency_graph(workflow).edges())


def closure(workflow: Workflow) -> set[tuple[str, str]]:
    """Ordered pairs, counting `ordered_after` (the runtime honours it as an ordering)."""
    graph = dependency_graph(workflow)
    graph.add_edges_from((b, s.id) for s in workflow.steps for b in s.ordered_after)
    return set(nx.transitive_closure_dag(graph).edges())


CATALOG = Catalog([
    ActionSpec(name="x.fetch"),
    ActionSpec(name="x.check", side_effects=False, cost=1.0),
    ActionSpec(name="x.charge", cost=50.0, compensation="x.refund"),
    ActionSpec(name="x.refund"),
    ActionSpec(name="x.audit", order_sensitive=True),
])


def test_parallelize_drops_serial_needs_without_data():
    doc = wf([
        {"id": "a", "action": "x.fetch"},
        {"id": "b", "action": "x.fetch", "needs": ["a"]},
        {"id": "c", "action": "x.fetch", "needs": ["b"]},
        {"id": "d", "action": "x.fetch", "needs": ["c"], "with": {"v": "${{ steps.a.output.v }}"}},
    ])
    result = parallelize(doc, CATALOG)
    assert result is not None
    assert edges(result.workflow) == {("a", "d")}
    assert set(result.removed) == {("a", "b"), ("b", "c"), ("c", "d")}
    assert violations(doc, result.workflow, CATALOG) == []


def test_parallelize_keeps_data_ordered_after_order_sensitive_and_gates():
    doc = wf([
        {"id": "a", "action": "x.fetch"},
        {"id": "b", "action": "x.fetch", "needs": ["a"], "ordered_after": ["a"]},
        {"id": "c", "action": "x.fetch", "needs": ["b"]},
        {"id": "d", "action": "x.audit", "needs": ["c"]},
        {"id": "w", "action": "core.wait", "with": {"seconds": 5}},
        {"id": "e", "action": "x.fetch", "needs": ["w"]},
        {"id": "f", "action": "x.fetch", "needs": ["e"], "if": "${{ steps.a.status == 'ok' }}"},
    ])
    result = parallelize(doc, CATALOG)
    assert result is not None
    graph_closure = closure(result.workflow)
    assert ("a", "b") in graph_closure  # ordered_after
    assert {("a", "d"), ("b", "d"), ("c", "d")} <= graph_closure  # order-sensitive audit stays last
    assert ("w", "e") in graph_closure and ("w", "f") in graph_closure  # nothing jumps a wait
    assert ("a", "f") in graph_closure  # `if` reads a's status
    assert ("b", "c") not in graph_closure and ("e", "f") not in graph_closure  # freed
    assert violations(doc, result.workflow, CATALOG) == []


MESSAGING = Catalog([
    ActionSpec(name="crm.update_account"),
    ActionSpec(name="provisioning.provision_account"),
    ActionSpec(name="billing.setup_billing"),
    ActionSpec(name="chat.notify_team", input={"type": "object", "properties": {"channel": {}, "text": {}}}),
    # no telling word in its name: its inputs (someone to reach, something to say) tell
    ActionSpec(name="acme.ping", input={"type": "object", "properties": {"to": {}, "body": {}}}),
])


def test_a_message_stays_after_what_it_was_after_and_the_rest_is_freed():
    doc = wf([
        {"id": "crm", "action": "crm.update_account"},
        {"id": "provision", "action": "provisioning.provision_account", "needs": ["crm"]},
        {"id": "tell_team", "action": "chat.notify_team", "needs": ["provision"]},
        {"id": "ping", "action": "acme.ping", "needs": ["tell_team"]},
        {"id": "billing", "action": "billing.setup_billing", "needs": ["ping"]},
    ])
    result = parallelize(doc, MESSAGING)
    assert result is not None
    pairs = closure(result.workflow)
    # "provision the account, then tell the team": the message may report on both steps before it
    assert {("crm", "tell_team"), ("provision", "tell_team")} <= pairs
    assert {("crm", "ping"), ("provision", "ping"), ("tell_team", "ping")} <= pairs
    # billing reads nothing and sends nothing: it no longer waits for the chain
    assert not any(after == "billing" for _, after in pairs)
    assert ("crm", "provision") not in pairs
    reasons = {(r.before, r.after): r.reason for r in requirements(doc, MESSAGING)}
    assert reasons[("provision", "tell_team")] == "message"
    assert violations(doc, result.workflow, MESSAGING) == []


def test_an_approval_waits_for_the_steps_before_it():
    doc = wf([
        {"id": "crm", "action": "crm.update_account"},
        {"id": "ok", "action": "core.approval", "needs": ["crm"], "with": {"prompt": "Provision?"}},
        {"id": "provision", "action": "provisioning.provision_account", "needs": ["ok"]},
        {"id": "billing", "action": "billing.setup_billing", "needs": ["provision"]},
    ])
    result = parallelize(doc, MESSAGING)
    assert result is not None
    pairs = closure(result.workflow)
    # the approver sees the CRM updated; nothing after the approval runs before it
    assert {("crm", "ok"), ("ok", "provision"), ("ok", "billing")} <= pairs
    assert ("provision", "billing") not in pairs
    # without the rule the proposal asked for approval before the update it was written after
    early = wf([
        {"id": "crm", "action": "crm.update_account"},
        {"id": "ok", "action": "core.approval", "with": {"prompt": "Provision?"}},
        {"id": "provision", "action": "provisioning.provision_account", "needs": ["ok"]},
        {"id": "billing", "action": "billing.setup_billing", "needs": ["ok"]},
    ])
    assert violations(doc, early, MESSAGING) == ["ok no longer runs after crm (gate)"]


def test_parallelize_adds_needs_when_dropping_the_path_that_enforced_ordered_after():
    doc = wf([
        {"id": "a", "action": "x.fetch"},
        {"id": "b", "action": "x.fetch", "needs": ["a"]},
        {"id": "c", "action": "x.fetch", "needs": ["b"], "ordered_after": ["a"]},
    ])
    result = parallelize(doc, CATALOG)
    assert result is not None
    assert result.workflow.step("c").needs == ["a"]
    assert ("a", "b") in result.removed and ("b", "c") in result.removed
    assert ("a", "c") in result.added


def test_parallelize_returns_none_when_only_redundant_edges_would_go():
    doc = wf([
        {"id": "a", "action": "x.fetch"},
        {"id": "b", "action": "x.fetch", "with": {"v": "${{ steps.a.output }}"}},
        {"id": "c", "action": "x.fetch", "needs": ["a"], "with": {"v": "${{ steps.b.output }}"}},
    ])
    assert parallelize(doc, CATALOG) is None


def test_compensation_inputs_count_as_data():
    doc = wf([
        {"id": "a", "action": "x.fetch"},
        {"id": "b", "action": "x.charge", "needs": ["a"],
         "compensate": {"action": "x.refund", "with": {"ref": "${{ steps.a.output.id }}"}}},
    ])
    assert parallelize(doc, CATALOG) is None


@pytest.mark.parametrize("seed", range(25))
def test_parallelize_never_breaks_a_requirement_on_random_documents(seed: int):
    rng = random.Random(seed)
    n = rng.randint(3, 12)
    actions = ["x.fetch", "x.check", "x.charge", "x.audit", "core.wait", "core.approval"]
    steps = []
    for i in range(n):
        earlier = [f"s{j}" for j in range(i)]
        step: dict = {"id": f"s{i}", "action": rng.choice(actions)}
        if earlier:
            step["needs"] = rng.sample(earlier, k=rng.randint(0, min(3, len(earlier))))
            if rng.random() < 0.4:
                step["with"] = {"v": f"${{{{ steps.{rng.choice(earlier)}.output }}}}"}
            if rng.random() < 0.2:
                step["ordered_after"] = [rng.choice(earlier)]
        steps.append(step)
    doc = wf(steps)
    result = parallelize(doc, CATALOG)
    if result is None:
        return
    assert violations(doc, result.workflow, CATALOG) == []
    # never adds an ordering that was not there before
    assert closure(result.workflow) <= closure(doc)
    p = {s: rng.random() * 0.3 for s in doc.step_ids}
    reordered = fail_fast(doc, p, CATALOG)
    if reordered is not None:
        assert violations(doc, reordered.workflow, CATALOG) == []


def test_requirements_name_their_reason():
    doc = wf([
        {"id": "a", "action": "x.fetch"},
        {"id": "b", "action": "x.fetch", "ordered_after": ["a"], "needs": ["a"]},
    ])
    found = [(r.before, r.after, r.reason) for r in requirements(doc, CATALOG)]
    assert found == [("a", "b", "ordered_after")]


# ---- fail-fast ---------------------------------------------------------------------------------

def test_fail_fast_moves_a_likely_failing_cheap_check_before_the_costly_charge():
    doc = wf([
        {"id": "charge", "action": "x.charge"},
        {"id": "check", "action": "x.check", "needs": ["charge"]},
    ])
    result = fail_fast(doc, {"charge": 0.01, "check": 0.2}, CATALOG)
    assert result is not None
    assert edges(result.workflow) == {("check", "charge")}
    assert result.moved == [("check", "charge")]


def test_fail_fast_leaves_a_check_that_never_fails_alone():
    doc = wf([
        {"id": "charge", "action": "x.charge"},
        {"id": "check", "action": "x.check", "needs": ["charge"]},
    ])
    assert fail_fast(doc, {"charge": 0.01, "check": 0.0}, CATALOG) is None


def test_fail_fast_respects_data_the_check_reads_from_the_costly_step():
    doc = wf([
        {"id": "charge", "action": "x.charge"},
        {"id": "check", "action": "x.check", "with": {"v": "${{ steps.charge.output }}"}},
    ])
    assert fail_fast(doc, {"charge": 0.01, "check": 0.5}, CATALOG) is None


def test_fail_fast_uses_the_chain_ratio_of_the_checks_prerequisites():
    # the check needs an expensive fetch first; moving that chain ahead of the charge is not worth it
    big = ActionSpec(name="x.big_fetch", cost=45.0, side_effects=False)
    catalog = Catalog([*CATALOG.user_actions(), big])
    doc = wf([
        {"id": "charge", "action": "x.charge"},
        {"id": "fetch", "action": "x.big_fetch"},
        {"id": "check", "action": "x.check", "needs": ["charge"], "with": {"v": "${{ steps.fetch.output }}"}},
    ])
    # chain ratio = (45 + 1) / 0.2 = 230 > charge's 50 / 0.3 ≈ 167: keep the order
    assert fail_fast(doc, {"charge": 0.3, "check": 0.2, "fetch": 0.0}, catalog) is None
    # a cheap fetch: chain ratio (1 + 1)/0.2 = 10 < 167: move the chain ahead
    cheap = Catalog([*CATALOG.user_actions(), ActionSpec(name="x.big_fetch", cost=1.0, side_effects=False)])
    result = fail_fast(doc, {"charge": 0.3, "check": 0.2, "fetch": 0.0}, cheap)
    assert result is not None
    assert ("check", "charge") in closure(result.workflow) and ("fetch", "charge") in closure(result.workflow)


def test_fail_fast_lowers_simulated_waste_and_compensations():
    doc = wf([
        {"id": "charge", "action": "x.charge"},
        {"id": "ship", "action": "x.charge", "needs": ["charge"]},
        {"id": "check", "action": "x.check", "needs": ["ship"]},
    ])
    p = {"charge": 0.02, "ship": 0.02, "check": 0.25}
    result = fail_fast(doc, p, CATALOG)
    assert result is not None
    durations = np.ones((1, 3))
    cost = {"charge": 50.0, "ship": 50.0, "check": 1.0}
    before = simulate_waste(doc, p, cost, durations, compensable={"charge", "ship"}, seed=1)
    after = simulate_waste(result.workflow, p, cost, durations, compensable={"charge", "ship"}, seed=1)
    assert after.wasted_cost < before.wasted_cost * 0.5
    assert after.compensations < before.compensations * 0.5
