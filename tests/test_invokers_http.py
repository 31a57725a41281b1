"""The http invoker against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from email.utils import formatdate
from typing import Any

import httpx
import pytest
from invoker_support import HttpTestServer, RecordedRequest, Reply, action_call, echo, free_port

from runtime.errors import ActionError, PermanentActionError, TransientActionError
from runtime.invokers import HttpInvoker, build_invoker, parse_retry_after
from runtime.invokers.http_invoker import USER_AGENT
from runtime.secrets import SecretStore
from workflow.catalog import ActionSpec, Catalog

TOKEN = "crm-t0ken-very-secret"
API_KEY = "k3y/with spaces&stuff"


@pytest.fixture
def server() -> Iterator[HttpTestServer]:
    with HttpTestServer() as http_server:
        yield http_server


@pytest.fixture
def secrets() -> SecretStore:
    return SecretStore({"CRM_TOKEN": TOKEN, "API_KEY": API_KEY})


@pytest.fixture
async def invoker(secrets: SecretStore) -> AsyncIterator[HttpInvoker]:
    http = HttpInvoker(secrets)
    yield http
    await http.aclose()


def http_action(name: str = "crm.update_account", **invoke: Any) -> ActionSpec:
    return ActionSpec.model_validate({"name": name, "invoke": {"kind": "http", **invoke}})


async def failure(
    invoker: HttpInvoker, action: ActionSpec, inputs: dict[str, Any] | None = None
) -> ActionError:
    with pytest.raises(ActionError) as info:
        await invoker.invoke(action_call(action, inputs))
    return info.value


async def test_post_with_templates_secrets_and_json_body(
    server: HttpTestServer, invoker: HttpInvoker
) -> None:
    server.route("POST", "/accounts/acme%2F42", Reply(201, {"account_id": "acc-1", "ok": True}))
    action = http_action(
        url=server.url("/accounts/${{ with.account_id }}"),
        headers={"Authorization": "Bearer ${{ secrets.CRM_TOKEN }}", "X-Plan": "${{ with.plan | upper }}"},
        query={"key": "${{ secrets.API_KEY }}", "tags": "${{ with.tags }}", "skip": "${{ with.nothing }}"},
    )
    inputs = {"account_id": "acme/42", "plan": "pro", "tags": ["a", "b"], "nothing": None}
    output = await invoker.invoke(action_call(action, inputs, idempotency_key="run-1:update:"))

    assert output == {"account_id": "acc-1", "ok": True}
    [request] = server.requests
    assert request.method == "POST"
    assert request.path == "/accounts/acme%2F42"  # the `/` in the id did not become a path separator
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["x-plan"] == "PRO"
    assert request.headers["idempotency-key"] == "run-1:update:"
    assert request.headers["user-agent"] == USER_AGENT and USER_AGENT.startswith("overture/")
    assert request.headers["content-type"] == "application/json"
    assert request.query == {"key": [API_KEY], "tags": ["a", "b"]}
    assert request.json == inputs


async def test_get_sends_no_body_and_returns_json(server: HttpTestServer, invoker: HttpInvoker) -> None:
    server.route("GET", "/accounts/7", Reply(200, {"id": 7, "plan": "pro"}))
    action = http_action(method="GET", url=server.url("/accounts/${{ with.id }}"))
    assert await invoker.invoke(action_call(action, {"id": 7})) == {"id": 7, "plan": "pro"}
    assert server.requests[0].body == b""
    assert "content-type" not in server.requests[0].headers


async def test_body_none_and_body_template(server: HttpTestServer, invoker: HttpInvoker) -> None:
    server.route("PUT", "/t", echo)
    templated = http_action(
        method="PUT", url=server.url("/t"),
        body={"name": "${{ with.first }} ${{ with.last }}", "seats": "${{ with.seats }}", "fixed": [1, True]},
    )
    out = await invoker.invoke(action_call(templated, {"first": "Ada", "last": "L", "seats": 12}))
    assert out["json"] == {"name": "Ada L", "seats": 12, "fixed": [1, True]}

    bodyless = http_action(method="PUT", url=server.url("/t"), body="none")
    out = await invoker.invoke(action_call(bodyless, {"first": "Ada"}))
    assert out["text"] == "" and out["json"] is None


async def test_idempotency_key_is_stable_and_cannot_be_overridden(
    server: HttpTestServer, invoker: HttpInvoker
) -> None:
    server.route("POST", "/charge", [Reply(503), Reply(200, {"charged": True})])
    action = http_action(url=server.url("/charge"), headers={"Idempotency-Key": "from-catalog"})
    with pytest.raises(TransientActionError):
        await invoker.invoke(action_call(action, {"amount": 5}, attempt=1, idempotency_key="run-9:charge:"))
    out = await invoker.invoke(action_call(action, {"amount": 5}, attempt=2, idempotency_key="run-9:charge:"))
    assert out == {"charged": True}
    keys = [r.headers["idempotency-key"] for r in server.requests]
    assert keys == ["run-9:charge:", "run-9:charge:"]


async def test_429_with_retry_after_seconds_is_transient(
    server: HttpTestServer, invoker: HttpInvoker
) -> None:
    server.route("POST", "/rl", Reply(429, {"error": "slow down"}, headers={"Retry-After": "7"}))
    error = await failure(invoker, http_action(url=server.url("/rl")))
    assert isinstance(error, TransientActionError) and error.transient
    assert (error.type, error.status, error.retry_after) == ("http_429", 429, 7.0)
    assert "429" in error.message and "slow down" in error.message


async def test_503_with_retry_after_date_is_transient(server: HttpTestServer, invoker: HttpInvoker) -> None:
    when = formatdate(time.time() + 30, usegmt=True)
    server.route("POST", "/down", Reply(503, "maintenance", headers={"Retry-After": when}))
    error = await failure(invoker, http_action(url=server.url("/down")))
    assert isinstance(error, TransientActionError)
    assert (error.type, error.status) == ("http_503", 503)
    assert error.retry_after is not None and 25 <= error.retry_after <= 31


@pytest.mark.parametrize("status", [408, 425, 500, 502, 504])
async def test_other_transient_statuses(server: HttpTestServer, invoker: HttpInvoker, status: int) -> None:
    server.route("POST", "/x", Reply(status, {"e": 1}))
    error = await failure(invoker, http_action(url=server.url("/x")))
    assert isinstance(error, TransientActionError)
    assert (error.type, error.status, error.retry_after) == (f"http_{status}", status, None)


@pytest.mark.parametrize(("status", "body"), [
    (404, {"error": "no such account"}),
    (422, {"detail": [{"loc": ["body", "email"], "msg": "not an email"}]}),
    (401, "unauthorised"),
])
async def test_client_errors_are_permanent_with_body_excerpt(
    server: HttpTestServer, invoker: HttpInvoker, status: int, body: Any
) -> None:
    server.route("POST", "/x", Reply(status, body))
    error = await failure(invoker, http_action(url=server.url("/x")))
    assert isinstance(error, PermanentActionError) and not error.transient
    assert (error.type, error.status) == (f"http_{status}", status)
    assert f"HTTP {status}" in error.message
    expected = "no such account" if status == 404 else "not an email" if status == 422 else "unauthorised"
    assert expected in error.message


async def test_long_error_bodies_are_cut(server: HttpTestServer, invoker: HttpInvoker) -> None:
    server.route("POST", "/x", Reply(400, "x" * 5000))
    error = await failure(invoker, http_action(url=server.url("/x")))
    assert len(error.message) < 600 and error.message.endswith("…")


async def test_secret_echoed_in_error_body_is_redacted(server: HttpTestServer, invoker: HttpInvoker) -> None:
    def reflect(request: RecordedRequest) -> Reply:
        return Reply(400, {
            "error": f"invalid token {request.headers['authorization']}",
            "raw_query": request.query, "url_encoded": "k3y%2Fwith%20spaces%26stuff",
        })

    server.route("POST", "/reflect", reflect)
    action = http_action(
        url=server.url("/reflect?static=1"),
        headers={"Authorization": "Bearer ${{ secrets.CRM_TOKEN }}"},
        query={"api_key": "${{ secrets.API_KEY }}"},
    )
    error = await failure(invoker, action)
    assert isinstance(error, PermanentActionError) and error.status == 400
    text = f"{error} {error.message} {error.args}"
    for leaked in (TOKEN, API_KEY, "k3y%2Fwith%20spaces%26stuff", "k3y%2Fwith+spaces%26stuff"):
        assert leaked not in text
    assert "invalid token Bearer ***" in error.message
    assert error.__cause__ is None and error.__context__ is None


async def test_secret_echoed_in_successful_output_is_redacted(
    server: HttpTestServer, invoker: HttpInvoker
) -> None:
    server.route("POST", "/echo", echo)
    action = http_action(url=server.url("/echo"), headers={"X-Token": "${{ secrets.CRM_TOKEN }}"})
    out = await invoker.invoke(action_call(action, {"a": 1}))
    assert out["headers"]["x-token"] == "***"
    assert TOKEN not in repr(out)


async def test_connection_refused_is_transient(invoker: HttpInvoker) -> None:
    action = http_action(url=f"http://127.0.0.1:{free_port()}/x")
    error = await failure(invoker, action)
    assert isinstance(error, TransientActionError)
    assert error.type == "connection" and error.status is None


async def test_timeout_is_transient(server: HttpTestServer, invoker: HttpInvoker) -> None:
    server.route("POST", "/slow", Reply(200, {"late": True}, delay_s=3))
    started = time.monotonic()
    error = await failure(invoker, http_action(url=server.url("/slow"), timeout_s=0.3))
    assert time.monotonic() - started < 2
    assert isinstance(error, TransientActionError) and error.type == "timeout"
    assert "0.3s" in error.message


async def test_non_json_response(server: HttpTestServer, invoker: HttpInvoker) -> None:
    server.route("POST", "/text", Reply(200, "queued"))
    server.route("POST", "/empty", Reply(204))
    server.route("POST", "/mislabelled", Reply(200, "not json {", content_type="application/json"))
    assert await invoker.invoke(action_call(http_action(url=server.url("/text")))) == {
        "status": 200, "text": "queued"
    }
    empty = await invoker.invoke(action_call(http_action(url=server.url("/empty"))))
    assert empty == {"status": 204, "text": ""}
    assert await invoker.invoke(action_call(http_action(url=server.url("/mislabelled")))) == {
        "status": 200, "text": "not json {"
    }


async def test_output_path_selection_and_wrapping(server: HttpTestServer, invoker: HttpInvoker) -> None:
    server.route("GET", "/r", Reply(200, {"data": {"items": [{"id": "a"}, {"id": "b"}], "total": 2}}))
    server.route("GET", "/list", Reply(200, [1, 2, 3]))
    url = server.url("/r")
    assert await invoker.invoke(action_call(http_action(method="GET", url=url, output="data.items.1"))) == {
        "id": "b"
    }
    assert await invoker.invoke(action_call(http_action(method="GET", url=url, output="data.total"))) == {
        "result": 2
    }
    assert await invoker.invoke(action_call(http_action(method="GET", url=server.url("/list")))) == {
        "result": [1, 2, 3]
    }
    error = await failure(invoker, http_action(method="GET", url=url, output="data.missing"))
    assert isinstance(error, PermanentActionError) and error.type == "output_path"
    assert "`missing` not found in data" in error.message and "items" in error.message


async def test_missing_secret_fails_before_sending(server: HttpTestServer, invoker: HttpInvoker) -> None:
    action = http_action(url=server.url("/x"), headers={"Authorization": "${{ secrets.NOT_SET }}"})
    error = await failure(invoker, action)
    assert isinstance(error, PermanentActionError) and error.type == "missing_secret"
    assert "NOT_SET" in error.message and "OVERTURE_SECRET_NOT_SET" in error.message
    assert server.requests == []


async def test_bad_templates_and_urls_are_permanent(server: HttpTestServer, invoker: HttpInvoker) -> None:
    error = await failure(invoker, http_action(url=server.url("/${{ with.nope }}")))
    assert error.type == "template" and "invoke.url" in error.message
    error = await failure(invoker, http_action(url="ftp://127.0.0.1/x"))
    assert error.type == "invalid_url"
    error = await failure(invoker, http_action(url="${{ secrets.CRM_TOKEN }}"))
    assert error.type == "invalid_url" and TOKEN not in error.message


async def test_base_url_from_secret_is_not_encoded(server: HttpTestServer) -> None:
    server.route("GET", "/v1/ping", Reply(200, {"pong": True}))
    secrets = SecretStore({"BASE_URL": server.base_url})
    http = HttpInvoker(secrets)
    try:
        action = http_action(method="GET", url="${{ secrets.BASE_URL }}/v1/${{ with.what }}")
        assert await http.invoke(action_call(action, {"what": "ping"})) == {"pong": True}
    finally:
        await http.aclose()


async def test_shared_client_via_build_invoker(server: HttpTestServer, secrets: SecretStore) -> None:
    server.route("POST", "/accounts", echo)
    action = http_action(url=server.url("/accounts"))
    async with httpx.AsyncClient(headers={"X-Deployment": "blue"}) as client:
        dispatcher = build_invoker(Catalog([action]), secrets, http_client=client)
        out = await dispatcher.invoke(action_call(action, {"email": "a@b.c"}))
        await dispatcher.aclose()  # must not close a client it was given
        assert not client.is_closed
    assert out["headers"]["x-deployment"] == "blue"
    assert out["headers"]["idempotency-key"] == "run-1:step-1:"
    assert out["json"] == {"email": "a@b.c"}


async def test_one_pool_serves_concurrent_calls(server: HttpTestServer, invoker: HttpInvoker) -> None:
    server.route("POST", "/n", echo)
    action = http_action(url=server.url("/n"))
    calls = [action_call(action, {"i": i}, step_id=f"s{i}") for i in range(20)]
    outs = await asyncio.gather(*(invoker.invoke(call) for call in calls))
    assert sorted(o["json"]["i"] for o in outs) == list(range(20))


def test_parse_retry_after() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after("120", now=now) == 120.0
    assert parse_retry_after(" 1.5 ", now=now) == 1.5
    assert parse_retry_after("-3", now=now) == 0.0
    assert parse_retry_after(formatdate(now + 60, usegmt=True), now=now) == 60.0
    assert parse_retry_after(formatdate(now - 60, usegmt=True), now=now) == 0.0
    for junk in (None, "", "soon", "nan", "inf"):
        assert parse_retry_after(junk, now=now) is None


async def test_mock_transport_extra_redirect_followed(secrets: SecretStore) -> None:
    """Extra (not the main path): redirects are followed by the invoker's own client settings."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/old":
            return httpx.Response(307, headers={"Location": "http://svc.test/new"})
        return httpx.Response(200, json={"at": request.url.path})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler), follow_redirects=True) as client:
        http = HttpInvoker(secrets, client=client)
        out = await http.invoke(action_call(http_action(method="GET", url="http://svc.test/old")))
    assert out == {"at": "/new"}


