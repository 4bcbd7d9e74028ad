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

Hand-off: the webhook receiver hands every delivery it journaled (its id and body) to the
processor right after the commit (:meth:`JournalProcessor.hand`). While the processor is caught
up with the journal, its run loop applies the handed rows that follow on from the last row it
took, in id order, without reading the journal again: a conversation's next message costs no
read on a reader thread and no wait for one. It reads the journal instead when it is not caught
up (after a start, a failed batch, or a burst of more than a batch or ``HAND_OFF_MAX_BYTES``),
when the handed rows do not follow on (a row journaled some other way: by the front door before
the app opened, by ``aat-appliance journal retry``), and at least every ``JOURNAL_LOOK_SECONDS``
(so that a retried row is not passed over). Either way a row is applied once: the apply job
checks that it is still pending. :meth:`JournalProcessor.process_pending` always reads the
journal.

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
import collections
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
from appliance.events import store as events
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
    anything failed, an event included (``apply_delivery(..., unguarded=True)`` raises it).
    The domain events the chunk emits are written together at its end (``events.batched``)."""
    if not items:
        return []
    conn = db.conn
    if not conn.in_transaction:
        return None
    snapshot = Snapshot(db)
    try:
        with savepoint(db, "apply_chunk"), events.batched(db):  # the chunk's events written together
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

# The hand-off (module docstring): the bodies kept in memory at most (beyond, and beyond a batch
# of rows, the journal is read instead), and how often the journal is read all the same.
HAND_OFF_MAX_BYTES = 1 << 20
JOURNAL_LOOK_SECONDS = 1.0

# Events applied per writer job. Webhook acknowledgements queue behind the job on the one
# writer thread, so a job must stay short; small deliveries still share a commit. Each job's
# replies are claimed and sent as soon as it commits, so a shorter job also starts them sooner:
# at 32 conversations, 12 gave a p99 of 96-115 ms where 25 gave 101-229 ms, at the same rate,
# and 8 cost rate (BENCHMARKS.md, "Inbound message -> bot reply").
EVENTS_PER_JOB = 12


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
        executors: frozenset[str] = frozenset(), journal_look_seconds: float = JOURNAL_LOOK_SECONDS,
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
        # The hand-off (module docstring): rows journaled since, in id order; the id of the last
        # row taken while caught up with the journal (None: read the journal next).
        self._handed: collections.deque[tuple[int, bytes]] = collections.deque()
        self._handed_bytes = 0
        self._follows: int | None = None
        self._journal_read_at = 0.0
        self._journal_look_seconds = journal_look_seconds

    def wake(self) -> None:
        """A delivery was just acknowledged (called by the webhook handler)."""
        self._last_delivery = time.monotonic()
        self._wake.set()

    def hand(self, journal_id: int, body: bytes) -> None:
        """The delivery ``body`` was just journaled (committed) as row ``journal_id``: apply it
        soon, from memory while caught up (the module docstring's hand-off). Call on the loop."""
        if len(self._handed) >= self._batch or self._handed_bytes + len(body) > HAND_OFF_MAX_BYTES:
            self._lose_track()  # a burst: the journal holds it, and is read instead
        else:
            self._handed.append((journal_id, body))
            self._handed_bytes += len(body)
        self.wake()

    def _lose_track(self) -> None:
        self._handed.clear()
        self._handed_bytes = 0
        self._follows = None

    def _take_handed(self) -> list[tuple[int, bytes]] | None:
        """The handed rows to apply next (up to a batch, following on from the last row taken),
        ``[]`` when caught up with nothing handed, or None: read the journal."""
        handed, follows = self._handed, self._follows
        if follows is None or time.monotonic() - self._journal_read_at >= self._journal_look_seconds:
            return None
        while handed and handed[0][0] <= follows:  # taken from the journal already
            self._handed_bytes -= len(handed.popleft()[1])
        if handed and handed[0][0] != follows + 1:
            return None  # a row in between was journaled some other way
        taken: list[tuple[int, bytes]] = []
        while handed and len(taken) < self._batch and handed[0][0] == follows + 1 + len(taken):
            taken.append(handed.popleft())
            self._handed_bytes -= len(taken[-1][1])
        return taken

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
                processed = await self._process_next()
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
        """Process one batch of the rows the journal holds pending; returns how many rows
        were processed."""
        async with self._lock:
            return await self._process_journal()

    async def _process_next(self) -> int:
        """The run loop's batch: the handed rows while caught up, else the journal's."""
        async with self._lock:
            taken = self._take_handed()
            if taken is None:
                return await self._process_journal()
            if not taken:
                return 0
            self._lagging = self._pressure = False  # caught up: less than a batch was waiting
            self._follows = taken[-1][0]
            return await self._apply([_parse(journal_id, body) for journal_id, body in taken])

    async def _process_journal(self) -> int:
        self._journal_read_at = time.monotonic()
        rows, last_id = await self._db.read(journal.pending_and_last_id, self._batch)
        # Caught up when this read holds every pending row: the next row to come is then the
        # one after the journal's last (or after the last row read, if it is later).
        self._follows = max(last_id, rows[-1]["id"] if rows else 0) if len(rows) < self._batch else None
        if not rows:
            return 0
        self._lagging = (utcnow() - from_iso(rows[0]["received_at"])).total_seconds() > MAX_LAG_SECONDS
        self._pressure = self.under_pressure(len(rows))
        return await self._apply([_parse(row["id"], row["body"]) for row in rows])

    async def _apply(self, parsed: list[_Parsed]) -> int:
        """Apply ``parsed`` chunk by chunk, announcing each chunk once it has committed. If a
        chunk fails, the next batch is read from the journal (its rows are still pending there)."""
        write = self._db.write_background if self._pressure else self._db.write
        for chunk in _chunks(parsed):
            claim = self.sender.free_slots() if self.sender is not None else 0
            try:
                summaries, claimed = await write(_apply_batch, chunk, self.executors, claim)
            except BaseException:
                self._lose_track()
                raise
            if claimed and self.sender is not None:
                self.sender.start_claimed(claimed)  # committed: send now, no claim round trip
            for summary in summaries:
                await self._announce(summary)
        return len(parsed)

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
