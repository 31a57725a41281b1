"""How the engine calls an action: the `ActionCall` it hands over and the `Invoker` protocol.

The engine owns retries, timeouts and the journal; an invoker only performs one attempt and
either returns the output (a JSON-able dict) or raises an `ActionError` that says whether a retry
may help. Invokers are chosen per action from the catalog's `invoke` block (`http`, `python`,
`smtp`, `core`); tests and embedders may register their own for any action name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from workflow.catalog import ActionSpec


@dataclass(frozen=True)
class ActionCall:
    """One attempt of one step (or one for-each item of it)."""

    action: ActionSpec
    """The catalog entry being called."""
    inputs: Mapping[str, Any]
    """The step's `with`, expressions already rendered (secrets still as `${{ secrets.X }}` text
    only inside the invoke templates, never here)."""
    run_id: str
    step_id: str
    iteration: int | None
    """The for-each item index, or None for a plain step."""
    attempt: int
    """1 for the first attempt."""
    idempotency_key: str
    """Stable across retries and crash recovery of the same (run, step, iteration); HTTP
    invokers send it as `Idempotency-Key`."""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    """Extra context (workflow name, worker id) for invokers that want it."""


@runtime_checkable
class Invoker(Protocol):
    """Performs one attempt of an action."""

    async def invoke(self, call: ActionCall) -> dict[str, Any]:
        """Return the action's output, or raise `ActionError` (Transient/Permanent)."""
        ...


@runtime_checkable
class SecretSource(Protocol):
    """Where `${{ secrets.NAME }}` values come from (environment, a secrets file, a vault)."""

    def get(self, name: str) -> str | None: ...
