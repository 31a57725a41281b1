"""build_invoker: routing by override and invoke kind, and redaction of whatever comes back."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from invoker_support import HttpTestServer, Reply, SmtpTestServer, action_call

from runtime.errors import ActionError, PermanentActionError, TransientActionError
from runtime.invocation import ActionCall, Invoker
from runtime.invokers import build_invoker
from runtime.secrets import SecretStore
from workflow.catalog import ActionSpec, Catalog

SECRET = "dispatch-s3cret"


class Recording:
    """An override invoker: returns what it is told, remembers the calls."""

    def __init__(self, result: Any = None, error: BaseException | None = None) -> None:
        self.calls: list[ActionCall] = []
        self.result = result
        self.error = error

    async def invoke(self, call: ActionCall) -> dict[str, Any]:
        self.calls.append(call)
        if self.error is not None:
            raise self.error
        return self.result  # type: ignore[no-any-return]


@pytest.fixture
def module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = f"dispatch_actions_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text("def hello(name):\n    return {'greeting': 'hi ' + name}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def spec(name: str, invoke: dict[str, Any] | None) -> ActionSpec:
    return ActionSpec.model_validate({"name": name, **({"invoke": invoke} if invoke else {})})


async def test_routes_each_kind_to_its_invoker(module: str) -> None:
    with HttpTestServer() as http, SmtpTestServer() as smtp:
        http.route("POST", "/crm", Reply(200, {"account_id": "a1"}))
        catalog = Catalog([
            spec("crm.update", {"kind": "http", "url": http.url("/crm")}),
            spec("greet.hello", {"kind": "python", "callable": f"{module}:hello"}),
            spec("email.send", {"kind": "smtp", "port": smtp.port, "sender": "ops@example.com"}),
        ])
        async with build_invoker(catalog, SecretStore()) as invoker:
            assert isinstance(invoker, Invoker)
            assert await invoker.invoke(action_call(catalog["crm.update"], {"x": 1})) == {"account_id": "a1"}
            assert await invoker.invoke(action_call(catalog["greet.hello"], {"name": "Ada"})) == {
                "greeting": "hi Ada"
            }
            out = await invoker.invoke(action_call(catalog["email.send"], {
                "to": "a@example.com", "subject": "s", "body": "b",
            }))
        assert out["accepted"] == ["a@example.com"]
        assert len(http.requests) == 1 and len(smtp.messages) == 1


async def test_override_wins_over_the_catalog() -> None:
    catalog = Catalog([spec("crm.update", {"kind": "http", "url": "http://127.0.0.1:1/never"})])
    fake = Recording(result={"account_id": "fake"})
    invoker = build_invoker(catalog, SecretStore(), overrides={"crm.update": fake})
    call = action_call(catalog["crm.update"], {"x": 1})
    assert await invoker.invoke(call) == {"account_id": "fake"}
    assert fake.calls == [call]


@pytest.mark.parametrize("name", ["core.log", "plan.only"])
async def test_core_and_invoke_less_actions_have_no_invoker(name: str) -> None:
    catalog = Catalog([spec("plan.only", None)])
    invoker = build_invoker(catalog, SecretStore())
    with pytest.raises(PermanentActionError) as info:
        await invoker.invoke(action_call(catalog[name], {"message": "m"}))
    assert info.value.type == "no_invoker"
    assert str(info.value) == (
        f"action {name} has no invoker; add an `invoke:` block to its catalog entry"
    )
    assert invoker.missing_invokers() == ["plan.only"]
    covered = build_invoker(catalog, SecretStore(), overrides={"plan.only": Recording()})
    assert covered.missing_invokers() == []


async def test_override_outputs_and_errors_are_redacted_and_classified() -> None:
    catalog = Catalog([spec("x.act", None)])
    secrets = SecretStore({"TOKEN": SECRET})
    call = action_call(catalog["x.act"])

    leaky = Recording(result={"token": SECRET, "nested": [f"Bearer {SECRET}"]})
    out = await build_invoker(catalog, secrets, overrides={"x.act": leaky}).invoke(call)
    assert out == {"token": "***", "nested": ["Bearer ***"]}

    cases: list[tuple[BaseException, type[ActionError], str]] = [
        (TransientActionError(f"echo {SECRET}", type="http_503"), TransientActionError, "http_503"),
        (TimeoutError(f"slow {SECRET}"), TransientActionError, "timeout"),
        (ConnectionResetError(f"reset {SECRET}"), TransientActionError, "connection"),
        (KeyError(SECRET), PermanentActionError, "KeyError"),
    ]
    for raised, expected, kind in cases:
        invoker = build_invoker(catalog, secrets, overrides={"x.act": Recording(error=raised)})
        with pytest.raises(expected) as info:
            await invoker.invoke(call)
        assert info.value.type == kind
        assert SECRET not in str(info.value) and "***" in str(info.value)

    scalar = build_invoker(catalog, secrets, overrides={"x.act": Recording(result=SECRET)})
    assert await scalar.invoke(call) == {"result": "***"}
    empty = build_invoker(catalog, secrets, overrides={"x.act": Recording(result=None)})
    assert await empty.invoke(call) == {}
