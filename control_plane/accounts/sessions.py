"""Signing in (account on first sign-in, 16+ confirmed) and the ``aat-session`` cookie.

A session token is 256 random bits; only its SHA-256 is stored. The cookie is HttpOnly,
Secure, SameSite=Lax; unsafe requests authenticated by it must carry the session's
``X-CSRF-Token`` (returned by ``GET /api/me``).
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from appliance.errors import Forbidden, Unauthorized
from appliance.timeutil import iso_in, iso_now
from control_plane.accounts import store
from control_plane.db import Store
from control_plane.notify import Email, Notifier
from control_plane.settings import ControlPlaneSettings

__all__ = ["Sessions", "COOKIE"]

COOKIE = "aat-session"


class Sessions:
    def __init__(self, settings: ControlPlaneSettings, cp_store: Store, notifier: Notifier) -> None:
        self.settings = settings
        self.db = cp_store.gateway
        self.notifier = notifier

    async def sign_in(self, provider: str, claims: dict[str, Any], *, age_confirmed: bool) -> str:
        """A new session token for the account of ``claims['sub']``, created on first sign-in
        (only when the person confirmed being 16 or older; a confirmation email follows)."""
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
        email = claims.get("email") if claims.get("email_verified", True) else None

        def write(db: Any) -> bool:
            now = iso_now()
            account = store.find_account(db, provider, str(claims["sub"]))
            if account is None:
                if not age_confirmed:
                    raise Forbidden("confirm that you are 16 or older to create an account",
                                    code="age_confirmation_required")
                created = store.create_account(db, provider=provider, subject=str(claims["sub"]), email=email,
                                               name=claims.get("name"), now=now)
            else:
                created = None
                store.touch_account(db, account["id"], email=email, now=now)
            store.create_session(db, token=token, account_id=(created or account)["id"], csrf_token=csrf, now=now,
                                 expires_at=iso_in(self.settings.session_days * 86400))
            return created is not None

        if await self.db.write(write) and email:
            self.notifier.send(Email(to=email, subject="Your AAT account is ready",
                                     text=f"Welcome{', ' + claims['name'] if claims.get('name') else ''}. Your account "
                                     f"was created with {provider.capitalize()} sign-in. Choose a plan to start your "
                                     "workspace."))
        return token

    async def current(self, token: str | None) -> dict[str, Any]:
        if not token:
            raise Unauthorized("sign in first", code="not_signed_in")
        found = await self.db.read(store.session_of, token, iso_now())
        if found is None:
            raise Unauthorized("the session has ended; sign in again", code="not_signed_in")
        return found

    async def unsafe(self, token: str | None, csrf: str | None) -> dict[str, Any]:
        """The session of an unsafe (POST, PUT, DELETE) request: the CSRF token must match."""
        found = await self.current(token)
        if not csrf or not hmac.compare_digest(csrf.encode(), found["csrf_token"].encode()):
            raise Forbidden("X-CSRF-Token is missing or wrong", code="csrf_failed")
        return found

    async def me(self, token: str | None) -> dict[str, Any]:
        found = await self.current(token)
        tenants = await self.db.read(store.tenants_of, found["id"], found["email"])
        subscription = await self.db.read(store.subscription_of, [t["id"] for t in tenants])
        account = {"id": found["id"], "provider": found["provider"], "email": found["email"], "name": found["name"],
                   "created_at": found["created_at"]}
        return {"account": account, "tenants": tenants, "subscription": subscription, "csrf_token": found["csrf_token"]}

    async def sign_out(self, token: str) -> None:
        await self.db.write(store.delete_session, token)
