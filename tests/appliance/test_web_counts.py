"""The inbox views' counts (migration 0012's ``conversation_counts``, kept by triggers) always
equal counting the conversations, through every change the app makes: new conversations,
unread messages, assignment, close/reopen, read, a contact erased, a user deleted."""

from __future__ import annotations

from typing import Any

from sqlite_utils import Database

from appliance.inbox import actions
from appliance.inbox import store as inbox
from appliance.store.rows import many
from appliance.store.workspace import Workspace
from appliance.timeutil import iso_now
from appliance.web.pages import store
from tests.appliance.outbox_helpers import connect, make_conversation

NOW = "2026-11-26T12:00:00.000Z"


def counted(db: Database, user_id: int, channel: str | None) -> dict[str, dict[str, int]]:
    """The counts the slow way: every conversation looked at."""
    rows = many(db, """SELECT cv.status, cv.assignee_id, cv.unread_count, ch.type FROM conversations cv
                       JOIN channels ch ON ch.id = cv.channel_id""")
    rows = [r for r in rows if channel is None or r["type"] == channel]
    views = {"open": lambda r: r["status"] == "open",
             "mine": lambda r: r["status"] == "open" and r["assignee_id"] == user_id,
             "unassigned": lambda r: r["status"] == "open" and r["assignee_id"] is None,
             "closed": lambda r: r["status"] == "closed"}
    return {view: {"conversations": sum(1 for r in rows if test(r)),
                   "unread": sum(r["unread_count"] for r in rows if test(r))} for view, test in views.items()}


def check(workspace: Workspace, user_id: int) -> None:
    def read(db: Database) -> list[tuple[Any, Any]]:
        return [(store.view_counts(db, user_id, channel), counted(db, user_id, channel))
                for channel in (None, "messenger", "whatsapp")]

    for fast, slow in workspace.gateway.read_sync(read):
        assert fast == slow
    total = workspace.gateway.read_sync(store.unread_total)
    assert total == workspace.gateway.read_sync(lambda db: counted(db, user_id, None))["open"]["unread"]


def inbound(db: Database, conversation_id: int, n: int) -> None:
    row = inbox.get_conversation(db, conversation_id)
    inbox.record_inbound(db, conversation_id, {
        "contact_id": row["contact_id"], "channel_id": row["channel_id"], "direction": "in", "kind": "text",
        "text": "hi", "external_id": f"m_counts_{conversation_id}_{n}", "status": "received", "sent_by": "contact",
        "occurred_at": NOW, "created_at": NOW}, counts_unread=True, now=NOW)


def test_the_counts_follow_every_change(workspace: Workspace) -> None:
    messenger, whatsapp = connect(workspace, "messenger"), connect(workspace, "whatsapp")
    users = workspace.gateway.write_sync(lambda db: [int(db.execute(
        "INSERT INTO users (email, name, role, created_at) VALUES (?, ?, 'agent', ?)", [f"u{i}@example.com", "U", NOW]
    ).lastrowid) for i in range(2)])
    ids = [make_conversation(workspace, messenger, f"2460001112{n:06d}", last_inbound_at=None) for n in range(4)]
    ids += [make_conversation(workspace, whatsapp, f"99555000{n:04d}", last_inbound_at=None, wa_id=f"99555000{n:04d}")
            for n in range(3)]
    check(workspace, users[0])

    def changes(db: Database) -> None:
        for n, conversation in enumerate(ids):
            for k in range(n % 3 + 1):
                inbound(db, conversation, k)
        actions.assign(db, ids[0], users[0], NOW)
        actions.assign(db, ids[4], users[0], NOW)
        actions.assign(db, ids[1], users[1], NOW)
        actions.set_status(db, ids[2], "closed", NOW)
        actions.mark_read(db, ids[3], NOW)
        actions.assign(db, ids[1], None, NOW)

    workspace.gateway.write_sync(changes)
    check(workspace, users[0])
    check(workspace, users[1])

    def removals(db: Database) -> None:
        inbound(db, ids[2], 9)  # reopens the closed one
        contact = inbox.get_conversation(db, ids[5])["contact_id"]
        db.execute("DELETE FROM contacts WHERE id = ?", [contact])  # erased: the conversation cascades
        db.execute("DELETE FROM users WHERE id = ?", [users[0]])  # their conversations become unassigned
        actions.set_status(db, ids[6], "closed", iso_now())

    workspace.gateway.write_sync(removals)
    check(workspace, users[0])
    check(workspace, users[1])
