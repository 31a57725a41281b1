"""`build_invoker`: one `Invoker` for a whole catalog, choosing per call by `invoke.kind`.

Order of choice: an override registered for the action's name, then the invoker for
`action.invoke.kind` (`http`, `python`, `smtp`). `core` actions are the engine's own business and
actions without an `invoke` block cannot run; both fail with `PermanentActionError(type="no_invoker")`.

Whatever invoker ran, the dispatcher is the last line of defence for secrets: outputs and error
messages pass through redaction of every known secret value before they reach the engine (and so
the journal, events and logs). Overrides are held to the same contract as the built-in invokers:
an exception that is not an `ActionError` is classified (timeouts and connection errors are
transient, everything else permanent).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any

import httpx

from runtime.errors import ActionError, PermanentActionError
from runtime.invocation import ActionCall, Invoker, SecretSource
from runtime.invokers.classify import classify_exception
from runtime.invokers.http_invoker import HttpInvoker
from runtime.invokers.python_invoker import PythonInvoker
from runtime.invokers.smtp_invoker import SmtpInvoker
from runtime.invokers.templating import TemplateRenderer
from workflow.catalog import Catalog


class InvokerDispatcher:
    """Routes each `ActionCall` to the invoker for its action. Close it (or `async with`) when done."""

    def __init__(
        self,
        catalog: Catalog,
        secrets: SecretSource,
        *,
        overrides: Mapping[str, Invoker] | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self.catalog = catalog
        self.secrets = secrets
        self.overrides: dict[str, Invoker] = dict(overrides or {})
        self.http = HttpInvoker(secrets, client=http_client)
        self.python = PythonInvoker(secrets)
        self.smtp = SmtpInvoker(secrets)
        self._by_kind: dict[str, Invoker] = {"http": self.http, "python": self.python, "smtp": self.smtp}

    def invoker_for(self, call: ActionCall) -> Invoker:
        name = call.action.name
        override = self.overrides.get(name)
        if override is not None:
            return override
        invoke = call.action.invoke
        invoker = self._by_kind.get(invoke.kind) if invoke is not None else None
        if invoker is None:
            raise PermanentActionError(
                f"action {name} has no invoker; add an `invoke:` block to its catalog entry",
                type="no_invoker",
            )
        return invoker

    def missing_invokers(self) -> list[str]:
        """User actions of the catalog that could not run (no `invoke` block and no override)."""
        return [
            a.name for a in self.catalog.user_actions()
            if a.name not in self.overrides and (a.invoke is None or a.invoke.kind not in self._by_kind)
        ]

    async def invoke(self, call: ActionCall) -> dict[str, Any]:
        redactor = TemplateRenderer(call, self.secrets).redactor()
        invoker = self.invoker_for(call)
        try:
            output = await invoker.invoke(call)
        except ActionError as exc:
            raise redactor.redact(exc) from None
        except Exception as exc:
            what = f"`{call.action.name}` ({type(invoker).__name__})"
            raise redactor.redact(classify_exception(exc, what)) from None
        if output is None:
            return {}
        if not isinstance(output, dict):
            return redactor.redact({"result": output})
        return redactor.redact(output)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> InvokerDispatcher:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


def build_invoker(
    catalog: Catalog,
    secrets: SecretSource,
    *,
    overrides: Mapping[str, Invoker] | None = None,
    http_client: httpx.AsyncClient | None = None,
) -> InvokerDispatcher:
    """The engine's invoker for `catalog`. `http_client` is used as is and not closed by `aclose()`."""
    return InvokerDispatcher(catalog, secrets, overrides=overrides, http_client=http_client)
