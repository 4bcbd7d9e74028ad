"""Admin tokens (``aat-control-plane admin-token create``): 256-bit random, stored as SHA-256.
SQL only, plus the two pure helpers."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from sqlite_utils import Database

from appliance.store.rows import one

__all__ = ["new_token", "hash_token", "create", "find", "PREFIX"]

PREFIX = "aatcp_"


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create(db: Database, *, name: str, token: str, now: str) -> int:
    cursor = db.conn.execute(
        "INSERT INTO admin_tokens (name, token_hash, prefix, created_at) VALUES (?, ?, ?, ?)",
        [name, hash_token(token), token[:12], now])
    return int(cursor.lastrowid)


def find(db: Database, token_hash: str) -> dict[str, Any] | None:
    return one(db, "SELECT id, name FROM admin_tokens WHERE token_hash = ? AND revoked_at IS NULL", [token_hash])
