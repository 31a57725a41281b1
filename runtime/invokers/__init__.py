"""Action invokers: how the runtime performs one attempt of a catalog action.

    build_invoker(catalog, secrets)  → InvokerDispatcher (an `Invoker`)
    ├── overrides[action name]       tests and embedders
    ├── HttpInvoker                  `invoke: {kind: http}`
    ├── PythonInvoker                `invoke: {kind: python}`
    └── SmtpInvoker                  `invoke: {kind: smtp}`

Each raises `runtime.errors.TransientActionError` / `PermanentActionError`; the module docstrings
of each invoker list the error `type`s it uses.
"""

from runtime.invokers.dispatch import InvokerDispatcher, build_invoker
from runtime.invokers.http_invoker import HttpInvoker, parse_retry_after
from runtime.invokers.python_invoker import PythonInvoker
from runtime.invokers.smtp_invoker import SmtpInvoker

__all__ = [
    "HttpInvoker",
    "InvokerDispatcher",
    "PythonInvoker",
    "SmtpInvoker",
    "build_invoker",
    "parse_retry_after",
]
