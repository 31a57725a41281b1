"""The `smtp` invoker: send one email per attempt with `smtplib`, run in a worker thread.

`with` takes `to` (an address, a comma-separated string or a list), `subject`, `body` (plain text)
and optionally `cc`, `bcc`, `html`, `from`, `reply_to`. The message carries
`X-Overture-Idempotency-Key`, and its `Message-ID` is derived from that key, so a retried send
produces the same Message-ID and receivers (or a relay) can drop the duplicate.

    TransientActionError
    ├── type="smtp_4xx"         the server said "try again later" (421, 450, 451, 452, ...)
    ├── type="timeout"          no answer within `invoke.timeout_s`
    └── type="connection"       refused, reset, disconnected mid-conversation
    PermanentActionError
    ├── type="smtp_5xx"         the server rejected the sender, recipients, message or login
    ├── type="tls"              STARTTLS failed (unsupported or certificate refused)
    ├── type="auth"             login asked for, but the server offers no usable AUTH method
    └── type="invalid_input"    missing/invalid `to`, `subject`, `body`, header injection attempts

Output: `{"message_id": "<...>", "accepted": [addresses the server took]}`.
"""

from __future__ import annotations

import asyncio
import hashlib
import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr, formatdate, getaddresses
from typing import Any

from runtime.errors import ActionError, PermanentActionError, TransientActionError
from runtime.invocation import ActionCall, SecretSource
from runtime.invokers.templating import TemplateRenderer, to_text
from workflow.catalog import SmtpInvoke

IDEMPOTENCY_HEADER = "X-Overture-Idempotency-Key"


@dataclass(frozen=True)
class _Login:
    username: str
    password: str


class SmtpInvoker:
    """Performs `kind: smtp` actions."""

    def __init__(self, secrets: SecretSource) -> None:
        self._secrets = secrets

    async def invoke(self, call: ActionCall) -> dict[str, Any]:
        invoke = call.action.invoke
        if not isinstance(invoke, SmtpInvoke):
            raise PermanentActionError(
                f"action `{call.action.name}` is not an smtp action", type="no_invoker"
            )
        renderer = TemplateRenderer(call, self._secrets)
        rendered = renderer.render(
            {"sender": invoke.sender, "username": invoke.username, "password": invoke.password},
            "smtp",
        )
        redactor = renderer.redactor()
        what = f"`{call.action.name}` (smtp {invoke.host}:{invoke.port})"
        try:
            message, recipients = build_message(call, to_text(rendered["sender"]))
            login = (
                _Login(to_text(rendered["username"]), to_text(rendered["password"]))
                if rendered["username"] else None
            )
            refused = await asyncio.to_thread(_send, invoke, message, recipients, login)
        except ActionError as exc:
            raise redactor.redact(_prefixed(exc, what)) from None
        accepted = [r for r in recipients if r not in refused]
        return redactor.redact({"message_id": str(message["Message-ID"]), "accepted": accepted})


def _prefixed(exc: ActionError, what: str) -> ActionError:
    return type(exc)(f"{what}: {exc.message}", type=exc.type, status=exc.status,
                     retry_after=exc.retry_after, transient=exc.transient)


def _addresses(value: Any, field: str, *, required: bool = False) -> list[tuple[str, str]]:
    """(display name, address) pairs from one address, a comma-separated string or a list."""
    if value is None or value == "" or value == []:
        if required:
            raise PermanentActionError(
                f"`with.{field}` is required: one address or a list", type="invalid_input"
            )
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
        raise PermanentActionError(
            f"`with.{field}` must be an address or a list of addresses, got {type(value).__name__}",
            type="invalid_input",
        )
    if any("\r" in i or "\n" in i for i in items):
        raise PermanentActionError(f"`with.{field}` contains a line break", type="invalid_input")
    addresses = [(name, addr) for name, addr in getaddresses(list(items)) if addr]
    bad = [addr for _, addr in addresses if "@" not in addr]
    if bad or (required and not addresses):
        raise PermanentActionError(
            f"`with.{field}` has an invalid address: {', '.join(bad) or value!r}", type="invalid_input"
        )
    return addresses


def _text(inputs: Mapping[str, Any], field: str, *, required: bool = False) -> str | None:
    value = inputs.get(field)
    if value is None:
        if required:
            raise PermanentActionError(f"`with.{field}` is required", type="invalid_input")
        return None
    if not isinstance(value, str):
        raise PermanentActionError(
            f"`with.{field}` must be text, got {type(value).__name__}", type="invalid_input"
        )
    return value


