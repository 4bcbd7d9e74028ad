"""Replays the webhook journal: parse each pending body, apply it, tell whoever listens.

One asyncio task per process. Rows are taken in id order (up to ``batch`` at a time), parsed on
the event loop (pure and fast), and applied in chunks of about ``EVENTS_PER_JOB`` events, one
writer job per chunk, each row atomically with its state change
(:func:`appliance.ingest.apply.apply_delivery`; the whole chunk in one savepoint, and only if
something in it fails, again with each row in its own: see :func:`_apply_batch`). The listeners (follow-ups: waking the sender,
scheduling timers) hear about a chunk's rows as soon as its job has committed, not after the
whole batch. After a restart, rows still ``pending`` are simply next in line: nothing
acknowledged is lost.

Replies: when a sender is attached (``processor.sender``), the job that applies a chunk also
claims the replies the flows just queued in its conversations (``outbox.claim_due``: marked
``sending`` in the same transaction, at most the sender's free slots), and the processor hands
them to the sender as soon as the job has committed: no separate claim transaction, no wait
for the sender's next round. A crash between the commit and the send leaves them ``sending``,
in doubt, exactly like a crash after the sender's own claim (``outbox.recover_in_doubt``).

Priority (see :meth:`JournalProcessor.under_pressure`): replay runs at the same priority as
everything else, so a conversation's next reply is not held back, unless deliveries arrive
faster than replay applies them (a delivery in the last ``BUSY_WINDOW_SECONDS`` and a full
batch pending): then it writes as background jobs (:meth:`Gateway.write_background`) and
pauses ``YIELD_FACTOR`` times as long as each batch took, so acknowledging the burst gets most
of the CPU. Once the oldest pending row is ``MAX_LAG_SECONDS`` old it catches up at full
priority again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec
from sqlite_utils import Database

from appliance.channels.base import parse_delivery
from appliance.channels.events import ParsedWebhook, ParseProblem
from appliance.flows.runner import Snapshot
from appliance.ingest import journal
from appliance.ingest.apply import ApplySummary, apply_delivery
from appliance.store.savepoint import savepoint
from appliance.metrics import Metrics
from appliance.outbox import store as outbox
from appliance.store.gateway import Gateway
from appliance.timeutil import from_iso, iso_now, utcnow

__all__ = ["JournalProcessor", "SummaryListener"]

log = logging.getLogger("aat.ingest")

SummaryListener = Callable[[ApplySummary], Awaitable[None]]


class ReplySender(Protocol):
    """What the processor hands claimed replies to (``appliance.outbox.sender.Sender``)."""

    def free_slots(self) -> int: ...

    def start_claimed(self, rows: list[dict[str, Any]]) -> None: ...


@dataclass(frozen=True, slots=True)
class _Parsed:
    journal_id: int
    parsed: ParsedWebhook


def _parse(journal_id: int, body: bytes) -> _Parsed:
    try:
        payload = msgspec.json.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError, ValueError):
        parsed = ParsedWebhook(problems=[ParseProblem("$", "the body is not valid JSON")])
    else:
        parsed = parse_delivery(payload)
    return _Parsed(journal_id, parsed)


def _apply_batch(
    db: Database, batch: list[_Parsed], executors: frozenset[str], claim: int = 0,
) -> tuple[list[ApplySummary], list[dict[str, Any]]]:
    """Apply a chunk (one writer job); then claim up to ``claim`` of the replies it queued
    (see the module docstring). Returns the summaries and the claimed rows.

    The chunk is first applied in one savepoint with none per delivery or event
    (:func:`_apply_together`): a savepoint costs far more than its two statements (every page
    first written under it is copied to its journal). Only if something in it fails is that
    undone and the chunk applied again the guarded way (:func:`_apply_guarded`: each delivery,
    and each event of a delivery of several, in its own savepoint), which is what the rows
    then hold. Nothing fails in the usual case, and the stored rows are the same either way."""
    now = iso_now()
    pending = journal.still_pending(db, [item.journal_id for item in batch])
    items = [item for item in batch if item.journal_id in pending]  # else a CLI replay got there first
    summaries = _apply_together(db, items, executors, now)
    if summaries is None:
        summaries = _apply_guarded(db, items, executors, now)
    return summaries, _claim_replies(db, summaries, now, claim)


def _apply_together(
    db: Database, items: list[_Parsed], executors: frozenset[str], now: str,
) -> list[ApplySummary] | None:
    """Every delivery of ``items`` in one savepoint, no other; None (and nothing written) if
    anything failed, an event included (``apply_delivery(..., unguarded=True)`` raises it)."""
    if not items:
        return []
    conn = db.conn
    if not conn.in_transaction:
        return None
    snapshot = Snapshot(db)
    try:
        with savepoint(db, "apply_chunk"):
            return [apply_delivery(db, item.journal_id, item.parsed, now, executors=executors,
                                   snapshot=snapshot, unguarded=True) for item in items]
    except Exception:  # noqa: BLE001 - applied again the guarded way, which records it
        return None


def _apply_guarded(
    db: Database, items: list[_Parsed], executors: frozenset[str], now: str,
) -> list[ApplySummary]:
    """Each delivery in its own savepoint: one that fails is marked failed and the others are
    stored (see :func:`appliance.ingest.apply.apply_delivery` for its events)."""
    snapshot = Snapshot(db)
    summaries = []
    for item in items:
        try:
            with savepoint(db, "apply_delivery"):
                summaries.append(apply_delivery(db, item.journal_id, item.parsed, now, executors=executors,
                                                snapshot=snapshot, within="apply_delivery"))
        except Exception as exc:  # noqa: BLE001 - a poison row is marked, never retried forever
            problem = f"the delivery could not be applied ({type(exc).__name__})"
            journal.finish(db, item.journal_id, events=0, duplicates=0, error=problem, now=now)
            summaries.append(ApplySummary(journal_id=item.journal_id, problems=[problem]))
    return summaries


def _claim_replies(db: Database, summaries: list[ApplySummary], now: str, limit: int) -> list[dict[str, Any]]:
    """Mark ``sending`` (``outbox.claim_due``, so one per conversation and in order) the
    replies just queued in the chunk's conversations, in the chunk's transaction. A claimed
    reply no longer counts in its summary's ``queued_messages``: the sender is not woken to
    look for it."""
    conversations = sorted({c for s in summaries if s.followups.queued_messages for c in s.changed_conversations})
    if limit <= 0 or not conversations:
        return []
    claimed = outbox.claim_due_or_nothing(db, now, limit, conversations)
    if claimed is None:  # the sender claims them itself once woken
        return []
    for row in claimed:
        for summary in summaries:
            if summary.followups.queued_messages and row["conversation_id"] in summary.changed_conversations:
                summary.followups.queued_messages -= 1
                break
    return claimed


# Under pressure (deliveries arriving and at least a full batch pending: replay is not keeping
# up), replay yields: it writes as background jobs and, after each batch, pauses YIELD_FACTOR
# times as long as the batch took. Beyond MAX_LAG_SECONDS of backlog it stops yielding and
# catches up. A conversation (each reply brings the next message) never fills a batch: it is
# replayed at once, at the same priority as its acknowledgements.
MAX_LAG_SECONDS = 10.0
YIELD_FACTOR = 2.0
BUSY_WINDOW_SECONDS = 0.05

# Events applied per writer job. Webhook acknowledgements queue behind the job on the one
# writer thread, so a job must stay short; small deliveries still share a commit.
EVENTS_PER_JOB = 25


def _chunks(parsed: list[_Parsed]) -> list[list[_Parsed]]:
    chunks: list[list[_Parsed]] = []
    current: list[_Parsed] = []
    weight = 0
    for item in parsed:
        size = max(1, len(item.parsed.events))
        if current and weight + size > EVENTS_PER_JOB:
            chunks.append(current)
            current, weight = [], 0
        current.append(item)
        weight += size
    if current:
        chunks.append(current)
    return chunks


class JournalProcessor:
    def __init__(
        self, *, gateway: Gateway, metrics: Metrics, batch: int = 64,
        executors: frozenset[str] = frozenset(),
    ) -> None:
        self._db = gateway
        self.executors = executors
        self._metrics = metrics
        self._batch = batch
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()  # one batch at a time, whoever asks (run loop, drain)
        self._last_delivery = 0.0
        self._lagging = False
        self._pressure = False
        self.listeners: list[SummaryListener] = []
        self.sender: ReplySender | None = None  # set: replies are claimed in the apply job

    def wake(self) -> None:
        """A delivery was just acknowledged (called by the webhook handler)."""
        self._last_delivery = time.monotonic()
        self._wake.set()

    def _deliveries_flowing(self) -> bool:
        return time.monotonic() - self._last_delivery < BUSY_WINDOW_SECONDS

    @property
    def yielding(self) -> bool:
        """Whether the last batch yielded to acknowledgements (see ``under_pressure``)."""
        return self._pressure

    def under_pressure(self, pending: int) -> bool:
        """Whether replaying ``pending`` rows (one read batch) should yield to acknowledgements:
        deliveries are arriving, replay is behind by at least a full batch, and the backlog is
        not yet ``MAX_LAG_SECONDS`` old."""
        return pending >= self._batch and self._deliveries_flowing() and not self._lagging

    async def run(self) -> None:
        while True:
            self._wake.clear()
            started = time.monotonic()
            try:
                processed = await self.process_pending()
            except Exception:  # noqa: BLE001 - keep ingesting; the row stays pending for a retry
                log.exception("journal processing failed")
                processed = 0
                await asyncio.sleep(1.0)
            if processed and self._pressure:
                # A burst is arriving faster than replay: give most of the CPU to acknowledging
                # it (Meta wants answers fast; the journal holds the rest durably).
                await asyncio.sleep(min(0.5, YIELD_FACTOR * (time.monotonic() - started)))
            if processed == 0:
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
                # that arrives as the event is set, and shutdown would wait forever.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(5.0):
                        await self._wake.wait()

    async def process_pending(self) -> int:
        """Process one batch of pending rows; returns how many rows were processed."""
        async with self._lock:
            return await self._process_batch()

    async def _process_batch(self) -> int:
        rows = await self._db.read(journal.pending, self._batch)
        if not rows:
            return 0
        parsed = [_parse(row["id"], row["body"]) for row in rows]
        self._lagging = (utcnow() - from_iso(rows[0]["received_at"])).total_seconds() > MAX_LAG_SECONDS
        self._pressure = self.under_pressure(len(rows))
        write = self._db.write_background if self._pressure else self._db.write
        for chunk in _chunks(parsed):
            claim = self.sender.free_slots() if self.sender is not None else 0
            summaries, claimed = await write(_apply_batch, chunk, self.executors, claim)
            if claimed and self.sender is not None:
                self.sender.start_claimed(claimed)  # committed: send now, no claim round trip
            for summary in summaries:
                await self._announce(summary)
        return len(rows)

    async def _announce(self, summary: ApplySummary) -> None:
        """Count a committed row and tell the listeners (right after its chunk's commit)."""
        self._record(summary)
        for listener in self.listeners:
            try:
                await listener(summary)
            except Exception:  # noqa: BLE001 - a listener must not stop ingestion
                log.exception("journal listener failed", extra={"journal_id": summary.journal_id})

    async def drain(self) -> None:
        """Process until nothing is pending (tests, shutdown)."""
        while await self.process_pending():
            pass

    def _record(self, summary: ApplySummary) -> None:
        stored = summary.events - summary.duplicates
        self._metrics.webhook_events.labels(outcome="stored").inc(max(stored, 0))
        self._metrics.webhook_events.labels(outcome="ignored").inc(summary.ignored)
        self._metrics.webhook_duplicates.inc(summary.duplicates)
        if summary.problems:
            self._metrics.webhook_events.labels(outcome="failed").inc(len(summary.problems))
            log.warning(
                "journal row had problems",
                extra={"journal_id": summary.journal_id, "problems": summary.problems},
            )
