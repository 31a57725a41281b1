"""Errors of the runtime.

    OvertureError (workflow.errors)
    └── RuntimeFault                   base of the runtime's own errors
        ├── ActionError                an action call failed; says whether retrying may help
        │   ├── TransientActionError   429, 5xx, connection errors, timeouts: retry may succeed
        │   └── PermanentActionError   other 4xx, bad input, rejections: retrying will not help
        ├── RunNotFound                no run with that id in the journal
        ├── InvalidRunState            the run or step is not in a state that allows the request
        └── NotAnApprover              the step lists `approvers` and the decider is not one of them

An `ActionError` carries its data: a short `type` (`http_503`, `timeout`, `connection`,
`validation`, ...) that retry policies name in `non_retryable`, the HTTP status when there was
one, and the server's `Retry-After` in seconds.
"""

from __future__ import annotations

from typing import Any

from workflow.errors import OvertureError


class RuntimeFault(OvertureError):
    """Base of the runtime's errors."""


class ActionError(RuntimeFault):
    """An action call failed."""

    transient: bool = False

    def __init__(
        self,
        message: str,
        *,
        type: str = "error",
        status: int | None = None,
        retry_after: float | None = None,
        transient: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.type = type
        """Short error kind, e.g. `http_503`, `timeout`, `connection`, `validation`."""
        self.status = status
        """HTTP status code, when the action was an HTTP call."""
        self.retry_after = retry_after
        """Seconds the server asked us to wait (Retry-After), if any."""
        if transient is not None:
            self.transient = transient

    def __reduce__(self) -> tuple[Any, ...]:  # keep the data across pickling (worker pools)
        data = (type(self), self.message, self.type, self.status, self.retry_after, self.transient)
        return (_rebuild, data)


def _rebuild(
    cls: type[ActionError], message: str, type_: str, status: int | None, retry_after: float | None,
    transient: bool,
) -> ActionError:
    return cls(message, type=type_, status=status, retry_after=retry_after, transient=transient)


class TransientActionError(ActionError):
    """Retrying may succeed (rate limits, server errors, connection errors, timeouts)."""

    transient = True


class PermanentActionError(ActionError):
    """Retrying will not help (validation errors, 4xx other than 408/429, rejections)."""

    transient = False


class RunNotFound(RuntimeFault):
    def __init__(self, run_id: str) -> None:
        super().__init__(f"no run `{run_id}`; `overture runs list` shows the runs")
        self.run_id = run_id


class InvalidRunState(RuntimeFault):
    def __init__(self, message: str, *, run_id: str | None = None, step_id: str | None = None) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.step_id = step_id


class NotAnApprover(RuntimeFault):
    """A decision on a `core.approval` step that lists `approvers`, by someone not among them. Nothing
    was recorded: the approval is still pending."""

    def __init__(
        self, *, run_id: str, step_id: str, iteration: int | None, who: str, approvers: list[str]
    ) -> None:
        item = f" (iteration {iteration})" if iteration is not None else ""
        listed = ", ".join(f"`{a}`" for a in approvers)
        named = f"`{who}`" if who.strip() else "nobody (no name was given)"
        super().__init__(
            f"step `{step_id}`{item} of run `{run_id}` may be decided only by {listed}, "
            f"and the decider is {named}; the approval is still pending"
        )
        self.run_id = run_id
        self.step_id = step_id
        self.iteration = iteration
        """The for-each item, or None for a step without `for_each`."""
        self.who = who
        self.approvers = approvers
