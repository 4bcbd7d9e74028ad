"""AI settings (``ai_settings``, one row), the providers' API keys (``ai_api_keys``, one per
provider, AES-256-GCM by the workspace's field cipher) and the monthly count of AI replies
(``ai_usage``). SQL only: keys arrive here encrypted and leave encrypted; the caller holds the
cipher (:func:`key_context` is the associated data binding a ciphertext to its provider).
"""

from __future__ import annotations

from typing import Any

from sqlite_utils import Database

from appliance.store.rows import many, one, scalar

__all__ = [
    "PROVIDERS", "KEEP", "key_context", "read", "write", "clear", "api_key_enc", "replies_in", "count_reply",
    "public_settings",
]

PROVIDERS = ("anthropic", "openai")
KEEP = object()  # write(): leave the stored key as it is


def key_context(provider: str) -> str:
    return f"ai.api_key:{provider}"


def read(db: Database) -> dict[str, Any]:
    """The settings row (or Nones) and which providers have a key."""
    row = one(db, "SELECT provider, model, instructions, updated_at FROM ai_settings WHERE id = 1") or {
        "provider": None, "model": None, "instructions": "", "updated_at": None}
    keys = {r["provider"]: r["updated_at"] for r in many(db, "SELECT provider, updated_at FROM ai_api_keys")}
    return {**row, "keys": keys}


def public_settings(state: dict[str, Any]) -> dict[str, Any]:
    """The API shape: never a key, only whether one is stored."""
    keys = state["keys"]
    return {
        "provider": state["provider"],
        "model": state["model"],
        "instructions": state["instructions"],
        "has_api_key": state["provider"] in keys,
        "api_keys": {p: p in keys for p in PROVIDERS},
        "updated_at": max([t for t in (state["updated_at"], *keys.values()) if t], default=None),
    }


def write(
    db: Database, *, provider: str, model: str, instructions: str, api_key_enc: Any, now: str
) -> dict[str, Any]:
    """Replace the settings; ``api_key_enc`` (for ``provider``): a ciphertext to store, ``None``
    to remove the key, :data:`KEEP` to leave it."""
    db.conn.execute(
        "INSERT INTO ai_settings (id, provider, model, instructions, updated_at) VALUES (1, ?, ?, ?, ?) "
        "ON CONFLICT (id) DO UPDATE SET provider = excluded.provider, model = excluded.model, "
        "instructions = excluded.instructions, updated_at = excluded.updated_at",
        [provider, model, instructions, now],
    )
    if api_key_enc is None:
        db.conn.execute("DELETE FROM ai_api_keys WHERE provider = ?", [provider])
    elif api_key_enc is not KEEP:
        db.conn.execute(
            "INSERT INTO ai_api_keys (provider, api_key_enc, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT (provider) DO UPDATE SET api_key_enc = excluded.api_key_enc, updated_at = excluded.updated_at",
            [provider, api_key_enc, now],
        )
    return read(db)


def clear(db: Database) -> None:
    """Forget the settings and erase every key."""
    db.conn.execute("DELETE FROM ai_api_keys")
    db.conn.execute("DELETE FROM ai_settings")


def api_key_enc(db: Database, provider: str) -> str | None:
    return scalar(db, "SELECT api_key_enc FROM ai_api_keys WHERE provider = ?", [provider])


def replies_in(db: Database, month: str) -> int:
    return int(scalar(db, "SELECT replies FROM ai_usage WHERE month = ?", [month]) or 0)


def count_reply(db: Database, month: str) -> None:
    db.conn.execute(
        "INSERT INTO ai_usage (month, replies) VALUES (?, 1) "
        "ON CONFLICT (month) DO UPDATE SET replies = replies + 1",
        [month],
    )
