"""``outbox.store.mark_sent`` writes, row for row, what the long way writes: the how-sent UPDATE
followed by ``inbox.store.advance_status(..., "sent")``, for a message in every state a send's
answer can find it in (queued, already delivered by an early status, failed, settled by an echo,
sent in several parts)."""

from __future__ import annotations

import json
from typing import Any

from appliance.inbox.store import advance_status
from appliance.outbox import store as outbox
from appliance.store.workspace import Workspace
from tests.appliance.outbox_helpers import connect, hours_ago, make_conversation

SKIPPED = ("id", "conversation_id", "contact_id")


def _long_way(db: Any, outbox_id: int, message_id: int, external_ids: list[str], now: str, *,
              messaging_type: str | None = None, tag: str | None = None) -> None:
    """mark_sent as it was written before its one-UPDATE shortcut."""
    db.execute("DELETE FROM outbox WHERE id = ?", [outbox_id])
    if len(external_ids) > 1:
        db.execute("UPDATE messages SET payload = json_set(payload, '$.part_ids', json(?)) WHERE id = ?",
                   [json.dumps(external_ids), message_id])
    db.execute(
        """UPDATE messages SET messaging_type = COALESCE(?, messaging_type), tag = ?,
               sent_at = COALESCE(sent_at, ?), external_id = COALESCE(external_id, ?) WHERE id = ?""",
        [messaging_type, tag, now, external_ids[0] if external_ids else None, message_id])
    advance_status(db, message_id, "sent", now)


def _before(db: Any, message_id: int, state: str, side: str, later: str) -> None:
    """Put a claimed message in ``state`` as something before the answer would have."""
    if state == "delivered":
        advance_status(db, message_id, "delivered", later, external_id=f"wamid.{side}early")
    elif state == "failed":
        advance_status(db, message_id, "failed", later, error=("131026", "undeliverable"))
    elif state == "settled":
        outbox.settle(db, message_id, 0, f"wamid.{side}echo", later)


def _snapshot(db: Any, message_id: int, side: str) -> dict[str, Any]:
    row = dict(zip([d[0] for d in db.execute("SELECT * FROM messages WHERE id = ?", [message_id]).description],
                   db.execute("SELECT * FROM messages WHERE id = ?", [message_id]).fetchone(), strict=True))
    for key in SKIPPED:
        row.pop(key)
    row["external_id"] = (row["external_id"] or "").replace(f".{side}", ".")
    row["payload"] = row["payload"].replace(f".{side}", ".")
    row["events"] = [tuple(r) for r in db.execute(
        "SELECT type, flow_id, run_id, user_id, created_at FROM events WHERE message_id = ? ORDER BY id", [message_id])]
    row["outbox"] = db.execute("SELECT count(*) FROM outbox WHERE message_id = ?", [message_id]).fetchone()[0]
    return row


CASES = [  # (state before the answer, Meta's ids, messaging type, tag)
    ("queued", ["wamid.{}1"], None, None),
    ("queued", ["wamid.{}2"], "MESSAGE_TAG", "HUMAN_AGENT"),
    ("queued", [], None, None),
    ("queued", ["wamid.{}3", "wamid.{}4"], "RESPONSE", None),
    ("delivered", ["wamid.{}5"], "RESPONSE", None),
    ("failed", ["wamid.{}6"], None, None),
    ("settled", ["wamid.{}7"], None, None),
]


def test_mark_sent_writes_what_the_long_way_writes(workspace: Workspace) -> None:
    channel_id = connect(workspace, "whatsapp")
    conversations = [make_conversation(workspace, channel_id, f"99555000090{n:02d}", wa_id=f"99555000090{n:02d}",
                                       last_inbound_at=hours_ago(1)) for n in range(2 * len(CASES))]
    queued_at, later, answered = "2026-11-27T10:00:00.000Z", "2026-11-27T10:00:01.000Z", "2026-11-27T10:00:02.000Z"

    def queue_and_claim(db: Any) -> dict[int, int]:
        for conversation in conversations:
            outbox.enqueue(db, conversation_id=conversation, kind="text", text="Hello", payload={}, sent_by="bot",
                           user_id=None, messaging_type=None, tag=None, now=queued_at)
        return {r["message_id"]: r["outbox_id"] for r in outbox.claim_due(db, answered, 100)}

    claimed = workspace.gateway.write_sync(queue_and_claim)
    messages = sorted(claimed)
    assert len(messages) == 2 * len(CASES)

    def answer(db: Any) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        compared = []
        for n, (state, ids, messaging_type, tag) in enumerate(CASES):
            short, long = messages[2 * n], messages[2 * n + 1]
            _before(db, short, state, "s", later)
            _before(db, long, state, "l", later)
            outbox.mark_sent(db, claimed[short], short, [i.format("s") for i in ids], answered,
                             messaging_type=messaging_type, tag=tag)
            _long_way(db, claimed[long], long, [i.format("l") for i in ids], answered,
                      messaging_type=messaging_type, tag=tag)
            compared.append((_snapshot(db, short, "s"), _snapshot(db, long, "l")))
        return compared

    compared = workspace.gateway.write_sync(answer)
    for (state, *_), (short, long) in zip(CASES, compared, strict=True):
        assert short == long, state
    assert [short["status"] for short, _ in compared] == ["sent"] * 4 + ["delivered", "failed", "sent"]
    assert [short["external_id"] for short, _ in compared] == [
        "wamid.1", "wamid.2", "", "wamid.3", "wamid.early", "wamid.6", "wamid.echo"]
