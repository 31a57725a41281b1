"""Which orderings of a workflow the optimizer must keep, and why.

An ordering u → v is *required* when

- data flows: v reads `steps.u` in `with`, `if`, `for_each` or its compensation's `with`;
- the document says so: u is in v's `ordered_after`;
- the catalog says so: v's action is `order_sensitive`, so v stays after every step it was
  (transitively) after;
- it passes through a gate: `core.wait` and `core.approval` hold back everything after them
  ("wait two days, then follow up"; "approve, then charge") and wait for everything before them
  (a person approves what has been done so far; a wait counts from the step it follows), and
  `core.fail` stays after everything before it;
- v sends a message to people (`sends_message`): it goes out after every step it was after, since
  it may report on them ("provision the account, then tell the team"), data or not.

Required orderings are kept as *ancestry*, not as edges: a rewrite may drop an edge whose order
another path still enforces, and adds a `needs` entry when it removes the path that enforced one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import networkx as nx

from workflow.catalog import Catalog
from workflow.document import Step, Workflow
from workflow.expressions import EXPRESSION_RE, compile_expression, iter_strings
from workflow.graph import dependency_graph, referenced_steps

GATE_ACTIONS = frozenset({"core.wait", "core.approval"})
TERMINAL_ACTIONS = frozenset({"core.fail"})

# an action named with one of these words talks to people
_MESSAGE_WORDS = frozenset(
    "notify notification notifications message messages email emails mail sms chat slack teams "
    "announce alert alerts".split()
)
# ... as does one that takes both someone to reach and something to tell them
_RECIPIENT_INPUTS = frozenset(
    "to recipient recipients to_address channel phone phone_number email email_address cc".split()
)
_CONTENT_INPUTS = frozenset("text body message subject content html template".split())


def sends_message(action: str, catalog: Catalog | None = None) -> bool:
    """Whether the action sends a message to people (an email, a chat post, a text, an alert)."""
    if set(re.split(r"[._\-]+", action.lower())) & _MESSAGE_WORDS:
        return True
    spec = catalog.get(action) if catalog is not None else None
    keys = {key.lower() for key in spec.input_properties} if spec is not None else set()
    return bool(keys & _RECIPIENT_INPUTS) and bool(keys & _CONTENT_INPUTS)


@dataclass(frozen=True)
class Requirement:
    before: str
    after: str
    reason: str
    """`data`, `ordered_after`, `order_sensitive`, `gate`, `fail` or `message`."""


def compensation_references(step: Step) -> set[str]:
    """Steps whose outputs the step's compensation reads (they must have run before it)."""
    if step.compensate is None:
        return set()
    found: set[str] = set()
    for _, text in iter_strings(step.compensate.with_, "with"):
        for match in EXPRESSION_RE.finditer(text):
            try:
                refs = compile_expression(match.group(1)).references()
            except Exception:  # unparseable text is the validator's business; keep no order for it
                continue
            found.update(r.path[0] for r in refs if r.root == "steps" and r.path)
    return found - {step.id}


def data_edges(workflow: Workflow) -> set[tuple[str, str]]:
    ids = set(workflow.step_ids)
    edges = set()
    for step in workflow.steps:
        for dep in (referenced_steps(step) | compensation_references(step)) - {step.id}:
            if dep in ids:
                edges.add((dep, step.id))
    return edges


def requirements(workflow: Workflow, catalog: Catalog | None = None) -> list[Requirement]:
    """Every ordering a rewrite must preserve (as an ancestor relation), with its reason."""
    graph = dependency_graph(workflow)
    ids = set(workflow.step_ids)
    found: dict[tuple[str, str], Requirement] = {}

    def add(u: str, v: str, reason: str) -> None:
        if u != v and (u, v) not in found:
            found[(u, v)] = Requirement(u, v, reason)

    for u, v in sorted(data_edges(workflow)):
        add(u, v, "data")
    for step in workflow.steps:
        for u in step.ordered_after:
            if u in ids:
                add(u, step.id, "ordered_after")
        spec = catalog.get(step.action) if catalog is not None else None
        if spec is not None and spec.order_sensitive:
            for u in sorted(nx.ancestors(graph, step.id)):
                add(u, step.id, "order_sensitive")
        if step.action in GATE_ACTIONS:
            for d in sorted(nx.descendants(graph, step.id)):
                add(step.id, d, "gate")
            for u in sorted(nx.ancestors(graph, step.id)):
                add(u, step.id, "gate")
        if sends_message(step.action, catalog):
            for u in sorted(nx.ancestors(graph, step.id)):
                add(u, step.id, "message")
        if step.action in TERMINAL_ACTIONS:
            for u in sorted(nx.ancestors(graph, step.id)):
                add(u, step.id, "fail")
    return list(found.values())


def rebuild_needs(workflow: Workflow, keep: set[tuple[str, str]], required: list[Requirement]) -> Workflow:
    """A copy whose `needs` hold only the kept edges, plus what it takes to enforce `required`.

    `keep` are explicit edges to retain (data edges always stay: they live in the expressions).
    For each required ordering not implied by a path, a `needs` entry is added; added entries that
    another path makes redundant are dropped again.
    """
    new = workflow.model_copy(deep=True)
    ids = workflow.step_ids
    graph: nx.DiGraph = nx.DiGraph()
    graph.add_nodes_from(ids)
    graph.add_edges_from(data_edges(workflow))
    graph.add_edges_from(keep)
    added: set[tuple[str, str]] = set()
    for req in required:
        if not nx.has_path(graph, req.before, req.after):
            graph.add_edge(req.before, req.after)
            added.add((req.before, req.after))
    # drop added edges that other paths already enforce
    for u, v in sorted(added):
        graph.remove_edge(u, v)
        if nx.has_path(graph, u, v):
            added.discard((u, v))
        else:
            graph.add_edge(u, v)
    for step in new.steps:
        original = [n for n in step.needs if (n, step.id) in keep]
        extra = sorted(u for (u, v) in added if v == step.id and u not in original)
        step.needs = original + extra
    return new


def violations(original: Workflow, rewritten: Workflow, catalog: Catalog | None = None) -> list[str]:
    """What a rewrite broke: lost data dependencies, lost required orderings, cycles. Empty = safe."""
    problems = []
    graph = dependency_graph(rewritten)
    if not nx.is_directed_acyclic_graph(graph):
        problems.append("the rewritten graph has a cycle")
        return problems
    if {s.id for s in original.steps} != {s.id for s in rewritten.steps}:
        problems.append("the rewrite added or removed steps")
    for req in requirements(original, catalog):
        if not nx.has_path(graph, req.before, req.after):
            problems.append(f"{req.after} no longer runs after {req.before} ({req.reason})")
    return problems
