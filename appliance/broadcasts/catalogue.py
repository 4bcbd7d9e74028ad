"""The WhatsApp template catalogue (``whatsapp_templates``): SQL only.

One row per template and language of a WhatsApp Business Account, as Meta reports it: synced
from ``GET /{waba-id}/message_templates`` (:func:`replace_account`, the whole account at once:
a template Meta no longer lists is gone), kept current between syncs by
``message_template_status_update`` webhooks (:func:`apply_status`). Only ``APPROVED``
templates can be sent.
"""

from __future__ import annotations

import json
from typing import Any

from sqlite_utils import Database

from appliance.errors import NotFound
from appliance.store.rows import many, one

__all__ = [
    "replace_account", "apply_status", "list_templates", "find", "public_template", "accounts", "SENDABLE",
]

SENDABLE = "APPROVED"


def replace_account(db: Database, waba_id: str, templates: list[dict[str, Any]], now: str) -> int:
    """Make the catalogue of ``waba_id`` exactly ``templates`` (Meta's objects); returns how
    many are stored."""
    keep: list[int] = []
    for item in templates:
        db.execute(
            """INSERT INTO whatsapp_templates (waba_id, template_id, name, language, status, category,
                   parameter_format, components, status_reason, synced_at, updated_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?)
               ON CONFLICT (waba_id, name, language) DO UPDATE SET
                   template_id = excluded.template_id, status = excluded.status,
                   category = excluded.category, parameter_format = excluded.parameter_format,
                   components = excluded.components, status_reason = NULL,
                   synced_at = excluded.synced_at, updated_at = excluded.updated_at""",
            [waba_id, item.get("id"), item["name"], item["language"], item["status"], item.get("category"),
             item.get("parameter_format"), json.dumps(item.get("components") or [], ensure_ascii=False),
             now, now],
        )
        keep.append(int(db.execute(
            "SELECT id FROM whatsapp_templates WHERE waba_id = ? AND name = ? AND language = ?",
            [waba_id, item["name"], item["language"]],
        ).fetchone()[0]))
    marks = ", ".join("?" * len(keep)) or "NULL"
    db.execute(f"DELETE FROM whatsapp_templates WHERE waba_id = ? AND id NOT IN ({marks})", [waba_id, *keep])
    return len(keep)


def apply_status(
    db: Database, *, waba_id: str, template_id: str | None, name: str, language: str, status: str,
    category: str | None, reason: str | None, now: str,
) -> None:
    """A ``message_template_status_update``: the template's new status (and category, when the
    webhook names one). A template not synced yet is recorded with what the webhook says."""
    row = None
    if template_id:
        row = one(db, "SELECT id FROM whatsapp_templates WHERE waba_id = ? AND template_id = ?", [waba_id, template_id])
    if row is None:
        row = one(db, "SELECT id FROM whatsapp_templates WHERE waba_id = ? AND name = ? AND language = ?",
                  [waba_id, name, language])
    if row is None:
        db.execute(
            """INSERT INTO whatsapp_templates (waba_id, template_id, name, language, status, category,
                   status_reason, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
            [waba_id, template_id, name, language, status, category, reason, now],
        )
        return
    db.execute(
        """UPDATE whatsapp_templates SET status = ?, category = COALESCE(?, category), status_reason = ?,
               template_id = COALESCE(template_id, ?), updated_at = ? WHERE id = ?""",
        [status, category, reason, template_id, now, row["id"]],
    )


def public_template(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "waba_id": row["waba_id"],
        "template_id": row["template_id"],
        "name": row["name"],
        "language": row["language"],
        "status": row["status"],
        "status_reason": row["status_reason"],
        "category": row["category"],
        "parameter_format": row["parameter_format"],
        "components": json.loads(row["components"]),
        "synced_at": row["synced_at"],
        "updated_at": row["updated_at"],
    }


def list_templates(
    db: Database, *, waba_id: str | None = None, status: str | None = None, after_id: int | None = None,
    limit: int = -1,
) -> list[dict[str, Any]]:
    """By account, name and language; ``after_id`` is the cursor."""
    where, params = ["id > ?"], [after_id or 0]
    if waba_id:
        where.append("waba_id = ?")
        params.append(waba_id)
    if status:
        where.append("status = ?")
        params.append(status.upper())
    rows = many(db, f"SELECT * FROM whatsapp_templates WHERE {' AND '.join(where)} ORDER BY id LIMIT ?",
                [*params, limit])
    return [public_template(r) for r in rows]


def find(db: Database, name: str, language: str, waba_id: str | None = None) -> list[dict[str, Any]]:
    """Every catalogued template with this name and language (one per account), or the one of
    ``waba_id``; raises :class:`NotFound` when there is none."""
    sql = "SELECT * FROM whatsapp_templates WHERE name = ? AND language = ?"
    params: list[Any] = [name, language]
    if waba_id:
        sql += " AND waba_id = ?"
        params.append(waba_id)
    rows = many(db, sql + " ORDER BY id", params)
    if not rows:
        raise NotFound(
            f"no template {name!r} in {language!r} in the catalogue; sync it with POST /api/v1/templates/sync",
            code="template_not_found",
        )
    return [public_template(r) for r in rows]


def accounts(db: Database, channel_id: int | None = None) -> list[dict[str, Any]]:
    """The WhatsApp Business Accounts a catalogue can be read from: one connected number (with
    its token) per ``waba_id``, or the account of ``channel_id``."""
    sql = """SELECT min(id) AS channel_id, waba_id FROM channels
             WHERE type = 'whatsapp' AND status = 'active' AND waba_id IS NOT NULL
               AND access_token_enc IS NOT NULL"""
    params: list[Any] = []
    if channel_id is not None:
        sql += " AND id = ?"
        params.append(channel_id)
    rows = many(db, sql + " GROUP BY waba_id ORDER BY waba_id", params)
    return [dict(r, **_token(db, r["channel_id"])) for r in rows]


def _token(db: Database, channel_id: int) -> dict[str, Any]:
    row = one(db, "SELECT type, external_id, access_token_enc FROM channels WHERE id = ?", [channel_id])
    assert row is not None
    return {"channel_type": row["type"], "external_id": row["external_id"], "access_token_enc": row["access_token_enc"]}
