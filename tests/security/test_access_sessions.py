"""Sessions and brute force (issue 12, part 4): a session id planted before sign-in is never
adopted; every unsafe cookie-authenticated route wants the session's CSRF token; every form
route refuses a post from another site; sign-in is throttled per address as well as per email;
API tokens are too long to guess and a near miss is as unknown as anything else.

What tests/appliance/test_web_sessions.py already proves (cookie flags, the per-email lockout,
rotation on a second sign-in of the same user, the CSRF check on one route) is not repeated."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from appliance.store.workspace import Workspace
from appliance.team.credentials import TOKEN_PREFIX, new_api_token
from tests.appliance import test_api_auth as matrix
from tests.appliance.api_helpers import (  # noqa: F401 - shared is a fixture
    Shared,
    error_of,
    execute,
    on_shared_app,
    rows,
    shared,
    snapshot,
)
from tests.appliance.web_helpers import ORIGIN, PASSWORD, Web, make_user, sign_in, web  # noqa: F401
from tests.helpers import make_token

UNSAFE = sorted((method, route) for (method, route) in matrix.ROUTES if method not in ("GET", "HEAD"))
FORM_POSTS = ["/signin", "/signout", "/invite/abc", "/reset/abc", "/forgot", "/theme/dark"]


def _state(workspace: Workspace) -> Any:
    """Users, the audit log and which sessions exist (not when each was last seen: reading a
    page refreshes that in the background)."""
    return (snapshot(workspace, "users", "audit_log"),
            rows(workspace, "SELECT id, user_id, csrf_token, expires_at FROM sessions ORDER BY id"))


async def _me(client: AsyncTestClient) -> int:
    return (await client.get("/api/v1/me")).status_code


# --- session fixation ------------------------------------------------------------------------------

@on_shared_app
async def test_a_planted_session_id_is_not_adopted_at_sign_in(web: Web) -> None:
    client, workspace = web.client, web.workspace
    user = make_user(workspace, "agent")
    planted = "attacker-chosen-" + secrets.token_urlsafe(16)
    client.cookies.clear()
    client.cookies.set("aat-session", planted)
    assert await _me(client) == 401
    response = await client.post("/signin", data={"email": user["email"], "password": PASSWORD, "next": "/inbox"},
                                 headers=ORIGIN, follow_redirects=False)
    assert response.status_code == 303
    issued = response.cookies.get("aat-session")
    assert issued and issued != planted
    client.cookies.clear()
    client.cookies.set("aat-session", planted)
    assert await _me(client) == 401  # the planted id is still nobody's session


@on_shared_app
async def test_an_attackers_own_session_planted_in_a_victims_browser_ends_when_the_victim_signs_in(web: Web) -> None:
    client, workspace = web.client, web.workspace
    await sign_in(client, workspace, "agent")
    attackers = client.cookies.get("aat-session")
    victim = make_user(workspace, "admin")
    client.cookies.clear()
    client.cookies.set("aat-session", attackers)  # the victim's browser now carries it
    response = await client.post("/signin", data={"email": victim["email"], "password": PASSWORD, "next": "/"},
                                 headers=ORIGIN, follow_redirects=False)
    issued = response.cookies.get("aat-session")
    assert response.status_code == 303 and issued and issued != attackers
    client.cookies.clear()
    client.cookies.set("aat-session", attackers)
    assert await _me(client) == 401  # ended: the attacker cannot ride along
    client.cookies.clear()
    client.cookies.set("aat-session", issued)
    assert (await client.get("/api/v1/me")).json()["user"]["email"] == victim["email"]


# --- CSRF ----------------------------------------------------------------------------------------

@on_shared_app
@pytest.mark.parametrize(("method", "route"), UNSAFE)
async def test_every_unsafe_api_route_refuses_a_session_cookie_without_its_csrf_token(
    web: Web, method: str, route: str
) -> None:
    """An owner's session (the role that may do everything) with no, a forged, or another
    session's CSRF token: 403 ``csrf_failed`` before any handler runs, nothing written."""
    client, workspace = web.client, web.workspace
    await web.login("agent")
    others = (await client.get("/api/v1/me")).json()["csrf_token"]
    await web.login("owner")
    url = matrix._url(route, {k: 1 for k in ("contact", "conversation", "channel", "flow", "broadcast", "user",
                                                "reply", "webhook", "delivery", "document")})
    before = snapshot(workspace, *matrix.TABLES)
    for token in (None, "forged", others):
        headers = {} if token is None else {"X-CSRF-Token": token}
        response = await matrix._call(client, method, url, matrix.ROUTES[(method, route)][1], headers)
        assert error_of(response, 403)["code"] == "csrf_failed", (token, response.text)
    assert snapshot(workspace, *matrix.TABLES) == before


