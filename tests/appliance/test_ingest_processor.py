"""The journal processor on a real workspace: listeners hear each chunk as soon as it commits,
replay yields to acknowledgements only when deliveries outpace it, and the replies a chunk's
flows queue are claimed in its own job, up to the sender's free slots."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
from typing import Any

from appliance.connections.store import connect_channel
from appliance.flows import store as flows
from appliance.ingest import journal
from appliance.ingest.apply import ApplySummary
from appliance.ingest.processor import EVENTS_PER_JOB, JOURNAL_LOOK_SECONDS, JournalProcessor
from appliance.metrics import Metrics
from appliance.store.workspace import Workspace
from appliance.timeutil import iso_now
from tests.conftest import fixture_json


def _delivery(n: int) -> bytes:
    body: dict[str, Any] = copy.deepcopy(fixture_json("whatsapp_text"))
    value = body["entry"][0]["changes"][0]["value"]
    value["contacts"][0]["wa_id"] = value["messages"][0]["from"] = f"99555500{n:04d}"
    value["contacts"][0].pop("user_id")
    value["messages"][0]["id"] = f"wamid.PROCESSOR{n:06d}"
    return json.dumps(body).encode()


def _pending_count(db: Any) -> int:
    return db.execute("SELECT count(*) FROM webhook_journal WHERE state = 'pending'").fetchone()[0]


def _journal(workspace: Workspace, count: int) -> list[int]:
    now = iso_now()
    return [workspace.gateway.write_sync(journal.append, _delivery(n), now) for n in range(count)]


async def test_listeners_hear_each_chunk_before_the_next_is_applied(workspace: Workspace) -> None:
    total = 2 * EVENTS_PER_JOB + 10  # three writer jobs in one batch
    ids = _journal(workspace, total)
    processor = JournalProcessor(gateway=workspace.gateway, metrics=Metrics(), batch=64)
    heard: list[tuple[int, int]] = []  # (journal id, rows still pending when it was announced)

    async def listener(summary: ApplySummary) -> None:
        heard.append((summary.journal_id, await workspace.gateway.read(_pending_count)))

    processor.listeners.append(listener)
    assert await processor.process_pending() == total

    assert [journal_id for journal_id, _ in heard] == ids
    pending_seen = [pending for _, pending in heard]
    # The first chunk's rows were announced while the other two chunks were still pending.
    assert pending_seen[:EVENTS_PER_JOB] == [total - EVENTS_PER_JOB] * EVENTS_PER_JOB
    assert pending_seen[EVENTS_PER_JOB:2 * EVENTS_PER_JOB] == [10] * EVENTS_PER_JOB
    assert pending_seen[2 * EVENTS_PER_JOB:] == [0] * 10
    processed = workspace.gateway.read_sync(
        lambda db: db.execute("SELECT count(*) FROM webhook_journal WHERE state = 'processed'").fetchone()[0])
    assert processed == total


async def test_replay_yields_only_when_deliveries_outpace_it(workspace: Workspace) -> None:
    processor = JournalProcessor(gateway=workspace.gateway, metrics=Metrics(), batch=64)
    # Nothing arriving: never yield, whatever the backlog (after a restart, say).
    assert not processor.under_pressure(64)
    processor.wake()  # a delivery was just acknowledged
    # A conversation: deliveries arrive, but replay keeps up (less than a full batch pending).
    assert not processor.under_pressure(1)
    assert not processor.under_pressure(63)
    # A flood: deliveries arrive and a full batch is waiting.
    assert processor.under_pressure(64)


async def test_a_conversation_is_replayed_at_full_priority(workspace: Workspace) -> None:
    """With less than a batch pending, replay uses ordinary writes and does not pause: all rows
    are applied in one call even while deliveries keep being acknowledged."""
    _journal(workspace, 20)
    processor = JournalProcessor(gateway=workspace.gateway, metrics=Metrics(), batch=64)
    processor.wake()
    assert await processor.process_pending() == 20
    assert processor.yielding is False
    assert workspace.gateway.read_sync(_pending_count) == 0

    _journal(workspace, 70)
    processor.wake()
    assert await processor.process_pending() == 64  # a flood: this batch yields
    assert processor.yielding is True
    assert await processor.process_pending() == 6
    assert workspace.gateway.read_sync(_pending_count) == 0


class _Sender:
    """Takes the replies the processor claims, as ``appliance.outbox.sender.Sender`` does."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self.rows: list[dict[str, Any]] = []

    def free_slots(self) -> int:
        return self.slots

    def start_claimed(self, rows: list[dict[str, Any]]) -> None:
        self.rows.extend(rows)


ECHO_FLOW = {
    "schema": "aat.flow/v1", "name": "Echo", "start": "reply",
    "triggers": [{"type": "default", "channels": ["whatsapp"]}],
    "steps": {"reply": {"type": "message", "text": "Hi {{contact.first_name|there}}"}},
}


