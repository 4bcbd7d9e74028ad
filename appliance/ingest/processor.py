"""Replays the webhook journal: parse each pending body, apply it, tell whoever listens.

One asyncio task per process. Rows are taken in id order, parsed on the event loop (pure and
fast), and applied in batches (yielding to acknowledgements during bursts, see
``MAX_LAG_SECONDS``): one writer job applies up to ``batch`` rows, each row in its
own savepoint together with its state change (:func:`appliance.ingest.apply.apply_delivery`).
After a restart, rows still ``pending`` are simply next in line: nothing acknowledged is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import msgspec
from sqlite_utils import Database

from appliance.channels.base import parse_delivery
from appliance.channels.events import ParsedWebhook, ParseProblem
from appliance.flows.runner import Snapshot
from appliance.ingest import journal
from appliance.ingest.apply import ApplySummary, apply_delivery
from appliance.metrics import Metrics
from appliance.store.gateway import Gateway
from appliance.timeutil import from_iso, iso_now, utcnow

__all__ = ["JournalProcessor", "SummaryListener"]

log = logging.getLogger("aat.ingest")

SummaryListener = Callable[[ApplySummary], Awaitable[None]]


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


def _apply_batch(db: Database, batch: list[_Parsed], executors: frozenset[str]) -> list[ApplySummary]:
    now = iso_now()
    snapshot = Snapshot(db)
    summaries = []
    for item in batch:
        if not journal.is_pending(db, item.journal_id):
            continue  # another process (a CLI replay) got there first
        try:
            with db.atomic():
                summaries.append(apply_delivery(db, item.journal_id, item.parsed, now, executors=executors,
                                                snapshot=snapshot))
        except Exception as exc:  # noqa: BLE001 - a poison row is marked, never retried forever
            problem = f"the delivery could not be applied ({type(exc).__name__})"
            journal.finish(db, item.journal_id, events=0, duplicates=0, error=problem, now=now)
            summaries.append(ApplySummary(journal_id=item.journal_id, problems=[problem]))
    return summaries


# While deliveries keep arriving, replay yields: it writes as background jobs and, after each
# batch, pauses YIELD_FACTOR times as long as the batch took, so acknowledging a burst gets
# most of the CPU. Beyond MAX_LAG_SECONDS of backlog it stops yielding and catches up.
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
        self.listeners: list[SummaryListener] = []

    def wake(self) -> None:
        """A delivery was just acknowledged (called by the webhook handler)."""
        self._last_delivery = time.monotonic()
        self._wake.set()

    def _deliveries_flowing(self) -> bool:
        return time.monotonic() - self._last_delivery < BUSY_WINDOW_SECONDS

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
            if processed and self._deliveries_flowing() and not self._lagging:
                # A burst is arriving: give most of the CPU to acknowledging it (Meta wants
                # answers fast; the journal holds the rest durably) until the backlog gets old.
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
        # Replaying is background work: acknowledging new deliveries goes first, unless the
        # backlog is getting old, then the journal catches up at full priority.
        self._lagging = (utcnow() - from_iso(rows[0]["received_at"])).total_seconds() > MAX_LAG_SECONDS
        write = self._db.write if self._lagging else self._db.write_background
        summaries: list[ApplySummary] = []
        for chunk in _chunks(parsed):
            summaries.extend(await write(_apply_batch, chunk, self.executors))
        for summary in summaries:
            self._record(summary)
            for listener in self.listeners:
                try:
                    await listener(summary)
                except Exception:  # noqa: BLE001 - a listener must not stop ingestion
                    log.exception("journal listener failed", extra={"journal_id": summary.journal_id})
        return len(rows)

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
