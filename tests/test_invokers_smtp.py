"""The smtp invoker against a real aiosmtpd server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from invoker_support import SmtpTestServer, action_call, free_port

from runtime.errors import ActionError, PermanentActionError, TransientActionError
from runtime.invokers import SmtpInvoker
from runtime.secrets import SecretStore
from workflow.catalog import ActionSpec

PASSWORD = "smtp-pa55word-secret"


@pytest.fixture
def smtp() -> Iterator[SmtpTestServer]:
    with SmtpTestServer() as server:
        yield server


@pytest.fixture
def invoker() -> SmtpInvoker:
    return SmtpInvoker(SecretStore({"SMTP_USER": "bot", "SMTP_PASSWORD": PASSWORD}))


def mail_action(port: int, **invoke: Any) -> ActionSpec:
    return ActionSpec.model_validate({
        "name": "email.send",
        "invoke": {"kind": "smtp", "host": "127.0.0.1", "port": port, "sender": "ops@example.com",
                   "timeout_s": 5, **invoke},
    })


async def failure(invoker: SmtpInvoker, action: ActionSpec, inputs: dict[str, Any]) -> ActionError:
    with pytest.raises(ActionError) as info:
        await invoker.invoke(action_call(action, inputs))
    return info.value


BASIC = {"to": "ada@example.com", "subject": "Welcome", "body": "Hello Ada"}


async def test_delivers_message_with_headers(smtp: SmtpTestServer, invoker: SmtpInvoker) -> None:
    inputs = {
        "to": ["ada@example.com", "Bob <bob@example.com>"],
        "cc": "carol@example.com",
        "bcc": ["audit@example.com"],
        "subject": "Welcome aboard",
        "body": "Hello team,\nwelcome.",
        "html": "<p>Hello team</p>",
        "reply_to": "help@example.com",
    }
    out = await invoker.invoke(action_call(mail_action(smtp.port), inputs, idempotency_key="run-1:mail:"))

    [mail] = smtp.messages
    assert mail.mail_from == "ops@example.com"
    assert mail.rcpt_tos == ["ada@example.com", "bob@example.com", "carol@example.com", "audit@example.com"]
    message = mail.message
    assert message["To"] == "ada@example.com, Bob <bob@example.com>"
    assert message["Cc"] == "carol@example.com"
    assert message["Bcc"] is None  # bcc is envelope-only
    assert message["Subject"] == "Welcome aboard"
    assert message["Reply-To"] == "help@example.com"
    assert message["X-Overture-Idempotency-Key"] == "run-1:mail:"
    assert mail.text.strip() == "Hello team,\nwelcome."
    assert mail.html is not None and "<p>Hello team</p>" in mail.html
    assert out == {"message_id": message["Message-ID"], "accepted": mail.rcpt_tos}
    assert out["message_id"].endswith("@example.com>")


async def test_from_override_and_stable_message_id(smtp: SmtpTestServer, invoker: SmtpInvoker) -> None:
    action = mail_action(smtp.port)
    inputs = {**BASIC, "from": "Sales <sales@corp.example>"}
    first = await invoker.invoke(action_call(action, inputs, attempt=1, idempotency_key="k-1"))
    again = await invoker.invoke(action_call(action, inputs, attempt=2, idempotency_key="k-1"))
    other = await invoker.invoke(action_call(action, inputs, idempotency_key="k-2"))
    assert first["message_id"] == again["message_id"] != other["message_id"]
    assert smtp.messages[0].mail_from == "sales@corp.example"
    assert smtp.messages[0].message["From"] == "Sales <sales@corp.example>"


async def test_connection_refused_is_transient(invoker: SmtpInvoker) -> None:
    error = await failure(invoker, mail_action(free_port()), BASIC)
    assert isinstance(error, TransientActionError) and error.type == "connection"


async def test_all_recipients_refused_is_permanent(smtp: SmtpTestServer, invoker: SmtpInvoker) -> None:
    smtp.reject_recipient("ada@example.com", "550 5.1.1 mailbox unavailable")
    error = await failure(invoker, mail_action(smtp.port), BASIC)
    assert isinstance(error, PermanentActionError) and error.type == "smtp_550"
    assert "mailbox unavailable" in error.message
    assert smtp.messages == []


async def test_some_recipients_refused(smtp: SmtpTestServer, invoker: SmtpInvoker) -> None:
    smtp.reject_recipient("gone@example.com")
    out = await invoker.invoke(action_call(mail_action(smtp.port), {**BASIC, "to": ["ada@example.com",
                                                                                    "gone@example.com"]}))
    assert out["accepted"] == ["ada@example.com"]
    assert smtp.messages[0].rcpt_tos == ["ada@example.com"]


async def test_temporary_failures_are_transient(smtp: SmtpTestServer, invoker: SmtpInvoker) -> None:
    smtp.data_reply = "451 4.3.0 mailbox busy, try later"
    error = await failure(invoker, mail_action(smtp.port), BASIC)
    assert isinstance(error, TransientActionError) and error.type == "smtp_451"
    smtp.data_reply = None
    smtp.reject_recipient("ada@example.com", "452 4.2.2 over quota")
    error = await failure(invoker, mail_action(smtp.port), BASIC)
    assert isinstance(error, TransientActionError) and error.type == "smtp_452"


async def test_login_with_secret_templates(invoker: SmtpInvoker) -> None:
    action_ok = None
    with SmtpTestServer(credentials={"bot": PASSWORD}) as smtp:
        action_ok = mail_action(
            smtp.port, username="${{ secrets.SMTP_USER }}", password="${{ secrets.SMTP_PASSWORD }}"
        )
        await invoker.invoke(action_call(action_ok, BASIC))
        assert smtp.logins == ["bot"]
        assert len(smtp.messages) == 1
    with SmtpTestServer(credentials={"bot": "a-different-password"}) as smtp:
        action = mail_action(
            smtp.port, username="${{ secrets.SMTP_USER }}", password="${{ secrets.SMTP_PASSWORD }}"
        )
        error = await failure(invoker, action, BASIC)
        assert isinstance(error, PermanentActionError) and error.type == "smtp_535"
        assert PASSWORD not in str(error)
        assert smtp.messages == []


async def test_missing_password_secret(smtp: SmtpTestServer) -> None:
    invoker = SmtpInvoker(SecretStore())
    action = mail_action(smtp.port, username="bot", password="${{ secrets.SMTP_PASSWORD }}")
    error = await failure(invoker, action, BASIC)
    assert error.type == "missing_secret" and "SMTP_PASSWORD" in error.message


async def test_starttls_not_offered_is_permanent(smtp: SmtpTestServer, invoker: SmtpInvoker) -> None:
    error = await failure(invoker, mail_action(smtp.port, starttls=True), BASIC)
    assert isinstance(error, PermanentActionError) and error.type == "tls"
    assert smtp.messages == []


@pytest.mark.parametrize(("inputs", "field"), [
    ({"subject": "s", "body": "b"}, "to"),
    ({"to": [], "subject": "s", "body": "b"}, "to"),
    ({"to": "not-an-address", "subject": "s", "body": "b"}, "to"),
    ({"to": 5, "subject": "s", "body": "b"}, "to"),
    ({"to": "a@example.com", "body": "b"}, "subject"),
    ({"to": "a@example.com", "subject": "s"}, "body"),
    ({"to": "a@example.com", "subject": "hi\r\nBcc: victim@example.com", "body": "b"}, "header"),
    ({"to": "a@example.com\nBcc: victim@example.com", "subject": "s", "body": "b"}, "to"),
])
async def test_invalid_input_is_permanent(
    smtp: SmtpTestServer, invoker: SmtpInvoker, inputs: dict[str, Any], field: str
) -> None:
    error = await failure(invoker, mail_action(smtp.port), inputs)
    assert isinstance(error, PermanentActionError) and error.type == "invalid_input"
    assert field in error.message
    assert smtp.messages == []


async def test_login_when_server_offers_no_auth(smtp: SmtpTestServer, invoker: SmtpInvoker) -> None:
    action = mail_action(
        smtp.port, username="${{ secrets.SMTP_USER }}", password="${{ secrets.SMTP_PASSWORD }}"
    )
    error = await failure(invoker, action, BASIC)
    assert isinstance(error, PermanentActionError) and error.type == "auth"
    assert PASSWORD not in str(error)