async def test_replies_are_claimed_in_the_job_that_queued_them_up_to_the_free_slots(workspace: Workspace) -> None:
    def setup(db: Any) -> None:
        now = iso_now()
        connect_channel(db, channel_type="whatsapp", external_id="109876543210987", token_enc="unused",
                        name="bench", waba_id="203040506070809", page_id=None, rate_limit=None, now=now)
        flows.publish(db, flows.create_flow(db, ECHO_FLOW, now)["id"], ECHO_FLOW, now)

    workspace.gateway.write_sync(setup)
    _journal(workspace, 3)
    processor = JournalProcessor(gateway=workspace.gateway, metrics=Metrics(), batch=64)
    processor.sender = sender = _Sender(slots=2)
    queued: list[int] = []

    async def listener(summary: ApplySummary) -> None:
        queued.append(summary.followups.queued_messages)

    processor.listeners.append(listener)
    assert await processor.process_pending() == 3

    # Two claimed (the free slots), committed as `sending` with everything the sender needs;
    # the third stays queued and is the only one left for the sender's own round.
    assert len(sender.rows) == 2
    assert all(row["channel_type"] == "whatsapp" and row["text"].startswith("Hi ") for row in sender.rows)
    states = workspace.gateway.read_sync(lambda db: sorted(
        (r[0], r[1]) for r in db.execute("SELECT message_id, state FROM outbox")))
    assert [state for _, state in states] == ["sending", "sending", "queued"]
    assert {row["message_id"] for row in sender.rows} == {m for m, state in states if state == "sending"}
    assert sum(queued) == 1


# --- the hand-off: rows the receiver journaled are applied from memory while caught up ---------

class _CountingGateway:
    """The workspace's real gateway, counting the reads made through it (the processor's only
    way to the journal's pending rows)."""

    def __init__(self, gateway: Any) -> None:
        self._gateway = gateway
        self.reads = 0

    async def read(self, fn: Any, *args: Any) -> Any:
        self.reads += 1
        return await self._gateway.read(fn, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._gateway, name)


class _Running:
    """A processor's run loop as a task, and the journal ids its listeners heard, in order."""

    def __init__(self, workspace: Workspace, batch: int = 64, look: float = JOURNAL_LOOK_SECONDS) -> None:
        self.gateway = _CountingGateway(workspace.gateway)
        self.processor = JournalProcessor(  # type: ignore[arg-type]
            gateway=self.gateway, metrics=Metrics(), batch=batch, journal_look_seconds=look)
        self.heard: list[int] = []
        self.processor.listeners.append(self._listen)
        self._workspace = workspace
        self._task: asyncio.Task[None] | None = None

    async def _listen(self, summary: ApplySummary) -> None:
        self.heard.append(summary.journal_id)

    async def __aenter__(self) -> _Running:
        self._task = asyncio.create_task(self.processor.run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def receive(self, n: int) -> int:
        """What the webhook receiver does: journal delivery ``n`` (a commit), then hand it over."""
        body = _delivery(n)
        journal_id = await self._workspace.gateway.write(journal.append, body, iso_now())
        self.processor.hand(journal_id, body)
        return journal_id

    async def heard_all(self, ids: list[int]) -> None:
        async with asyncio.timeout(10):
            while len(self.heard) < len(ids):
                await asyncio.sleep(0.01)
        assert self.heard == ids  # each once, in the order journaled
        assert await self._workspace.gateway.read(_pending_count) == 0


async def test_handed_deliveries_are_applied_in_order_without_reading_the_journal_again(workspace: Workspace) -> None:
    async with _Running(workspace, look=3600) as running:  # no look at the journal by the clock
        ids = [await running.receive(0)]
        await running.heard_all(ids)
        reads = running.gateway.reads  # the first delivery: the processor reads to catch up
        for n in range(1, 40):  # a conversation: each next message after the last was applied
            ids.append(await running.receive(n))
            await running.heard_all(ids)
        ids += [await running.receive(n) for n in range(40, 60)]  # some at once
        await running.heard_all(ids)
        assert running.gateway.reads == reads  # all of them from the hand-off


async def test_a_row_journaled_without_the_hand_off_is_applied_in_its_place(workspace: Workspace) -> None:
    """A row the receiver did not hand over (the front door's, before the app opened) leaves a
    gap in the handed ids: the journal is read, and every row is applied once, in id order."""
    async with _Running(workspace, look=3600) as running:
        ids = [await running.receive(0)]
        await running.heard_all(ids)
        reads = running.gateway.reads
        ids.append(await workspace.gateway.write(journal.append, _delivery(1), iso_now()))  # not handed
        ids.append(await running.receive(2))
        await running.heard_all(ids)
        assert running.gateway.reads > reads


async def test_rows_handed_before_the_first_read_are_applied_once(workspace: Workspace) -> None:
    running = _Running(workspace)
    ids = [await running.receive(n) for n in range(5)]  # handed before the run loop starts
    async with running:
        await running.heard_all(ids)
        ids.append(await running.receive(5))
        await running.heard_all(ids)


async def test_a_burst_beyond_a_batch_is_read_from_the_journal(workspace: Workspace) -> None:
    running = _Running(workspace, batch=8)
    async with running:
        ids = [await running.receive(0)]
        await running.heard_all(ids)
        # 30 deliveries before the processor runs again: more than a batch is never held in memory.
        ids += [await running.receive(n) for n in range(1, 31)]
        assert len(running.processor._handed) < 8
        await running.heard_all(ids)


async def test_a_retried_row_is_not_passed_over_while_handed_rows_keep_coming(workspace: Workspace) -> None:
    """``journal retry`` (another process) puts an old row back to pending: the processor reads
    the journal at least every JOURNAL_LOOK_SECONDS, even while the hand-off keeps it busy."""
    failed = workspace.gateway.write_sync(journal.append, _delivery(900), iso_now())
    workspace.gateway.write_sync(journal.finish, failed, events=0, duplicates=0, error="test", now=iso_now())
    async with _Running(workspace) as running:
        ids = [await running.receive(0)]
        await running.heard_all(ids)
        workspace.gateway.write_sync(journal.retry_failed, failed)
        async with asyncio.timeout(JOURNAL_LOOK_SECONDS + 5):
            n = 1
            while failed not in running.heard:
                await running.receive(n)
                n += 1
                await asyncio.sleep(0.05)
        assert running.heard.count(failed) == 1
