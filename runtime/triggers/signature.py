"""Webhook signatures: `Overture-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">`.

The Stripe scheme: the timestamp is signed with the body, so a captured delivery cannot be
replayed later than `tolerance_s` after it was signed, and nobody without the secret can make a
new one. Several `v1=` entries may be sent (while a secret is being rotated); one must match.
Comparison is constant-time (`hmac.compare_digest`).
"""

from __future__ import annotations

import hashlib
import hmac

from workflow.errors import OvertureError

SIGNATURE_HEADER = "Overture-Signature"
DELIVERY_HEADER = "Overture-Delivery"
TOLERANCE_S = 300.0
"""How old (or how far in the future, for skewed clocks) a signature's timestamp may be."""


class SignatureError(OvertureError):
    """A delivery's signature is missing, malformed, too old or wrong; `reason` says which."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def signature(secret: str, body: bytes, timestamp: int) -> str:
    """The hex HMAC-SHA256 of `"<timestamp>.<body>"`."""
    return hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The header value a sender puts in `Overture-Signature`."""
    return f"t={timestamp},v1={signature(secret, body, timestamp)}"


def verify(
    secret: str, body: bytes, header: str | None, *, now: float, tolerance_s: float = TOLERANCE_S
) -> int:
    """Check a delivery's signature header; returns its timestamp or raises `SignatureError`."""
    if not header:
        raise SignatureError(
            "missing",
            f"no `{SIGNATURE_HEADER}` header; sign the body with the "
            'webhook\'s secret: t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">',
        )
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1" and value:
            candidates.append(value.strip().lower())
    if timestamp is None or not candidates:
        raise SignatureError("malformed", f"`{SIGNATURE_HEADER}` must look like t=<unix seconds>,v1=<hex>")
    age = now - timestamp
    if abs(age) > tolerance_s:
        when = "old" if age > 0 else "far in the future"
        raise SignatureError(
            "stale",
            f"the signature's timestamp is {abs(age):.0f} s {when} "
            f"(at most {tolerance_s:.0f} s allowed); a replayed delivery is refused",
        )
    expected = signature(secret, body, timestamp)
    if not any(hmac.compare_digest(expected, c) for c in candidates):
        raise SignatureError("mismatch", "the signature does not match the body and the webhook's secret")
    return timestamp
