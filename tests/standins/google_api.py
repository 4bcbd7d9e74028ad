"""A stand-in for Google: the OAuth 2.0 endpoints and Sheets API v4 ``values.append``, as a
real HTTP server on loopback.

- ``GET /o/oauth2/v2/auth``: the consent page. :meth:`GoogleStandIn.consent` plays the user
  saying yes to an authorize URL: it remembers the PKCE challenge with a new code and returns
  the redirect (``redirect_uri?code=...&state=...``) the browser would follow.
- ``POST /token``: ``authorization_code`` (checks client, redirect URI and the PKCE verifier;
  issues a refresh token and an ID token with the e-mail) and ``refresh_token`` (checks the
  client and the refresh token; issues an access token valid ``access_seconds``).
  ``fail_refresh`` scripts ``invalid_grant`` / 5xx answers.
- ``POST /revoke``: forgets the token.
- ``POST /v4/spreadsheets/{id}/values/{range}:append``: needs a live access token (401
  otherwise, as Google answers), appends the row to :attr:`rows`; ``fail_append`` scripts
  statuses. :meth:`expire_access_tokens` makes every issued access token stale (the next
  append answers 401, as after an hour).

Every request is recorded in :attr:`requests` with its form or JSON body.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

from tests.standins.loopback import LoopbackStandIn, StandInHandler

__all__ = ["GoogleStandIn", "Recorded"]


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


class GoogleStandIn(LoopbackStandIn):
    quiet_errors = True  # a client closing a kept-alive connection is normal here, not a traceback

    def __init__(self, *, client_id: str = "hosted-client.apps.googleusercontent.com",
                 client_secret: str = "hosted-secret") -> None:
        self.clients: dict[str, str] = {client_id: client_secret}
        self.requests: list[Recorded] = []
        self.rows: dict[tuple[str, str], list[list[Any]]] = defaultdict(list)
        self.refresh_tokens: set[str] = set()
        self.access_tokens: dict[str, float] = {}  # token -> expiry (time.monotonic)
        self.access_seconds = 3599
        self.email = "owner@example.com"
        self._codes: dict[str, dict[str, str]] = {}
        self._refresh_script: deque[tuple[int, dict[str, Any]]] = deque()
        self._append_script: deque[int] = deque()
        self._ids = itertools.count(1)
        super().__init__()

    # --- scripting --------------------------------------------------------------------------
    def issue_refresh_token(self) -> str:
        token = f"1//refresh-{next(self._ids)}-{_b64(hashlib.sha256(str(time.time()).encode()).digest())[:16]}"
        self.refresh_tokens.add(token)
        return token

    def fail_refresh(self, status: int = 400, error: str = "invalid_grant") -> None:
        self._refresh_script.append((status, {"error": error, "error_description": "Token has been expired or revoked."}))

    def fail_append(self, *statuses: int) -> None:
        self._append_script.extend(statuses)

    def expire_access_tokens(self) -> None:
        with self._lock:
            for token in self.access_tokens:
                self.access_tokens[token] = 0.0

    def consent(self, authorize_url: str) -> str:
        """The user consents: the URL Google redirects the browser to."""
        query = {k: v[0] for k, v in parse_qs(urlsplit(authorize_url).query).items()}
        code = f"4/code-{next(self._ids)}"
        self._codes[code] = query
        return f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query['state'], 'scope': query['scope']})}"

    def token_requests(self, grant_type: str) -> list[Recorded]:
        return [r for r in self.requests if r.path == "/token" and r.body.get("grant_type") == grant_type]

    def appends(self) -> list[Recorded]:
        return [r for r in self.requests if r.path.endswith(":append")]

    # --- endpoints --------------------------------------------------------------------------
    def _token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if self.clients.get(form.get("client_id", "")) != form.get("client_secret"):
            return 401, {"error": "invalid_client", "error_description": "Unauthorized"}
        if form.get("grant_type") == "authorization_code":
            asked = self._codes.pop(form.get("code", ""), None)
            challenge = _b64(hashlib.sha256(form.get("code_verifier", "").encode()).digest())
            if asked is None or asked["redirect_uri"] != form.get("redirect_uri") or asked["code_challenge"] != challenge:
                return 400, {"error": "invalid_grant", "error_description": "Bad Request"}
            refresh = self.issue_refresh_token()
            claims = {"iss": "https://accounts.google.com", "email": self.email, "email_verified": True}
            id_token = ".".join([_b64(b'{"alg":"RS256"}'), _b64(json.dumps(claims).encode()), "sig"])
            return 200, {**self._access(), "refresh_token": refresh, "id_token": id_token,
                         "scope": asked["scope"]}
        if form.get("grant_type") == "refresh_token":
            if self._refresh_script:
                return self._refresh_script.popleft()
            if form.get("refresh_token") not in self.refresh_tokens:
                return 400, {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}
            return 200, {**self._access(), "scope": "https://www.googleapis.com/auth/spreadsheets"}
        return 400, {"error": "unsupported_grant_type"}

    def _access(self) -> dict[str, Any]:
        token = f"ya29.access-{next(self._ids)}"
        self.access_tokens[token] = time.monotonic() + self.access_seconds
        return {"access_token": token, "expires_in": self.access_seconds, "token_type": "Bearer"}

    def _append(self, path: str, headers: dict[str, str], body: Any) -> tuple[int, dict[str, Any]]:
        token = headers.get("authorization", "").removeprefix("Bearer ")
        if self.access_tokens.get(token, 0.0) < time.monotonic():
            return 401, {"error": {"code": 401, "message": "Request had invalid authentication credentials.",
                                   "status": "UNAUTHENTICATED"}}
        if self._append_script:
            status = self._append_script.popleft()
            return status, {"error": {"code": status, "message": "scripted", "status": "FAILED"}}
        parts = path.split("/")  # /v4/spreadsheets/{id}/values/{range}:append
        spreadsheet, a1 = unquote(parts[3]), unquote(parts[5]).removesuffix(":append")
        row = body["values"][0]
        self.rows[(spreadsheet, a1)].append(row)
        n = len(self.rows[(spreadsheet, a1)])
        sheet = a1.rsplit("!", 1)[0]
        return 200, {"spreadsheetId": spreadsheet, "updates": {
            "spreadsheetId": spreadsheet, "updatedRange": f"{sheet}!A{n}:{chr(64 + len(row))}{n}",
            "updatedRows": 1, "updatedColumns": len(row), "updatedCells": len(row)}}

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(StandInHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server API
                self._reply(404, {"error": "the consent page is played by GoogleStandIn.consent"})

            def do_POST(self) -> None:  # noqa: N802 - http.server API
                raw = self.read_body()
                split = urlsplit(self.path)
                headers = self.lower_headers()
                if headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
                    body: Any = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
                else:
                    body = json.loads(raw) if raw else None
                query = {k: v[0] for k, v in parse_qs(split.query).items()}
                with standin._lock:
                    standin.requests.append(Recorded("POST", split.path, query, headers, body))
                    if split.path == "/token":
                        status, payload = standin._token(body)
                    elif split.path == "/revoke":
                        standin.refresh_tokens.discard(body.get("token"))
                        status, payload = 200, {}
                    elif split.path.startswith("/v4/spreadsheets/") and split.path.endswith(":append"):
                        status, payload = standin._append(split.path, headers, body)
                    else:
                        status, payload = 404, {"error": {"code": 404, "status": "NOT_FOUND"}}
                self._reply(status, payload)

            def _reply(self, status: int, payload: Any) -> None:
                self.send_json(status, payload, content_type="application/json; charset=UTF-8")

        return Handler
