"""``/api/v1/users``: the team; passwords are stored as argon2id hashes."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from argon2 import PasswordHasher
from litestar.testing import AsyncTestClient

from appliance.store.workspace import Workspace
from tests.appliance.api_helpers import (  # noqa: F401 - shared is a fixture
    Shared,
    detail_paths,
    error_of,
    on_shared_app,
    rows,
    shared,
    snapshot,
    walk,
)
from tests.helpers import make_token

PASSWORD = "correct horse battery staple"
USER_FIELDS = {"id", "email", "name", "role", "created_at"}
_ids = itertools.count(1)


def _email() -> str:
    return f"person{next(_ids)}@example.com"


async def _create(app: Shared, body: dict[str, Any], role: str = "admin") -> Any:
    return await app.client.post("/api/v1/users", json=body, headers=make_token(app.workspace, role))


@on_shared_app
async def test_create_answers_201_with_the_user(shared: Shared) -> None:
    email = _email()
    response = await _create(shared, {"email": email, "role": "agent", "name": "Nino", "password": PASSWORD})
    assert response.status_code == 201, response.text
    body = response.json()
    assert USER_FIELDS <= set(body)
    assert (body["email"], body["role"], body["name"]) == (email, "agent", "Nino")
    assert "password" not in response.text and PASSWORD not in response.text


@on_shared_app
async def test_password_is_stored_as_argon2id(shared: Shared) -> None:
    user = (await _create(shared, {"email": _email(), "role": "agent", "password": PASSWORD})).json()
    stored = rows(shared.workspace, "SELECT password_hash FROM users WHERE id = ?", [int(user["id"])])[0]
    assert stored["password_hash"].startswith("$argon2id$")
    assert PasswordHasher().verify(stored["password_hash"], PASSWORD)
    assert PASSWORD not in str(rows(shared.workspace, "SELECT * FROM users"))


@on_shared_app
async def test_a_user_may_be_created_without_a_password(shared: Shared) -> None:
    user = (await _create(shared, {"email": _email(), "role": "agent"})).json()
    assert rows(shared.workspace, "SELECT password_hash FROM users WHERE id = ?", [int(user["id"])]) == [
        {"password_hash": None}]


@on_shared_app
async def test_email_is_trimmed(shared: Shared) -> None:
    email = _email()
    response = await _create(shared, {"email": f"  {email} ", "role": "agent"})
    assert response.json()["email"] == email


@on_shared_app
@pytest.mark.parametrize("spelling", ["same", "upper"])
async def test_duplicate_email_is_409(shared: Shared, spelling: str) -> None:
    email = _email()
    await _create(shared, {"email": email, "role": "agent"})
    before = snapshot(shared.workspace, "users")
    response = await _create(shared, {"email": email if spelling == "same" else email.upper(), "role": "admin"})
    error = error_of(response, 409)
    assert error["code"] == "user_exists"
    assert "already exists" in error["message"]
    assert snapshot(shared.workspace, "users") == before


BAD_USERS = {
    "short password": ({"password": "elevenchars"}, ["password"]),
    "empty password": ({"password": ""}, ["password"]),
    "not an email": ({"email": "nino.example.com"}, ["email"]),
    "email with spaces": ({"email": "nino @example.com"}, ["email"]),
    "unknown role": ({"role": "superuser"}, ["role"]),
    "unknown field": ({"is_admin": True}, ["is_admin"]),
    "missing email": ({"email": None}, ["email"]),
}


@on_shared_app
@pytest.mark.parametrize("case", sorted(BAD_USERS))
async def test_invalid_user_is_422_and_writes_nothing(shared: Shared, case: str) -> None:
    change, paths = BAD_USERS[case]
    body = {"email": _email(), "role": "agent", "password": PASSWORD, **change}
    body = {k: v for k, v in body.items() if v is not None}
    before = snapshot(shared.workspace, "users")
    response = await _create(shared, body)
    assert detail_paths(response) == paths
    assert snapshot(shared.workspace, "users") == before


@on_shared_app
async def test_short_password_message_says_the_minimum(shared: Shared) -> None:
    response = await _create(shared, {"email": _email(), "role": "agent", "password": "short"})
    assert error_of(response, 422)["details"] == [
        {"path": "password", "message": "String should have at least 12 characters"}]


async def test_list_shows_the_team_oldest_first(client: AsyncTestClient, workspace: Workspace) -> None:
    headers = make_token(workspace, "owner")
    for email, role in (("owner@example.com", "owner"), ("admin@example.com", "admin"), ("agent@example.com", "agent")):
        await client.post("/api/v1/users", json={"email": email, "role": role}, headers=headers)
    response = await client.get("/api/v1/users", headers=headers)
    assert response.status_code == 200
    items = response.json()["items"]
    assert [(u["email"], u["role"]) for u in items] == [
        ("owner@example.com", "owner"), ("admin@example.com", "admin"), ("agent@example.com", "agent")]
    assert all(USER_FIELDS <= set(u) and "password_hash" not in u for u in items)


async def test_list_pages(client: AsyncTestClient, workspace: Workspace) -> None:
    headers = make_token(workspace, "admin")
    for n in range(5):
        await client.post("/api/v1/users", json={"email": f"u{n}@example.com", "role": "agent"}, headers=headers)
    pages = await walk(client, "/api/v1/users", headers, limit=2)
    assert [u["email"] for p in pages for u in p] == [f"u{n}@example.com" for n in range(5)]
    assert [len(p) for p in pages] == [2, 2, 1]
