"""Sign-in with Google against ``oidc-provider-mock`` (a real OpenID Connect provider from PyPI,
started by the test): the authorization request (code + PKCE S256, state, nonce), the code
exchange and ID-token check, first sign-in creating the account (16+ confirmed), the
``aat-session`` cookie's flags, ``GET /api/me``, reused state, and logout needing X-CSRF-Token."""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from typing import Any

import httpx
import oidc_provider_mock
import pytest

from tests.control_plane.harness import ControlPlaneServer

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def provider() -> Iterator[str]:
    with oidc_provider_mock.run_server_in_thread(require_nonce=True) as server:
        yield f"http://127.0.0.1:{server.server_port}"


@pytest.fixture(scope="module")
def cp(tmp_path_factory: pytest.TempPathFactory, provider: str) -> Iterator[ControlPlaneServer]:
    server = ControlPlaneServer(tmp_path_factory.mktemp("accounts"), "http://127.0.0.1:9", google_issuer=provider,
                                google_client_id="aat-test-client", google_client_secret="aat-test-secret").start()
    yield server
    server.stop()


def authorize(cp: ControlPlaneServer, provider: str, sub: str, *, age_confirmed: bool) -> httpx.Response:
    """Start, let the provider authorize ``sub``; returns the provider's redirect to our callback."""
    httpx.put(f"{provider}/users/{sub}", json={"email": sub, "email_verified": True, "name": "Alice Example"},
              timeout=10).raise_for_status()
    start = httpx.get(cp.base_url + "/auth/google/login", params={"age_confirmed": str(age_confirmed).lower()},
                      timeout=10)
    assert start.status_code == 302, start.text
    granted = httpx.post(start.headers["location"], data={"sub": sub}, timeout=10)
    assert granted.status_code == 302, granted.text
    assert granted.headers["location"].startswith(cp.base_url + "/auth/google/callback?")
    return granted


def sign_in(cp: ControlPlaneServer, provider: str, sub: str, *, age_confirmed: bool = True) -> str:
    callback = httpx.get(authorize(cp, provider, sub, age_confirmed=age_confirmed).headers["location"], timeout=10)
    assert callback.status_code == 302, callback.text
    cookie = callback.headers["set-cookie"]
    assert cookie.startswith("aat-session=")
    return cookie.split(";")[0].split("=", 1)[1]


def me(cp: ControlPlaneServer, session: str) -> httpx.Response:
    return httpx.get(cp.base_url + "/api/me", headers={"Cookie": f"aat-session={session}"}, timeout=10)


def test_the_authorization_request_uses_pkce_state_and_nonce(cp: ControlPlaneServer, provider: str) -> None:
    start = httpx.get(cp.base_url + "/auth/google/start", timeout=10)
    assert start.status_code == 302
    url = urllib.parse.urlsplit(start.headers["location"])
    query = dict(urllib.parse.parse_qsl(url.query))
    assert f"{url.scheme}://{url.netloc}{url.path}" == provider + "/oauth2/authorize"
    assert {k: query[k] for k in ("response_type", "client_id", "redirect_uri", "scope", "code_challenge_method")} == {
        "response_type": "code", "client_id": "aat-test-client", "redirect_uri": cp.base_url + "/auth/google/callback",
        "scope": "openid email profile", "code_challenge_method": "S256"}
    assert len(query["state"]) == 32 and len(query["nonce"]) == 32 and len(query["code_challenge"]) == 43


def test_first_sign_in_creates_the_account_and_a_session(cp: ControlPlaneServer, provider: str) -> None:
    callback = httpx.get(authorize(cp, provider, "alice@example.com", age_confirmed=True).headers["location"], timeout=10)
    assert (callback.status_code, callback.headers["location"]) == (302, "/")
    flags = {part.strip().lower() for part in callback.headers["set-cookie"].split(";")[1:]}
    assert {"httponly", "secure", "samesite=lax", "path=/"} <= flags
    session = callback.headers["set-cookie"].split(";")[0].split("=", 1)[1]
    answer = me(cp, session)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {"account", "tenants", "subscription", "csrf_token"}
    assert (body["account"]["provider"], body["account"]["email"], body["account"]["name"]) == (
        "google", "alice@example.com", "Alice Example")
    assert (body["tenants"], body["subscription"]) == ([], None)
    welcome = cp.cp.notifier.sent[-1]
    assert (welcome.to, welcome.subject) == ("alice@example.com", "Your AAT account is ready")


