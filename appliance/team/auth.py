"""Who is calling the JSON API, and what their role lets them do.

Two ways in, checked in this order:

- ``Authorization: Bearer <token>``: an API token (integrations, the CLI's tokens);
- the ``aat-session`` cookie of a signed-in browser. A request that changes something
  (any method but GET/HEAD) must also carry the session's CSRF token as ``X-CSRF-Token``
  (403 ``csrf_failed`` otherwise): a cookie alone never authorises a change.

Anything else is 401, whatever the method (``OPTIONS`` too). Route guards compare roles:
``owner`` > ``admin`` > ``agent`` (403 when too low).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.types import ASGIApp

from appliance.audit import Actor
from appliance.team import sessions, store
from appliance.team.credentials import TOKEN_PREFIX, hash_token
from appliance.timeutil import from_iso, to_iso, utcnow

__all__ = [
    "Principal", "BearerAuthMiddleware", "requires", "actor_of", "session_principal", "SESSION_COOKIE",
    "THEME_COOKIE",
]

# last_used_at is informational; refresh it at most this often (it costs a write).
_TOUCH_EVERY = timedelta(minutes=1)


SESSION_COOKIE = "aat-session"
THEME_COOKIE = "aat-theme"
SAFE_METHODS = frozenset({"GET", "HEAD"})


@dataclass(frozen=True, slots=True)
class Principal:
    kind: str  # "token" | "user" (a browser session)
    id: int  # the token id, or the session id
    role: str
    name: str
    user_id: int | None = None
    csrf_token: str | None = None


async def session_principal(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal | None:
    """The signed-in user behind the session cookie, or ``None``; refreshes last-seen."""
    token = connection.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    runtime = connection.app.state.runtime
    idle = timedelta(hours=runtime.settings.session_idle_hours)
    row = await runtime.db.read(sessions.session_for, token, idle=idle)
    if row is None:
        return None
    now = utcnow()
    if now - from_iso(row["last_seen_at"]) > _TOUCH_EVERY:
        runtime.db.submit_write(sessions.touch, row["id"], to_iso(now))
    return Principal(kind="user", id=row["id"], role=row["role"], name=row["email"], user_id=row["user_id"],
                     csrf_token=row["csrf_token"])


def actor_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Actor:
    """Who did it, for the audit log: the principal and the client address."""
    principal: Principal = connection.user
    ip = connection.client.host if connection.client else None
    if principal.kind == "token":
        return Actor("token", str(principal.id), principal.name, ip)
    return Actor("user", str(principal.user_id or principal.id), principal.name, ip)


class BearerAuthMiddleware(AbstractAuthenticationMiddleware):
    def __init__(self, app: ASGIApp) -> None:
        # Litestar lets OPTIONS through unauthenticated by default; its guards would then find
        # no user and answer 500. No method is exempt here (there is no CORS to preflight).
        super().__init__(app, exclude_http_methods=())

    async def authenticate_request(self, connection: ASGIConnection[Any, Any, Any, Any]) -> AuthenticationResult:
        header = connection.headers.get("authorization")
        if not header:
            principal = await session_principal(connection)
            if principal is None:
                raise NotAuthorizedException(
                    detail="no credentials: send `Authorization: Bearer <token>`, or sign in")
            if connection.scope.get("method", "GET") not in SAFE_METHODS:
                sent = connection.headers.get("x-csrf-token", "")
                if not hmac.compare_digest(sent.encode(), (principal.csrf_token or "").encode()):
                    raise PermissionDeniedException(
                        detail="the X-CSRF-Token header is missing or wrong (a signed-in page sends it)",
                        extra={"code": "csrf_failed"})
            return AuthenticationResult(user=principal, auth=None)
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer":
            raise NotAuthorizedException(
                detail="the Authorization header must use the Bearer scheme: `Authorization: Bearer <token>`"
            )
        if not token.startswith(TOKEN_PREFIX):
            raise NotAuthorizedException(detail=f"this is not an API token (they start with {TOKEN_PREFIX!r})")
        runtime = connection.app.state.runtime
        row = await runtime.db.read(store.principal_for_token, hash_token(token))
        if row is None:
            raise NotAuthorizedException(detail="the API token is unknown or has been revoked")
        now = utcnow()
        if row["last_used_at"] is None or now - from_iso(row["last_used_at"]) > _TOUCH_EVERY:
            runtime.db.submit_write(store.touch_token, row["id"], to_iso(now))
        principal = Principal(kind="token", id=row["id"], role=row["role"], name=row["name"])
        return AuthenticationResult(user=principal, auth=None)


def requires(role: str):  # noqa: ANN201 - a Litestar guard
    """A guard admitting ``role`` and every role above it."""
    needed = store.ROLE_RANK[role]

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        # async so that Litestar does not hop to a worker thread for a dict lookup
        principal: Principal = connection.user
        if store.ROLE_RANK[principal.role] < needed:
            raise PermissionDeniedException(detail=f"this needs the {role} role or higher; you are {principal.role}")

    guard.__name__ = f"requires_{role}"
    return guard
