"""A plan in plain English: the model writes it when one is configured, a template otherwise.

The template is the offline planner's `planner.explain.explain` when present; a short built-in
rendering otherwise, so `overture explain` always answers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from planner.llm_errors import LLMError
from planner.llm_settings import LLMSettings
from workflow.catalog import Catalog
from workflow.document import Workflow
from workflow.expressions import condition_body
from workflow.graph import parallel_groups

if TYPE_CHECKING:
    from openai import OpenAI


@dataclass
class Explanation:
    """The text and who wrote it."""

    text: str
    """The explanation, plain English."""
    planner: str
    """`llm` or `template`."""
    warnings: list[str] = field(default_factory=list)
    """Why the template was used when the model was asked first."""
    usage: dict[str, int] = field(default_factory=dict)
    """Tokens the model spent on it (empty for the template)."""


def basic_explanation(workflow: Workflow, catalog: Catalog) -> str:
    """A short numbered walk through the parallel groups; no model involved."""
    by_id = {s.id: s for s in workflow.steps}
    lines = [f"{workflow.name}: {workflow.description}" if workflow.description else workflow.name]
    for number, group in enumerate(parallel_groups(workflow), start=1):
        parts = []
        for sid in group:
            step = by_id[sid]
            action = catalog.get(step.action)
            described = action.description.rstrip(".") if action and action.description else None
            what = step.name or described or step.action
            extras = []
            if step.if_:
                extras.append(f"only if {condition_body(step.if_).strip()}")
            if step.for_each is not None:
                extras.append("once per item")
            if step.retry and step.retry.max_attempts > 1:
                extras.append(f"up to {step.retry.max_attempts} attempts")
            if step.compensate:
                extras.append(f"undone by {step.compensate.action} if the run fails later")
            parts.append(what + (f" ({'; '.join(extras)})" if extras else ""))
        joiner = " — in parallel: " if len(parts) > 1 else " "
        lines.append(f"{number}.{joiner}" + "; ".join(parts))
    return "\n".join(lines) + "\n"


def template_explanation(workflow: Workflow, catalog: Catalog) -> str:
    try:
        from planner.explain import explain
    except ImportError:
        return basic_explanation(workflow, catalog)
    return str(explain(workflow, catalog))


def explain_plan(workflow: Workflow, catalog: Catalog, *, mode: str = "auto",
                 settings: LLMSettings | None = None, client: OpenAI | None = None) -> Explanation:
    """`mode` llm (model or error), offline (template) or auto (model when configured, else template)."""
    settings = settings or LLMSettings()
    use_llm = mode == "llm" or (mode == "auto" and (client is not None or settings.configured))
    if not use_llm:
        return Explanation(template_explanation(workflow, catalog), "template")
    from planner.llm_planner import LLMPlanner

    try:
        planner = LLMPlanner(catalog, settings, client=client)
        text = planner.explain(workflow)
    except LLMError as exc:
        if mode == "llm":
            raise
        return Explanation(template_explanation(workflow, catalog), "template",
                           [f"explained by template because the LLM failed: {exc}"])
    return Explanation(text, "llm", usage=planner.llm.usage.to_data())
