"""Sending a policy-change notice to every active account.

An *active account* has an email and at least one tenant that is not deleted (from its own
checkout, or created by an admin for its email): the people whose data the policy governs.

Contract of :meth:`Notices.send_policy_change`:

- the notice (id, subject, body) is stored and the admin audit log records
  ``notice.policy_change`` in one transaction, the first time its id is seen; the same id with
  another subject or body is refused (409 ``notice_id_taken``), nothing sent;
- each active account not yet recorded for the notice is emailed (through the notifier:
  ``AAT_CP_EMAIL``), then recorded; sending the same id again (a retry after a failure, a second
  click) emails only those not recorded yet, so nobody gets one notice twice, and accounts that
  became active since get it then.
"""

from __future__ import annotations

import logging
from typing import Any

from appliance import audit
from appliance.errors import Conflict
from appliance.store.gateway import Gateway
from appliance.store.rows import many, one
from appliance.timeutil import iso_now
from control_plane.notify import Email, Notifier

__all__ = ["Notices", "active_recipients"]

log = logging.getLogger("aat.cp.notices")


def active_recipients(db: Any, notice_id: str) -> list[dict[str, Any]]:
    """Active accounts (see the module docstring) the notice was not sent to yet."""
    return many(db, "SELECT a.id, a.email, a.name FROM accounts a WHERE a.email IS NOT NULL AND EXISTS ("
                "SELECT 1 FROM tenants t WHERE t.status != 'deleted' AND (t.id IN (SELECT s.tenant_id FROM signups s "
                "WHERE s.account_id = a.id) OR t.owner_email = a.email)) AND NOT EXISTS (SELECT 1 FROM "
                "notice_deliveries d WHERE d.notice_id = ? AND d.account_id = a.id) ORDER BY a.created_at, a.id",
                [notice_id])


def _create(db: Any, notice_id: str, subject: str, body: str, actor: audit.Actor) -> bool:
    """``True`` when the notice is new (stored and audited now)."""
    found = one(db, "SELECT * FROM notices WHERE id = ?", [notice_id])
    if found is not None:
        if (found["subject"], found["body"], found["kind"]) != (subject, body, "policy_change"):
            raise Conflict(f"notice {notice_id} was sent with another subject or body; give this one a new id",
                           code="notice_id_taken")
        return False
    db.conn.execute("INSERT INTO notices (id, kind, subject, body, created_at) VALUES (?, 'policy_change', ?, ?, ?)",
                    [notice_id, subject, body, iso_now()])
    audit.record(db, actor, "notice.policy_change", target_kind="notice", target_id=notice_id,
                 details={"subject": subject})
    return True


def _delivered(db: Any, notice_id: str, account_id: str) -> None:
    db.conn.execute("INSERT OR IGNORE INTO notice_deliveries (notice_id, account_id, sent_at) VALUES (?, ?, ?)",
                    [notice_id, account_id, iso_now()])


class Notices:
    def __init__(self, gateway: Gateway, notifier: Notifier) -> None:
        self.db = gateway
        self.notifier = notifier

    async def send_policy_change(self, notice_id: str, subject: str, body: str, actor: audit.Actor) -> dict[str, Any]:
        """``{notice_id, new, sent, already_sent}`` (``sent``: emailed now)."""
        new = await self.db.write(_create, notice_id, subject, body, actor)
        recipients = await self.db.read(active_recipients, notice_id)
        for person in recipients:
            self.notifier.send(Email(to=person["email"], subject=subject, text=body))
            await self.db.write(_delivered, notice_id, person["id"])
        already = await self.db.read(lambda db: one(db, "SELECT count(*) AS n FROM notice_deliveries WHERE "
                                                        "notice_id = ?", [notice_id]))
        log.info("policy notice sent", extra={"notice": notice_id, "sent": len(recipients)})
        return {"notice_id": notice_id, "new": new, "sent": len(recipients),
                "already_sent": already["n"] - len(recipients)}  # type: ignore[index]
