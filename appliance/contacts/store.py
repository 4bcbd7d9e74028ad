"""Contacts and their tags: SQL only, small synchronous functions over a ``Database``.

A contact is one person on one connected channel, identified as the channel identifies them
(``external_id``: PSID, IGSID, or on WhatsApp the business-scoped user id, else ``wa_id``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

from appliance.channels.events import ContactRef
from appliance import events
from appliance.errors import NotFound
from appliance.store.rows import many, one

__all__ = [
    "ContactFilter",
    "split_name",
    "upsert_contact",
    "touch_inbound",
    "get_contact",
    "list_contacts",
    "update_contact",
    "add_tag",
    "remove_tag",
    "tags_of",
    "set_marketing_preference",
]


def split_name(full: str | None) -> tuple[str | None, str | None]:
    """``"Ana Maria Lima"`` -> ``("Ana", "Maria Lima")``; a single word is a first name."""
    if not full or not full.strip():
        return None, None
    first, _, rest = full.strip().partition(" ")
    return first, rest.strip() or None


_FIND = """SELECT * FROM contacts
WHERE (channel_id = ?1 AND bsuid = ?2) OR (channel_id = ?1 AND wa_id = ?3) OR (channel_id = ?1 AND external_id = ?4)
ORDER BY CASE WHEN bsuid = ?2 THEN 0 WHEN wa_id = ?3 THEN 1 ELSE 2 END LIMIT 1"""


def _find(db: Database, channel_id: int, ref: ContactRef) -> dict[str, Any] | None:
    # WhatsApp: a contact first seen by wa_id may later arrive with its BSUID (and the other
    # way round), so look up by every identifier Meta gave, in that order of trust (BSUID,
    # wa_id, external id): one statement, each term on its own unique index (MULTI-INDEX OR).
    if not (ref.bsuid or ref.wa_id or ref.external_id):
        return None
    return one(db, _FIND, [channel_id, ref.bsuid or None, ref.wa_id or None, ref.external_id or None])


def upsert_contact(
    db: Database, channel_id: int, ref: ContactRef, now: str, *, inbound_at: str | None = None
) -> tuple[int, bool]:
    """Find or create the contact for ``ref``; fill in what Meta newly told us.

    Returns ``(contact_id, created)``. Known values are never blanked by a later event that
    lacks them; a BSUID that appears later becomes the ``external_id`` (api.md: BSUID first);
    a name an agent corrected (``name_locked``) is kept whatever the profile says.
    ``inbound_at``: a created contact's ``last_inbound_at`` (its window opened then); an
    existing contact's is the caller's to move (:func:`touch_inbound`).
    """
    existing = _find(db, channel_id, ref)
    first, last = split_name(ref.name)
    if existing is None:
        cursor = db.execute(
            """INSERT INTO contacts (channel_id, external_id, wa_id, bsuid, parent_bsuid, name,
                   first_name, last_name, username, phone, last_inbound_at, created_at, updated_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            [channel_id, ref.bsuid or ref.external_id, ref.wa_id, ref.bsuid, ref.parent_bsuid,
             ref.name, first, last, ref.username, ref.wa_id, inbound_at, now, now],
        )
        events.emit(db, "contact.created", contact_id=int(cursor.lastrowid), now=now)
        return int(cursor.lastrowid), True
    updates: dict[str, Any] = {}
    for column, value in (
        ("wa_id", ref.wa_id), ("bsuid", ref.bsuid), ("parent_bsuid", ref.parent_bsuid),
        ("username", ref.username), ("phone", ref.wa_id),
    ):
        if value and existing[column] != value:
            updates[column] = value
    if ref.name and existing["name"] != ref.name and not existing["name_locked"]:
        updates.update(name=ref.name, first_name=first, last_name=last)
    if ref.bsuid and existing["external_id"] != ref.bsuid:
        updates["external_id"] = ref.bsuid
    if updates:
        updates["updated_at"] = now
        assignments = ", ".join(f"{column} = ?" for column in updates)
        db.execute(
            f"UPDATE contacts SET {assignments} WHERE id = ?", [*updates.values(), existing["id"]]
        )
        events.emit(db, "contact.updated", contact_id=int(existing["id"]), now=now)
    return int(existing["id"]), False


def touch_inbound(db: Database, contact_id: int, occurred_at: str) -> None:
    """Move the window start forward (events arrive out of order: never backwards)."""
    db.execute(
        """UPDATE contacts SET last_inbound_at = ?
           WHERE id = ? AND (last_inbound_at IS NULL OR last_inbound_at < ?)""",
        [occurred_at, contact_id, occurred_at],
    )


def set_marketing_preference(db: Database, contact_id: int, opted_out: bool, now: str) -> None:
    db.execute(
        "UPDATE contacts SET marketing_opt_out = ?, updated_at = ? WHERE id = ?",
        [int(opted_out), now, contact_id],
    )
    events.emit(db, "contact.updated", contact_id=contact_id, now=now)


_SELECT = """
SELECT c.*, ch.type AS channel,
       (SELECT json_group_array(tag) FROM (SELECT tag FROM contact_tags t
         WHERE t.contact_id = c.id ORDER BY tag)) AS tags_json
FROM contacts c JOIN channels ch ON ch.id = c.channel_id
"""