async def test_redirects_are_not_followed(server: HttpTestServer, invoker: HttpInvoker) -> None:
    server.route("POST", "/old", Reply(307, "", headers={"Location": "http://elsewhere.test/new"}))
    action = http_action(url=server.url("/old"), headers={"X-Api-Key": "${{ secrets.CRM_TOKEN }}"})
    error = await failure(invoker, action)
    assert isinstance(error, PermanentActionError) and (error.type, error.status) == ("http_307", 307)
    assert "Location: http://elsewhere.test/new" in error.message
    assert len(server.requests) == 1


async def test_header_injection_is_refused(server: HttpTestServer, invoker: HttpInvoker) -> None:
    action = http_action(url=server.url("/x"), headers={"X-Name": "${{ with.name }}"})
    error = await failure(invoker, action, {"name": "ada\r\nX-Admin: true"})
    assert isinstance(error, PermanentActionError) and error.type == "invalid_request"
    assert server.requests == []


async def test_catalog_headers_are_case_insensitive(server: HttpTestServer, invoker: HttpInvoker) -> None:
    server.route("POST", "/h", echo)
    action = http_action(
        url=server.url("/h"), headers={"accept": "text/csv", "idempotency-key": "from-catalog"}
    )
    out = await invoker.invoke(action_call(action, idempotency_key="engine-key"))
    assert out["headers"]["accept"] == "text/csv"
    assert out["headers"]["idempotency-key"] == "engine-key"


