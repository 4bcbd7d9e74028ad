"""Connected channels (the ``/api/v1/channels`` resource): a Page, an Instagram account or a
WhatsApp number, with its access token stored AES-256-GCM encrypted (``access_token_enc``).

Tokens are encrypted and decrypted by the caller with the workspace's :class:`FieldCipher`;
:func:`token_context` is the associated data that binds a ciphertext to its channel.
"""

from __future__ import annotations

from typing import Any

from sqlite_utils import Database

from appliance.errors import NotFound
from appliance.store.rows import many, one

__all__ = [
    "token_context",
    "channel_for_asset",
    "connect_channel",
    "list_channels",
    "get_channel",
    "disconnect_channel",
    "mark_needs_reauth",
    "PUBLIC_COLUMNS",
]

PUBLIC_COLUMNS = (
    "id, type, external_id, name, status, status_reason, waba_id, page_id, rate_limit, "
    "connected_at, created_at"
)


def token_context(channel_type: str, external_id: str) -> str:
    return f"channels.access_token:{channel_type}:{external_id}"


def channel_for_asset(db: Database, channel_type: str, asset_id: str, now: str) -> dict[str, Any]:
    """The channel a webhook arrived for. An asset nobody connected yet is recorded as a
    ``disconnected`` channel so its conversations are kept (connecting it later adds the token)."""
    row = one(db, "SELECT * FROM channels WHERE type = ? AND external_id = ?", [channel_type, asset_id])
    if row is not None:
        return row
    db.execute(
        """INSERT INTO channels (type, external_id, status, status_reason, created_at, updated_at)
           VALUES (?, ?, 'disconnected', 'events arrived before the channel was connected', ?, ?)""",
        [channel_type, asset_id, now, now],
    )
    return one(db, "SELECT * FROM channels WHERE type = ? AND external_id = ?", [channel_type, asset_id])  # type: ignore[return-value]


def connect_channel(
    db: Database,
    *,
    channel_type: str,
    external_id: str,
    token_enc: str,
    name: str | None,
    waba_id: str | None,
    page_id: str | None,
    rate_limit: int | None,
    now: str,
) -> dict[str, Any]:
    """Create the channel, or reconnect an existing one (new token, status ``active``; the
    optional values left out, ``None``, keep what was stored)."""
    existing = one(db, "SELECT id FROM channels WHERE type = ? AND external_id = ?", [channel_type, external_id])
    if existing is None:
        db.execute(
            """INSERT INTO channels (type, external_id, name, status, access_token_enc, waba_id,
                   page_id, rate_limit, connected_at, created_at, updated_at)
               VALUES (?, ?, ?, 'active', ?, ?, ?, ?, ?, ?, ?)""",
            [channel_type, external_id, name or "", token_enc, waba_id, page_id, rate_limit, now, now, now],
        )
    else:
        db.execute(
            """UPDATE channels SET name = COALESCE(?, name), status = 'active', status_reason = NULL,
                   access_token_enc = ?, waba_id = COALESCE(?, waba_id), page_id = COALESCE(?, page_id),
                   rate_limit = COALESCE(?, rate_limit), connected_at = ?, updated_at = ?
               WHERE id = ?""",
            [name, token_enc, waba_id, page_id, rate_limit, now, now, existing["id"]],
        )
    return get_channel(db, type_and_id=(channel_type, external_id))


def list_channels(db: Database, *, after_id: int | None = None, limit: int = -1) -> list[dict[str, Any]]:
    """Oldest first; ``after_id`` is the cursor (the last id of the previous page)."""
    return many(
        db, f"SELECT {PUBLIC_COLUMNS} FROM channels WHERE id > ? ORDER BY id LIMIT ?", [after_id or 0, limit]
    )


def get_channel(
    db: Database, channel_id: int | None = None, *, type_and_id: tuple[str, str] | None = None
) -> dict[str, Any]:
    if type_and_id is not None:
        row = one(db, f"SELECT {PUBLIC_COLUMNS} FROM channels WHERE type = ? AND external_id = ?", list(type_and_id))
    else:
        row = one(db, f"SELECT {PUBLIC_COLUMNS} FROM channels WHERE id = ?", [channel_id])
    if row is None:
        raise NotFound(f"channel {channel_id if channel_id is not None else type_and_id[1]} does not exist")  # type: ignore[index]
    return row


def credentials(db: Database, channel_id: int) -> dict[str, Any]:
    """The full row, token ciphertext included (for the sender only)."""
    row = one(db, "SELECT * FROM channels WHERE id = ?", [channel_id])
    if row is None:
        raise NotFound(f"channel {channel_id} does not exist")
    return row


def disconnect_channel(db: Database, channel_id: int, now: str) -> dict[str, Any]:
    """Erase the token at once; the channel's conversations stay."""
    get_channel(db, channel_id)
    db.execute(
        """UPDATE channels SET access_token_enc = NULL, status = 'disconnected',
               status_reason = 'disconnected by a user', updated_at = ? WHERE id = ?""",
        [now, channel_id],
    )
    return get_channel(db, channel_id)


def mark_needs_reauth(db: Database, channel_id: int, reason: str, now: str) -> None:
    db.execute(
        """UPDATE channels SET status = 'needs_reauth', status_reason = ?, updated_at = ?
           WHERE id = ? AND status = 'active'""",
        [reason, now, channel_id],
    )
