"""The python invoker: real modules written to disk and imported by path, and an entry point."""

from __future__ import annotations

import sys
import textwrap
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from invoker_support import action_call

from runtime.errors import ActionError, PermanentActionError, TransientActionError
from runtime.invocation import ActionCall
from runtime.invokers import PythonInvoker
from runtime.secrets import SecretStore
from workflow.catalog import ActionSpec

SECRET = "py-s3cret-value"

ACTIONS = '''
import asyncio
import threading
from dataclasses import dataclass

from runtime.errors import TransientActionError

IMPORTS = 0
IMPORTS += 1
NOT_A_FUNCTION = 42


def add(a, b=0):
    return {"sum": a + b, "thread": threading.get_ident()}


async def add_async(a, b=0):
    await asyncio.sleep(0)
    return {"sum": a + b}


def with_call(x, call):
    return {"x": x, "run": call.run_id, "attempt": call.attempt, "key": call.idempotency_key}


def uses_secret(user, secrets):
    token = secrets.get("TOKEN")
    if user == "leak":
        raise PermissionError("token " + token + " rejected")
    return {"user": user, "token_length": len(token), "echo": token}


def anything(**kwargs):
    return {"got": sorted(kwargs)}


def scalar():
    return 7


def nothing():
    return None


@dataclass
class Receipt:
    id: str


def dataclass_result():
    return Receipt(id="r1")


def not_json():
    return {"when": object()}


def boom(message):
    raise ValueError(message)


def slow():
    raise TimeoutError("upstream took too long")


def offline():
    raise ConnectionRefusedError("no route")


def rate_limited():
    raise TransientActionError("quota", type="quota", retry_after=9.0)


class AsyncCallable:
    async def __call__(self, n):
        return {"n": n * 2}


doubler = AsyncCallable()


def returns_coroutine(n):
    return add_async(n, 1)
'''


