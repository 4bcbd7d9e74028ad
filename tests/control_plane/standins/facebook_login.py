"""A stand-in for Facebook Login and the Graph API calls of signing in: the Login dialog
(``GET /{v}/dialog/oauth``: the person approves at once and is redirected back with a code),
``GET /{v}/oauth/access_token`` (code exchange: app id, secret, code and the same redirect URI
checked), ``GET /{v}/debug_token`` (app access token ``id|secret``) and ``GET /{v}/me`` (Bearer
token and ``appsecret_proof`` checked). A real HTTP server on loopback; every request is recorded
(method, path, query). Errors use Graph's shape (``{"error": {"type": "OAuthException", ...}}``)."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.standins.loopback import LoopbackStandIn, StandInHandler

__all__ = ["FacebookLoginStandIn", "Recorded"]


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    query: dict[str, str]


class FacebookLoginStandIn(LoopbackStandIn):
    quiet_errors = True

    def __init__(self, app_id: str, app_secret: str, version: str = "v25.0") -> None:
        self.app_id, self.app_secret, self.version = app_id, app_secret, version
        self.user = {"id": "10001", "name": "Mia Meta", "email": "mia@example.com"}
        self.token_app_id = app_id  # debug_token's app_id (tests set another to play a foreign token)
        self.requests: list[Recorded] = []
        self._codes: dict[str, tuple[str, dict[str, str]]] = {}  # code -> (redirect_uri, user)
        self._tokens: dict[str, dict[str, str]] = {}
        self._ids = itertools.count(1)
        super().__init__()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(StandInHandler):
            disable_nagle_algorithm = True

            def do_GET(self) -> None:  # noqa: N802
                url = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(url.query))
                standin.requests.append(Recorded("GET", url.path, query))
                status, body, location = standin._route(url.path, query, self.headers.get("Authorization", ""))
                self.send_body(status, json.dumps(body).encode() if body is not None else b"",
                               headers={"Location": location} if location else None)

        return Handler

    def _route(self, path: str, q: dict[str, str], auth: str) -> tuple[int, Any, str | None]:
        v = f"/{self.version}/"
        if path == v + "dialog/oauth":
            if q.get("client_id") != self.app_id or q.get("response_type") != "code":
                return 400, _error("Invalid App ID"), None
            code = f"code-{next(self._ids)}"
            self._codes[code] = (q["redirect_uri"], dict(self.user))
            sep = "&" if "?" in q["redirect_uri"] else "?"
            return 302, None, q["redirect_uri"] + sep + urllib.parse.urlencode({"code": code, "state": q.get("state", "")})
        if path == v + "oauth/access_token":
            found = self._codes.pop(q.get("code", ""), None)
            if (q.get("client_id"), q.get("client_secret")) != (self.app_id, self.app_secret):
                return 400, _error("Error validating client secret."), None
            if found is None or found[0] != q.get("redirect_uri"):
                return 400, _error("This authorization code has been used or is invalid."), None
            token = f"EAAuser{next(self._ids)}"
            self._tokens[token] = found[1]
            return 200, {"access_token": token, "token_type": "bearer", "expires_in": 5183944}, None
        if path == v + "debug_token":
            if q.get("access_token") != f"{self.app_id}|{self.app_secret}":
                return 400, _error("Invalid OAuth access token."), None
            user = self._tokens.get(q.get("input_token", ""))
            if user is None:
                return 200, {"data": {"is_valid": False, "app_id": self.token_app_id}}, None
            return 200, {"data": {"app_id": self.token_app_id, "type": "USER", "application": "AAT", "is_valid": True,
                                  "user_id": user["id"], "scopes": ["public_profile", "email"]}}, None
        if path == v + "me":
            token = auth.removeprefix("Bearer ")
            user = self._tokens.get(token)
            proof = hmac.new(self.app_secret.encode(), token.encode(), hashlib.sha256).hexdigest()
            if user is None or q.get("appsecret_proof") != proof:
                return 400, _error("Invalid appsecret_proof provided in the API argument"), None
            return 200, {k: user[k] for k in q.get("fields", "id").split(",") if k in user}, None
        return 404, _error(f"Unknown path components: {path}"), None


def _error(message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "OAuthException", "code": 100, "fbtrace_id": "AbCdEf"}}
