"""What a planner returns: the offline planner's and the LLM planner's results are one type."""

from __future__ import annotations

from dataclasses import dataclass, field

from workflow.document import Workflow


@dataclass
class PlanResult:
    """A validated plan and how it came about."""

    workflow: Workflow
    """The document; it passed the validator."""
    planner: str
    """Which planner wrote it: `llm` or `offline`."""
    warnings: list[str] = field(default_factory=list)
    """What a person should know (fallbacks, validator warnings, repairs)."""
    explanation: str = ""
    """The plan in plain English (the template's; `LLMPlanner.explain` asks the model)."""
