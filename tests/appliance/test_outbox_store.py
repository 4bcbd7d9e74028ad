"""appliance.outbox.store: the outbox's SQL, run synchronously on a fresh workspace database."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

from appliance.errors import NotFound
from appliance.outbox import store
from appliance.store.workspace import Workspace
from tests.appliance.outbox_helpers import (
    PAGE_ID,
    connect,
    hours_ago,
    make_conversation,
    message,
    outbox_row,
)

T = TypeVar("T")
EARLIER = "2026-01-01T10:00:00.000Z"
NOW = "2026-01-01T12:00:00.000Z"
LATER = "2026-01-01T14:00:00.000Z"


def write(workspace: Workspace, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return workspace.gateway.write_sync(lambda db: fn(db, *args, **kwargs))


@pytest.fixture
def channel_id(workspace: Workspace) -> int:
    return connect(workspace, "messenger")


def conversation(workspace: Workspace, channel_id: int, n: int = 0) -> int:
    return make_conversation(workspace, channel_id, f"24600011122{n:05d}", last_inbound_at=hours_ago(1))


def enqueue(workspace: Workspace, conversation_id: int, text: str = "Hi", now: str = EARLIER) -> int:
    return write(workspace, store.enqueue, conversation_id=conversation_id, kind="text", text=text,
                 payload={"quick_replies": [{"title": "Yes", "payload": "Y"}]}, sent_by="user",
                 user_id=None, messaging_type="RESPONSE", tag=None, now=now)


def claim(workspace: Workspace, now: str = NOW, limit: int = 10) -> list[dict[str, Any]]:
    return write(workspace, store.claim_due, now, limit)


# --- references --------------------------------------------------------------------------------

@pytest.mark.parametrize(("message_id", "part", "text"), [(5, 0, "aat:5"), (5, 1, "aat:5:1"), (1234, 2, "aat:1234:2")])
def test_reference(message_id: int, part: int, text: str) -> None:
    assert store.reference(message_id, part) == text


@pytest.mark.parametrize(("text", "parsed"), [
    ("aat:5", (5, 0)), ("aat:5:1", (5, 1)), ("aat:1234:2", (1234, 2)),
    (None, None), ("", None), ("m_123", None), ("aat:", None), ("aat:x", None), ("aat:5:y", None),
    ("AAT:5", None), ("other:5", None),
])
def test_parse_reference(text: str | None, parsed: tuple[int, int] | None) -> None:
    assert store.parse_reference(text) == parsed


# --- enqueue -------------------------------------------------------------------------------------

def test_enqueue_stores_a_queued_outbound_message(workspace: Workspace, channel_id: int) -> None:
    conv = conversation(workspace, channel_id)
    message_id = enqueue(workspace, conv, "Hello there")
    row = message(workspace, message_id)
    assert {k: row[k] for k in ("conversation_id", "channel_id", "direction", "kind", "text", "status",
                                "sent_by", "messaging_type", "tag", "occurred_at", "sent_at", "external_id")} == {
        "conversation_id": conv, "channel_id": channel_id, "direction": "out", "kind": "text",
        "text": "Hello there", "status": "queued", "sent_by": "user", "messaging_type": "RESPONSE",
        "tag": None, "occurred_at": EARLIER, "sent_at": None, "external_id": None,
    }
    assert json.loads(row["payload"]) == {"quick_replies": [{"title": "Yes", "payload": "Y"}]}


def test_enqueue_adds_a_due_outbox_row(workspace: Workspace, channel_id: int) -> None:
    conv = conversation(workspace, channel_id)
    message_id = enqueue(workspace, conv)
    row = outbox_row(workspace, message_id)
    assert row is not None
    assert {k: row[k] for k in ("conversation_id", "channel_id", "state", "attempts", "parts_done",
                                "next_attempt_at", "last_error")} == {
        "conversation_id": conv, "channel_id": channel_id, "state": "queued", "attempts": 0,
        "parts_done": 0, "next_attempt_at": EARLIER, "last_error": None,
    }


def test_enqueue_bumps_the_conversation(workspace: Workspace, channel_id: int) -> None:
    conv = conversation(workspace, channel_id)
    enqueue(workspace, conv, now=LATER)
    last = workspace.gateway.read_sync(
        lambda db: db.execute("SELECT last_message_at FROM conversations WHERE id = ?", [conv]).fetchone()[0]
    )
    assert last == LATER


def test_enqueue_to_an_unknown_conversation_is_not_found(workspace: Workspace) -> None:
    with pytest.raises(NotFound):
        enqueue(workspace, 999)


# --- claim_due -------------------------------------------------------------------------------

def test_claim_takes_only_the_head_of_each_conversation(workspace: Workspace, channel_id: int) -> None:
    a, b = conversation(workspace, channel_id, 1), conversation(workspace, channel_id, 2)
    a1, _, b1, _ = enqueue(workspace, a), enqueue(workspace, a), enqueue(workspace, b), enqueue(workspace, b)
    assert [r["message_id"] for r in claim(workspace)] == [a1, b1]


def test_claim_marks_sending_and_counts_the_attempt(workspace: Workspace, channel_id: int) -> None:
    message_id = enqueue(workspace, conversation(workspace, channel_id))
    claim(workspace)
    row = outbox_row(workspace, message_id)
    assert (row["state"], row["attempts"]) == ("sending", 1)  # type: ignore[index]


def test_a_head_being_sent_holds_back_the_rest(workspace: Workspace, channel_id: int) -> None:
    conv = conversation(workspace, channel_id)
    enqueue(workspace, conv), enqueue(workspace, conv)
    claim(workspace)
    assert claim(workspace) == []


def test_a_head_waiting_for_a_retry_holds_back_the_rest(workspace: Workspace, channel_id: int) -> None:
    conv = conversation(workspace, channel_id)
    first = enqueue(workspace, conv)
    enqueue(workspace, conv)
    [row] = claim(workspace)
    write(workspace, store.mark_retry, row["outbox_id"], next_attempt_at=LATER, error="code 2")
    assert claim(workspace) == []
    assert [r["message_id"] for r in claim(workspace, now=LATER)] == [first]


def test_claim_skips_rows_not_due_yet(workspace: Workspace, channel_id: int) -> None:
    enqueue(workspace, conversation(workspace, channel_id), now=LATER)
    assert claim(workspace, now=NOW) == []


def test_claim_takes_the_longest_waiting_first_up_to_the_limit(workspace: Workspace, channel_id: int) -> None:
    ids = [enqueue(workspace, conversation(workspace, channel_id, n), now=t)
           for n, t in enumerate([NOW, EARLIER, "2026-01-01T11:00:00.000Z"])]
    assert [r["message_id"] for r in claim(workspace, limit=2)] == [ids[1], ids[2]]
    assert outbox_row(workspace, ids[0])["state"] == "queued"  # type: ignore[index]


def test_claim_returns_what_the_sender_needs(workspace: Workspace, channel_id: int) -> None:
    conv = conversation(workspace, channel_id, 7)
    message_id = enqueue(workspace, conv, "Hello")
    [row] = claim(workspace)
    assert {k: row[k] for k in ("message_id", "conversation_id", "attempts", "parts_done", "kind", "text",
                                "payload", "sent_by", "contact_external_id", "channel_id", "channel_type",
                                "channel_external_id", "channel_status", "rate_limit")} == {
        "message_id": message_id, "conversation_id": conv, "attempts": 1, "parts_done": 0,
        "kind": "text", "text": "Hello", "payload": {"quick_replies": [{"title": "Yes", "payload": "Y"}]},
        "sent_by": "user", "contact_external_id": "2460001112200007", "channel_id": channel_id,
        "channel_type": "messenger", "channel_external_id": PAGE_ID, "channel_status": "active",
        "rate_limit": None,
    }
    assert row["access_token_enc"] and row["last_inbound_at"]


# --- outcomes ----------------------------------------------------------------------------------

def test_mark_retry_requeues_with_the_error(workspace: Workspace, channel_id: int) -> None:
    message_id = enqueue(workspace, conversation(workspace, channel_id))
    [row] = claim(workspace)
    write(workspace, store.mark_retry, row["outbox_id"], next_attempt_at=LATER, error="code 613")
    after = outbox_row(workspace, message_id)
    assert {k: after[k] for k in ("state", "attempts", "next_attempt_at", "last_error")} == {  # type: ignore[index]
        "state": "queued", "attempts": 1, "next_attempt_at": LATER, "last_error": "code 613"}
    assert message(workspace, message_id)["status"] == "queued"


def test_mark_failed_removes_the_row_and_records_the_reason(workspace: Workspace, channel_id: int) -> None:
    message_id = enqueue(workspace, conversation(workspace, channel_id))
    [row] = claim(workspace)
    write(workspace, store.mark_failed, row["outbox_id"], message_id, code="131026",
          reason="Message undeliverable", now=NOW)
    assert outbox_row(workspace, message_id) is None
    failed = message(workspace, message_id)
    assert (failed["status"], failed["error_code"], failed["error_message"]) == (
        "failed", "131026", "Message undeliverable")


def test_mark_sent_records_how_and_when(workspace: Workspace, channel_id: int) -> None:
    message_id = enqueue(workspace, conversation(workspace, channel_id))
    [row] = claim(workspace)
    write(workspace, store.mark_sent, row["outbox_id"], message_id, ["m_1"], NOW,
          messaging_type="MESSAGE_TAG", tag="HUMAN_AGENT")
    assert outbox_row(workspace, message_id) is None
    sent = message(workspace, message_id)
    assert {k: sent[k] for k in ("status", "external_id", "sent_at", "messaging_type", "tag")} == {
        "status": "sent", "external_id": "m_1", "sent_at": NOW, "messaging_type": "MESSAGE_TAG",
        "tag": "HUMAN_AGENT"}


def test_mark_sent_keeps_every_part_id(workspace: Workspace, channel_id: int) -> None:
    message_id = enqueue(workspace, conversation(workspace, channel_id))
    [row] = claim(workspace)
    write(workspace, store.mark_sent, row["outbox_id"], message_id, ["m_1", "m_2"], NOW)
    sent = message(workspace, message_id)
    assert (sent["external_id"], json.loads(sent["payload"])["part_ids"]) == ("m_1", ["m_1", "m_2"])


def test_mark_sent_keeps_the_id_an_echo_brought_first(workspace: Workspace, channel_id: int) -> None:
    message_id = enqueue(workspace, conversation(workspace, channel_id))
    [row] = claim(workspace)
    write(workspace, store.settle, message_id, 0, "m_echo", NOW)
    write(workspace, store.mark_sent, row["outbox_id"], message_id, [], LATER)
    assert message(workspace, message_id)["external_id"] == "m_echo"


def test_mark_part_sent_never_moves_back(workspace: Workspace, channel_id: int) -> None:
    message_id = enqueue(workspace, conversation(workspace, channel_id))
    [row] = claim(workspace)
    write(workspace, store.mark_part_sent, row["outbox_id"], 2)
    write(workspace, store.mark_part_sent, row["outbox_id"], 1)
    assert outbox_row(workspace, message_id)["parts_done"] == 2  # type: ignore[index]


# --- next_due_at -------------------------------------------------------------------------------

def test_next_due_at_is_none_when_empty(workspace: Workspace) -> None:
    assert workspace.gateway.read_sync(store.next_due_at) is None


def test_next_due_at_is_the_earliest_queued_head(workspace: Workspace, channel_id: int) -> None:
    enqueue(workspace, conversation(workspace, channel_id, 1), now=LATER)
    enqueue(workspace, conversation(workspace, channel_id, 2), now=NOW)
    assert workspace.gateway.read_sync(store.next_due_at) == NOW


def test_next_due_at_ignores_rows_behind_a_head_waiting_for_a_retry(workspace: Workspace, channel_id: int) -> None:
    conv = conversation(workspace, channel_id)
    enqueue(workspace, conv, now=EARLIER)
    enqueue(workspace, conv, now=EARLIER)
    [row] = claim(workspace)
    write(workspace, store.mark_retry, row["outbox_id"], next_attempt_at=LATER, error="code 2")
    assert workspace.gateway.read_sync(store.next_due_at) == LATER


def test_next_due_at_ignores_rows_behind_a_head_being_sent(workspace: Workspace, channel_id: int) -> None:
    conv = conversation(workspace, channel_id)
    enqueue(workspace, conv)
    enqueue(workspace, conv)
    claim(workspace)
    assert workspace.gateway.read_sync(store.next_due_at) is None


# --- crash recovery and settling ----------------------------------------------------------------

def test_recover_requeues_sends_in_doubt(workspace: Workspace, channel_id: int) -> None:
    in_doubt = enqueue(workspace, conversation(workspace, channel_id, 1))
    claim(workspace)
    waiting = enqueue(workspace, conversation(workspace, channel_id, 2))
    assert write(workspace, store.recover_in_doubt, resend_at=LATER) == 1
    recovered, untouched = outbox_row(workspace, in_doubt), outbox_row(workspace, waiting)
    assert {k: recovered[k] for k in ("state", "attempts", "next_attempt_at", "last_error")} == {  # type: ignore[index]
        "state": "queued", "attempts": 1, "next_attempt_at": LATER, "last_error": "in doubt after restart"}
    assert (untouched["state"], untouched["next_attempt_at"]) == ("queued", EARLIER)  # type: ignore[index]


def test_recover_with_nothing_in_doubt_changes_nothing(workspace: Workspace, channel_id: int) -> None:
    enqueue(workspace, conversation(workspace, channel_id))
    assert write(workspace, store.recover_in_doubt, resend_at=LATER) == 0


def _in_doubt(workspace: Workspace, channel_id: int) -> int:
    message_id = enqueue(workspace, conversation(workspace, channel_id))
    claim(workspace)
    write(workspace, store.recover_in_doubt, resend_at=LATER)
    return message_id


def test_settle_makes_an_in_doubt_row_due_with_its_part_done(workspace: Workspace, channel_id: int) -> None:
    message_id = _in_doubt(workspace, channel_id)
    assert write(workspace, store.settle, message_id, 0, "m_echo", NOW) is True
    row = outbox_row(workspace, message_id)
    assert (row["state"], row["parts_done"], row["next_attempt_at"]) == ("queued", 1, NOW)  # type: ignore[index]


def test_settle_records_metas_id(workspace: Workspace, channel_id: int) -> None:
    message_id = _in_doubt(workspace, channel_id)
    write(workspace, store.settle, message_id, 0, "m_echo", NOW)
    assert message(workspace, message_id)["external_id"] == "m_echo"


def test_settle_of_a_later_part_counts_the_parts_before_it(workspace: Workspace, channel_id: int) -> None:
    message_id = _in_doubt(workspace, channel_id)
    write(workspace, store.settle, message_id, 2, None, NOW)
    write(workspace, store.settle, message_id, 0, None, NOW)
    assert outbox_row(workspace, message_id)["parts_done"] == 3  # type: ignore[index]


def test_settle_during_a_send_records_the_part_and_leaves_the_row_to_the_sender(
    workspace: Workspace, channel_id: int
) -> None:
    message_id = enqueue(workspace, conversation(workspace, channel_id))
    claim(workspace)
    assert write(workspace, store.settle, message_id, 0, "m_echo", LATER) is True
    row = outbox_row(workspace, message_id)
    assert (row["state"], row["parts_done"], row["next_attempt_at"]) == ("sending", 1, EARLIER)  # type: ignore[index]


def test_settle_ignores_a_message_never_attempted(workspace: Workspace, channel_id: int) -> None:
    message_id = enqueue(workspace, conversation(workspace, channel_id))
    assert write(workspace, store.settle, message_id, 0, "m_echo", NOW) is False
    assert outbox_row(workspace, message_id)["parts_done"] == 0  # type: ignore[index]


def test_settle_of_a_message_no_longer_queued_is_false(workspace: Workspace, channel_id: int) -> None:
    assert write(workspace, store.settle, 12345, 0, "m_echo", NOW) is False


# --- depth -----------------------------------------------------------------------------------------

def test_depth_counts_queued_and_sending(workspace: Workspace, channel_id: int) -> None:
    for n in range(3):
        enqueue(workspace, conversation(workspace, channel_id, n))
    claim(workspace, limit=1)
    assert workspace.gateway.read_sync(store.depth) == 3


def test_depth_drops_when_a_message_leaves(workspace: Workspace, channel_id: int) -> None:
    message_id = enqueue(workspace, conversation(workspace, channel_id))
    [row] = claim(workspace)
    write(workspace, store.mark_sent, row["outbox_id"], message_id, ["m_1"], NOW)
    assert workspace.gateway.read_sync(store.depth) == 0

