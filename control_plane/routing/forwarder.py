"""Forwarding journaled deliveries to tenants: one queue and one worker per tenant.

- **Isolation.** Each tenant has its own asyncio worker, its own limit of requests in flight
  (``AAT_CP_FORWARD_CONCURRENCY``) and every request its own timeout
  (``AAT_CP_FORWARD_TIMEOUT_SECONDS``). A slow or dead tenant holds its own worker only; the
  HTTP client has no global connection cap for it to exhaust.
- **Batching.** A worker sends everything due for its tenant in one request (same ``object``,
  up to 256 KiB and 200 deliveries): while one request is in flight the next batch gathers, as
  Meta itself batches (§7). The body is signed with the tenant's secret over the exact bytes
  sent (``X-Hub-Signature-256``), which the appliance checks against its ``AAT_META_APP_SECRET``.
- **Durability.** The journal (``deliveries``) is the truth; the in-memory queue is a cache of
  it (at most ``max_memory`` rows per tenant; beyond that rows stay in the database and are
  read back as the queue drains). A delivery is marked delivered only after the tenant's 2xx
  (at least once: a crash in between forwards it again; the appliance deduplicates). The marks
  of every tenant are gathered for ``MARK_SECONDS`` (50 ms) and written as one writer job, not
  one per forward: a crash inside that window forwards those again, which at least once allows.
  Failures follow :class:`~control_plane.routing.schedule.RetryPolicy`, then dead-letter.
- **Circuit breaking.** A failed forward opens the tenant's circuit until its batch's next
  attempt: deliveries arriving meanwhile are not tried one by one (each would cost a refused
  connection or a timeout slot and a journal write) but wait, and go together in the one probe
  request at that time (one request in flight while the circuit is open). A 2xx closes it, so
  does the provisioner's word that the appliance is back (:meth:`Forwarder.set_up`).
- **The HTTP client.** Forwards go through the forwarder's own
  :class:`~control_plane.routing.client.ForwardingClient` (one ``aiohttp.ClientSession`` used
  directly, created in the running loop on the first forward, closed by :meth:`Forwarder.close`):
  no global connection cap (each tenant's worker caps its own requests in flight), idle
  connections reused for ``KEEPALIVE_SECONDS`` only, under the appliance server's own 5 s. A
  failure is recorded as a short reason: ``timeout`` (connecting, sending and the whole answer,
  ``AAT_CP_FORWARD_TIMEOUT_SECONDS``), ``http <status>``, or the name of the underlying error
  (``ConnectionRefusedError``, ``ServerDisconnectedError``, ``BadStatusLine``, ...).
- Data-deletion fan-outs travel the same way (``object`` ``aat.data_deletion``: a form body
  posted to the tenant's ``/data-deletion``), so they are retried too.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp

from appliance.store.gateway import Gateway
from appliance.timeutil import from_iso, to_iso
from control_plane.metrics import Metrics
from control_plane.routing import store
from control_plane.routing.client import (
    KEEPALIVE_SECONDS,
    ForwardingClient,
    forwarding_client,
)
from control_plane.routing.schedule import DEFAULT_POLICY, RetryPolicy
from control_plane.routing.split import body_of, inner_entries

__all__ = ["DATA_DELETION", "KEEPALIVE_SECONDS", "Forwarder", "Target", "forwarding_client", "to_iso_epoch"]

log = logging.getLogger("aat.cp.forwarder")

DATA_DELETION = "aat.data_deletion"
MAX_BATCH_BYTES = 256 * 1024
MAX_BATCH_ITEMS = 200
MARK_SECONDS = 0.05


@dataclass
class Target:
    tenant_id: str
    url: str
    secret: bytes
    active: bool = True   # lifecycle says: deliver (active), else hold (suspended, deleting, ...)
    up: bool = True       # the provisioner says the appliance is running


@dataclass
class _Item:
    id: int
    object: str
    body: bytes
    attempts: int
    received: float
    due: float
    inflight: bool = False


def _epoch(iso: str | None) -> float:
    return from_iso(iso).timestamp() if iso else time.time()


@dataclass
class _Queue:
    tenant_id: str
    items: dict[int, _Item] = field(default_factory=dict)
    spilled: bool = False
    loading: bool = False
    during_load: list[_Item] = field(default_factory=list)
    last_loaded: int = 0
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    inflight: int = 0
    task: asyncio.Task[None] | None = None
    open_until: float = 0.0  # circuit open (epoch seconds of the next probe); 0: closed


class Forwarder:
    def __init__(self, gateway: Gateway, client: ForwardingClient, metrics: Metrics, *,
                 timeout: float = 10.0, concurrency: int = 2, policy: RetryPolicy = DEFAULT_POLICY,
                 max_memory: int = 2000) -> None:
        self.gateway = gateway
        self.client = client
        self.metrics = metrics
        self.timeout = timeout
        self.concurrency = concurrency
        self.policy = policy
        self.max_memory = max_memory
        self.targets: dict[str, Target] = {}
        self._queues: dict[str, _Queue] = {}
        self._sends: set[asyncio.Task[None]] = set()
        self._closed = False
        self._marks: list[int] = []
        self._marking: asyncio.Task[None] | None = None

    # --- set-up ---------------------------------------------------------------------------------
    async def start(self) -> None:
        """Restart-safe: every tenant with pending rows reads them back from the journal."""
        for tenant_id in await self.gateway.read(store.tenants_with_pending):
            self._queue(tenant_id).spilled = True
            self._queue(tenant_id).wake.set()

    def set_target(self, target: Target) -> None:
        self.targets[target.tenant_id] = target
        self._queue(target.tenant_id).wake.set()

    def remove_target(self, tenant_id: str) -> None:
        self.targets.pop(tenant_id, None)  # its idle connections close after KEEPALIVE_SECONDS
        queue = self._queues.pop(tenant_id, None)
        if queue is not None and queue.task is not None:
            queue.task.cancel()

    def set_up(self, tenant_id: str, up: bool) -> None:
        """The provisioner's word: back up means try that tenant's queue now, not on schedule."""
        target = self.targets.get(tenant_id)
        if target is None:
            return
        target.up = up
        if up:
            queue = self._queue(tenant_id)
            now = time.time()
            queue.open_until = 0.0
            for item in queue.items.values():
                item.due = min(item.due, now)
            queue.wake.set()

    def _queue(self, tenant_id: str) -> _Queue:
        queue = self._queues.get(tenant_id)
        if queue is None:
            queue = self._queues[tenant_id] = _Queue(tenant_id)
        if (queue.task is None or queue.task.done()) and not self._closed:
            queue.task = asyncio.create_task(self._work(queue), name=f"forward-{tenant_id}")
        return queue

    def enqueue(self, tenant_id: str, rows: list[dict[str, Any]]) -> None:
        """Rows just committed to the journal (``id, object, body, attempts, received_at, next_attempt_at``)."""
        queue = self._queue(tenant_id)
        for row in rows:
            item = _Item(row["id"], row["object"], bytes(row["body"]), row.get("attempts", 0),
                         _epoch(row.get("received_at")), _epoch(row.get("next_attempt_at")))
            if queue.loading:
                queue.during_load.append(item)
            elif queue.spilled or len(queue.items) >= self.max_memory:
                queue.spilled = True  # it stays in the journal; read back when the queue drains
            else:
                queue.items[item.id] = item
                queue.last_loaded = max(queue.last_loaded, item.id)
        queue.wake.set()

    def depth(self, tenant_id: str) -> int:
        queue = self._queues.get(tenant_id)
        return len(queue.items) if queue else 0

    async def close(self) -> None:
        self._closed = True
        tasks = [q.task for q in self._queues.values() if q.task is not None] + list(self._sends)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._marking is not None:
            await asyncio.gather(self._marking, return_exceptions=True)
        await self._write_marks()
        await self.client.aclose()

    # --- delivered marks, one writer job per MARK_SECONDS ------------------------------------------
    def _mark_delivered(self, ids: list[int]) -> None:
        self._marks.extend(ids)
        if self._marking is None or self._marking.done():
            self._marking = asyncio.create_task(self._marks_soon())

    async def _marks_soon(self) -> None:
        await asyncio.sleep(MARK_SECONDS)
        await self._write_marks()

    async def _write_marks(self) -> None:
        ids, self._marks = self._marks, []
        if ids:
            try:
                await self.gateway.write(store.mark_delivered, ids, to_iso_epoch(time.time()))
            except Exception:  # noqa: BLE001 - left pending: forwarded again later (at least once)
                log.exception("recording deliveries failed", extra={"deliveries": len(ids)})

    # --- the worker -----------------------------------------------------------------------------
    async def _work(self, queue: _Queue) -> None:
        # Not `while True`: a cancellation racing with the wake-up must not leave the worker
        # running (3.11's wait_for could swallow one), so a closed forwarder's workers also stop
        # by themselves.
        while not self._closed:
            queue.wake.clear()
            target = self.targets.get(queue.tenant_id)
            if target is None or not target.active:
                await queue.wake.wait()
                continue
            if queue.spilled and len(queue.items) < self.max_memory // 2:
                await self._load(queue)
            now = time.time()
            sleep_for = 3600.0
            limit = 1 if queue.open_until else self.concurrency  # one probe at a time while open
            while queue.inflight < limit and now >= queue.open_until:
                batch = self._batch(queue, now)
                if not batch:
                    break
                queue.inflight += 1
                task = asyncio.create_task(self._send(queue, target, batch))
                self._sends.add(task)
                task.add_done_callback(self._sends.discard)
            waiting = [i.due for i in queue.items.values() if not i.inflight]
            if waiting and queue.inflight < limit:
                sleep_for = max(0.0, min(waiting) - now, queue.open_until - now)
            # asyncio.timeout, not wait_for: no task per wake-up (one per enqueue under load)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(sleep_for):
                    await queue.wake.wait()

    def _batch(self, queue: _Queue, now: float) -> list[_Item]:
        batch: list[_Item] = []
        size = 0
        for item in queue.items.values():
            if item.inflight or item.due > now:
                continue
            if batch and (item.object != batch[0].object or item.object == DATA_DELETION
                          or size + len(item.body) > MAX_BATCH_BYTES or len(batch) >= MAX_BATCH_ITEMS):
                continue
            batch.append(item)
            size += len(item.body)
            if item.object == DATA_DELETION:
                break
        for item in batch:
            item.inflight = True
        return batch

    async def _load(self, queue: _Queue) -> None:
        want = self.max_memory - len(queue.items)
        queue.loading = True
        try:
            rows = await self.gateway.read(store.pending_for, queue.tenant_id, queue.last_loaded, want)
        finally:
            queue.loading = False
        for row in rows:
            if row["id"] not in queue.items:
                queue.items[row["id"]] = _Item(row["id"], row["object"], bytes(row["body"]), row["attempts"],
                                               _epoch(row["received_at"]), _epoch(row["next_attempt_at"]))
            queue.last_loaded = max(queue.last_loaded, row["id"])
        late, queue.during_load = queue.during_load, []
        if len(rows) < want:
            queue.spilled = False
            for item in late:
                if item.id not in queue.items:
                    queue.items[item.id] = item
                    queue.last_loaded = max(queue.last_loaded, item.id)

    async def _send(self, queue: _Queue, target: Target, batch: list[_Item]) -> None:
        started = time.perf_counter()
        try:
            ok, error = await self._post(target, batch)
            now = time.time()
            if ok:
                queue.open_until = 0.0
                self._mark_delivered([i.id for i in batch])
                for item in batch:
                    queue.items.pop(item.id, None)
                    self.metrics.forwarded.inc()
                    self.metrics.delivery_seconds.observe(max(0.0, now - item.received))
            else:
                outcomes = []
                retry_at = []
                for item in batch:
                    item.attempts += 1
                    due = self.policy.next_attempt(item.attempts, item.received, now)
                    outcomes.append((item.id, item.attempts, None if due is None else to_iso_epoch(due)))
                    if due is None:
                        queue.items.pop(item.id, None)
                        self.metrics.dead_letters.inc()
                    else:
                        item.due = due
                        retry_at.append(due)
                queue.open_until = min(retry_at) if retry_at else now
                self.metrics.forward_failures.inc()
                log.info("forward failed", extra={"tenant": target.tenant_id, "error": error, "deliveries": len(batch)})
                await self.gateway.write(store.mark_failed, outcomes, error, to_iso_epoch(now))
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - the worker survives; the rows stay pending in the journal
            log.exception("forwarding crashed", extra={"tenant": target.tenant_id})
            for item in batch:
                item.due = time.time() + self.policy.delays[0]
        finally:
            for item in batch:
                item.inflight = False
            queue.inflight -= 1
            self.metrics.forward_seconds.observe(time.perf_counter() - started)
            queue.wake.set()

    async def _post(self, target: Target, batch: list[_Item]) -> tuple[bool, str]:
        if batch[0].object == DATA_DELETION:
            path, body, content_type = "/data-deletion", batch[0].body, "application/x-www-form-urlencoded"
        else:
            object_ = batch[0].object
            body = batch[0].body if len(batch) == 1 else body_of(object_, [inner_entries(object_, i.body) for i in batch])
            path, content_type = "/webhooks/meta", "application/json"
        headers = {"Content-Type": content_type, "X-Hub-Signature-256": _sign(body, target.secret)}
        try:  # the client bounds connecting, sending and the whole answer by the timeout
            status = await self.client.post(target.url.rstrip("/") + path, body, headers, self.timeout)
        except TimeoutError:
            return False, "timeout"
        except (aiohttp.ClientError, OSError) as exc:
            return False, _reason(exc)
        if 200 <= status < 300:
            return True, ""
        return False, f"http {status}"


def _sign(body: bytes, secret: bytes) -> str:
    """``appliance.channels.signature.sign`` through ``hmac.digest`` (one C call: a third of the
    cost of building an ``hmac.HMAC`` object per forward)."""
    return "sha256=" + hmac.digest(secret, body, "sha256").hex()


def _reason(exc: BaseException) -> str:
    """The short failure reason: the name of the innermost cause (``ConnectionRefusedError``)."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return type(exc).__name__


def to_iso_epoch(seconds: float) -> str:
    return to_iso(datetime.fromtimestamp(seconds, UTC))