def _public(row: dict[str, Any]) -> dict[str, Any]:
    row = dict(row)
    row["tags"] = json.loads(row.pop("tags_json") or "[]")
    row["fields"] = json.loads(row["fields"] or "{}")
    row["subscribed"] = bool(row["subscribed"])
    row["marketing_opt_out"] = bool(row["marketing_opt_out"])
    return row


def get_contact(db: Database, contact_id: int) -> dict[str, Any]:
    row = one(db, _SELECT + " WHERE c.id = ?", [contact_id])
    if row is None:
        raise NotFound(f"contact {contact_id} does not exist")
    return _public(row)


@dataclass(frozen=True, slots=True)
class ContactFilter:
    """``field`` is ``(name, value)``: the custom field ``name`` equals ``value`` as text
    (``5``, ``2.5``, ``true``), or ``(name, None)``: the contact has the field at all.
    ``name`` must already be a valid field name (``[A-Za-z_][A-Za-z0-9_]*``)."""

    q: str | None = None
    tag: str | None = None
    channel: str | None = None
    field: tuple[str, str | None] | None = None
    subscribed: bool | None = None


def list_contacts(
    db: Database, flt: ContactFilter, *, after_id: int | None, limit: int
) -> list[dict[str, Any]]:
    """Newest first; ``after_id`` is the cursor (the last id of the previous page)."""
    where, params = ["1 = 1"], []
    if after_id is not None:
        where.append("c.id < ?")
        params.append(after_id)
    if flt.channel:
        where.append("ch.type = ?")
        params.append(flt.channel)
    if flt.tag:
        where.append("EXISTS (SELECT 1 FROM contact_tags t WHERE t.contact_id = c.id AND t.tag = ?)")
        params.append(flt.tag)
    if flt.field is not None:
        name, value = flt.field
        path = f'$."{name}"'  # the name is checked: letters, digits and underscores only
        if value is None:
            where.append("json_type(c.fields, ?) IS NOT NULL")
            params.append(path)
        else:
            # JSON true/false read back as 1/0: compare booleans by their JSON spelling.
            where.append("(CASE json_type(c.fields, ?) WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' "
                         "ELSE CAST(json_extract(c.fields, ?) AS TEXT) END) = ?")
            params.extend([path, path, value])
    if flt.subscribed is not None:
        where.append("c.subscribed = ?")
        params.append(int(flt.subscribed))
    if flt.q:
        like = "%" + flt.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where.append(
            "(c.name LIKE ? ESCAPE '\\' OR c.username LIKE ? ESCAPE '\\' OR c.phone LIKE ? "
            "ESCAPE '\\' OR c.external_id LIKE ? ESCAPE '\\')"
        )
        params.extend([like] * 4)
    sql = _SELECT + " WHERE " + " AND ".join(where) + " ORDER BY c.id DESC LIMIT ?"
    return [_public(r) for r in many(db, sql, [*params, limit])]


def update_contact(db: Database, contact_id: int, changes: dict[str, Any], now: str) -> dict[str, Any]:
    """Rectification: set the given profile fields; ``fields`` merges (a null value removes).

    A new ``name`` given without ``first_name``/``last_name`` is split into them, as a profile
    name is. Correcting any part of the name locks all three against the profile names later
    webhooks carry.
    """
    current = get_contact(db, contact_id)
    updates: dict[str, Any] = {}
    if "name" in changes and not {"first_name", "last_name"} & changes.keys():
        updates["first_name"], updates["last_name"] = split_name(changes["name"])
    for column in ("name", "first_name", "last_name", "phone", "username"):
        if column in changes:
            updates[column] = changes[column]
    if {"name", "first_name", "last_name"} & changes.keys():
        updates["name_locked"] = 1  # an agent's correction is not overwritten by Meta's profile
    if "subscribed" in changes:
        updates["subscribed"] = int(bool(changes["subscribed"]))
    if "fields" in changes:
        merged = dict(current["fields"])
        for key, value in changes["fields"].items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        updates["fields"] = json.dumps(merged, ensure_ascii=False, sort_keys=True)
    if updates:
        updates["updated_at"] = now
        assignments = ", ".join(f"{column} = ?" for column in updates)
        db.execute(f"UPDATE contacts SET {assignments} WHERE id = ?", [*updates.values(), contact_id])
        events.emit(db, "contact.updated", contact_id=contact_id, now=now)
    return get_contact(db, contact_id)


def add_tag(db: Database, contact_id: int, tag: str, now: str) -> None:
    get_contact(db, contact_id)
    added = db.execute(
        "INSERT OR IGNORE INTO contact_tags (contact_id, tag, created_at) VALUES (?, ?, ?)",
        [contact_id, tag, now],
    ).rowcount
    if added:
        events.emit(db, "contact.updated", contact_id=contact_id, now=now)


def remove_tag(db: Database, contact_id: int, tag: str) -> None:
    get_contact(db, contact_id)
    if db.execute("DELETE FROM contact_tags WHERE contact_id = ? AND tag = ?", [contact_id, tag]).rowcount:
        events.emit(db, "contact.updated", contact_id=contact_id)


def tags_of(db: Database, contact_id: int) -> list[str]:
    return [r[0] for r in db.execute(
        "SELECT tag FROM contact_tags WHERE contact_id = ? ORDER BY tag", [contact_id]
    )]