@pytest.fixture
def module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh, uniquely named module of sample actions, importable from tmp_path."""
    name = f"sample_actions_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(ACTIONS)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


@pytest.fixture
def invoker() -> PythonInvoker:
    return PythonInvoker(SecretStore({"TOKEN": SECRET}))


def py_action(target: str) -> ActionSpec:
    return ActionSpec.model_validate({"name": "py.action", "invoke": {"kind": "python", "callable": target}})


async def run(invoker: PythonInvoker, target: str, inputs: dict[str, Any] | None = None, **kw: Any) -> Any:
    return await invoker.invoke(action_call(py_action(target), inputs, **kw))


async def failure(invoker: PythonInvoker, target: str, inputs: dict[str, Any] | None = None) -> ActionError:
    with pytest.raises(ActionError) as info:
        await run(invoker, target, inputs)
    return info.value


async def test_sync_function_runs_in_a_worker_thread(invoker: PythonInvoker, module: str) -> None:
    out = await run(invoker, f"{module}:add", {"a": 2, "b": 3})
    assert out["sum"] == 5
    assert out["thread"] != threading.get_ident()


async def test_async_function_is_awaited(invoker: PythonInvoker, module: str) -> None:
    assert await run(invoker, f"{module}:add_async", {"a": 1}) == {"sum": 1}
    assert await run(invoker, f"{module}:doubler", {"n": 4}) == {"n": 8}
    assert await run(invoker, f"{module}:returns_coroutine", {"n": 4}) == {"sum": 5}


async def test_call_parameter_receives_the_action_call(invoker: PythonInvoker, module: str) -> None:
    out = await run(invoker, f"{module}:with_call", {"x": 1}, run_id="r-7", attempt=3, idempotency_key="k-7")
    assert out == {"x": 1, "run": "r-7", "attempt": 3, "key": "k-7"}
    assert await run(invoker, f"{module}:anything", {"p": 1, "q": 2}) == {"got": ["p", "q"]}


async def test_secrets_parameter_receives_the_source(invoker: PythonInvoker, module: str) -> None:
    out = await run(invoker, f"{module}:uses_secret", {"user": "ada"})
    assert out == {"user": "ada", "token_length": len(SECRET), "echo": "***"}
    error = await failure(invoker, f"{module}:uses_secret", {"user": "leak"})
    assert error.type == "PermissionError" and SECRET not in str(error) and "token *** rejected" in str(error)


async def test_results_are_normalised(invoker: PythonInvoker, module: str) -> None:
    assert await run(invoker, f"{module}:scalar") == {"result": 7}
    assert await run(invoker, f"{module}:nothing") == {}
    assert await run(invoker, f"{module}:dataclass_result") == {"id": "r1"}
    error = await failure(invoker, f"{module}:not_json")
    assert isinstance(error, PermanentActionError) and error.type == "invalid_output"


async def test_exceptions_are_classified(invoker: PythonInvoker, module: str) -> None:
    error = await failure(invoker, f"{module}:boom", {"message": "bad amount"})
    assert isinstance(error, PermanentActionError)
    assert error.type == "ValueError" and "bad amount" in error.message and f"{module}:boom" in error.message

    error = await failure(invoker, f"{module}:slow")
    assert isinstance(error, TransientActionError) and error.type == "timeout"
    error = await failure(invoker, f"{module}:offline")
    assert isinstance(error, TransientActionError) and error.type == "connection"

    error = await failure(invoker, f"{module}:rate_limited")
    assert isinstance(error, TransientActionError)
    assert (error.type, error.retry_after) == ("quota", 9.0)


async def test_secrets_in_exception_messages_are_redacted(invoker: PythonInvoker, module: str) -> None:
    error = await failure(invoker, f"{module}:boom", {"message": f"token {SECRET} refused"})
    assert SECRET not in str(error) and "token *** refused" in error.message
    assert error.__cause__ is None


async def test_bad_import_paths_are_permanent(invoker: PythonInvoker, module: str) -> None:
    error = await failure(invoker, "no_such_module_xyz:run")
    assert isinstance(error, PermanentActionError) and error.type == "import_error"
    assert "no_such_module_xyz" in error.message

    error = await failure(invoker, f"{module}:missing")
    assert error.type == "import_error" and "has no attribute `missing`" in error.message

    error = await failure(invoker, f"{module}:NOT_A_FUNCTION")
    assert error.type == "not_callable"


async def test_module_that_fails_on_import(invoker: PythonInvoker, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"broken_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text("raise RuntimeError('config missing')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    error = await failure(invoker, f"{name}:run")
    assert error.type == "import_error" and "RuntimeError: config missing" in error.message


async def test_inputs_that_do_not_fit_the_signature(invoker: PythonInvoker, module: str) -> None:
    error = await failure(invoker, f"{module}:add", {"a": 1, "c": 2})
    assert isinstance(error, PermanentActionError) and error.type == "invalid_input"
    assert "`c`" in error.message
    error = await failure(invoker, f"{module}:add", {"b": 1})
    assert error.type == "invalid_input"


async def test_callable_is_imported_once_and_cached(invoker: PythonInvoker, module: str) -> None:
    await run(invoker, f"{module}:add", {"a": 1})
    target = invoker.resolve(f"{module}:add")
    await run(invoker, f"{module}:add", {"a": 2})
    assert invoker.resolve(f"{module}:add") is target
    assert sys.modules[module].IMPORTS == 1


async def test_entry_point(invoker: PythonInvoker, module: str, tmp_path: Path) -> None:
    dist = tmp_path / "sample_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: sample-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        textwrap.dedent(f"""
            [overture.actions]
            add_numbers = {module}:add
            broken = no_such_module_xyz:run
        """)
    )
    out = await run(invoker, "entrypoint:add_numbers", {"a": 4, "b": 5})
    assert out["sum"] == 9

    error = await failure(invoker, "entrypoint:unknown_ep")
    assert isinstance(error, PermanentActionError) and error.type == "entry_point"
    error = await failure(invoker, "entrypoint:broken")
    assert error.type == "import_error"


async def test_wrong_kind_is_refused(invoker: PythonInvoker) -> None:
    action = ActionSpec.model_validate({"name": "h.x", "invoke": {"kind": "http", "url": "http://x"}})
    with pytest.raises(PermanentActionError):
        await invoker.invoke(ActionCall(action, {}, "r", "s", None, 1, "k"))
