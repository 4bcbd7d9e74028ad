"""Google's wire protocol, as far as Sheets needs it: the OAuth 2.0 token endpoint
(authorization code with PKCE, refresh, revoke) and Sheets API v4 ``values.append``.

Requests go through the runtime's one ``httpx.AsyncClient`` to ``AAT_GOOGLE_OAUTH_BASE`` and
``AAT_GOOGLE_API_BASE`` (operator settings, not user input: no SSRF policy applies). Nothing
here logs; callers log ids and outcomes only.

- https://developers.google.com/identity/protocols/oauth2/web-server
- https://developers.google.com/sheets/api/reference/rest/v4/spreadsheets.values/append
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import httpx

from appliance.settings import Settings

__all__ = [
    "SCOPES", "Tokens", "GoogleAuthError", "GoogleUnavailable", "authorize_url", "pkce_challenge",
    "exchange_code", "refresh", "revoke", "append_row", "a1_range", "literal_cell",
]

SCOPES = "https://www.googleapis.com/auth/spreadsheets openid email"


@dataclass(frozen=True, slots=True)
class Tokens:
    access_token: str
    expires_in: float
    refresh_token: str | None = None
    scope: str | None = None
    email: str | None = None


class GoogleAuthError(Exception):
    """Google refused the client or the grant (``invalid_grant``: revoked or expired;
    ``invalid_client``): a person has to connect again."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class GoogleUnavailable(Exception):
    """A timeout, a dropped connection or a 5xx: try again later."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def pkce_challenge(verifier: str) -> str:
    """S256 code challenge (RFC 7636 §4.2)."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")


def authorize_url(settings: Settings, *, state: str, challenge: str, redirect_uri: str) -> str:
    """Where the Connect button sends the browser: offline access (a refresh token), consent
    asked every time (so Google issues one again after a reconnect)."""
    query = urlencode({
        "client_id": settings.google_client_id or "",
        "redirect_uri": redirect_uri,
        "response_type": "code",
        "scope": SCOPES,
        "access_type": "offline",
        "prompt": "consent",
        "include_granted_scopes": "true",
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    })
    return f"{settings.google_authorize_url}?{query}"


def _email_of(id_token: Any) -> str | None:
    """The verified e-mail in an ID token received straight from Google's token endpoint
    over TLS (OpenID Connect Core §3.1.3.7 lets TLS stand in for the signature here)."""
    if not isinstance(id_token, str) or id_token.count(".") != 2:
        return None
    try:
        part = id_token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (ValueError, TypeError):
        return None
    email = claims.get("email") if isinstance(claims, dict) else None
    return email if isinstance(email, str) and claims.get("email_verified") in (True, "true") else None


async def _token_request(client: httpx.AsyncClient, settings: Settings, form: dict[str, str]) -> Tokens:
    try:
        response = await client.post(f"{settings.google_oauth_base}/token", data=form,
                                     headers={"Accept": "application/json"})
    except httpx.TimeoutException as exc:
        raise GoogleUnavailable("timeout") from exc
    except httpx.HTTPError as exc:
        raise GoogleUnavailable("connect_error") from exc
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    if response.status_code >= 500 or response.status_code == 429:
        raise GoogleUnavailable(f"http_{response.status_code}")
    if response.status_code != 200 or not isinstance(body.get("access_token"), str):
        error = body.get("error") if isinstance(body.get("error"), str) else f"http_{response.status_code}"
        raise GoogleAuthError(re.sub(r"[^a-z0-9_]", "", error.lower())[:50] or "invalid_response")
    expires = body.get("expires_in")
    return Tokens(
        access_token=body["access_token"],
        expires_in=float(expires) if isinstance(expires, int | float) else 3600.0,
        refresh_token=body.get("refresh_token") if isinstance(body.get("refresh_token"), str) else None,
        scope=body.get("scope") if isinstance(body.get("scope"), str) else None,
        email=_email_of(body.get("id_token")),
    )


async def exchange_code(client: httpx.AsyncClient, settings: Settings, *, code: str, verifier: str,
                        redirect_uri: str) -> Tokens:
    secret = settings.google_client_secret.get_secret_value() if settings.google_client_secret else ""
    return await _token_request(client, settings, {
        "grant_type": "authorization_code", "code": code, "code_verifier": verifier,
        "client_id": settings.google_client_id or "", "client_secret": secret, "redirect_uri": redirect_uri,
    })


async def refresh(client: httpx.AsyncClient, settings: Settings, *, client_id: str, client_secret: str,
                  refresh_token: str) -> Tokens:
    return await _token_request(client, settings, {
        "grant_type": "refresh_token", "refresh_token": refresh_token,
        "client_id": client_id, "client_secret": client_secret,
    })


async def revoke(client: httpx.AsyncClient, settings: Settings, token: str) -> bool:
    """Best effort: tell Google to forget the grant. ``False`` when it could not be told."""
    try:
        response = await client.post(f"{settings.google_oauth_base}/revoke", data={"token": token}, timeout=5.0)
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def a1_range(sheet: str) -> str:
    """``'My Sheet'!A1``: the sheet name quoted (a quote inside doubled), so a name with
    spaces, ``!`` or a name that looks like a cell (``A1``) still means the sheet."""
    return "'" + sheet.replace("'", "''") + "'!A1"


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def literal_cell(value: str) -> str:
    """``USER_ENTERED`` reads ``=...`` (and ``+``, ``-``, ``@``) as a formula, and contacts
    write what they like: ``=IMPORTXML(...)`` in a name would run in the sheet. Such a value
    gets a leading apostrophe, which Sheets takes as "text" and does not show. Plain numbers
    (``-5``, ``+3.2``) stay numbers. The author's own formulas are neutralised too: after
    rendering, a template's text cannot be told from a contact's."""
    if value.startswith(_FORMULA_START) and not _NUMBER.match(value):
        return "'" + value
    return value


async def append_row(client: httpx.AsyncClient, settings: Settings, *, access_token: str, spreadsheet_id: str,
                     sheet: str, values: list[str]) -> tuple[int, Any]:
    """``(status, decoded body)`` of one ``values.append`` of one row."""
    path = f"/v4/spreadsheets/{quote(spreadsheet_id, safe='')}/values/{quote(a1_range(sheet), safe='')}:append"
    try:
        response = await client.post(
            f"{settings.google_api_base}{path}",
            params={"valueInputOption": "USER_ENTERED", "insertDataOption": "INSERT_ROWS"},
            json={"majorDimension": "ROWS", "values": [[literal_cell(v) for v in values]]},
            headers={"Authorization": f"Bearer {access_token}"},
        )
    except httpx.TimeoutException as exc:
        raise GoogleUnavailable("timeout") from exc
    except httpx.HTTPError as exc:
        raise GoogleUnavailable("connect_error") from exc
    try:
        body = response.json()
    except ValueError:
        body = None
    return response.status_code, body