async def test_oversized_responses_are_cut_off(server: HttpTestServer, secrets: SecretStore) -> None:
    server.route("GET", "/big", Reply(200, {"blob": "x" * 5000}))
    http = HttpInvoker(secrets, max_response_bytes=1000)
    try:
        with pytest.raises(PermanentActionError) as info:
            await http.invoke(action_call(http_action(method="GET", url=server.url("/big"))))
    finally:
        await http.aclose()
    assert info.value.type == "response_too_large" and info.value.status == 200


async def test_slow_drip_is_cut_at_the_overall_timeout(secrets: SecretStore) -> None:
    """A server sending a byte every 0.1 s never trips httpx's per-read timeout; the deadline does."""
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    stop = threading.Event()

    def drip() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n")
            while not stop.wait(0.1):
                try:
                    conn.sendall(b" ")
                except OSError:
                    return

    thread = threading.Thread(target=drip, daemon=True)
    thread.start()
    http = HttpInvoker(secrets)
    started = time.monotonic()
    try:
        with pytest.raises(TransientActionError) as info:
            await http.invoke(action_call(http_action(url=f"http://127.0.0.1:{port}/", timeout_s=0.6)))
    finally:
        stop.set()
        await http.aclose()
        listener.close()
        thread.join(timeout=2)
    assert info.value.type == "timeout"
    assert time.monotonic() - started < 2