def message_id_for(idempotency_key: str, sender: str) -> str:
    domain = sender.rpartition("@")[2].strip("<> ") or "overture.local"
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
    return f"<{digest}@{domain}>"


def build_message(call: ActionCall, default_sender: str) -> tuple[EmailMessage, list[str]]:
    """The email and its envelope recipients (to + cc + bcc) from the step's `with`."""
    inputs = call.inputs
    to = _addresses(inputs.get("to"), "to", required=True)
    cc = _addresses(inputs.get("cc"), "cc")
    bcc = _addresses(inputs.get("bcc"), "bcc")
    reply_to = _addresses(inputs.get("reply_to"), "reply_to")
    senders = _addresses(_text(inputs, "from") or default_sender, "from", required=True)
    subject = _text(inputs, "subject", required=True) or ""
    body = _text(inputs, "body", required=True) or ""
    html = _text(inputs, "html")

    message = EmailMessage()
    try:
        message["From"] = _header(senders[:1])
        message["To"] = _header(to)
        if cc:
            message["Cc"] = _header(cc)
        if reply_to:
            message["Reply-To"] = _header(reply_to)
        message["Subject"] = subject
        message["Date"] = formatdate(localtime=False, usegmt=True)
        message["Message-ID"] = message_id_for(call.idempotency_key, senders[0][1])
        message[IDEMPOTENCY_HEADER] = call.idempotency_key
    except ValueError as exc:  # the email policy refuses CR/LF in headers (header injection)
        raise PermanentActionError(f"invalid header value: {exc}", type="invalid_input") from None
    message.set_content(body)
    if html is not None:
        message.add_alternative(html, subtype="html")
    # bcc recipients are only in the envelope, never in a header
    recipients = list(dict.fromkeys(addr for _, addr in [*to, *cc, *bcc]))
    return message, recipients


def _header(addresses: list[tuple[str, str]]) -> str:
    return ", ".join(formataddr(pair) for pair in addresses)


def _send(
    invoke: SmtpInvoke, message: EmailMessage, recipients: list[str], login: _Login | None
) -> dict[str, tuple[int, bytes]]:
    """Blocking: connect, optionally STARTTLS and log in, send. Returns the refused recipients."""
    stage = "connect"
    try:
        with smtplib.SMTP(invoke.host, invoke.port, timeout=invoke.timeout_s) as client:
            client.ehlo()
            if invoke.starttls:
                stage = "starttls"
                client.starttls(context=ssl.create_default_context())
                client.ehlo()
            if login is not None:
                stage = "login"
                client.login(login.username, login.password)
            stage = "send"
            from_addr = getaddresses([str(message["From"])])[0][1]
            return client.send_message(message, from_addr=from_addr, to_addrs=recipients)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = {code for code, _ in exc.recipients.values()}
        # one permanent refusal is enough to make the whole send permanent
        code = max(codes) if codes else 550
        detail = "; ".join(f"{addr}: {c} {_decode(m)}" for addr, (c, m) in exc.recipients.items())
        raise _smtp_error(code, f"every recipient was refused ({detail})") from None
    except smtplib.SMTPNotSupportedError as exc:
        kind = "tls" if stage == "starttls" else "auth" if stage == "login" else "smtp"
        raise PermanentActionError(f"{stage}: the server does not support it ({exc})", type=kind) from None
    except smtplib.SMTPResponseException as exc:
        reply = f"{exc.smtp_code} {_decode(exc.smtp_error)}"
        raise _smtp_error(exc.smtp_code, f"{stage}: server said {reply}") from None
    except smtplib.SMTPServerDisconnected as exc:
        raise TransientActionError(f"{stage}: the server closed the connection ({exc})",
                                   type="connection") from None
    except smtplib.SMTPException as exc:  # before OSError, which it subclasses: e.g. no AUTH method
        kind = "auth" if stage == "login" else "smtp"
        raise PermanentActionError(f"{stage}: {exc}", type=kind) from None
    except ssl.SSLError as exc:  # before OSError: a refused certificate does not heal by retrying
        raise PermanentActionError(f"{stage}: TLS failed: {exc}", type="tls") from None
    except TimeoutError as exc:
        raise TransientActionError(f"{stage}: timed out after {invoke.timeout_s:g}s ({exc})",
                                   type="timeout") from None
    except OSError as exc:
        raise TransientActionError(f"{stage}: could not connect: {exc}", type="connection") from None


def _smtp_error(code: int, message: str) -> ActionError:
    if 400 <= code < 500:
        return TransientActionError(message, type=f"smtp_{code}")
    return PermanentActionError(message, type=f"smtp_{code}")


def _decode(value: bytes | str) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value
