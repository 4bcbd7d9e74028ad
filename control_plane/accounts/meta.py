"""Sign-in with Meta (Facebook Login), through the platform app (``AAT_CP_META_APP_ID``,
``AAT_META_APP_SECRET``).

Contract: :meth:`MetaSignIn.start` records a sign-in (state; 10 minutes, one use) and returns
the Login dialog URL (``AAT_CP_META_DIALOG_BASE``); :meth:`MetaSignIn.finish` consumes it,
exchanges the code on the Graph API (``oauth/access_token`` with the same redirect URI), checks
with ``debug_token`` that the token is valid and was issued to *our* app for the user it names,
and reads ``me?fields=id,name,email`` with ``appsecret_proof``. Facebook Login has no ID token;
``debug_token`` is what binds the code to this app. Failures raise
:class:`~appliance.errors.Forbidden`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any
from urllib.parse import urlencode

import httpx

from appliance.errors import Forbidden
from appliance.timeutil import iso_in, iso_now
from control_plane.accounts import store
from control_plane.accounts.google import SIGN_IN_SECONDS
from control_plane.channels.graph import Graph, GraphError
from control_plane.db import Store
from control_plane.settings import ControlPlaneSettings, PlatformApp

__all__ = ["MetaSignIn"]


class MetaSignIn:
    def __init__(self, settings: ControlPlaneSettings, platform: PlatformApp, cp_store: Store,
                 http: httpx.AsyncClient) -> None:
        self.settings = settings
        self.platform = platform
        self.db = cp_store.gateway
        self.graph = Graph(settings, platform, http)
        self.redirect_uri = settings.public_url.rstrip("/") + "/auth/meta/callback"

    async def start(self, *, age_confirmed: bool) -> str:
        app_id, _ = self.graph._app()  # noqa: SLF001 - the one place that says the platform app is configured
        state = secrets.token_urlsafe(24)
        await self.db.write(store.start_sign_in, state=state, provider="meta", nonce="", code_verifier="",
                            age_confirmed=age_confirmed, expires_at=iso_in(SIGN_IN_SECONDS))
        query = urlencode({"client_id": app_id, "redirect_uri": self.redirect_uri, "state": state,
                           "response_type": "code", "scope": "public_profile,email"})
        return f"{self.settings.meta_dialog_base.rstrip('/')}/{self.platform.graph_api_version}/dialog/oauth?{query}"

    async def finish(self, *, code: str, state: str) -> tuple[dict[str, Any], bool]:
        app_id, secret = self.graph._app()  # noqa: SLF001
        pending = await self.db.write(store.take_sign_in, state, iso_now())
        if pending is None or pending["provider"] != "meta":
            raise Forbidden("this sign-in is unknown, used or expired; start again", code="invalid_state")
        try:
            token = await self.graph.exchange_code(code, self.redirect_uri)
            check = await self.graph.debug_token(token)
            proof = hmac.new(secret.encode(), token.encode(), hashlib.sha256).hexdigest()
            me = await self.graph._call("the profile", "GET", "me", token=token,  # noqa: SLF001
                                        params={"fields": "id,name,email", "appsecret_proof": proof})
        except GraphError as exc:
            raise Forbidden(f"Meta refused the sign-in ({exc.message})", code="code_exchange_failed") from None
        if not check.get("is_valid") or str(check.get("app_id")) != app_id or str(check.get("user_id")) != str(me.get("id")):
            raise Forbidden("the Meta token was not issued to this app for this user", code="invalid_token")
        return {"sub": str(me["id"]), "email": me.get("email"), "name": me.get("name")}, bool(pending["age_confirmed"])
