"""Sign-in with Google through OpenID Connect (``AAT_CP_GOOGLE_ISSUER``: discovery from its
``/.well-known/openid-configuration``).

Contract: :meth:`GoogleSignIn.start` records a sign-in (state, nonce, PKCE verifier; 10
minutes, one use) and returns the provider's authorization URL; :meth:`GoogleSignIn.finish`
consumes the sign-in named by ``state``, exchanges the code with the verifier, and returns the
verified ID token's claims. Any mismatch (unknown or reused state, a token not signed by a
key of the JWKS, another issuer or audience, an expired token, another nonce) raises
:class:`~appliance.errors.Forbidden` with what is wrong; nothing is written but the consumed
sign-in.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import jwt
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.integrations.base_client import OAuthError

from appliance.errors import Forbidden, ServiceUnavailable
from appliance.timeutil import iso_in, iso_now
from control_plane.accounts import store
from control_plane.db import Store
from control_plane.settings import ControlPlaneSettings

__all__ = ["GoogleSignIn", "SIGN_IN_SECONDS"]

SIGN_IN_SECONDS = 600
DISCOVERY_TTL = 3600.0


class GoogleSignIn:
    def __init__(self, settings: ControlPlaneSettings, cp_store: Store, http: httpx.AsyncClient) -> None:
        self.settings = settings
        self.db = cp_store.gateway
        self.http = http
        self.redirect_uri = settings.public_url.rstrip("/") + "/auth/google/callback"
        self._discovery: tuple[float, dict[str, Any]] | None = None

    def _configured(self) -> tuple[str, str, str]:
        s = self.settings
        if not (s.google_issuer and s.google_client_id and s.google_client_secret):
            raise ServiceUnavailable("Google sign-in is not configured: set AAT_CP_GOOGLE_ISSUER, "
                                     "AAT_CP_GOOGLE_CLIENT_ID and AAT_CP_GOOGLE_CLIENT_SECRET", code="sign_in_not_configured")
        return s.google_issuer.rstrip("/"), s.google_client_id, s.google_client_secret.get_secret_value()

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            response = await self.http.get(url)
            response.raise_for_status()
            return response.json()
        except (httpx.HTTPError, json.JSONDecodeError) as exc:
            raise ServiceUnavailable(f"the identity provider is unavailable ({type(exc).__name__})",
                                     code="identity_provider_unavailable") from None

    async def discovery(self) -> dict[str, Any]:
        issuer, _, _ = self._configured()
        if self._discovery is None or time.monotonic() - self._discovery[0] > DISCOVERY_TTL:
            found = await self._get_json(issuer + "/.well-known/openid-configuration")
            if found.get("issuer", "").rstrip("/") != issuer:
                raise ServiceUnavailable("the provider's discovery document names another issuer",
                                         code="identity_provider_misconfigured")
            self._discovery = (time.monotonic(), found)
        return self._discovery[1]

    def _client(self, client_id: str, secret: str) -> AsyncOAuth2Client:
        return AsyncOAuth2Client(client_id, secret, scope="openid email profile", redirect_uri=self.redirect_uri,
                                 code_challenge_method="S256", timeout=10.0)

    async def start(self, *, age_confirmed: bool) -> str:
        _, client_id, secret = self._configured()
        config = await self.discovery()
        state, nonce, verifier = generate_token(32), generate_token(32), generate_token(64)
        await self.db.write(store.start_sign_in, state=state, provider="google", nonce=nonce, code_verifier=verifier,
                            age_confirmed=age_confirmed, expires_at=iso_in(SIGN_IN_SECONDS))
        async with self._client(client_id, secret) as client:
            url, _ = client.create_authorization_url(config["authorization_endpoint"], state=state, nonce=nonce,
                                                     code_verifier=verifier)
        return url

    async def finish(self, *, code: str, state: str) -> tuple[dict[str, Any], bool]:
        """The verified ID token's claims, and whether the person confirmed their age at the start."""
        issuer, client_id, secret = self._configured()
        pending = await self.db.write(store.take_sign_in, state, iso_now())
        if pending is None:
            raise Forbidden("this sign-in is unknown, used or expired; start again", code="invalid_state")
        config = await self.discovery()
        try:
            async with self._client(client_id, secret) as client:
                token = await client.fetch_token(config["token_endpoint"], code=code,
                                                 code_verifier=pending["code_verifier"])
        except (OAuthError, httpx.HTTPError) as exc:
            raise Forbidden(f"the provider refused the code ({type(exc).__name__})", code="code_exchange_failed") from None
        id_token = token.get("id_token")
        if not id_token:
            raise Forbidden("the provider returned no ID token", code="invalid_id_token")
        claims = self._verify(id_token, await self._get_json(config["jwks_uri"]), issuer, client_id)
        if claims.get("nonce") != pending["nonce"]:
            raise Forbidden("the ID token's nonce is not this sign-in's", code="invalid_id_token")
        return claims, bool(pending["age_confirmed"])

    @staticmethod
    def _verify(id_token: str, jwks: dict[str, Any], issuer: str, client_id: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(id_token)
            keys = [k for k in jwt.PyJWKSet.from_dict(jwks).keys if header.get("kid") in (None, k.key_id)]
            if not keys:
                raise jwt.InvalidTokenError("no key of the JWKS has the token's kid")
            return jwt.decode(id_token, keys[0].key, algorithms=["RS256", "ES256", "EdDSA"], audience=client_id,
                              issuer=[issuer, issuer + "/"], options={"require": ["iss", "aud", "exp", "sub"]})
        except (jwt.InvalidTokenError, jwt.PyJWKSetError) as exc:
            raise Forbidden(f"the ID token does not verify: {exc}", code="invalid_id_token") from None
