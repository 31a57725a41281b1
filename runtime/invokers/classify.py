"""Turning arbitrary exceptions from action code into `ActionError`s that say whether to retry.

    Exception raised by an action
    ├── ActionError                       passed through unchanged
    ├── TimeoutError, httpx.TimeoutException          → TransientActionError(type="timeout")
    ├── ConnectionError, httpx.TransportError         → TransientActionError(type="connection")
    └── anything else                                 → PermanentActionError(type=<class name>)
"""

from __future__ import annotations

import httpx

from runtime.errors import ActionError, PermanentActionError, TransientActionError


def classify_exception(exc: BaseException, what: str) -> ActionError:
    """`what` names the action code for the message, e.g. "`crm.lookup` (mypkg.crm:lookup)"."""
    if isinstance(exc, ActionError):
        return exc
    detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return TransientActionError(f"{what} timed out ({detail})", type="timeout")
    if isinstance(exc, ConnectionError | httpx.TransportError):
        return TransientActionError(f"{what} could not connect ({detail})", type="connection")
    return PermanentActionError(f"{what} raised {detail}", type=type(exc).__name__)