@on_shared_app
@pytest.mark.parametrize("path", FORM_POSTS)
@pytest.mark.parametrize("header", ["Origin", "Referer"])
async def test_every_form_post_from_another_site_is_refused(web: Web, path: str, header: str) -> None:
    client, workspace = web.client, web.workspace
    await web.login("owner")
    session = client.cookies.get("aat-session")
    csrf = (await client.get("/api/v1/me")).json()["csrf_token"]
    before = _state(workspace)
    response = await client.post(path, data={"email": "owner@example.com", "password": PASSWORD, "csrf_token": csrf},
                                 headers={header: "https://evil.example/page"}, follow_redirects=False)
    assert response.status_code == 403, response.text
    assert "set-cookie" not in response.headers
    assert _state(workspace) == before
    assert client.cookies.get("aat-session") == session and await _me(client) == 200


@on_shared_app
async def test_sign_out_without_the_csrf_token_ends_nothing(web: Web) -> None:
    client = web.client
    await web.login("agent")
    session = client.cookies.get("aat-session")
    response = await client.post("/signout", data={"csrf_token": "forged"}, headers=ORIGIN, follow_redirects=False)
    assert response.status_code == 303
    client.cookies.set("aat-session", session)
    assert await _me(client) == 200  # a forged sign-out cannot end someone's session


# --- brute force ---------------------------------------------------------------------------------

async def test_thirty_failures_from_one_address_lock_it_for_every_email(
    client: AsyncTestClient, workspace: Workspace
) -> None:
    """Guessing one password across many accounts (spraying) trips the per-address limit. The
    first failure is real; the next 28 are fast-forwarded in the throttle row (argon2 is slow
    on purpose); the 30th is real again and locks the address."""
    user = make_user(workspace, "owner")

    async def spray(n: int) -> int:
        response = await client.post("/signin", data={"email": f"guess{n}@example.com", "password": "Summer2026!"},
                                     headers=ORIGIN, follow_redirects=False)
        return response.status_code

    assert await spray(1) == 401
    [address] = rows(workspace, "SELECT key FROM signin_throttle WHERE key LIKE 'ip:%'")
    execute(workspace, "UPDATE signin_throttle SET failures = 29 WHERE key = ?", [address["key"]])
    assert await spray(30) == 401
    locked = await client.post("/signin", data={"email": user["email"], "password": PASSWORD},
                               headers=ORIGIN, follow_redirects=False)
    assert locked.status_code == 429 and "try again in 15 minutes" in locked.text
    assert "set-cookie" not in locked.headers
    assert rows(workspace, "SELECT count(*) AS n FROM sessions") == [{"n": 0}]
    # each sprayed email saw one failure: below its own limit of 5, so only the address did it
    assert rows(workspace, "SELECT max(failures) AS n FROM signin_throttle WHERE key LIKE 'email:%'") == [{"n": 1}]


@on_shared_app
async def test_api_tokens_carry_256_bits_and_a_near_miss_is_unknown(shared: Shared) -> None:
    client, workspace = shared.client, shared.workspace
    tokens = {new_api_token() for _ in range(1000)}
    assert len(tokens) == 1000
    assert all(len(t) == len(TOKEN_PREFIX) + 43 for t in tokens)  # 32 random bytes, base64url
    headers = make_token(workspace, "owner")
    real = headers["Authorization"].removeprefix("Bearer ")
    assert (await client.get("/api/v1/me", headers=headers)).status_code == 200
    last = real[-1]
    near = [real[:-1] + ("A" if last != "A" else "B"), real[:-1], real + "x", real.upper(), TOKEN_PREFIX]
    for guess in near:
        response = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {guess}"})
        assert error_of(response, 401)["message"] in (
            "the API token is unknown or has been revoked", f"this is not an API token (they start with {TOKEN_PREFIX!r})")
