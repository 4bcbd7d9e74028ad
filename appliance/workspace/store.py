"""Workspace-wide settings (``workspace_settings``): name, time zone, subscription words."""

from __future__ import annotations

import json
from typing import Any

from sqlite_utils import Database

from appliance.flows.subscriptions import DEFAULTS as SUBSCRIPTION_DEFAULTS
from appliance.store.rows import many

__all__ = ["read", "write"]


def read(db: Database) -> dict[str, Any]:
    values = {r["key"]: r["value"] for r in many(
        db, "SELECT key, value FROM workspace_settings WHERE key IN ('name', 'timezone', 'subscription_words')")}
    words = json.loads(values["subscription_words"]) if "subscription_words" in values else {}
    return {
        "name": values.get("name", ""),
        "timezone": values.get("timezone", "UTC"),
        "subscription": {**SUBSCRIPTION_DEFAULTS, **words},
    }


def write(db: Database, changes: dict[str, Any]) -> dict[str, Any]:
    """Apply the given settings (absent keys stay as they are)."""
    rows: list[tuple[str, str]] = []
    if "name" in changes:
        rows.append(("name", changes["name"]))
    if "timezone" in changes:
        rows.append(("timezone", changes["timezone"]))
    if "subscription" in changes:
        rows.append(("subscription_words", json.dumps(changes["subscription"], ensure_ascii=False)))
    for key, value in rows:
        db.execute(
            "INSERT INTO workspace_settings (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [key, value],
        )
    return read(db)
