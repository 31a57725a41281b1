"""Errors of the LLM planner; each carries the data a caller needs to report or fall back."""

from __future__ import annotations

from dataclasses import dataclass

from workflow.errors import InvalidWorkflow, OvertureError


class LLMError(OvertureError):
    """Base of the LLM planner's errors."""


class LLMNotConfigured(LLMError):
    """No endpoint: neither OPENAI_API_KEY nor OPENAI_BASE_URL is set."""

    def __init__(self) -> None:
        super().__init__("no LLM endpoint configured: set OPENAI_API_KEY (OpenAI) or OPENAI_BASE_URL "
                         "(a local OpenAI-compatible server) and OVERTURE_MODEL")


class LLMUnavailable(LLMError):
    """The endpoint could not be used: unreachable, timed out, rate-limited or failing after retries."""

    def __init__(self, reason: str, *, status: int | None = None) -> None:
        self.reason = reason
        self.status = status
        super().__init__(f"the LLM endpoint is unavailable: {reason}")


class LLMRefused(LLMError):
    """The model declined to answer."""

    def __init__(self, refusal: str) -> None:
        self.refusal = refusal
        super().__init__(f"the model refused: {refusal}")


@dataclass
class PlanNotRepaired(InvalidWorkflow):
    """The model's plan still broke the rules after every repair round; `problems` are the last ones."""

    rounds: int = 0

    def __str__(self) -> str:
        errors = [p for p in self.problems if p.severity == "error"]
        head = (f"the model's plan still had {len(errors)} problem{'s' if len(errors) != 1 else ''} "
                f"after {self.rounds} repair round{'s' if self.rounds != 1 else ''}")
        return head + "".join(f"\n  - {p}" for p in errors)
