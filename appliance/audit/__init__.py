"""The audit log: every admin action, hash-chained (see ``migrations/appliance/0010_audit.sql``).

Record inside the transaction of the action itself, so a logged action happened and an
action that happened is logged::

    await runtime.db.write(lambda db: (do_it(db), audit.record(db, actor, "channel.connect", ...)))

``Actor`` says who (a signed-in user, an API token, the CLI, the system, Meta's callbacks)
and from where. ``details`` must never name a subscriber: ids of workspace objects only.
"""

from appliance.audit.store import GENESIS, Actor, audited, record, verify

__all__ = ["Actor", "audited", "record", "verify", "GENESIS"]
