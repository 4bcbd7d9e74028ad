"""The team: users (owner/admin/agent) and API tokens. SQL only."""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlite_utils import Database

from appliance.errors import Conflict, NotFound
from appliance.store.rows import many, one, scalar

__all__ = [
    "ROLES",
    "ROLE_RANK",
    "create_user",
    "get_user",
    "credentials_for",
    "set_password",
    "list_users",
    "user_count",
    "create_token",
    "principal_for_token",
    "touch_token",
]

ROLES = ("owner", "admin", "agent")
ROLE_RANK = {"agent": 0, "admin": 1, "owner": 2}

_USER_COLUMNS = "id, email, name, role, created_at, disabled_at"


def create_user(
    db: Database, *, email: str, role: str, password_hash: str | None, name: str, now: str
) -> dict[str, Any]:
    try:
        cursor = db.execute(
            "INSERT INTO users (email, name, role, password_hash, created_at) VALUES (?, ?, ?, ?, ?)",
            [email, name, role, password_hash, now],
        )
    except sqlite3.IntegrityError as exc:
        raise Conflict(f"a user with email {email!r} already exists", code="user_exists") from exc
    return get_user(db, int(cursor.lastrowid))


def get_user(db: Database, user_id: int) -> dict[str, Any]:
    row = one(db, f"SELECT {_USER_COLUMNS} FROM users WHERE id = ?", [user_id])
    if row is None:
        raise NotFound(f"user {user_id} does not exist")
    return row


def credentials_for(db: Database, email: str) -> dict[str, Any] | None:
    """The user with this email (any case) and their password hash, for signing in."""
    return one(db, "SELECT id, email, name, role, password_hash, disabled_at FROM users WHERE email = ?", [email])


def set_password(db: Database, user_id: int, password_hash: str) -> None:
    get_user(db, user_id)
    db.conn.execute("UPDATE users SET password_hash = ? WHERE id = ?", [password_hash, user_id])


def list_users(db: Database, *, after_id: int | None = None, limit: int = -1) -> list[dict[str, Any]]:
    """Oldest first; ``after_id`` is the cursor (the last id of the previous page)."""
    return many(
        db, f"SELECT {_USER_COLUMNS} FROM users WHERE id > ? ORDER BY id LIMIT ?", [after_id or 0, limit]
    )


def user_count(db: Database) -> int:
    return int(scalar(db, "SELECT count(*) FROM users") or 0)


def create_token(
    db: Database, *, name: str, token_hash: str, prefix: str, role: str, now: str
) -> int:
    cursor = db.execute(
        "INSERT INTO api_tokens (name, token_hash, prefix, role, created_at) VALUES (?, ?, ?, ?, ?)",
        [name, token_hash, prefix, role, now],
    )
    return int(cursor.lastrowid)


def principal_for_token(db: Database, token_hash: str) -> dict[str, Any] | None:
    return one(
        db,
        "SELECT id, name, role, last_used_at FROM api_tokens WHERE token_hash = ? AND revoked_at IS NULL",
        [token_hash],
    )


def touch_token(db: Database, token_id: int, now: str) -> None:
    db.execute("UPDATE api_tokens SET last_used_at = ? WHERE id = ?", [now, token_id])
