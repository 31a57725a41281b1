"""Bearer API tokens: made by `overture token create`, stored as a sha256 hash, checked per request.

A token is 32 random bytes (`secrets.token_urlsafe`), so a plain sha256 is enough to store it: there
is nothing to brute-force that a slow hash would protect. The lookup is by hash, and the hash is
compared again with `hmac.compare_digest` so no comparison leaks timing. Tokens never appear in logs
or responses after `token create` prints them once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.problems import ApiProblem
from service.store import Store

TOKEN_PREFIX = "ovt_"
TOUCH_EVERY_S = 60.0
"""`last_used_at` is written at most this often per token, so auth costs no write per request."""

bearer_scheme = HTTPBearer(auto_error=False, description="An API token from `overture token create`.")


@dataclass(frozen=True)
class Caller:
    """Who made the request."""

    token_id: str
    name: str
    """The token's name (`overture token create --name`): who the caller is. It is the decider of
    an approval, checked against the step's `approvers` and recorded as `decided_by`."""
    roles: tuple[str, ...] = ()
    """The token's roles (`--role manager`): plans name roles as approvers, and a role among them
    lets the caller decide (still recorded under `name`); `*` may decide any approval."""


def role_problem(role: str) -> str | None:
    """Why `role` cannot be a token's role (None when it can): roles are compared with approvers'
    names, so they are one trimmed line without commas (a comma would read as two roles)."""
    if not role.strip():
        return "a --role is empty; give a role, e.g. --role manager"
    if role != role.strip():
        return f"--role `{role}` has spaces around it; give it trimmed, e.g. --role {role.strip()}"
    if "," in role:
        first = role.split(",")[0].strip() or "manager"
        return f"--role `{role}` holds a comma; give each role its own --role, e.g. --role {first}"
    if any(not c.isprintable() for c in role):
        return "a --role holds a control character (a line break, a tab); give one line, e.g. --role manager"
    return None


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(store: Store, name: str, roles: Sequence[str] = ()) -> tuple[str, str]:
    """Make and store a token; returns (token id, the token itself — shown to the user once).
    `roles` are checked by `role_problem` first (ValueError); repeats count once."""
    for role in roles:
        problem = role_problem(role)
        if problem:
            raise ValueError(problem)
    token = new_token()
    row = store.add_token(name, hash_token(token), token[: len(TOKEN_PREFIX) + 4], list(dict.fromkeys(roles)))
    return row.id, token


def _refuse(detail: str) -> ApiProblem:
    return ApiProblem(401, detail, kind="unauthorized", title="Authentication required",
                      headers={"WWW-Authenticate": 'Bearer realm="overture"'})


def authenticate(store: Store, authorization: str | None) -> Caller:
    """The caller for an `Authorization` header value, or a 401 problem."""
    if not authorization:
        raise _refuse("this endpoint needs an API token: send `Authorization: Bearer <token>` "
                      "(make one with `overture token create`)")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise _refuse("the Authorization header must be `Bearer <token>`")
    digest = hash_token(token)
    row = store.token_by_hash(digest)
    if row is None or not hmac.compare_digest(row.token_hash, digest):
        raise _refuse("the API token is not valid")
    if row.revoked_at is not None:
        raise _refuse("the API token was revoked")
    now = time.time()
    if row.last_used_at is None or now - row.last_used_at > TOUCH_EVERY_S:
        store.touch_token(row.id, now)
    return Caller(token_id=row.id, name=row.name, roles=row.roles)


async def require_token(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer_scheme)
) -> Caller:
    """FastAPI dependency of every protected route; through `bearer_scheme` the OpenAPI document
    declares the scheme, so the interactive docs offer an Authorize button."""
    header = (f"{credentials.scheme} {credentials.credentials}" if credentials
              else request.headers.get("authorization"))
    caller = authenticate(request.app.state.services.store, header)
    request.state.caller = caller
    return caller
