"""Routing: which of a step's candidate actions to call at dispatch.

The engine asks a `Router` whenever a step lists `alternatives`; the optimizer implements the
protocol with a learned policy. The chosen action and its propensity (the probability with which
the router picked it) go on the attempt row so off-policy evaluation can reweigh outcomes later.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from workflow.document import Step


@dataclass(frozen=True)
class ActionStats:
    """Recent outcomes of one action, from the journal's attempts table."""

    calls: int
    error_rate: float
    """Share of finished attempts that failed (0..1)."""
    mean_latency_s: float | None
    """Mean duration of the finished attempts, seconds."""


@dataclass(frozen=True)
class Conditions:
    """What the world looked like when the step was dispatched."""

    now: float
    """Wall-clock time, seconds since the Unix epoch."""
    runs_in_flight: int
    """Runs this engine was driving at that moment."""
    worker_id: str
    recent: Mapping[str, ActionStats] = field(default_factory=dict)
    """Per candidate action: stats over the journal's recent window."""


@dataclass(frozen=True)
class RouteChoice:
    action: str
    propensity: float
    """Probability with which the router picked this action (1.0 for a deterministic choice)."""


@runtime_checkable
class Router(Protocol):
    def choose(self, step: Step, candidates: Sequence[str], conditions: Conditions) -> RouteChoice:
        """Pick one of `candidates` (the step's own action first, then its alternatives)."""
        ...


class DefaultRouter:
    """Always the step's own action: the document says what to call."""

    def choose(self, step: Step, candidates: Sequence[str], conditions: Conditions) -> RouteChoice:
        return RouteChoice(action=step.action, propensity=1.0)
