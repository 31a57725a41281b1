"""Test doubles for the `Invoker` protocol (public: embedders test their workflows with these).

`ScriptedInvoker` plays per-action scripted outcomes (an output dict, an exception to raise, or a
callable given the call) and counts the calls per (run, step, iteration).
"""

from __future__ import annotations

import inspect
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from runtime.invocation import ActionCall

Outcome = Mapping[str, Any] | BaseException | Callable[[ActionCall], Any]
"""An output, an exception to raise, or a callable (sync or async) returning the output."""


class ScriptedInvoker:
    """Each action's outcomes are played in order, one per call; the last one repeats.

    An action without a script returns `default` (an empty output unless given).
    """

    def __init__(
        self,
        script: Mapping[str, Outcome | Sequence[Outcome]] | None = None,
        *,
        default: Outcome | None = None,
    ) -> None:
        self._script: dict[str, list[Outcome]] = {}
        for action, outcomes in (script or {}).items():
            self.script(action, outcomes)
        self._default: Outcome = default if default is not None else {}
        self._played: Counter[str] = Counter()
        self.calls: list[ActionCall] = []
        self.in_flight: Counter[str] = Counter()
        self.max_in_flight: Counter[str] = Counter()
        self._per_unit: dict[tuple[str, str, int | None], int] = defaultdict(int)

    def script(self, action: str, outcomes: Outcome | Sequence[Outcome]) -> None:
        if isinstance(outcomes, Sequence) and not isinstance(outcomes, str | bytes):
            self._script[action] = list(outcomes)
        else:
            self._script[action] = [outcomes]

    def count(self, step_id: str, iteration: int | None = None, *, run_id: str | None = None) -> int:
        """Calls made for a step (one item of it with `iteration`), over all runs unless `run_id`."""
        return sum(
            n
            for (run, step, it), n in self._per_unit.items()
            if step == step_id
            and (iteration is None or it == iteration)
            and (run_id is None or run == run_id)
        )

    def actions_called(self) -> list[str]:
        return [c.action.name for c in self.calls]

    async def invoke(self, call: ActionCall) -> dict[str, Any]:
        name = call.action.name
        self.calls.append(call)
        self._per_unit[(call.run_id, call.step_id, call.iteration)] += 1
        outcomes = self._script.get(name)
        if outcomes:
            index = min(self._played[name], len(outcomes) - 1)
            outcome = outcomes[index]
        else:
            outcome = self._default
        self._played[name] += 1
        self.in_flight[name] += 1
        self.max_in_flight[name] = max(self.max_in_flight[name], self.in_flight[name])
        try:
            if isinstance(outcome, BaseException):
                raise outcome
            if callable(outcome):
                result = outcome(call)
                if inspect.isawaitable(result):
                    result = await result
                return dict(result or {})
            return dict(outcome)
        finally:
            self.in_flight[name] -= 1