async def test_templates_cannot_pick_secrets_dynamically_or_via_inputs(
    server: HttpTestServer, invoker: HttpInvoker
) -> None:
    server.route("POST", "/x", echo)
    dynamic = http_action(url=server.url("/x"), headers={"X-T": "${{ secrets[with.which] }}"})
    error = await failure(invoker, dynamic, {"which": "CRM_TOKEN"})
    assert isinstance(error, PermanentActionError) and error.type == "template"
    assert server.requests == []

    # a step input that looks like a template is data, never evaluated again
    passthrough = http_action(url=server.url("/x"), headers={"X-Name": "${{ with.name }}"})
    out = await invoker.invoke(action_call(passthrough, {"name": "${{ secrets.CRM_TOKEN }}"}))
    assert out["headers"]["x-name"] == "${{ secrets.CRM_TOKEN }}"
    assert out["json"] == {"name": "${{ secrets.CRM_TOKEN }}"}


class VaultLike:
    """A SecretSource that can only answer `get`: redaction must still cover what it handed out."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.asked: list[str] = []

    def get(self, name: str) -> str | None:
        self.asked.append(name)
        return self.values.get(name)


async def test_plain_secret_source_is_redacted_for_used_secrets(server: HttpTestServer) -> None:
    server.route("POST", "/echo", echo)
    vault = VaultLike({"CRM_TOKEN": TOKEN, "UNUSED": "never-asked-for"})
    action = http_action(
        url=server.url("/echo"), headers={"Authorization": "Bearer ${{ secrets.CRM_TOKEN }}"}
    )
    async with build_invoker(Catalog([action]), vault) as dispatcher:
        out = await dispatcher.invoke(action_call(action))
    assert out["headers"]["authorization"] == "Bearer ***"
    assert vault.asked == ["CRM_TOKEN"]  # only the secrets a template names are looked up


def test_invoker_survives_a_new_event_loop(server: HttpTestServer, secrets: SecretStore) -> None:
    """The engine (or a CLI) may call asyncio.run more than once with the same invoker."""
    server.route("POST", "/x", Reply(200, {"ok": True}))
    http = HttpInvoker(secrets)
    action = http_action(url=server.url("/x"))
    assert asyncio.run(http.invoke(action_call(action))) == {"ok": True}
    assert asyncio.run(http.invoke(action_call(action))) == {"ok": True}
    asyncio.run(http.aclose())
