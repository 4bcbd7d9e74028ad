"""The Google Sheets connection: the API resource and the OAuth Connect button.

``/api/v1/integrations/google-sheets`` (admin): ``GET`` says whether and how Google is
connected; ``PUT {client_id, client_secret, refresh_token}`` connects a self-hoster's own
OAuth client (write-only: no answer carries a secret); ``DELETE`` erases the tokens at once,
then asks Google to revoke the grant (best effort).

``GET /integrations/google/connect`` (admin; behind the API's auth) sends the browser to
Google with a fresh ``state`` and a PKCE challenge (S256) and sets a short-lived, HttpOnly
cookie that binds the request to this browser. ``GET /integrations/google/callback`` takes
the state once (unknown, reused, expired after ten minutes, or arriving in another browser:
400), exchanges the code at ``AAT_GOOGLE_OAUTH_BASE/token`` with the verifier, and stores the
refresh token encrypted. Google's ``code`` and our ``state`` travel in the query string,
which the access log never writes.
"""

import hashlib
import html
import re
import secrets
from typing import Annotated, Any

from litestar import Controller, MediaType, Request, Response, Router, delete, get, put
from litestar.datastructures import Cookie
from litestar.middleware import DefineMiddleware
from litestar.params import JSONBody, QueryParameter
from litestar.response import Redirect
from pydantic import BaseModel, ConfigDict, StringConstraints

from appliance.errors import BadRequest, Conflict
from appliance.integrations.sheets import google, store
from appliance.runtime import Runtime
from appliance.team.auth import BearerAuthMiddleware, Principal, requires
from appliance.timeutil import iso_in, iso_now
from appliance.web.api import RuntimeDep

__all__ = ["GoogleSheetsController", "connect_router", "google_callback", "public_connection"]

STATE_SECONDS = 600
COOKIE = "aat_google_oauth"
COOKIE_PATH = "/integrations/google"
Secret = Annotated[str, StringConstraints(min_length=1, max_length=2048, strip_whitespace=True,
                                          pattern=r"^[\x21-\x7e]+$")]


