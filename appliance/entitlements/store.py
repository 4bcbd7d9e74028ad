"""Where the entitlement in force is kept (``workspace_settings``) and what it is measured on.

- ``entitlement_token``: the last token the control plane pushed (re-verified at every start);
- ``entitlement_contacts``: the contacts limit of the entitlement in force (license file or
  token), absent without one: the flow runner reads it inside the ingest transaction
  (``flows.runner.Snapshot.automated_bound``), where no runtime is at hand.

SQL only; verification is :mod:`appliance.entitlements.token`'s, decisions the service's.
"""

from __future__ import annotations

from sqlite_utils import Database

from appliance.store.rows import scalar

__all__ = ["stored_token", "store_token", "store_contacts_limit", "usage"]


def _put(db: Database, key: str, value: str) -> None:
    db.execute(
        "INSERT INTO workspace_settings (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value", [key, value])


def stored_token(db: Database) -> str | None:
    return scalar(db, "SELECT value FROM workspace_settings WHERE key = 'entitlement_token'")


def store_token(db: Database, token: str) -> None:
    _put(db, "entitlement_token", token)


def store_contacts_limit(db: Database, limit: int | None) -> None:
    if limit is None:
        db.execute("DELETE FROM workspace_settings WHERE key = 'entitlement_contacts'")
    else:
        _put(db, "entitlement_contacts", str(limit))


def usage(db: Database, month: str) -> dict[str, int]:
    """What the limits are measured on: contacts, AI replies this UTC month, team members who
    can sign in, connected channels."""
    return {
        "contacts": int(scalar(db, "SELECT COUNT(*) FROM contacts")),
        "ai_replies_per_month": int(scalar(db, "SELECT replies FROM ai_usage WHERE month = ?", [month]) or 0),
        "seats": int(scalar(db, "SELECT COUNT(*) FROM users WHERE disabled_at IS NULL")),
        "channels": int(scalar(db, "SELECT COUNT(*) FROM channels WHERE status != 'disconnected'")),
    }
