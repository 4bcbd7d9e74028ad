"""Channel profiles and handles. SQL only."""

from __future__ import annotations

import json
from typing import Any

from sqlite_utils import Database

from appliance.store.rows import many, one

__all__ = ["get_profile", "save_profile", "record_push", "save_handle", "ref_triggers"]


def get_profile(db: Database, channel_id: int) -> dict[str, Any]:
    row = one(db, "SELECT * FROM channel_profiles WHERE channel_id = ?", [channel_id])
    if row is None:
        return {"profile": {}, "handle": None, "pushed_at": None, "push_error": None}
    return {"profile": json.loads(row["profile"]), "handle": row["handle"], "pushed_at": row["pushed_at"],
            "push_error": row["push_error"]}


def save_profile(db: Database, channel_id: int, profile: dict[str, Any], now: str) -> None:
    db.execute(
        """INSERT INTO channel_profiles (channel_id, profile, updated_at) VALUES (?, ?, ?)
           ON CONFLICT (channel_id) DO UPDATE SET profile = excluded.profile, updated_at = excluded.updated_at""",
        [channel_id, json.dumps(profile, ensure_ascii=False), now],
    )


def record_push(db: Database, channel_id: int, error: str | None, now: str) -> None:
    db.execute(
        "UPDATE channel_profiles SET pushed_at = CASE WHEN ? IS NULL THEN ? ELSE pushed_at END, "
        "push_error = ? WHERE channel_id = ?",
        [error, now, error, channel_id],
    )


def save_handle(db: Database, channel_id: int, handle: str, now: str) -> None:
    db.execute(
        """INSERT INTO channel_profiles (channel_id, handle, updated_at) VALUES (?, ?, ?)
           ON CONFLICT (channel_id) DO UPDATE SET handle = excluded.handle""",
        [channel_id, handle, now],
    )


def ref_triggers(db: Database) -> list[dict[str, Any]]:
    """Every ``ref`` trigger of the live published flows: ``{flow_id, flow_name, ref, channels}``."""
    rows = many(
        db,
        """SELECT f.id, f.name, v.document FROM flows f
           JOIN flow_versions v ON v.flow_id = f.id AND v.version = f.published_version
           WHERE f.deleted_at IS NULL ORDER BY f.id""",
    )
    found = []
    for row in rows:
        document = json.loads(row["document"])
        flow_channels = (document.get("settings") or {}).get("channels")
        for trigger in document.get("triggers", []):
            if trigger.get("type") == "ref":
                channels = trigger.get("channels") or flow_channels or ["messenger", "instagram", "whatsapp"]
                found.append({"flow_id": str(row["id"]), "flow_name": row["name"], "ref": trigger["ref"],
                              "channels": channels})
    return found
