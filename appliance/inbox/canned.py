"""Canned replies: saved answers agents insert with a shortcut (``/hours``). SQL only."""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlite_utils import Database

from appliance.errors import Conflict, NotFound
from appliance.store.rows import many, one

__all__ = ["list_replies", "create", "update", "delete"]


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "id": str(row["id"])}


def list_replies(db: Database) -> list[dict[str, Any]]:
    return [_public(r) for r in many(db, "SELECT id, shortcut, text, updated_at FROM canned_replies ORDER BY shortcut")]


def _get(db: Database, reply_id: int) -> dict[str, Any]:
    row = one(db, "SELECT id, shortcut, text, updated_at FROM canned_replies WHERE id = ?", [reply_id])
    if row is None:
        raise NotFound(f"canned reply {reply_id} does not exist")
    return _public(row)


def create(db: Database, shortcut: str, text: str, now: str) -> dict[str, Any]:
    try:
        reply_id = db.conn.execute(
            "INSERT INTO canned_replies (shortcut, text, created_at, updated_at) VALUES (?, ?, ?, ?)",
            [shortcut, text, now, now]).lastrowid
    except sqlite3.IntegrityError as exc:
        raise Conflict(f"the shortcut /{shortcut} is taken", code="shortcut_taken") from exc
    return _get(db, int(reply_id))


def update(db: Database, reply_id: int, shortcut: str, text: str, now: str) -> dict[str, Any]:
    _get(db, reply_id)
    try:
        db.conn.execute("UPDATE canned_replies SET shortcut = ?, text = ?, updated_at = ? WHERE id = ?",
                        [shortcut, text, now, reply_id])
    except sqlite3.IntegrityError as exc:
        raise Conflict(f"the shortcut /{shortcut} is taken", code="shortcut_taken") from exc
    return _get(db, reply_id)


def delete(db: Database, reply_id: int) -> None:
    _get(db, reply_id)
    db.conn.execute("DELETE FROM canned_replies WHERE id = ?", [reply_id])
