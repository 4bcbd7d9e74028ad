"""The Google connection and OAuth states. SQL only; the caller encrypts and decrypts.

There is one connection per workspace (row id 1). Its refresh token (and, for a self-hoster's
own client, the client secret) are stored field-encrypted with :data:`REFRESH_CONTEXT` /
:data:`SECRET_CONTEXT`; DELETE erases the row, tokens included, in one statement.
"""

from __future__ import annotations

from typing import Any

from sqlite_utils import Database

from appliance.store.rows import one

__all__ = [
    "REFRESH_CONTEXT", "SECRET_CONTEXT", "VERIFIER_CONTEXT", "save_connection", "get_connection",
    "replace_refresh_token", "mark_needs_reauth", "delete_connection", "create_state", "take_state",
]

REFRESH_CONTEXT = "google_connection.refresh_token"
SECRET_CONTEXT = "google_connection.client_secret"
VERIFIER_CONTEXT = "oauth_states.verifier"


def save_connection(
    db: Database, *, source: str, client_id: str, client_secret_enc: str | None, refresh_token_enc: str,
    email: str | None, scope: str | None, now: str,
) -> dict[str, Any]:
    """Connect, replacing whatever connection there was."""
    db.execute(
        """INSERT OR REPLACE INTO google_connection (id, source, client_id, client_secret_enc, refresh_token_enc,
               email, scope, status, status_reason, connected_at, updated_at)
           VALUES (1, ?, ?, ?, ?, ?, ?, 'connected', NULL, ?, ?)""",
        [source, client_id, client_secret_enc, refresh_token_enc, email, scope, now, now],
    )
    return get_connection(db)  # type: ignore[return-value]


def get_connection(db: Database) -> dict[str, Any] | None:
    return one(db, "SELECT * FROM google_connection WHERE id = 1")


def replace_refresh_token(db: Database, refresh_token_enc: str, *, connected_at: str, now: str) -> None:
    """Google rotated the refresh token; keep the new one (for the same connection only)."""
    db.execute("UPDATE google_connection SET refresh_token_enc = ?, updated_at = ? WHERE connected_at = ?",
               [refresh_token_enc, now, connected_at])


def mark_needs_reauth(db: Database, reason: str, *, connected_at: str, now: str) -> None:
    """The grant stopped working; a reconnect made meanwhile (another ``connected_at``) is
    left alone."""
    db.execute(
        """UPDATE google_connection SET status = 'needs_reauth', status_reason = ?, updated_at = ?
           WHERE connected_at = ?""",
        [reason, now, connected_at],
    )


def delete_connection(db: Database) -> dict[str, Any] | None:
    """Erase the connection and its tokens; returns what was erased (to revoke it at Google)."""
    row = get_connection(db)
    db.execute("DELETE FROM google_connection WHERE id = 1")
    return row


def create_state(
    db: Database, *, state_hash: str, browser_hash: str, verifier_enc: str, created_by: str | None,
    now: str, expires_at: str,
) -> None:
    """Remember one authorization request; forget the expired ones at the same time."""
    db.execute("DELETE FROM oauth_states WHERE expires_at < ?", [now])
    db.execute(
        """INSERT INTO oauth_states (state_hash, provider, browser_hash, verifier_enc, created_by, created_at, expires_at)
           VALUES (?, 'google', ?, ?, ?, ?, ?)""",
        [state_hash, browser_hash, verifier_enc, created_by, now, expires_at],
    )


def take_state(db: Database, state_hash: str, now: str) -> dict[str, Any] | None:
    """The request named by ``state_hash``, deleted as it is read (single use); ``None`` when
    unknown, used or expired."""
    row = one(db, "SELECT * FROM oauth_states WHERE state_hash = ? AND provider = 'google'", [state_hash])
    db.execute("DELETE FROM oauth_states WHERE state_hash = ? OR expires_at < ?", [state_hash, now])
    if row is None or row["expires_at"] < now:
        return None
    return row