class ManualConnection(BaseModel):
    """A self-hoster's own OAuth client and a refresh token issued to it (with the
    ``https://www.googleapis.com/auth/spreadsheets`` scope)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)  # built by its first request

    client_id: Annotated[str, StringConstraints(min_length=1, max_length=512, strip_whitespace=True,
                                                pattern=r"^[\x21-\x7e]+$")]
    client_secret: Secret
    refresh_token: Secret


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def redirect_uri(runtime: Runtime) -> str:
    return f"{runtime.settings.public_url}/integrations/google/callback"


def hosted_client(runtime: Runtime) -> bool:
    return bool(runtime.settings.google_client_id and runtime.settings.google_client_secret)


def public_connection(row: dict[str, Any] | None, runtime: Runtime) -> dict[str, Any]:
    """Never a token or a secret: whether, how, as whom and since when."""
    return {
        "connected": row is not None,
        "source": row["source"] if row else None,
        "status": row["status"] if row else None,
        "status_reason": row["status_reason"] if row else None,
        "email": row["email"] if row else None,
        "client_id": row["client_id"] if row else None,
        "connected_at": row["connected_at"] if row else None,
        "updated_at": row["updated_at"] if row else None,
        "connect_url": "/integrations/google/connect" if hosted_client(runtime) else None,
    }


class GoogleSheetsController(Controller):
    path = "/integrations/google-sheets"
    guards = [requires("admin")]

    @get("/")
    async def get_connection(self, runtime: RuntimeDep) -> dict[str, Any]:
        return public_connection(await runtime.db.read(store.get_connection), runtime)

    @put("/")
    async def put_connection(self, data: JSONBody[ManualConnection], runtime: RuntimeDep) -> dict[str, Any]:
        """Connect with your own OAuth client (self-hosting); replaces any connection."""
        row = await runtime.db.write(
            store.save_connection, source="manual", client_id=data.client_id,
            client_secret_enc=runtime.fields.encrypt(data.client_secret, store.SECRET_CONTEXT),
            refresh_token_enc=runtime.fields.encrypt(data.refresh_token, store.REFRESH_CONTEXT),
            email=None, scope=None, now=iso_now(),
        )
        _forget_tokens(runtime)
        return public_connection(row, runtime)

    @delete("/", status_code=200)
    async def delete_connection(self, runtime: RuntimeDep) -> dict[str, Any]:
        """Disconnect: the tokens are erased now; Google is then asked to revoke the grant."""
        erased = await runtime.db.write(store.delete_connection)
        _forget_tokens(runtime)
        revoked = None
        if erased is not None:
            token = runtime.fields.decrypt(erased["refresh_token_enc"], store.REFRESH_CONTEXT)
            revoked = await google.revoke(runtime.http, runtime.settings, token)
        return {**public_connection(None, runtime), "revoked_at_google": revoked}


def _forget_tokens(runtime: Runtime) -> None:
    executor = runtime.executors.get("google_sheets")
    if executor is not None and hasattr(executor, "forget"):
        executor.forget()


@get("/connect", guards=[requires("admin")], media_type=MediaType.TEXT)
async def google_connect(request: Request[Principal, Any, Any], runtime: RuntimeDep) -> Redirect:
    """Start connecting Google Sheets with the hosted OAuth client: redirect to Google."""
    if not hosted_client(runtime):
        raise Conflict("the Connect button needs AAT_GOOGLE_CLIENT_ID and AAT_GOOGLE_CLIENT_SECRET; without "
                       "them, PUT /api/v1/integrations/google-sheets with your own client",
                       code="not_configured")
    state, verifier, browser = secrets.token_urlsafe(32), secrets.token_urlsafe(64), secrets.token_urlsafe(32)
    principal = request.user
    await runtime.db.write(
        store.create_state, state_hash=_sha256(state), browser_hash=_sha256(browser),
        verifier_enc=runtime.fields.encrypt(verifier, store.VERIFIER_CONTEXT),
        created_by=f"{principal.kind}:{principal.id}", now=iso_now(), expires_at=iso_in(STATE_SECONDS),
    )
    target = google.authorize_url(runtime.settings, state=state, challenge=google.pkce_challenge(verifier),
                                  redirect_uri=redirect_uri(runtime))
    cookie = Cookie(key=COOKIE, value=browser, path=COOKIE_PATH, max_age=STATE_SECONDS, httponly=True,
                    samesite="lax", secure=runtime.settings.public_url.startswith("https:"))
    return Redirect(target, status_code=302, cookies=[cookie])


connect_router = Router(
    path="/integrations/google", route_handlers=[google_connect],
    middleware=[DefineMiddleware(BearerAuthMiddleware)],
)


def _page(title: str, text: str, status: int = 200) -> Response[str]:
    body = (f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title>"
            f"<h1>{html.escape(title)}</h1><p>{html.escape(text)}</p>")
    gone = Cookie(key=COOKIE, value="", path=COOKIE_PATH, max_age=0, httponly=True, samesite="lax")
    return Response(body, status_code=status, media_type=MediaType.HTML, cookies=[gone],
                    headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})


@get("/integrations/google/callback", media_type=MediaType.HTML)
async def google_callback(
    request: Request[Any, Any, Any],
    runtime: RuntimeDep,
    oauth_state: Annotated[str | None, QueryParameter(query="state")] = None,
    code: Annotated[str | None, QueryParameter()] = None,
    error: Annotated[str | None, QueryParameter()] = None,
) -> Response[str]:
    """Where Google sends the browser back after consent."""
    state = oauth_state
    if not state or len(state) > 200:
        raise BadRequest("the callback carries no valid state; start again from the Connect button",
                         code="invalid_state")
    pending = await runtime.db.write(store.take_state, _sha256(state), iso_now())
    browser = request.cookies.get(COOKIE)
    if pending is None:
        raise BadRequest("this sign-in has expired or was already used; start again from the Connect button",
                         code="invalid_state")
    if not browser or not secrets.compare_digest(_sha256(browser), pending["browser_hash"]):
        raise BadRequest("this sign-in was started in another browser; start again from the Connect button",
                         code="invalid_state")
    if error:
        reason = re.sub(r"[^a-z_]", "", error.lower())[:50] or "error"
        return _page("Google Sheets was not connected", f"Google did not grant access ({reason}).", 400)
    if not hosted_client(runtime):
        raise Conflict("AAT_GOOGLE_CLIENT_ID and AAT_GOOGLE_CLIENT_SECRET are no longer set; connect with "
                       "PUT /api/v1/integrations/google-sheets instead", code="not_configured")
    if not code or len(code) > 2048:
        raise BadRequest("the callback carries no authorization code",
                         code="invalid_request")
    verifier = runtime.fields.decrypt(pending["verifier_enc"], store.VERIFIER_CONTEXT)
    try:
        tokens = await google.exchange_code(runtime.http, runtime.settings, code=code, verifier=verifier,
                                            redirect_uri=redirect_uri(runtime))
    except (google.GoogleAuthError, google.GoogleUnavailable) as exc:
        return _page("Google Sheets was not connected", f"Google refused the sign-in ({exc.reason}); "
                     "start again from the Connect button.", 400)
    if not tokens.refresh_token:
        return _page("Google Sheets was not connected", "Google issued no refresh token; remove this app's "
                     "access in your Google account and connect again.", 400)
    await runtime.db.write(
        store.save_connection, source="oauth", client_id=runtime.settings.google_client_id,
        client_secret_enc=None, refresh_token_enc=runtime.fields.encrypt(tokens.refresh_token, store.REFRESH_CONTEXT),
        email=tokens.email, scope=tokens.scope, now=iso_now(),
    )
    _forget_tokens(runtime)
    return _page("Google Sheets is connected", "You can close this tab and use Google Sheets steps in your flows.")