def test_a_second_sign_in_finds_the_same_account(cp: ControlPlaneServer, provider: str) -> None:
    first = me(cp, sign_in(cp, provider, "bob@example.com")).json()["account"]["id"]
    emails = len(cp.cp.notifier.sent)
    again = me(cp, sign_in(cp, provider, "bob@example.com", age_confirmed=False)).json()["account"]["id"]
    assert first == again
    assert len(cp.cp.notifier.sent) == emails  # welcomed once


def test_sign_up_without_confirming_16_or_older_is_refused(cp: ControlPlaneServer, provider: str) -> None:
    callback = httpx.get(authorize(cp, provider, "young@example.com", age_confirmed=False).headers["location"], timeout=10)
    assert callback.status_code == 403
    assert callback.json()["error"]["code"] == "age_confirmation_required"
    assert "set-cookie" not in callback.headers


def test_a_callback_is_used_once(cp: ControlPlaneServer, provider: str) -> None:
    location = authorize(cp, provider, "carol@example.com", age_confirmed=True).headers["location"]
    assert httpx.get(location, timeout=10).status_code == 302
    replay = httpx.get(location, timeout=10)
    assert replay.status_code == 403
    assert replay.json()["error"]["code"] == "invalid_state"


@pytest.mark.parametrize(("params", "status", "code"), [
    ({"state": "made-up", "code": "x"}, 403, "invalid_state"),
    ({"code": "x"}, 400, "bad_callback"),
    ({"error": "access_denied", "state": "s"}, 403, "sign_in_denied"),
])
def test_bad_callbacks_are_refused(cp: ControlPlaneServer, params: dict[str, Any], status: int, code: str) -> None:
    response = httpx.get(cp.base_url + "/auth/google/callback", params=params, timeout=10)
    assert (response.status_code, response.json()["error"]["code"]) == (status, code)


def test_logout_needs_the_csrf_token_and_ends_the_session(cp: ControlPlaneServer, provider: str) -> None:
    session = sign_in(cp, provider, "dave@example.com")
    csrf = me(cp, session).json()["csrf_token"]
    cookie = {"Cookie": f"aat-session={session}"}
    refused = httpx.post(cp.base_url + "/auth/logout", headers=cookie, timeout=10)
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "csrf_failed")
    assert me(cp, session).status_code == 200
    done = httpx.post(cp.base_url + "/auth/logout", headers={**cookie, "X-CSRF-Token": csrf}, timeout=10)
    assert done.status_code == 204
    gone = me(cp, session)
    assert (gone.status_code, gone.json()["error"]["code"]) == (401, "not_signed_in")


def _rsa_jwk(kid: str) -> tuple[Any, dict[str, Any]]:
    import json

    import jwt
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return key, {**jwk, "kid": kid, "alg": "RS256", "use": "sig"}


@pytest.mark.parametrize("what", ["other_key", "audience", "issuer", "expired"])
def test_id_tokens_that_do_not_verify_are_refused(what: str) -> None:
    import time

    import jwt

    from appliance.errors import Forbidden
    from control_plane.accounts.google import GoogleSignIn

    key, jwk = _rsa_jwk("k1")
    other, _ = _rsa_jwk("k1")
    now = int(time.time())
    claims = {"iss": "https://issuer.example", "aud": "aat-test-client", "sub": "1", "iat": now, "exp": now + 300,
              "nonce": "n"}
    claims.update({"audience": {"aud": "someone-else"}, "issuer": {"iss": "https://evil.example"},
                   "expired": {"exp": now - 10}}.get(what, {}))
    token = jwt.encode(claims, other if what == "other_key" else key, algorithm="RS256", headers={"kid": "k1"})
    assert GoogleSignIn._verify(jwt.encode({**claims, **{"aud": "aat-test-client", "iss": "https://issuer.example",
                                                         "exp": now + 300}}, key, algorithm="RS256",
                                           headers={"kid": "k1"}), {"keys": [jwk]}, "https://issuer.example",
                                "aat-test-client")["sub"] == "1"
    with pytest.raises(Forbidden) as refused:
        GoogleSignIn._verify(token, {"keys": [jwk]}, "https://issuer.example", "aat-test-client")
    assert refused.value.code == "invalid_id_token"
