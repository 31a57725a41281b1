"""The `python` invoker: call `package.module:function` (or an `overture.actions` entry point).

The step's `with` becomes keyword arguments; a function with a parameter named `call` also receives
the `ActionCall` (run id, attempt, idempotency key), and one with a parameter named `secrets` the
deployment's `SecretSource` (`secrets.get("CRM_TOKEN")`), so secrets never travel through `with`.
Sync functions run in a worker thread so they cannot stall the engine's event loop (a thread cannot
be cancelled: when the engine's step timeout fires, the function runs on, its result discarded);
coroutine functions are awaited.

    Result / exception of the function
    ├── dict                        the output (pydantic models and dataclasses are dumped first)
    ├── None                        {}
    ├── anything else               {"result": value}
    ├── ActionError                 passed through
    ├── TimeoutError                → TransientActionError(type="timeout")
    ├── ConnectionError             → TransientActionError(type="connection")
    └── other exceptions            → PermanentActionError(type=<exception class name>)

Resolution failures are permanent: `import_error` (module or attribute missing, module raised on
import), `entry_point` (no such entry point), `not_callable`, `invalid_input` (the `with` does not
fit the function's signature), `invalid_output` (not JSON-serialisable).
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import importlib.metadata
import inspect
import json
import threading
from collections.abc import Callable
from typing import Any

from runtime.errors import PermanentActionError
from runtime.invocation import ActionCall, SecretSource
from runtime.invokers.classify import classify_exception
from runtime.invokers.templating import TemplateRenderer
from workflow.catalog import PythonInvoke

ENTRY_POINT_GROUP = "overture.actions"
_ENTRY_POINT_PREFIX = "entrypoint:"


@dataclasses.dataclass(frozen=True)
class _Target:
    function: Callable[..., Any]
    is_async: bool
    takes_call: bool
    takes_secrets: bool
    accepts_any_kwargs: bool
    parameters: frozenset[str]
    signature: inspect.Signature | None


class PythonInvoker:
    """Performs `kind: python` actions; resolved callables are cached per import path."""

    def __init__(self, secrets: SecretSource) -> None:
        self._secrets = secrets
        self._cache: dict[str, _Target] = {}
        self._lock = threading.Lock()

    async def invoke(self, call: ActionCall) -> dict[str, Any]:
        invoke = call.action.invoke
        if not isinstance(invoke, PythonInvoke):
            raise PermanentActionError(
                f"action `{call.action.name}` is not a python action", type="no_invoker"
            )
        redactor = TemplateRenderer(call, self._secrets).redactor()
        what = f"`{call.action.name}` ({invoke.callable})"
        target = self.resolve(invoke.callable, action=call.action.name)
        kwargs = dict(call.inputs)
        if target.takes_call:
            kwargs["call"] = call
        if target.takes_secrets:
            kwargs["secrets"] = self._secrets
        self._check_arguments(target, kwargs, what)
        try:
            if target.is_async:
                result = await target.function(**kwargs)
            else:
                result = await asyncio.to_thread(target.function, **kwargs)
                if inspect.isawaitable(result):  # a plain function that hands back a coroutine
                    result = await result
        except Exception as exc:
            raise redactor.redact(classify_exception(exc, what)) from None
        return redactor.redact(_as_output(result, what))

    def resolve(self, path: str, *, action: str = "?") -> _Target:
        """Import (once) and describe the callable at `path`; permanent error if it cannot be used."""
        cached = self._cache.get(path)
        if cached is not None:
            return cached
        with self._lock:  # two steps racing to import the same module should import it once
            cached = self._cache.get(path)
            if cached is None:
                cached = _describe(_load(path, action), path, action)
                self._cache[path] = cached
        return cached

    @staticmethod
    def _check_arguments(target: _Target, kwargs: dict[str, Any], what: str) -> None:
        if target.signature is None:
            return
        try:
            target.signature.bind(**kwargs)
        except TypeError as exc:
            unknown = sorted(set(kwargs) - target.parameters) if not target.accepts_any_kwargs else []
            hint = f"; it does not accept {', '.join(f'`{n}`' for n in unknown)}" if unknown else ""
            raise PermanentActionError(
                f"{what}: the step's `with` does not fit the function's parameters ({exc}){hint}",
                type="invalid_input",
            ) from None


def _load(path: str, action: str) -> Any:
    if path.startswith(_ENTRY_POINT_PREFIX):
        name = path[len(_ENTRY_POINT_PREFIX):]
        matches = list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP, name=name))
        if not matches:
            raise PermanentActionError(
                f"action `{action}`: no entry point `{name}` in group `{ENTRY_POINT_GROUP}`; "
                "is the package that provides it installed?",
                type="entry_point",
            )
        try:
            return matches[0].load()
        except Exception as exc:
            raise PermanentActionError(
                f"action `{action}`: entry point `{name}` ({matches[0].value}) failed to load: "
                f"{type(exc).__name__}: {exc}",
                type="import_error",
            ) from None
    module_name, _, attribute = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise PermanentActionError(
            f"action `{action}`: cannot import module `{module_name}` for `{path}`: "
            f"{type(exc).__name__}: {exc}",
            type="import_error",
        ) from None
    target: Any = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise PermanentActionError(
                f"action `{action}`: module `{module_name}` has no attribute `{attribute}` (from `{path}`)",
                type="import_error",
            )
        target = getattr(target, part)
    return target


def _describe(function: Any, path: str, action: str) -> _Target:
    if not callable(function):
        raise PermanentActionError(
            f"action `{action}`: `{path}` is a {type(function).__name__}, not a function", type="not_callable"
        )
    try:
        signature: inspect.Signature | None = inspect.signature(function)
    except (TypeError, ValueError):  # some builtins have no introspectable signature
        signature = None
    params = signature.parameters if signature is not None else {}
    by_keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    takes_call = "call" in params and params["call"].kind in by_keyword
    takes_secrets = "secrets" in params and params["secrets"].kind in by_keyword
    is_async = inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(
        getattr(function, "__call__", None)  # noqa: B004 - an object with `async def __call__`
    )
    return _Target(
        function=function,
        is_async=is_async,
        takes_call=takes_call,
        takes_secrets=takes_secrets,
        accepts_any_kwargs=any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()),
        parameters=frozenset(params),
        signature=signature,
    )


def _as_output(result: Any, what: str) -> dict[str, Any]:
    if result is None:
        return {}
    if hasattr(result, "model_dump") and callable(result.model_dump):  # pydantic models
        result = result.model_dump(mode="json")
    elif dataclasses.is_dataclass(result) and not isinstance(result, type):
        result = dataclasses.asdict(result)
    output = result if isinstance(result, dict) else {"result": result}
    try:
        # the output is journalled and fed to later steps' expressions, so it must be plain JSON
        json.dumps(output, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise PermanentActionError(f"{what} returned a value that is not JSON-serialisable: {exc}",
                                   type="invalid_output") from None
    if not all(isinstance(k, str) for k in output):
        raise PermanentActionError(f"{what} returned an object with non-string keys", type="invalid_output")
    return output
