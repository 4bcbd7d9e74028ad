"""Browser sessions: sign-in, cookie flags, CSRF, throttling, invitations, resets, sign-out."""

from __future__ import annotations

import re
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from appliance.store.rows import many
from appliance.store.workspace import Workspace
from appliance.team import store
from appliance.team.credentials import hash_password
from appliance.timeutil import iso_now
from tests.helpers import make_token

PASSWORD = "correct horse battery staple"
ORIGIN = {"Origin": "https://testserver.local"}


@pytest.fixture
def agent(workspace: Workspace) -> dict[str, Any]:
    return workspace.gateway.write_sync(lambda db: store.create_user(
        db, email="ana@example.com", role="agent", name="Ana", password_hash=hash_password(PASSWORD), now=iso_now()))


async def _sign_in(client: AsyncTestClient, email: str = "ana@example.com", password: str = PASSWORD,
                   **headers: str) -> Any:
    return await client.post("/signin", data={"email": email, "password": password, "next": "/contacts"},
                             headers={**ORIGIN, **headers}, follow_redirects=False)


async def test_signing_in_sets_a_strict_session_cookie(client: AsyncTestClient, agent: dict[str, Any]) -> None:
    response = await _sign_in(client)
    assert response.status_code == 303 and response.headers["location"] == "/contacts"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("aat-session=")
    for flag in ("HttpOnly", "Secure", "SameSite=Lax", "Path=/", "Max-Age=604800"):
        assert flag.lower() in cookie.lower()
    me = await client.get("/api/v1/me")
    assert me.status_code == 200
    body = me.json()
    assert body["user"]["email"] == "ana@example.com" and body["token"] is None
    assert len(body["csrf_token"]) >= 40


async def test_a_wrong_password_and_an_unknown_email_look_the_same(
    client: AsyncTestClient, agent: dict[str, Any]
) -> None:
    wrong = await _sign_in(client, password="not the password")
    unknown = await _sign_in(client, email="nobody@example.com")
    assert wrong.status_code == unknown.status_code == 401
    assert "wrong email or password" in wrong.text and "wrong email or password" in unknown.text
    assert "set-cookie" not in wrong.headers
    assert (await client.get("/api/v1/me")).status_code == 401


async def test_five_failures_lock_the_account_for_everyone(client: AsyncTestClient, agent: dict[str, Any]) -> None:
    for _ in range(5):
        assert (await _sign_in(client, password="guess")).status_code == 401
    locked = await _sign_in(client)  # even the right password
    assert locked.status_code == 429
    assert "try again in 15 minutes" in locked.text


