"""The offline planner: plain English → a validated workflow, from the catalog alone (no LLM)."""

from __future__ import annotations

from planner.assemble import Assembler
from planner.explain import explain
from planner.lexicon import lexicon
from planner.matching import ActionMatcher
from planner.reader import Reader
from planner.result import PlanResult
from planner.text import normalize_request
from workflow.catalog import Catalog
from workflow.errors import OvertureError


class PlanningError(OvertureError):
    """The request gave nothing this catalog can do; `warnings` say why."""

    def __init__(self, message: str, warnings: list[str]) -> None:
        self.warnings = warnings
        super().__init__(message)


def _nothing_planned(warnings: list[str]) -> str:
    """Why a request gave no step: each clause's own reason (no action does it, it runs only on a
    failure, nothing before it can be undone, ...), never one reason standing for all of them."""
    if not warnings:
        return "no step of this request matches an action in the catalog"
    if len(warnings) == 1:
        return f"nothing in this request could be planned as a step: {warnings[0]}"
    reasons = "".join(f"\n  - {w}" for w in warnings)
    return f"nothing in this request could be planned as a step:{reasons}"


class OfflinePlanner:
    """Build once per catalog (the action index is cached), then `plan(request)` as often as needed."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.lex = lexicon()
        self.matcher = ActionMatcher(catalog, lex=self.lex)

    def plan(self, request: str) -> PlanResult:
        from planner.triggers import attach_triggers, describe_triggers, extract_triggers
        from workflow.validator import validate

        if not request.strip():
            raise PlanningError("the request is empty; describe what the workflow should do", [])
        # a line break inside a sentence is a space, not the end of a step ("approve, then⏎email")
        request = normalize_request(request, self.lex.verbs)
        # "every Monday at 9 …" / "when a customer signs up, …" become triggers; the rest plans as before
        triggers, rest = extract_triggers(request)
        reading = Reader(self.catalog, self.matcher, self.lex).read(rest)
        if not reading.drafts:
            raise PlanningError(_nothing_planned(reading.warnings), reading.warnings)
        workflow = Assembler(self.catalog, self.lex).build(reading, rest)
        reading.warnings.extend(attach_triggers(workflow, triggers, self.catalog, request))
        report = validate(workflow, self.catalog)
        if not report.ok:
            # a plan that fails validation is a planner bug: say exactly what, never print it
            problems = "; ".join(str(p) for p in report.errors[:3])
            raise PlanningError(f"internal error: the offline plan is invalid ({problems})", reading.warnings)
        explanation = explain(workflow, self.catalog) + (
            describe_triggers(workflow.triggers) + "\n" if workflow.triggers else ""
        )
        return PlanResult(
            workflow=report.workflow or workflow,
            planner="offline",
            warnings=reading.warnings,
            explanation=explanation,
        )
