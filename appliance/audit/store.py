"""The hash-chained audit log. SQL only."""

from __future__ import annotations

import getpass
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

from appliance.store.rows import many, one
from appliance.timeutil import iso_now

__all__ = ["Actor", "audited", "record", "verify", "list_entries", "GENESIS"]

GENESIS = "0" * 64
_FIELDS = ("at", "actor_kind", "actor_id", "actor_label", "action", "target_kind", "target_id", "ip", "details")


@dataclass(frozen=True, slots=True)
class Actor:
    kind: str  # user | token | cli | system | meta
    id: str | None = None
    label: str | None = None
    ip: str | None = None

    @classmethod
    def of_cli(cls) -> Actor:
        """The operator running a command-line tool, by login name when the system knows it."""
        try:
            who = getpass.getuser()
        except (KeyError, OSError):
            who = None
        return cls("cli", label=who)


def _digest(prev_hash: str, row: dict[str, Any]) -> str:
    canonical = json.dumps([prev_hash, *[row[f] for f in _FIELDS]], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def record(
    db: Database,
    actor: Actor,
    action: str,
    *,
    target_kind: str | None = None,
    target_id: str | int | None = None,
    details: dict[str, Any] | None = None,
    now: str | None = None,
) -> int:
    """Append one entry, chained to the last one; returns its id."""
    last = one(db, "SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1")
    prev_hash = last["hash"] if last else GENESIS
    row = {
        "at": now or iso_now(),
        "actor_kind": actor.kind,
        "actor_id": actor.id,
        "actor_label": actor.label,
        "action": action,
        "target_kind": target_kind,
        "target_id": None if target_id is None else str(target_id),
        "ip": actor.ip,
        "details": json.dumps(details or {}, ensure_ascii=False, sort_keys=True),
    }
    row_hash = _digest(prev_hash, row)
    cursor = db.conn.execute(
        f"INSERT INTO audit_log ({', '.join(_FIELDS)}, prev_hash, hash) VALUES ({', '.join('?' * (len(_FIELDS) + 2))})",
        [*(row[f] for f in _FIELDS), prev_hash, row_hash],
    )
    return int(cursor.lastrowid)


def verify(db: Database) -> tuple[bool, int, int | None]:
    """Walk the chain: ``(intact, entries checked, id of the first broken entry or None)``."""
    prev_hash = GENESIS
    checked = 0
    last_id = 0
    while True:
        rows = many(db, f"SELECT id, {', '.join(_FIELDS)}, prev_hash, hash FROM audit_log WHERE id > ? "
                        "ORDER BY id LIMIT 1000", [last_id])
        if not rows:
            return True, checked, None
        for row in rows:
            if row["prev_hash"] != prev_hash or _digest(prev_hash, row) != row["hash"]:
                return False, checked, row["id"]
            prev_hash = row["hash"]
            checked += 1
            last_id = row["id"]


def list_entries(db: Database, *, before_id: int | None, limit: int) -> list[dict[str, Any]]:
    rows = many(
        db,
        f"SELECT id, {', '.join(_FIELDS)} FROM audit_log WHERE id < ? ORDER BY id DESC LIMIT ?",
        [before_id or 2**62, limit],
    )
    for row in rows:
        row["details"] = json.loads(row["details"])
        row["id"] = str(row["id"])
    return rows


def audited(
    db: Database,
    actor: Actor,
    action: str,
    target_kind: str | None,
    fn: Any,
    *args: Any,
    target_of: Any = None,
    details: dict[str, Any] | None = None,
    **kwargs: Any,
) -> Any:
    """Run a store function and record the action in the same transaction; ``target_of``
    picks the target id from the result (``None`` records no target, e.g. an erasure)."""
    result = fn(db, *args, **kwargs)
    record(db, actor, action, target_kind=target_kind,
           target_id=target_of(result) if target_of else None, details=details)
    return result