async def test_changes_need_the_csrf_token_reads_do_not(
    client: AsyncTestClient, workspace: Workspace, agent: dict[str, Any]
) -> None:
    await _sign_in(client)
    csrf = (await client.get("/api/v1/me")).json()["csrf_token"]
    assert (await client.get("/api/v1/contacts")).status_code == 200
    refused = await client.post("/api/v1/users", json={"email": "x@example.com", "role": "agent"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "csrf_failed"
    wrong = await client.post("/api/v1/users", json={"email": "x@example.com", "role": "agent"},
                              headers={"X-CSRF-Token": "forged"})
    assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "csrf_failed"
    role = await client.post("/api/v1/users", json={"email": "x@example.com", "role": "agent"},
                             headers={"X-CSRF-Token": csrf})
    assert role.status_code == 403 and role.json()["error"]["code"] == "forbidden"  # an agent, not an admin
    assert workspace.gateway.read_sync(lambda db: many(db, "SELECT email FROM users")) == [{"email": "ana@example.com"}]


async def test_a_cross_site_form_post_is_refused(client: AsyncTestClient, agent: dict[str, Any]) -> None:
    response = await _sign_in(client, Origin="https://evil.example")
    assert response.status_code == 403
    assert (await client.get("/api/v1/me")).status_code == 401


async def test_sign_in_rotates_the_session(client: AsyncTestClient, workspace: Workspace, agent: dict[str, Any]) -> None:
    first = (await _sign_in(client)).cookies.get("aat-session")
    second = (await _sign_in(client)).cookies.get("aat-session")
    assert first and second and first != second
    assert workspace.gateway.read_sync(lambda db: many(db, "SELECT count(*) AS n FROM sessions")) == [{"n": 1}]
    client.cookies.set("aat-session", first)
    assert (await client.get("/api/v1/me")).status_code == 401


async def test_sign_out_ends_the_session(client: AsyncTestClient, workspace: Workspace, agent: dict[str, Any]) -> None:
    await _sign_in(client)
    token = client.cookies.get("aat-session")
    csrf = (await client.get("/api/v1/me")).json()["csrf_token"]
    response = await client.post("/signout", data={"csrf_token": csrf}, headers=ORIGIN, follow_redirects=False)
    assert response.status_code == 303 and "max-age=0" in response.headers["set-cookie"].lower()
    client.cookies.set("aat-session", token)
    assert (await client.get("/api/v1/me")).status_code == 401
    actions = workspace.gateway.read_sync(lambda db: [r["action"] for r in many(db, "SELECT action FROM audit_log")])
    assert actions == ["user.signin", "user.signout"]


async def test_an_expired_session_is_refused(client: AsyncTestClient, workspace: Workspace, agent: dict[str, Any]) -> None:
    await _sign_in(client)
    workspace.gateway.write_sync(lambda db: db.execute("UPDATE sessions SET last_seen_at = '2020-01-01T00:00:00.000Z'"))
    assert (await client.get("/api/v1/me")).status_code == 401


async def test_an_invitation_link_works_once(client: AsyncTestClient, workspace: Workspace) -> None:
    created = await client.post("/api/v1/users", json={"email": "new@example.com", "role": "agent"},
                                headers=make_token(workspace, "admin"))
    assert created.status_code == 201
    url = created.json()["invite_url"]
    path = "/" + url.split("/", 3)[3]
    page = await client.get(path)
    assert page.status_code == 200 and "new@example.com" in page.text
    short = await client.post(path, data={"password": "short"}, headers=ORIGIN, follow_redirects=False)
    assert short.status_code == 422 and "at least 12 characters" in short.text
    done = await client.post(path, data={"password": PASSWORD}, headers=ORIGIN, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/"
    assert (await client.get("/api/v1/me")).json()["user"]["email"] == "new@example.com"
    again = await client.get(path)
    assert again.status_code == 404
    client.cookies.clear()
    assert (await _sign_in(client, email="new@example.com")).status_code == 303


async def test_a_reset_link_ends_other_sessions(client: AsyncTestClient, workspace: Workspace, agent: dict[str, Any]) -> None:
    await _sign_in(client)
    old = client.cookies.get("aat-session")
    link = await client.post(f"/api/v1/users/{agent['id']}/reset-link", headers=make_token(workspace, "admin"))
    assert link.status_code == 201
    path = "/" + link.json()["reset_url"].split("/", 3)[3]
    client.cookies.clear()
    done = await client.post(path, data={"password": "a brand new passphrase"}, headers=ORIGIN, follow_redirects=False)
    assert done.status_code == 303
    client.cookies.clear()
    client.cookies.set("aat-session", old)
    assert (await client.get("/api/v1/me")).status_code == 401
    client.cookies.clear()
    assert (await _sign_in(client, password="a brand new passphrase")).status_code == 303


async def test_forgot_password_says_the_same_for_everyone(client: AsyncTestClient, agent: dict[str, Any]) -> None:
    known = await client.post("/forgot", data={"email": "ana@example.com"}, headers=ORIGIN)
    unknown = await client.post("/forgot", data={"email": "nobody@example.com"}, headers=ORIGIN)
    notice = "If that address has an account, a link to reset the password is on its way."
    assert notice in known.text and notice in unknown.text


async def test_next_cannot_leave_the_site(client: AsyncTestClient, agent: dict[str, Any]) -> None:
    response = await client.post("/signin", data={"email": "ana@example.com", "password": PASSWORD,
                                                   "next": "//evil.example/x"}, headers=ORIGIN, follow_redirects=False)
    assert response.headers["location"] == "/"


async def test_pages_escape_what_they_echo(client: AsyncTestClient, agent: dict[str, Any]) -> None:
    response = await _sign_in(client, email='"><script>alert(1)</script>@x.com', password="nope")
    assert "<script>alert(1)</script>" not in response.text
    assert re.search(r"&lt;script&gt;alert\(1\)&lt;/script&gt;", response.text)
