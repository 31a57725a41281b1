"""A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps what it receives, for the demo's emails.

The demo's email action goes through Overture's SMTP invoker to this server, so the mail path is
exercised end to end: envelope, headers, the Idempotency-Key header, and the body.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass
from email import message_from_bytes
from email.message import Message
from email.policy import default as default_policy
from typing import Any

from aiosmtpd.controller import Controller


@dataclass(frozen=True)
class ReceivedMail:
    sender: str
    recipients: list[str]
    subject: str
    body: str
    headers: dict[str, str]

    def to_data(self) -> dict[str, Any]:
        return {"from": self.sender, "to": self.recipients, "subject": self.subject, "body": self.body}


def _text_body(message: Message) -> str:
    part = message.get_body(preferencelist=("plain", "html")) if hasattr(message, "get_body") else None
    source = part if part is not None else message
    payload = source.get_content() if hasattr(source, "get_content") else source.get_payload()
    return str(payload)


class _Collector:
    def __init__(self, inbox: list[ReceivedMail], lock: threading.Lock) -> None:
        self._inbox = inbox
        self._lock = lock

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content
        message = message_from_bytes(raw if isinstance(raw, bytes) else raw.encode(), policy=default_policy)
        mail = ReceivedMail(
            sender=str(envelope.mail_from),
            recipients=[str(r) for r in envelope.rcpt_tos],
            subject=str(message.get("Subject", "")),
            body=_text_body(message).strip(),
            headers={k: str(v) for k, v in message.items()},
        )
        with self._lock:
            self._inbox.append(mail)
        return "250 Message accepted for delivery"


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class MailServer:
    """`start()`, read `inbox`, `stop()`. Listens on a free port unless one is given."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port or _free_port(host)
        self._lock = threading.Lock()
        self._inbox: list[ReceivedMail] = []
        self._controller = Controller(_Collector(self._inbox, self._lock), hostname=host, port=self.port,
                                      ready_timeout=10.0)

    @property
    def inbox(self) -> list[ReceivedMail]:
        with self._lock:
            return list(self._inbox)

    def start(self) -> MailServer:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> MailServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
